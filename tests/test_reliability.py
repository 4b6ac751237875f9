"""Crash and fault tolerance of `ecliptica score` with an LLM judge (the kill-during-run test lives in
test_run.py, judge fault units in test_judge.py, train kill/--resume in test_train_e2e.py):
SIGKILL of a real `ecliptica score` subprocess mid-judging, then a rerun that asks the judge only for what the
store lacks; and a mix of endpoint faults through the CLI ending in a finished run with faults counted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from fake_openai import FakeOpenAI, all_true, requested_keys
from test_score import cases, write_run

from ecliptica_bench.cli import cli

EXE = str(Path(sys.executable).with_name("ecliptica"))


def small_run(run_dir: Path, n_prompts: int) -> Path:
    """truthfulqa, n_prompts x 2 types x 2 conditions; every response distinct (one judge call per row)."""
    rows = [
        {**c, "condition": cond, "response": f"Answer to {c['case_id']} ({cond}): it is probably so."}
        for c in cases("truthfulqa", n_prompts)
        for cond in ("instructed", "uninstructed")
    ]
    return write_run(run_dir, rows)


def judged_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # table not created yet / writer mid-checkpoint
        return 0


def test_sigkill_mid_judging_then_rerun_judges_each_case_once(tmp_path):
    run = small_run(tmp_path / "run", 8)
    n_rows = len(pd.read_parquet(run / "generations.parquet"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with FakeOpenAI(all_true, latency_s=0.25) as judge:
        args = [
            EXE,
            "score",
            str(run),
            "--judge-base-url",
            judge.url,
            "--judge-model",
            "fake-judge",
            "--judge-concurrency",
            "2",
            "--bootstrap",
            "10",
        ]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 300
        try:
            while judged_count(run / "store.sqlite") < 4:
                assert proc.poll() is None, "score ended before it could be killed: " + proc.stdout.read().decode()[-2000:]
                assert time.time() < deadline, "no judgments appeared in time"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not (run / "metrics.json").exists() and not (run / "scores.parquet").exists()
        stored = judged_count(run / "store.sqlite")
        assert 4 <= stored < n_rows
        asked_before = len(judge.requests)

        res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        asked_again = len(judge.requests) - asked_before

    # the rerun asked exactly for what the store lacked; nothing stored was asked twice
    assert asked_again == n_rows - stored, (asked_again, n_rows, stored)
    with sqlite3.connect(run / "store.sqlite") as con:
        keys = [k for (k,) in con.execute("SELECT key FROM judgments WHERE status = 'ok'")]
    assert len(keys) == len(set(keys)) == n_rows
    m = json.loads((run / "metrics.json").read_text())
    jf = m["judge_faults"]
    assert jf["cases"] == n_rows and jf["cached"] == stored and jf["scored"] == n_rows and jf["unscored"] == 0
    sc = pd.read_parquet(run / "scores.parquet")
    assert (sc["judge_status"] == "ok").all() and len(sc) == n_rows


def test_judge_faults_through_the_cli_are_counted_and_unscored(tmp_path):
    """500s, a 429 with Retry-After, truncated JSON and a wrong schema in one scoring run: the run
    finishes (exit 0), metrics.json counts the faults, and cases that never parsed are unscored (not false)."""
    run = small_run(tmp_path / "run", 3)
    n_rows = len(pd.read_parquet(run / "generations.parquet"))
    seen: dict[str, int] = {}

    def faulty(body, n):
        prompt = json.dumps(body["messages"])
        i = seen.setdefault(prompt[:4000], len(seen))  # the case this request is about (re-asks share it)
        keys = requested_keys(body)
        if i % 6 == 0 and n < 40:
            return 500, {}, {"error": {"message": "boom", "type": "server_error"}}
        if i % 6 == 1 and n < 40:
            return 429, {"retry-after": "0"}, {"error": {"message": "slow down", "type": "rate_limit"}}
        if i % 6 == 2:
            return 200, {}, json.dumps({k: True for k in keys})[:-3]  # truncated JSON, every time
        if i % 6 == 3:
            return 200, {}, json.dumps({"verdict": "yes", "score": 3})  # wrong schema, every time
        return 200, {}, json.dumps({k: True for k in keys})

    with FakeOpenAI(faulty) as judge:
        res = CliRunner().invoke(
            cli,
            [
                "score",
                str(run),
                "--judge-base-url",
                judge.url,
                "--judge-model",
                "fake-judge",
                "--judge-timeout",
                "10",
                "--bootstrap",
                "10",
            ],
        )
    assert res.exit_code == 0, res.output
    m = json.loads((run / "metrics.json").read_text())
    jf = m["judge_faults"]
    assert jf["cases"] == n_rows
    assert jf["http_5xx"] >= 1 and jf["http_429"] >= 1 and jf["retries"] >= 2 and jf["reasks"] >= 1
    assert jf["unscored"] >= 2 and jf["scored"] >= 1 and jf["scored"] + jf["unscored"] == n_rows
    assert sum(jf["unscored_reasons"].values()) == jf["unscored"]
    sc = pd.read_parquet(run / "scores.parquet")
    unscored = sc[sc["judge_status"] != "ok"]
    assert len(unscored) == jf["unscored"]
    assert unscored["judge_adherence"].isna().all()  # unscored is missing, never counted as "no"
    sig = m["suites"]["truthfulqa"]["conditions"]
    total_unscored = sum(
        sig[c]["signals"]["judge_unscored_rate"]["value"] * sig[c]["signals"]["judge_unscored_rate"]["n"] for c in sig
    )
    assert abs(total_unscored - jf["unscored"]) < 1e-6
