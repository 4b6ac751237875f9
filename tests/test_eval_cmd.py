"""`ecliptica eval` (evaluate.py): run + score + report + the leaderboard row in one resumable command, the
shared option decorators of cli.py, --dry-run on run/score/eval, the --output-dir/--output names with the old
--out as a hidden alias, and --model-args reaching the engines (parsed as lm-eval does, in the run id and the
cache key only where they can change outputs)."""

from __future__ import annotations

import csv
import re
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI, all_true

from ecliptica_bench.backends.base import OUTPUT_NEUTRAL_ARGS, output_args, parse_model_args
from ecliptica_bench.cli import cli
from ecliptica_bench.errors import EclipticaError

REPO = Path(__file__).resolve().parent.parent


def model_and_judge(body, n):
    """One loopback server as the model under test (plain text) and the judge (verdicts, all true)."""
    if body.get("response_format"):
        return all_true(body, n)
    sys_msg = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    return 200, {}, f"Here is my answer. {sys_msg[:40]} It depends on the details."


def invoke(args: list[str]):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    return res


def eval_args(url: str, out: Path, limit: int = 4) -> list[str]:
    return [
        "eval",
        "--backend",
        "openai",
        "--model",
        "served-model",
        "--base-url",
        url,
        "--suites",
        "ecliptica,litmus",
        "--limit",
        str(limit),
        "--temperature",
        "0",
        "--max-new-tokens",
        "16",
        "--judge",
        f"{url},fake-judge",
        "--bootstrap",
        "50",
        "--output-dir",
        str(out),
    ]


