"""`ecliptica run`: case selection, keys and run ids, resumption (exactly-once, errors never cached),
the parquet contract, run-dir validation; and on the embedded model: hf batching with left padding,
a SIGKILL mid-run followed by a rerun, and a second identical run that generates nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ecliptica_bench import run as run_mod
from ecliptica_bench.backends import GenResult
from ecliptica_bench.backends.base import Backend, model_fingerprint
from ecliptica_bench.errors import EclipticaError, ValidationError
from ecliptica_bench.run import RunOptions, load_cases, run, validate_run_dir
from ecliptica_bench.rundir import GENERATION_COLUMNS
from ecliptica_bench.store import RunStore
from ecliptica_bench.suites import get_suite

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------- a fake backend
class FakeTokenizer:
    chat_template = "{{ fake }}"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


class FakeBackend(Backend):
    """Answers with a function of the prompt; can be told to fail chosen batches."""

    name = "fake"
    default_batch_size = 3

    def __init__(self, fail_batches=(), fail_after=None):
        self.tokenizer = FakeTokenizer()
        self.fingerprint = "fake-model-v1"
        self.calls: list[list[str]] = []
        self.fail_batches = set(fail_batches)
        self.fail_after = fail_after

    def generate(self, requests, params):
        self.calls.append([r.key for r in requests])
        n = len(self.calls)
        if n in self.fail_batches:
            raise RuntimeError(f"device on fire in batch {n}")
        if self.fail_after is not None and n > self.fail_after:
            raise KeyboardInterrupt  # stands in for a crash: nothing of this batch may land
        return [
            GenResult(
                text=f"echo {r.prompt}", finish_reason="stop", prompt_tokens=len(r.prompt), completion_tokens=3, latency_s=0.01
            )
            for r in requests
        ]


@pytest.fixture
def fake(monkeypatch):
    holder = {}

    def install(**kw):
        holder["backend"] = FakeBackend(**kw)
        monkeypatch.setattr(run_mod, "make_backend", lambda opts: holder["backend"])
        return holder["backend"]

    return install


def opts(tmp_path, **kw) -> RunOptions:
    base = dict(suites="ecliptica,truthfulqa", limit=12, out=tmp_path / "runs", temperature=0.0, max_new_tokens=8, progress=False)
    return RunOptions(**{**base, **kw})


# ------------------------------------------------------------------------------------------- cases
def test_limit_takes_whole_prompts_in_dataset_order():
    cases = load_cases([get_suite("ecliptica")], limit=25)["ecliptica"]
    assert len(cases) == 25
    assert [c["prompt_id"] for c in cases] == [0] * 10 + [1] * 10 + [2] * 5
    types = [t.name for t in get_suite("ecliptica").instructions().types]
    assert [c["instruction_type"] for c in cases[:10]] == types


def test_built_dataset_gives_the_same_cases(built_dataset):
    suites = [get_suite("ecliptica"), get_suite("litmus")]
    mem = load_cases(suites, limit=15)
    disk = load_cases(suites, data=built_dataset, limit=15)
    assert run_mod.dataset_sha(mem) == run_mod.dataset_sha(disk)


def test_bad_options_are_one_line_errors(tmp_path, fake):
    fake()
    with pytest.raises(EclipticaError, match="--limit"):
        run(opts(tmp_path, limit=0))
    with pytest.raises(EclipticaError, match="--condition"):
        run(opts(tmp_path, condition="sometimes"))
    with pytest.raises(EclipticaError, match="--top-p"):
        run(opts(tmp_path, top_p=1.5))
    with pytest.raises(EclipticaError, match="unknown suite"):
        run(opts(tmp_path, suites="ecliptica,nope"))
    with pytest.raises(EclipticaError, match="--run-id"):
        run(opts(tmp_path, run_id="../escape"))


def test_cli_errors_exit_2(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args, needle in (
        (["--backend", "openai"], "--base-url"),
        (["--adapter", str(tmp_path)], "adapter_config.json"),
        (["--model", str(tmp_path / "nowhere")], "not found"),
    ):
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "ecliptica_bench.cli",
                "run",
                "--suites",
                "litmus",
                "--limit",
                "1",
                "--out",
                str(tmp_path / "r"),
                *args,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert p.returncode == 2, p.stderr
        assert needle in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_backend_registry():
    from ecliptica_bench.backends import BACKENDS, backend_class, resolve_backend_name, vllm_available

    assert set(BACKENDS) == {"hf", "vllm", "openai"}
    assert resolve_backend_name("auto") == ("vllm" if vllm_available() else "hf")
    assert backend_class("openai").name == "openai" and backend_class("hf").name == "hf"
    with pytest.raises(EclipticaError, match="unknown backend"):
        resolve_backend_name("tgi")
    if not vllm_available():
        with pytest.raises(EclipticaError, match="vllm is not installed"):
            resolve_backend_name("vllm")


# -------------------------------------------------------------------------------- keys and run ids
def test_run_id_and_keys_follow_the_config(tmp_path, fake):
    fake()
    a = run(opts(tmp_path))
    b = run(opts(tmp_path))
    assert a["run_id"] == b["run_id"] and b["generated"] == 0 and b["cached"] == a["unique_generations"]
    fake()
    c = run(opts(tmp_path, seed=7))
    assert c["run_id"] != a["run_id"] and c["generated"] == c["unique_generations"]
    fake()
    d = run(opts(tmp_path, limit=11))
    assert d["run_id"] != a["run_id"]
    fake()
    e = run(opts(tmp_path, run_id="mine", limit=11))
    assert e["run_dir"].endswith("mine") and e["generated"] == e["unique_generations"]  # a new store


def test_uninstructed_rows_share_one_generation_per_prompt(tmp_path, fake):
    fake()
    s = run(opts(tmp_path, suites="ecliptica", limit=20, condition="both"))
    # 2 prompts x 10 types instructed + 2 distinct uninstructed prompts
    assert s["rows"] == 40 and s["unique_generations"] == 22
    df = pq.read_table(Path(s["run_dir"]) / "generations.parquet").to_pandas()
    un = df[df.condition == "uninstructed"]
    assert un.groupby("prompt_id").key.nunique().tolist() == [1, 1]
    assert set(un.instruction_type) == set(df[df.condition == "instructed"].instruction_type)
    assert not un.response.str.contains("<system>").any()
    assert df[df.condition == "instructed"].response.str.contains("<system>").all()


def test_parquet_contract_and_manifest(tmp_path, fake):
    fake()
    s = run(opts(tmp_path, suites="truthfulqa,litmus", limit=4, cli_args=["run", "--limit", "4"]))
    run_dir = Path(s["run_dir"])
    table = pq.read_table(run_dir / "generations.parquet")
    assert table.column_names[: len(GENERATION_COLUMNS)] == GENERATION_COLUMNS
    for extra in ("best_answer", "correct_answers", "incorrect_answers", "axiom", "label"):
        assert extra in table.column_names
    df = table.to_pandas()
    assert set(df.finish_reason) == {"stop"} and (df.run_id == s["run_id"]).all()
    assert df[df.suite == "litmus"].best_answer.isna().all() and df[df.suite == "truthfulqa"].best_answer.notna().all()
    m = json.loads((run_dir / "manifest.json").read_text())
    for k in (
        "cli_args",
        "config",
        "config_sha256",
        "versions",
        "device",
        "seeds",
        "dataset_sha256",
        "chat_template_sha256",
        "backend",
        "model",
        "adapter",
        "summary",
        "outputs",
    ):
        assert k in m, k
    assert m["status"] == "complete" and m["summary"]["rows"] == len(df)
    assert m["config"]["params"]["truthfulqa"] == {"max_new_tokens": 8, "temperature": 0.0, "top_p": 0.9}
    with RunStore(run_dir) as st:
        g = st.generations(df.key.tolist())
    row = g[df.key.iloc[0]]
    assert row["prompt_sha256"] == df.prompt_sha256.iloc[0] and row["template_sha256"] == m["chat_template_sha256"]
    assert row["rendered_prompt"].endswith("<assistant>") and row["seed"] == 42


def test_default_budget_is_the_suites(tmp_path, fake):
    fake()
    s = run(opts(tmp_path, suites="ecliptica,litmus", limit=2, max_new_tokens=None))
    assert s["suites"]["ecliptica"]["max_new_tokens"] == 512 and s["suites"]["litmus"]["max_new_tokens"] == 150


def test_warnings_no_template_and_truncation(tmp_path, fake, caplog):
    b = fake()
    b.tokenizer.chat_template = None  # a base model without a chat template
    real_generate = b.generate

    def truncating(requests, params):
        out = real_generate(requests, params)
        for r in out[::2]:
            r.finish_reason = "length"
        return out

    b.generate = truncating
    with caplog.at_level("WARNING"):
        s = run(opts(tmp_path, suites="litmus", limit=6, condition="instructed"))
    m = json.loads((Path(s["run_dir"]) / "manifest.json").read_text())
    assert m["chat_template_sha256"] is None
    assert any("no chat template" in w for w in m["warnings"])
    assert any("stopped at the token limit" in w for w in m["warnings"])
    assert sum("no chat template" in r.getMessage() for r in caplog.records) <= 2  # said once, not per case
    df = pq.read_table(Path(s["run_dir"]) / "generations.parquet").to_pandas()
    assert df.template_sha256.isna().all() and (df.finish_reason == "length").sum() == 4  # 2 batches of 3


# ------------------------------------------------------------------------------ failures and resume
def test_failed_batch_goes_to_errors_and_is_retried(tmp_path, fake):
    b = fake(fail_batches={2})
    s = run(opts(tmp_path, suites="ecliptica", limit=12, condition="instructed"))
    assert s["errors"] == 3 and s["unresolved"] == 3 and s["rows"] == 9
    run_dir = Path(s["run_dir"])
    with RunStore(run_dir) as st:
        errs = st.errors("generation")
        assert len(errs) == 3 and all("device on fire" in e["error"] for e in errs)
        failed = {e["key"] for e in errs}
        assert set(st.missing(failed)) == failed
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "incomplete"
    b2 = fake()
    s2 = run(opts(tmp_path, suites="ecliptica", limit=12, condition="instructed"))
    assert s2["generated"] == 3 and s2["unresolved"] == 0 and s2["rows"] == 12
    assert b2.calls == [b.calls[1]]  # the same batch, with the same members, re-sent
    assert validate_run_dir(run_dir).startswith("ok")


def test_repeated_failures_stop_the_run(tmp_path, fake):
    fake(fail_batches=set(range(1, 100)))
    with pytest.raises(EclipticaError, match="3 batches in a row failed"):
        run(opts(tmp_path, suites="ecliptica", limit=12, condition="instructed"))


def test_crash_mid_run_then_rerun_is_exactly_once(tmp_path, fake):
    fake(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run(opts(tmp_path, suites="ecliptica", limit=12, condition="instructed"))
    run_dir = next((tmp_path / "runs").iterdir())
    with RunStore(run_dir) as st:
        assert st.count_generations() == 6  # two whole batches, nothing of the third
    assert not (run_dir / "generations.parquet").exists()
    with pytest.raises(ValidationError, match="generations.parquet"):
        validate_run_dir(run_dir)
    b = fake()
    s = run(opts(tmp_path, suites="ecliptica", limit=12, condition="instructed"))
    assert s["generated"] == 6 and s["cached"] == 6 and len(b.calls) == 2
    df = pq.read_table(run_dir / "generations.parquet").to_pandas()
    assert len(df) == 12 and df.case_id.is_unique


def test_validate_run_dir_catches_tampering(tmp_path, fake):
    fake()
    s = run(opts(tmp_path, suites="litmus", limit=4, condition="instructed"))
    run_dir = Path(s["run_dir"])
    from ecliptica_bench.data.validate import validate_path

    assert validate_path(run_dir).startswith("ok: run")
    table = pq.read_table(run_dir / "generations.parquet")
    df = table.to_pandas()
    # a duplicated row, and a response that differs from the store
    bad = df.copy()
    bad.loc[1] = bad.loc[0]
    bad.loc[2, "response"] = "made up"
    bad.to_parquet(run_dir / "generations.parquet", index=False)
    with pytest.raises(ValidationError) as ei:
        validate_run_dir(run_dir)
    msg = str(ei.value)
    assert "generations.parquet" in msg and "sha256 differs" in msg
    assert "duplicate (case, condition)" in msg and "response differs from the store" in msg
    (run_dir / "store.sqlite").unlink()
    for f in run_dir.glob("store.sqlite-*"):
        f.unlink()
    with pytest.raises(ValidationError, match="store.sqlite: missing"):
        validate_run_dir(run_dir)


# ------------------------------------------------------------------------------------ fingerprints
def test_fingerprint_tracks_weights_and_template(tmp_path, monkeypatch):
    monkeypatch.setenv("ECLIPTICA_CACHE_DIR", str(tmp_path / "cache"))
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text("{}")
    (m / "model.safetensors").write_bytes(b"\0" * 1000)
    f1 = model_fingerprint(m)
    assert model_fingerprint(m) == f1
    assert (tmp_path / "cache" / "weight_shas.json").exists()  # weight hashes are cached
    (m / "chat_template.jinja").write_text("{{ x }}")
    f2 = model_fingerprint(m)
    assert f2 != f1
    (m / "model.safetensors").write_bytes(b"\1" * 1000)
    assert model_fingerprint(m) != f2
    a = tmp_path / "a"
    a.mkdir()
    (a / "adapter_config.json").write_text('{"r": 8}')
    (a / "adapter_model.safetensors").write_bytes(b"\2" * 10)
    assert model_fingerprint(m, a) != model_fingerprint(m)


# ---------------------------------------------------------------------------- the embedded model
@pytest.mark.slow
def test_hf_batches_match_one_at_a_time(embedded_model_dir):
    """Left padding and length bucketing do not change greedy outputs; 'stop' and 'length' are told apart."""
    from ecliptica_bench.backends import GenRequest, SamplingParams
    from ecliptica_bench.backends.hf import HFBackend
    from ecliptica_bench.chat import render_chat

    be = HFBackend(str(embedded_model_dir))
    msgs = [
        [{"role": "user", "content": "Say hi."}],
        [{"role": "system", "content": "Be concise."}, {"role": "user", "content": "What is the capital of France?"}],
        [
            {"role": "system", "content": "You are a careful, detailed tutor who explains every step."},
            {"role": "user", "content": "Explain, in several sentences, why the sky looks blue during the day."},
        ],
    ]
    reqs = [GenRequest(key=f"{i:064x}", prompt=render_chat(be.tokenizer, m).text, messages=m) for i, m in enumerate(msgs)]
    p = SamplingParams(temperature=0.0, max_new_tokens=24)
    batched = be.generate(reqs, p)
    single = [be.generate([r], p)[0] for r in reqs]
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.prompt_tokens for r in batched] == [r.prompt_tokens for r in single]
    assert len({r.prompt_tokens for r in batched}) == 3  # really different lengths, padded
    for r in batched:  # completion_tokens counts the eos, so a "stop" can also use all 24
        assert r.finish_reason in ("stop", "length") and r.completion_tokens <= 24
        if r.finish_reason == "length":
            assert r.completion_tokens == 24
    assert batched[2].finish_reason == "length"  # the long explanation cannot fit
    assert batched[0].finish_reason == "stop"  # "Say hi." is answered in a line
    # seeded sampling: same seed, same sample
    ps = SamplingParams(temperature=0.9, top_p=0.9, max_new_tokens=12, seed=3)
    assert [r.text for r in be.generate(reqs[:2], ps)] == [r.text for r in be.generate(reqs[:2], ps)]
    # the batch plan is longest-first and deterministic
    plan = be.plan_batches(reqs, 2)
    lengths = {r.key: n for r, n in zip(reqs, (r.prompt_tokens for r in batched))}
    flat = [lengths[r.key] for b in plan for r in b]
    assert [len(b) for b in plan] == [2, 1] and flat == sorted(flat, reverse=True)


def _cli(args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "ecliptica_bench.cli", "run", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_is_exactly_once_and_identical(tmp_path, embedded_model_dir):
    args = [
        "--backend",
        "hf",
        "--suites",
        "ecliptica",
        "--limit",
        "24",
        "--condition",
        "both",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0",
        "--batch-size",
        "2",
    ]
    killed_out = tmp_path / "killed"
    proc = _cli([*args, "--out", str(killed_out)])
    total = 24 + 3  # instructed + one uninstructed generation per prompt (3 prompts)
    db = None
    deadline = time.time() + 600
    done = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            dbs = list(killed_out.glob("*/store.sqlite"))
            if dbs:
                db = dbs[0]
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                        done = c.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
                if done >= 4:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run_dir = db.parent
    with sqlite3.connect(db) as c:
        partial = c.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert 4 <= partial < total
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"

    rerun = _cli([*args, "--out", str(killed_out)])
    out, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-3000:]
    assert f"{total - partial} generated now, {partial} cached, 0 errors" in out, out
    clean = _cli([*args, "--out", str(tmp_path / "clean")])
    out_clean, err = clean.communicate(timeout=900)
    assert clean.returncode == 0, err[-3000:]

    a = pq.read_table(run_dir / "generations.parquet").to_pandas()
    clean_dir = next((tmp_path / "clean").iterdir())
    assert clean_dir.name == run_dir.name  # same config, same run id
    b = pq.read_table(clean_dir / "generations.parquet").to_pandas()
    assert len(a) == 48 and not a.duplicated(["case_id", "condition"]).any()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == total
        assert c.execute("SELECT COUNT(*) FROM errors").fetchone()[0] == 0
    merged = a.merge(b, on=["case_id", "condition"], suffixes=("_killed", "_clean"))
    assert len(merged) == 48
    assert (merged.key_killed == merged.key_clean).all()
    assert (merged.response_killed == merged.response_clean).all()
    assert validate_run_dir(run_dir).startswith("ok")

    again = _cli([*args, "--out", str(killed_out)])
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert f"0 generated now, {total} cached" in out, out
    assert "Loading weights" not in err  # nothing to generate: the model is never loaded
