"""The one model client layer (backends/client.py) that the model under test and the judge share: the wait
before a retry (Retry-After, backoff, caps), one fault counter, the API key read one way; each checked
through both callers against the same loopback server (tests/fake_openai.py)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI, all_true

from ecliptica_bench.backends import GenRequest, SamplingParams
from ecliptica_bench.backends import client as client_mod
from ecliptica_bench.backends.client import NO_KEY, Faults, ModelClient, RetryPolicy, read_api_key
from ecliptica_bench.backends.openai import OpenAIBackend
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.scoring.judge import Judge, JudgeCase, JudgeConfig

PARAMS = SamplingParams(temperature=0.0, max_new_tokens=16)
CHARS = (("honest", "admits uncertainty"),)


def gen_request(i: int = 0) -> GenRequest:
    messages = [{"role": "user", "content": f"question {i}"}]
    return GenRequest(key=f"{i:064x}", prompt=OpenAIBackend.prompt_text(messages), messages=messages)


def judge_case(i: int = 0) -> JudgeCase:
    return JudgeCase(f"question {i}?", f"answer {i}", CHARS)


def backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(model="m", base_url=url, **{"backoff_s": 0.01, "max_retries": 3, "timeout_s": 5.0, **kw})


def judge(url: str, **kw) -> Judge:
    return Judge(JudgeConfig(url, "fake-judge", **{"backoff_s": 0.01, "max_retries": 3, "concurrency": 1, **kw}))


def test_retry_wait_reads_retry_after_and_caps_it():
    policy = RetryPolicy(max_retries=3, backoff_s=0.01, max_backoff_s=0.04, max_wait_s=120.0)
    mc = ModelClient("http://127.0.0.1:9/v1", NO_KEY, 5.0, policy, Faults())
    wait = mc.retry_wait
    assert wait(0, {"retry-after": "2"}) == 2.0
    assert wait(0, {"retry-after-ms": "250"}) == 0.25
    assert wait(0, {"retry-after": "3600"}) == 120.0  # capped (and the client does not retry past 120 s at all)
    assert wait(0, {"retry-after": "0"}) == 0.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3 <= wait(0, {"retry-after": date}) <= 5
    # unreadable or absent: exponential backoff with jitter (x 0.5..1), capped
    for headers in ({"retry-after": "soon"}, {}, None):
        assert 0.005 <= wait(0, headers) <= 0.01
    assert 0.01 <= wait(1, None) <= 0.02
    assert 0.02 <= wait(10, None) <= 0.04
    judge_policy = JudgeConfig("http://127.0.0.1:9/v1", "m", max_wait_s=7.0).policy()
    assert judge_policy.wait(0, 3600.0) == 7.0 and judge_policy.wait(30, None) <= 7.0  # max_wait_s caps every wait


def test_retry_after_is_honoured_the_same_way_by_backend_and_judge(monkeypatch):
    """One server answers each caller's first request 429 with Retry-After: 1, then 200: both wait the second
    through the same policy, and count the same faults."""
    seen: list[tuple[int, float | None]] = []
    real_wait = RetryPolicy.wait

    def spy(self, retry, retry_after):
        seen.append((retry, retry_after))
        return real_wait(self, retry, retry_after)

    monkeypatch.setattr(client_mod.RetryPolicy, "wait", spy)
    arrivals: list[float] = []

    def limited(body, n):
        arrivals.append(time.monotonic())
        if n == 1:
            return 429, {"Retry-After": "1"}, {"error": {"message": "slow down", "type": "rate_limit"}}
        if body.get("response_format"):
            return all_true(body, n)
        return 200, {}, "fine"

    for caller in ("backend", "judge"):
        arrivals.clear()
        seen.clear()
        with FakeOpenAI(limited) as server:
            if caller == "backend":
                be = backend(server.url)
                [res] = be.generate([gen_request()], PARAMS)
                assert res.error is None and res.text == "fine"
                faults = be.faults
            else:
                j = judge(server.url)
                [verdict] = j.judge([judge_case()])
                assert verdict.status == "ok"
                faults = j.faults
        assert len(arrivals) == 2
        assert 0.95 <= arrivals[1] - arrivals[0] < 3, f"{caller}: retried after {arrivals[1] - arrivals[0]:.3f}s, not 1 s"
        assert seen == [(0, 1.0)], caller  # one retry, waited by the shared policy on the server's word
        assert (faults.requests, faults.retries, faults.http_429, faults.http_5xx) == (2, 1, 1, 0), caller
        assert (faults.timeouts, faults.connection_errors, faults.http_4xx, faults.malformed) == (0, 0, 0, 0), caller


def test_retry_after_past_the_client_limit_is_not_waited_for():
    """A server asking for more than 120 s is not retried (openai's rule): the request fails at once."""
    with FakeOpenAI(lambda body, n: (429, {"retry-after": "600"}, {"error": {"message": "come back later"}})) as server:
        [res] = backend(server.url).generate([gen_request()], PARAMS)
        assert res.error and res.error.startswith("HTTP 429") and "gave up" not in res.error
        assert len(server.requests) == 1


def test_faults_are_counted_per_attempt_for_the_backend():
    def script(body, n):
        if n <= 2:
            return 503, {}, {"error": {"message": "busy"}}
        return 200, {}, "ok"

    with FakeOpenAI(script) as server:
        be = backend(server.url)
        assert [r.text for r in be.generate([gen_request()], PARAMS)] == ["ok"]
    assert (be.faults.requests, be.faults.retries, be.faults.http_5xx) == (3, 2, 2)
    with FakeOpenAI(lambda body, n: (200, {}, None)) as server:  # content null: no usable completion
        [res] = backend(server.url).generate([gen_request()], PARAMS)
    assert res.error and "malformed" in res.error


def test_a_5xx_that_names_the_schema_switches_the_judge_without_retries():
    """llama.cpp's server answers HTTP 500 to a json_schema response_format: not retried, not a fault,
    the judge goes on in json_object mode."""

    def llama(body, n):
        if body.get("response_format", {}).get("type") == "json_schema":
            return 500, {}, {"error": {"message": "failed to parse grammar from json_schema"}}
        return all_true(body, n)

    with FakeOpenAI(llama) as server:
        j = judge(server.url)
        out = j.judge([judge_case(i) for i in range(3)])
        types = [b["response_format"]["type"] for b in server.requests]
    assert [v.status for v in out] == ["ok"] * 3 and j.mode == "json_object" and j.faults.json_schema_rejected
    assert types == ["json_schema"] + ["json_object"] * 3
    assert (j.faults.http_5xx, j.faults.retries) == (0, 0)


def test_api_key_is_read_one_way(monkeypatch):
    monkeypatch.setenv("ECL_TEST_KEY_SET", "sk-set-123")
    monkeypatch.delenv("ECL_TEST_KEY_UNSET", raising=False)
    assert read_api_key(None, "--x") == NO_KEY and read_api_key("", "--x") == NO_KEY  # none named: no key
    assert read_api_key("ECL_TEST_KEY_SET", "--x") == "sk-set-123"
    with pytest.raises(EclipticaError, match="^--x: environment variable ECL_TEST_KEY_UNSET is not set$"):
        read_api_key("ECL_TEST_KEY_UNSET", "--x")
    # both callers: a named variable that is unset is the same error, at construction (before any request)
    with pytest.raises(EclipticaError, match="^--api-key-env: environment variable ECL_TEST_KEY_UNSET is not set$"):
        OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1", api_key_env="ECL_TEST_KEY_UNSET")
    with pytest.raises(EclipticaError, match="^--judge-api-key-env: environment variable ECL_TEST_KEY_UNSET is not set$"):
        Judge(JudgeConfig("http://127.0.0.1:9/v1", "m", api_key_env="ECL_TEST_KEY_UNSET"))
    # and the key (or no key) reaches each server the same way
    for env, expected in ((None, f"Bearer {NO_KEY}"), ("ECL_TEST_KEY_SET", "Bearer sk-set-123")):
        with FakeOpenAI(lambda body, n: all_true(body, n) if body.get("response_format") else (200, {}, "x")) as server:
            backend(server.url, api_key_env=env).generate([gen_request()], PARAMS)
            judge(server.url, api_key_env=env).judge([judge_case()])
            assert [h.get("Authorization") or h.get("authorization") for h in server.headers_seen] == [expected] * 2


def test_cli_names_the_unset_key_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("ECL_TEST_KEY_UNSET", raising=False)
    from ecliptica_bench.cli import cli

    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--backend",
            "openai",
            "--model",
            "m",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--api-key-env",
            "ECL_TEST_KEY_UNSET",
        ]
        + ["--suites", "truthfulqa", "--limit", "2", "--out", str(tmp_path / "runs")],
    )
    assert res.exit_code == 2, res.output
    assert "--api-key-env: environment variable ECL_TEST_KEY_UNSET is not set" in res.output