def board_rows(out: Path) -> list[dict]:
    with open(out / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ eval
@pytest.mark.slow
def test_eval_writes_everything_and_a_rerun_generates_and_judges_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "runs"
    # one server for the whole test: the served model's identity (its fingerprint) includes the address
    with FakeOpenAI(model_and_judge) as server:
        first = invoke(eval_args(server.url, out))
        assert first.exit_code == 0, first.output
        sent = list(server.requests)
        generated = [b for b in sent if not b.get("response_format")]
        judged = [b for b in sent if b.get("response_format")]
        again = invoke(eval_args(server.url, out))
        assert again.exit_code == 0, again.output
        assert len(server.requests) == len(sent)  # the second eval sent nothing: no generation, no verdict
        [run_dir] = [d for d in out.iterdir() if d.is_dir()]
        dry = invoke(["score", str(run_dir), "--judge", f"{server.url},fake-judge", "--dry-run"])
        assert len(server.requests) == len(sent)
        assert dry.exit_code == 0, dry.output
        assert "16 rows" in dry.output and re.search(r"judge fake-judge: (\d+) requests \(\1 of them contrastive", dry.output)
        assert ", 16 cached;" in dry.output  # every single-response verdict is in the cache
        assert generated and judged
        for name in ("generations.parquet", "scores.parquet", "metrics.json", "report.html", "manifest.json"):
            assert (run_dir / name).is_file(), name
        for res in (first, again):
            text = res.output
            assert "Delta [95% CI]" in text and "valid%" in text and "trunc%" in text and "judge agr." in text
            assert f"report: {run_dir / 'report.html'}" in text
            assert f"leaderboard: {out / 'leaderboard.csv'} and {out / 'leaderboard.md'}" in text
            for suite in ("ecliptica", "litmus"):
                assert any(line.startswith(suite) for line in text.splitlines()), text
        assert "0 generated now" in again.output and f"{len(generated)} cached" in again.output
        assert "0 requests" in again.output  # the judge line: every verdict from the cache
        rows = board_rows(out)
        assert len(rows) == 1 and rows[0]["run_ids"] == run_dir.name and rows[0]["model"] == "served-model"
        assert "served-model" in (out / "leaderboard.md").read_text()

        # the same model evaluated again on more cases: its row is replaced (one row, the newer run), not added
        more = invoke(eval_args(server.url, out, limit=6))
        assert more.exit_code == 0, more.output
        rows = board_rows(out)
        newer = re.search(r"\brun (\S+) -> ", more.output).group(1)  # after any progress bar (stderr)
        assert len(rows) == 1 and rows[0]["run_ids"] == newer != run_dir.name
        assert len([d for d in out.iterdir() if d.is_dir()]) == 2  # both runs stay on disk

        # two more sampling seeds: one run each, averaged with the seed-42 run into the model's one row
        seeded = invoke([*eval_args(server.url, out, limit=6), "--seeds", "1,2"])
        assert seeded.exit_code == 0, seeded.output
        [row] = board_rows(out)
        assert row["seeds"] == "3" and len(row["run_ids"].split(";")) == 3 and newer in row["run_ids"]
        assert "(mean over 3 seeds)" in seeded.output


def test_eval_dry_run_loads_nothing_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "runs"
    with FakeOpenAI(model_and_judge) as server:
        res = invoke([*eval_args(server.url, out), "--dry-run"])
        assert server.requests == []
    assert res.exit_code == 0, res.output
    assert not out.exists()
    lines = res.output.splitlines()
    assert lines[0].startswith("dry run: run served-model-")
    # 4 ecliptica cases + 4 litmus cases, both conditions; greedy: uninstructed rows of a prompt share one key
    assert "8 cases, 16 rows" in lines[1] and "(chars/4)" in lines[1]
    judge = next(line for line in lines if line.strip().startswith("judge fake-judge:"))
    m = re.search(r"(\d+) requests \((\d+) of them contrastive, their cache not checked\), 0 cached", judge)
    assert m and int(m.group(1)) == 16 + int(m.group(2)), judge  # one verdict per row, plus the contrastive ones
    assert "responses at max_new_tokens" in judge


def test_run_dry_run_counts_with_the_tokenizer_and_never_loads_weights(tmp_path, embedded_model_dir, monkeypatch):
    from ecliptica_bench.backends import hf

    def no_weights(self):
        raise AssertionError("--dry-run loaded the model")

    monkeypatch.setattr(hf.HFBackend, "_load", no_weights)
    res = invoke(
        ["run", "--backend", "hf", "--suites", "litmus", "--limit", "3", "--output-dir", str(tmp_path / "r"), "--dry-run"]
    )
    assert res.exit_code == 0, res.output
    assert "the model's tokenizer" in res.output and "3 cases, 6 rows" in res.output
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------ options
def params(command: str) -> dict[str, click.Option]:
    return {p.name: p for p in cli.commands[command].params}


def test_shared_options_are_declared_once():
    """The options run, eval and score share come from one decorator each: same flags, help and defaults."""
    run, ev, score, je = params("run"), params("eval"), params("score"), params("judge-eval")
    for name in (
        "model",
        "adapter",
        "backend",
        "dtype",
        "model_args",
        "base_url",
        "api_key_env",
        "no_api_key",
        "suites",
        "limit",
        "seed",
    ):
        assert run[name].to_info_dict() == ev[name].to_info_dict(), name
    for name in ("judge_specs", "judge_concurrency", "judge_timeout"):
        assert score[name].to_info_dict() == ev[name].to_info_dict() == je[name].to_info_dict(), name
    for name in ("embedder", "n_boot", "judge_base_url", "judge_model", "judge_api_key_env"):
        assert score[name].to_info_dict() == ev[name].to_info_dict(), name
    from ecliptica_bench.models import DEFAULT_MODEL

    assert run["model"].default == ev["model"].default == params("train")["model"].default == DEFAULT_MODEL
    for c in ("run", "eval", "score"):
        assert "dry_run" in params(c)


def test_output_names_and_the_hidden_out_alias():
    """Folders are --output-dir, files --output; no visible option is called --out any more."""
    folders = ("run", "eval", "build-dataset", "build-prefs", "demo", "likelihood", "export-lm-eval", "import-lm-eval", "train")
    files = ("leaderboard", "judge-eval", "compare")
    for name, command in cli.commands.items():
        visible = [o for p in command.params if isinstance(p, click.Option) and not p.hidden for o in p.opts]
        assert "--out" not in visible, name
        if name in folders:
            assert "--output-dir" in visible, name
        if name in files:
            assert "--output" in visible, name
        if name in folders + files:
            assert any(getattr(p, "hidden", False) and "--out" in p.opts for p in command.params), f"{name}: the old --out alias"


def test_old_out_still_works_and_conflicts_are_refused(tmp_path):
    res = invoke(["run", "--suites", "litmus", "--limit", "2", "--backend", "hf", "--out", str(tmp_path / "a"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"-> {tmp_path / 'a'}/" in res.output
    res = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "a"), "--output-dir", str(tmp_path / "b"), "--dry-run"])
    assert res.exit_code == 2 and "--out is the old name of --output-dir" in res.output


# ------------------------------------------------------------------------------------------------ model args
def test_model_args_are_typed_like_lm_eval():
    got = parse_model_args(
        "max_model_len=4096,enforce_eager=true,gpu_memory_utilization=0.85,quantization=fp8,revision=None,x=False"
    )
    assert got == {
        "max_model_len": 4096,
        "enforce_eager": True,
        "gpu_memory_utilization": 0.85,
        "quantization": "fp8",
        "revision": None,
        "x": False,
    }
    assert type(got["max_model_len"]) is int and type(got["gpu_memory_utilization"]) is float
    assert parse_model_args("") == {} and parse_model_args(None) == {}
    for bad in ("max_model_len", "=3", "a=1,a=2"):
        with pytest.raises(EclipticaError, match="--model-args"):
            parse_model_args(bad)


def test_only_output_changing_args_are_in_the_key():
    args = {"max_model_len": 4096, "quantization": "fp8", "gpu_memory_utilization": 0.9, "enforce_eager": True, "swap_space": 4}
    assert output_args(args) == {"max_model_len": 4096, "quantization": "fp8"}
    assert {"gpu_memory_utilization", "enforce_eager", "swap_space"} <= OUTPUT_NEUTRAL_ARGS


def test_model_args_reach_the_backend_constructor(monkeypatch):
    import ecliptica_bench.backends as backends
    from ecliptica_bench.run import RunOptions, make_backend

    with pytest.raises(EclipticaError, match="--model-args: the openai backend"):
        make_backend(RunOptions(backend="openai", base_url="http://127.0.0.1:9/v1", model_args="max_model_len=4096"))
    seen = {}
    monkeypatch.setattr(backends, "resolve_backend_name", lambda name: "vllm")  # vLLM need not be installed
    monkeypatch.setattr(backends, "get_backend", lambda name, **kw: seen.update(name=name, **kw))
    make_backend(RunOptions(backend="vllm", model_args="max_model_len=4096,enforce_eager=true"))
    assert seen["name"] == "vllm" and seen["model_args"] == {"max_model_len": 4096, "enforce_eager": True}


def test_model_args_reach_from_pretrained(embedded_model_dir, monkeypatch):
    import transformers

    from ecliptica_bench.backends.hf import HFBackend

    seen = {}

    class Stop(Exception):
        pass

    def from_pretrained(path, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    be = HFBackend(str(embedded_model_dir), model_args=parse_model_args("attn_implementation=eager,low_cpu_mem_usage=true"))
    with pytest.raises(EclipticaError, match="cannot load the model"):
        be._load()
    assert seen["attn_implementation"] == "eager" and seen["low_cpu_mem_usage"] is True
    assert be.describe()["model_args"] == {"attn_implementation": "eager", "low_cpu_mem_usage": True}
    with pytest.raises(EclipticaError, match="takes it from --dtype"):
        HFBackend(str(embedded_model_dir), model_args={"torch_dtype": "float16"})


@pytest.fixture
def vllm_stub(monkeypatch):
    """vllm.platforms alone, on a GPU (as tests/test_vllm_executor_flag.py): the engine arguments without vLLM."""
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: False)
    vllm = types.ModuleType("vllm")
    vllm.platforms = platforms
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)


