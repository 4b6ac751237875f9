"""`ecliptica run --backend openai` over two servers: the session's real vLLM OpenAI server (conftest
vllm_server, shared with test_vllm_judge.py) and a loopback fake (fake_openai.py), given as two --base-url
values. Every case completes once, the store holds each generation exactly once, a rerun sends nothing,
and when the fake dies mid-run its requests move to the real server. Runs only in the vllm CI stage."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI
from test_openai_servers import echo

from ecliptica_bench.cli import cli
from ecliptica_bench.run import validate_run_dir
from ecliptica_bench.store import RunStore

pytestmark = pytest.mark.vllm

LIMIT = 10
UNIQUE = LIMIT + 1  # 10 instructed requests + 1 uninstructed request shared by the prompt's 10 types


def run_args(tmp_path, urls: list[str], model: str, run_id: str) -> list[str]:
    args = [
        "run",
        "--backend",
        "openai",
        "--model",
        model,
        "--suites",
        "ecliptica",
        "--limit",
        str(LIMIT),
        "--temperature",
        "0",
        "--max-new-tokens",
        "8",
        "--concurrency",
        "2",
        "--batch-size",
        "8",
        "--out",
        str(tmp_path / "runs"),
        "--run-id",
        run_id,
    ]
    for u in urls:
        args += ["--base-url", u]
    return args


def echoed(row: dict) -> bool:
    """Whether the fake answered this row (its answers name their own request)."""
    n_messages = 2 if row["condition"] == "instructed" else 1
    return row["response"] == f"re: {row['prompt']} ({n_messages} messages)"


def check_run(run_dir) -> list[dict]:
    """Every case completed, each generation stored exactly once; the generations table's rows."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = manifest["summary"]
    assert summary["rows"] == 2 * LIMIT and summary["unique_generations"] == UNIQUE
    assert summary["errors"] == 0 and summary["generated"] == UNIQUE and summary["unresolved"] == 0
    with RunStore(run_dir) as st:
        assert st.count_generations() == UNIQUE and st.errors("generation") == []
    assert validate_run_dir(run_dir).startswith("ok")
    rows = pq.read_table(run_dir / "generations.parquet").to_pylist()
    assert len(rows) == 2 * LIMIT and all(isinstance(r["response"], str) for r in rows)
    return rows


def test_real_and_fake_server_each_generation_once(vllm_server, tmp_path):
    base_url, model = vllm_server
    fake = FakeOpenAI(behaviour=echo, latency_s=0.05)
    try:
        args = run_args(tmp_path, [base_url, fake.url], model, "mixed")
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        rows = check_run(tmp_path / "runs" / "mixed")
        by_fake = {r["key"] for r in rows if echoed(r)}
        # both servers answered; each request went to one of them once (the fake never failed here)
        assert len(fake.requests) == len(by_fake) >= 1
        assert len({r["key"] for r in rows} - by_fake) >= 1  # the real server answered the rest

        sent = len(fake.requests)
        res = CliRunner().invoke(cli, args)  # rerun: all cached, nothing asked
        assert res.exit_code == 0, res.output
        assert len(fake.requests) == sent
        assert json.loads((tmp_path / "runs" / "mixed" / "manifest.json").read_text())["summary"]["generated"] == 0
    finally:
        if not fake.dead:
            fake.stop()


def test_fake_dying_mid_run_moves_its_requests_to_the_real_server(vllm_server, tmp_path):
    base_url, model = vllm_server
    holder = {}

    def dies_at_third(body, n):
        if n == 3:
            holder["fake"].kill()  # answers this one, then drops and refuses everything
        return echo(body, n)

    fake = FakeOpenAI(behaviour=dies_at_third, latency_s=0.02)
    holder["fake"] = fake
    try:
        res = CliRunner().invoke(cli, run_args(tmp_path, [fake.url, base_url], model, "dying"))
        assert res.exit_code == 0, res.output
        rows = check_run(tmp_path / "runs" / "dying")
        assert fake.dead and len(fake.requests) >= 3
        n_real = len({r["key"] for r in rows if not echoed(r)})
        assert n_real >= UNIQUE - len(fake.requests) and n_real >= 1
    finally:
        if not fake.dead:
            fake.stop()
