"""The openai backend over several servers (`--base-url` given more than once): requests spread over the
servers with `--concurrency` in flight per server, a server that dies hands its requests to the others, and
through `ecliptica run` every generation is stored exactly once."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from fake_openai import FakeOpenAI

from ecliptica_bench.backends import GenRequest, SamplingParams
from ecliptica_bench.backends.openai import OpenAIBackend
from ecliptica_bench.data.io import dumps, sha256_text
from ecliptica_bench.errors import EclipticaError

PARAMS = SamplingParams(temperature=0.0, max_new_tokens=16)


def echo(body: dict, n: int):
    """The answer names its own request, so a mix-up between requests cannot go unnoticed."""
    return 200, {}, f"re: {body['messages'][-1]['content']} ({len(body['messages'])} messages)"


def req(i: int) -> GenRequest:
    messages = [{"role": "user", "content": f"question {i}"}]
    return GenRequest(key=f"{i:064x}", prompt=OpenAIBackend.prompt_text(messages), messages=messages)


@pytest.fixture
def servers():
    started: list[FakeOpenAI] = []

    def start(n: int, **kw) -> list[FakeOpenAI]:
        new = [FakeOpenAI(**{"behaviour": echo, **kw}) for _ in range(n)]
        started.extend(new)
        return new

    yield start
    for s in started:
        if not s.dead:
            s.stop()


def test_requests_spread_with_concurrency_per_server(servers):
    pool = servers(3, latency_s=0.05)
    be = OpenAIBackend(model="m", base_url=[s.url for s in pool], concurrency=2, backoff_s=0.01)
    results = be.generate([req(i) for i in range(30)], PARAMS)
    assert [r.text for r in results] == [f"re: question {i} (1 messages)" for i in range(30)]
    assert all(r.error is None for r in results)
    assert sum(len(s.requests) for s in pool) == 30  # each request sent once
    for s in pool:
        assert 1 <= len(s.requests) and s.max_in_flight <= 2  # every server used, never above its concurrency
    assert max(s.max_in_flight for s in pool) == 2


def test_a_server_down_from_the_start_is_left_out(servers):
    up, down = servers(2)
    down.kill()
    be = OpenAIBackend(model="m", base_url=[down.url, up.url], concurrency=3, backoff_s=0.01, max_retries=1)
    results = be.generate([req(i) for i in range(8)], PARAMS)
    assert [r.text for r in results] == [f"re: question {i} (1 messages)" for i in range(8)]
    assert all(r.error is None for r in results) and len(up.requests) == 8
    assert list(be._down) == [down.url]
    # the next call does not try it again (it is out of the pool for REVIVE_AFTER_S)
    be.generate([req(9)], PARAMS)
    assert len(up.requests) == 9


def test_the_last_server_keeps_its_retries(servers):
    """With every server down, requests are not bounced forever: the last one retries as a single server
    does, then each request comes back as an error (never an exception, never a hang)."""
    a, b = servers(2)
    a.kill()
    b.kill()
    be = OpenAIBackend(model="m", base_url=[a.url, b.url], concurrency=2, backoff_s=0.01, max_retries=1)
    results = be.generate([req(i) for i in range(4)], PARAMS)
    assert all(r.error and "gave up after 2 attempts" in r.error for r in results)


def test_fingerprint_is_the_set_of_servers():
    one = OpenAIBackend(model="m", base_url="http://a:1/v1/")
    # one server: the identity (and so every cache key) is what it was before several were possible
    assert one.fingerprint == sha256_text(dumps({"backend": "openai", "base_url": "http://a:1/v1", "model": "m"}))
    ab = OpenAIBackend(model="m", base_url=["http://a:1/v1", "http://b:1/v1"])
    ba = OpenAIBackend(model="m", base_url=("http://b:1/v1/", "http://a:1/v1"))
    assert ab.fingerprint == ba.fingerprint != one.fingerprint
    assert ab.fingerprint == sha256_text(
        dumps({"backend": "openai", "base_urls": ["http://a:1/v1", "http://b:1/v1"], "model": "m"})
    )
    assert OpenAIBackend(model="m", base_url=["http://a:1/v1", "http://c:1/v1"]).fingerprint != ab.fingerprint
    assert ab.describe()["base_urls"] == ["http://a:1/v1", "http://b:1/v1"]
    with pytest.raises(EclipticaError, match="--base-url http://a:1/v1 is given more than once"):
        OpenAIBackend(model="m", base_url=["http://a:1/v1", "http://a:1/v1/"])
    with pytest.raises(EclipticaError, match="needs --base-url"):
        OpenAIBackend(model="m", base_url=())


def test_run_with_a_server_dying_mid_run_stores_each_generation_once(servers, tmp_path, caplog):
    """Three servers through `ecliptica run`, one of which dies at its 3rd request: no errors, one generation
    per key in the store, every row's response is its own request's answer, and a rerun asks nothing."""
    from click.testing import CliRunner

    from ecliptica_bench.cli import cli
    from ecliptica_bench.run import validate_run_dir
    from ecliptica_bench.store import RunStore

    holder = {}

    def dies_at_third(body, n):
        if n == 3:
            holder["dying"].kill()  # answers this one, then drops and refuses everything
        return echo(body, n)

    dying = FakeOpenAI(behaviour=dies_at_third, latency_s=0.02)
    holder["dying"] = dying
    healthy = servers(2, latency_s=0.02)
    args = [
        "run",
        "--backend",
        "openai",
        "--model",
        "served",
        "--suites",
        "ecliptica",
        "--limit",
        "30",
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
        "r",
    ]
    for s in (healthy[0], dying, healthy[1]):
        args += ["--base-url", s.url]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "runs" / "r"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = manifest["summary"]
    # 30 cases x 2 conditions; the uninstructed rows of a prompt share one request: 30 + 3 unique
    assert summary["rows"] == 60 and summary["unique_generations"] == 33
    assert summary["errors"] == 0 and summary["generated"] == 33 and summary["unresolved"] == 0
    assert manifest["backend"]["base_urls"] == [healthy[0].url, dying.url, healthy[1].url]
    assert dying.dead and len(dying.requests) >= 3
    # its later requests were refused or dropped, and went to the others
    assert any(
        f"{dying.url}: connection error" in r.getMessage() and "go to the other 2 server(s)" in r.getMessage()
        for r in caplog.records
    )
    assert all(len(s.requests) > 0 for s in healthy)
    with RunStore(run_dir) as st:
        assert st.count_generations() == 33 and st.errors("generation") == []
    table = pq.read_table(run_dir / "generations.parquet").to_pylist()
    for row in table:
        n_messages = 2 if row["condition"] == "instructed" else 1
        assert row["response"] == f"re: {row['prompt']} ({n_messages} messages)", row["case_id"]
    assert validate_run_dir(run_dir).startswith("ok")

    sent = sum(len(s.requests) for s in healthy)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert sum(len(s.requests) for s in healthy) == sent  # all cached: nothing asked again