def test_vllm_engine_gets_the_args_and_no_fixed_max_model_len(embedded_model_dir, vllm_stub):
    from ecliptica_bench.backends.vllm import VLLMBackend

    plain = VLLMBackend(str(embedded_model_dir))._engine_kwargs()
    assert "max_model_len" not in plain and "enforce_eager" not in plain  # the engine's (the model's) own
    kw = VLLMBackend(
        str(embedded_model_dir), model_args=parse_model_args("max_model_len=4096,gpu_memory_utilization=0.5")
    )._engine_kwargs()
    assert kw["max_model_len"] == 4096 and kw["gpu_memory_utilization"] == 0.5
    with pytest.raises(EclipticaError, match="takes it from --tensor-parallel-size"):
        VLLMBackend(str(embedded_model_dir), model_args={"tensor_parallel_size": 2})


def test_run_id_and_keys_change_only_with_output_changing_args(embedded_model_dir, vllm_stub):
    from ecliptica_bench.backends.vllm import VLLMBackend
    from ecliptica_bench.run import RunOptions, make_run_id, plan, prepare, resolved_config

    opts = RunOptions(backend="vllm", suites="litmus", limit=2, temperature=0)
    suites, conditions, cases, sampling = prepare(opts)

    def ident(args: str):
        be = VLLMBackend(str(embedded_model_dir), model_args=parse_model_args(args))
        config = resolved_config(opts, be, conditions, cases, sampling)
        return make_run_id("m", config), sorted(p.key for p in plan(be, cases, conditions, sampling)["litmus"])

    base = ident("")
    assert ident("gpu_memory_utilization=0.5,enforce_eager=true,swap_space=8") == base
    longer = ident("max_model_len=4096")
    assert longer[0] != base[0] and not set(longer[1]) & set(base[1])
