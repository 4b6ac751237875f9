"""Multi-process training: 2 CPU processes under `accelerate launch` (DDP, gloo) take the same optimizer steps
as 1 process accumulating 2 micro-batches, and only the main process writes OUT.

Why the two runs must agree: HF Trainer shards the (seeded, identically shuffled) dataloader across processes
batch by batch, so process p of P gets the base sampler's batches p, P + p, 2P + p, ...: optimizer step k of
the 2-process run sees base batches 2k and 2k + 1, the two micro-batches step k of the 1-process run with
--grad-accum 2 sees. DDP averages the two processes' gradients (all-reduce sum / 2) and accumulation averages
too (each micro-batch loss is divided by grad_accum before backward), so the updates are the same up to float
rounding in fp32 (the sums run in a different order). The model is a randomly initialised tiny Llama with the
repo's real SmolLM2 tokenizer; LoRA and attention dropout are 0, so nothing random differs between the runs.

Tolerance: 1e-4 relative on loss and grad_norm (measured agreement ~1e-8: rounding only), 1e-6 absolute on the
small reward margins and KL. What a wrong implementation would do: with the gradients SUMMED across processes
instead of averaged, the logged grad_norm (the pre-clipping norm of the reduced gradient) would double from
step 1 on (0.2716 -> 0.5432 here, checked once by scaling the loss by the process count before backward); Adam
is almost scale-invariant, so the losses then moved by only ~3e-6 relative: the loss alone would not show it,
which is why grad_norm is compared. With each process seeing the same batch (no sharding), or a
different shuffle, step 1's grad_norm and every later loss change. Step 1's loss is log 2 in any case (the LoRA
B matrices start at 0, so policy == reference), so it is checked to be exactly that.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "bench" / "gpu_assets"
STEPS = 4
COMMON = [
    "--method",
    "cita",
    "--kl-weight",
    "0.1",
    "--max-steps",
    str(STEPS),
    "--batch-size",
    "2",
    "--lr",
    "1e-2",
    "--max-length",
    "64",
    "--dtype",
    "float32",
    "--seed",
    "11",
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A random tiny Llama (fp32, seed 0) with SmolLM2's tokenizer, and the bundled switch pairs."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ecliptica_bench.train.prefs import build_prefs

    root = tmp_path_factory.mktemp("dist")
    spec = json.loads((ASSETS / "tiny.json").read_text(encoding="utf-8"))
    cfg = AutoConfig.for_model(spec.pop("model_type"), **{**spec, "dtype": "float32"})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(root / "tiny")
    for f in (ASSETS / "tokenizer").iterdir():
        shutil.copy(f, root / "tiny" / f.name)
    build_prefs(root / "prefs")
    return root


def _env() -> dict:
    # no GPU: TrainingArguments then trains on the CPU and the process group uses gloo
    return {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": "1",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(n: int, args: list[str]) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes n -m ecliptica_bench.cli train ARGS` (accelerate's
    --cpu flag selects its single-process launcher, so CPU DDP goes through the torchrun launcher)."""
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(n),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "ecliptica_bench.cli",
        "train",
        *args,
    ]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)


def _single(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", "train", *args], env=_env(), capture_output=True, text=True, timeout=240
    )


def _log(out: Path) -> list[dict]:
    with open(out / "train_log.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(assets):
    data = ["--model", str(assets / "tiny"), "--data", str(assets / "prefs")]
    one = _single([*data, *COMMON, "--grad-accum", "2", "--out", str(assets / "one")])
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = _launch(2, [*data, *COMMON, "--grad-accum", "1", "--eval-heldout", "--out", str(assets / "two")])
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    return assets, one, two


@pytest.mark.slow
def test_two_processes_take_the_same_steps_as_accumulating_two_micro_batches(runs):
    root, _, _ = runs
    one, two = _log(root / "one"), _log(root / "two")
    assert [int(r["step"]) for r in one] == [int(r["step"]) for r in two] == list(range(1, STEPS + 1))
    assert float(two[0]["loss"]) == pytest.approx(math.log(2), abs=1e-6)
    for a, b in zip(one, two):
        for col in ("loss", "dpo", "grad_norm"):
            assert float(b[col]) == pytest.approx(float(a[col]), rel=1e-4), (col, a["step"])
        for col in ("kl", "reward_margin", "reward_accuracy"):
            assert float(b[col]) == pytest.approx(float(a[col]), abs=1e-6), (col, a["step"])
        assert int(b["tokens_seen"]) == int(a["tokens_seen"])  # same pairs per step, counted over processes
        assert float(b["learning_rate"]) == pytest.approx(float(a["learning_rate"]), rel=1e-9)
    # the run did move: a check that could not tell the runs apart would pass on a frozen model too
    assert max(abs(float(r["loss"]) - math.log(2)) for r in two) > 1e-3
    # the adapters trained are the same weights
    from safetensors.torch import load_file

    wa = load_file(str(root / "one" / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(root / "two" / "adapter" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        assert (wa[k] - wb[k]).abs().max().item() <= 1e-5 * max(1.0, wa[k].abs().max().item()), k


@pytest.mark.slow
def test_only_the_main_process_writes_and_evaluates(runs):
    root, one, two = runs
    out = root / "two"
    assert len(_log(out)) == STEPS  # one writer: no duplicated rows
    for summary, procs in (
        (json.loads((out / "summary.json").read_text()), 2),
        (json.loads((root / "one" / "summary.json").read_text()), 1),
    ):
        assert summary["processes"] == procs and summary["effective_batch"] == 4 and summary["global_step"] == STEPS
    conf = json.loads((out / "train_config.json").read_text())
    assert conf["processes"] == 2 and conf["effective_batch"] == 4 and conf["batch_size"] == 2
    assert two.stdout.count("trained cita:") == 1 and two.stdout.count("held-out before") == 1
    pref = json.loads((out / "pref_eval.json").read_text())
    assert set(pref) == {"before", "after"}
    assert (out / "adapter" / "adapter_config.json").exists()
    assert not list(out.glob(".adapter*")) and not list(out.glob(".*staging*"))


@pytest.mark.slow
def test_a_refused_out_dir_stops_every_process(runs):
    root, _, _ = runs
    data = ["--model", str(root / "tiny"), "--data", str(root / "prefs")]
    again = _launch(2, [*data, *COMMON, "--out", str(root / "two")])  # already holds a finished run
    assert again.returncode != 0
    assert again.stderr.count("already holds a training run") == 2  # each process says it, none hangs
    assert len(_log(root / "two")) == STEPS


def test_on_main_single_process(tmp_path):
    from ecliptica_bench.errors import EclipticaError
    from ecliptica_bench.train import dist

    assert dist.state().is_main_process and dist.state().num_processes == 1
    assert dist.on_main(lambda x: x + 1, 41) == 42

    def refuse():
        raise EclipticaError(f"{tmp_path}: no")

    with pytest.raises(EclipticaError, match="no"):
        dist.on_main(refuse)
