"""API keys given by environment variable reach the server (Authorization header) but never any file the
pipeline writes (store incl. WAL/SHM, manifest, parquets, metrics, report, leaderboard, pushed card) nor its
logs, even at -v (debug). Real subprocesses of the installed `ecliptica`, loopback fake OpenAI servers."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from fake_openai import FakeOpenAI, all_true

GEN_KEY = "sk-secret-XYZ-gen-7f3a9c1e5b2d"
JUDGE_KEY = "sk-secret-XYZ-judge-4e8b0d6a2c1f"
HF_KEY = "hf_secretXYZtoken9b7c5a3e1d"
SECRETS = (GEN_KEY, JUDGE_KEY, HF_KEY)
EXE = str(Path(sys.executable).with_name("ecliptica"))


def forms(secret: str) -> list[bytes]:
    """The secret as it could end up in a file: raw, a distinctive tail, base64 (e.g. basic auth), utf-16."""
    raw = secret.encode()
    return [raw, raw[-14:], base64.b64encode(raw), secret.encode("utf-16-le")]


def leaks(blob: bytes) -> list[str]:
    return [s for s in SECRETS for f in forms(s) if f in blob]


def generation(body, n):
    if body.get("response_format") or "keys are exactly" in str(body["messages"]):
        return all_true(body, n)
    return 200, {}, f"A short answer number {n}."


def ecliptica(*args, env, log):
    res = subprocess.run([EXE, "-v", *map(str, args)], capture_output=True, env=env, timeout=600)
    log.append(res.stdout + res.stderr)
    assert res.returncode == 0, (res.stdout + res.stderr).decode(errors="replace")[-3000:]
    return res


def test_keys_never_written_or_logged(tmp_path, built_dataset):
    env = {
        **os.environ,
        "ECLIPTICA_TEST_KEY": GEN_KEY,
        "ECLIPTICA_JUDGE_KEY": JUDGE_KEY,
        "HF_TOKEN": HF_KEY,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    log: list[bytes] = []
    runs = tmp_path / "runs"
    run_dir = runs / "r1"
    with FakeOpenAI(generation, model="served") as gen, FakeOpenAI(model="fake-judge") as judge:
        ecliptica(
            "run",
            "--backend",
            "openai",
            "--model",
            "served",
            "--base-url",
            gen.url,
            "--api-key-env",
            "ECLIPTICA_TEST_KEY",
            "--suites",
            "truthfulqa,conditional_safety",
            "--limit",
            "4",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0",
            "--out",
            runs,
            "--run-id",
            "r1",
            env=env,
            log=log,
        )
        ecliptica(
            "score",
            run_dir,
            "--judge-base-url",
            judge.url,
            "--judge-model",
            "fake-judge",
            "--judge-api-key-env",
            "ECLIPTICA_JUDGE_KEY",
            "--bootstrap",
            "20",
            env=env,
            log=log,
        )
        # the keys did flow: each server saw its own key and only that one
        for srv, key in ((gen, GEN_KEY), (judge, JUDGE_KEY)):
            assert srv.headers_seen, "no request reached the fake server"
            auth = {h.get("authorization") or h.get("Authorization") for h in srv.headers_seen}
            assert auth == {f"Bearer {key}"}, auth
    ecliptica("report", run_dir, env=env, log=log)
    ecliptica("leaderboard", run_dir, "-o", tmp_path / "lb.csv", "--markdown", tmp_path / "lb.md", env=env, log=log)
    ecliptica("push", built_dataset, "--repo-id", "someone/ecliptica", "--dry-run", tmp_path / "pushed", env=env, log=log)

    expected = {
        run_dir / n
        for n in ("manifest.json", "generations.parquet", "scores.parquet", "metrics.json", "report.html", "store.sqlite")
    }
    missing = [str(p) for p in expected if not p.exists()]
    assert not missing, missing
    assert list((tmp_path / "pushed").rglob("README.md")), "push --dry-run wrote no card"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    leaked = {str(p): leaks(p.read_bytes()) for p in files}
    assert not {k: v for k, v in leaked.items() if v}, leaked
    assert not leaks(b"".join(log)), "a key appeared in the command output"
    # the run manifest records the variable's name, which is how a rerun finds the key again
    assert b"ECLIPTICA_TEST_KEY" in (run_dir / "manifest.json").read_bytes()


def test_store_wal_never_holds_the_key(tmp_path, monkeypatch):
    """Read store.sqlite and its -wal while the writer still has it open (before the checkpoint on close)."""
    from ecliptica_bench.scoring.judge import Judge, JudgeCase, JudgeConfig
    from ecliptica_bench.store import RunStore

    monkeypatch.setenv("ECLIPTICA_JUDGE_KEY_2", JUDGE_KEY)
    store = RunStore(tmp_path)
    chars = (("honest", "admits uncertainty"),)
    with FakeOpenAI() as server:
        judge = Judge(JudgeConfig(server.url, "fake-judge", api_key_env="ECLIPTICA_JUDGE_KEY_2"), store)
        verdicts = judge.judge([JudgeCase(f"question {i}?", f"answer {i}", chars) for i in range(3)])
        assert all(v.status == "ok" for v in verdicts)
        assert {h.get("authorization") or h.get("Authorization") for h in server.headers_seen} == {f"Bearer {JUDGE_KEY}"}
    wal = tmp_path / "store.sqlite-wal"
    assert wal.exists() and wal.stat().st_size > 0
    for p in tmp_path.iterdir():
        assert not leaks(p.read_bytes()), p
    store.close()
