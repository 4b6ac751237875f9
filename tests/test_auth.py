"""Keys and refusals at an OpenAI-compatible endpoint (backends/client.py), for the model under test and the
judge alike: the key is the one the openai client would use (KEY_ENV, else OPENAI_API_KEY, else none; "none" /
--no-api-key: none), and an endpoint answering 401 (or 403, 404...) ends `run`, `score` and `eval` with exit 2
and one line naming it and what to pass, after a few requests; a partial outage still only leaves cases
unscored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, all_true

from ecliptica_bench.backends import GenRequest, SamplingParams
from ecliptica_bench.backends.client import NO_KEY, EndpointRefused, resolve_api_key
from ecliptica_bench.backends.openai import OpenAIBackend
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.scoring.judge import Judge, JudgeCase, JudgeConfig

REPO = Path(__file__).resolve().parent.parent
PARAMS = SamplingParams(temperature=0.0, max_new_tokens=16)


def unauthorized(body, n):
    return 401, {}, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}


def text_or_verdict(body, n):
    """A model server and a judge in one: verdicts where a response_format is asked, else plain text."""
    if body.get("response_format"):
        return all_true(body, n)
    return 200, {}, "A short, careful answer about the question."


def auth(headers: dict) -> str | None:
    return headers.get("Authorization") or headers.get("authorization")


def gen_request(i: int = 0) -> GenRequest:
    messages = [{"role": "user", "content": f"question {i}"}]
    return GenRequest(key=f"{i:064x}", prompt=OpenAIBackend.prompt_text(messages), messages=messages)


# ------------------------------------------------------------------------------------------------ the key
def test_key_is_the_one_the_openai_client_would_use(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    monkeypatch.setenv("ECL_AUTH_KEY", "sk-named")
    assert resolve_api_key(None, "--x").value == "sk-default" and resolve_api_key(None, "--x").source == "env:OPENAI_API_KEY"
    assert resolve_api_key("ECL_AUTH_KEY", "--x").value == "sk-named"  # the named variable overrides
    assert resolve_api_key("none", "--x").value == NO_KEY  # KEY_ENV "none": send none
    assert resolve_api_key(None, "--x", send=False).value == NO_KEY  # --no-api-key
    assert "sk-default" not in repr(resolve_api_key(None, "--x"))  # never in a log line by accident
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve_api_key(None, "--x").value == NO_KEY and resolve_api_key(None, "--x").source == "none"


def test_openai_api_key_reaches_model_and_judge_and_no_api_key_sends_none(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    case = JudgeCase("question?", "answer", (("honest", "admits uncertainty"),))
    with FakeOpenAI(text_or_verdict) as server:
        OpenAIBackend(model="m", base_url=server.url).generate([gen_request()], PARAMS)
        Judge(JudgeConfig(server.url, "fake-judge")).judge([case])
        OpenAIBackend(model="m", base_url=server.url, send_api_key=False).generate([gen_request()], PARAMS)
        Judge(JudgeConfig(server.url, "fake-judge", api_key_env="none")).judge([case])
        seen = [auth(h) for h in server.headers_seen]
    assert seen == ["Bearer sk-default"] * 2 + [f"Bearer {NO_KEY}"] * 2
    assert OpenAIBackend(model="m", base_url=server.url).describe()["api_key_source"] == "env:OPENAI_API_KEY"


# ------------------------------------------------------------------------------------------------ refusals
def test_401_ends_the_call_at_once_with_one_line(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    case = JudgeCase("question?", "answer", (("honest", "admits uncertainty"),))
    with FakeOpenAI(unauthorized) as server:
        with pytest.raises(EndpointRefused) as judged:
            Judge(JudgeConfig(server.url, "fake-judge", concurrency=1, key_flag="KEY_ENV in --judge URL,MODEL,KEY_ENV")).judge(
                [case] * 20
            )
        n_judge = len(server.requests)
        with pytest.raises(EndpointRefused) as generated:
            OpenAIBackend(model="m", base_url=server.url, concurrency=1).generate([gen_request(i) for i in range(20)], PARAMS)
        n_model = len(server.requests) - n_judge
    assert n_judge <= 2 and n_model <= 2  # not retried, not sent for every case
    j, g = str(judged.value), str(generated.value)
    assert "\n" not in j and "\n" not in g
    assert j.startswith(f"judge {server.url}: HTTP 401 Unauthorized (Incorrect API key provided): ")
    assert j.endswith("set OPENAI_API_KEY or name the key's variable with KEY_ENV in --judge URL,MODEL,KEY_ENV")
    assert g.startswith(f"model m at {server.url}: HTTP 401 Unauthorized") and g.endswith("--api-key-env")
    assert isinstance(generated.value, EclipticaError)  # the CLI's exit 2


def test_a_refused_named_key_says_which_variable(monkeypatch):
    monkeypatch.setenv("ECL_AUTH_KEY", "sk-wrong")
    with FakeOpenAI(lambda b, n: (403, {}, {"error": {"message": "forbidden"}})) as server:
        with pytest.raises(EndpointRefused, match=r"HTTP 403 Forbidden \(forbidden\): the key in ECL_AUTH_KEY was refused"):
            OpenAIBackend(model="m", base_url=server.url, api_key_env="ECL_AUTH_KEY").generate([gen_request()], PARAMS)


def test_a_bad_request_stays_a_per_request_failure():
    """400 is this request's problem (too long, bad parameter): recorded for the case, the run goes on."""
    with FakeOpenAI(lambda b, n: (400, {}, {"error": {"message": "prompt too long"}}) if n == 1 else (200, {}, "fine")) as server:
        first, second = OpenAIBackend(model="m", base_url=server.url, concurrency=1).generate(
            [gen_request(0), gen_request(1)], PARAMS
        )
    assert first.error and "HTTP 400" in first.error and second.text == "fine"


def test_a_partial_judge_outage_still_degrades_to_unscored_cases():
    case = JudgeCase("question?", "answer", (("honest", "admits uncertainty"),))

    def flaky(body, n):
        return (500, {}, {"error": {"message": "boom"}}) if n <= 3 else all_true(body, n)

    with FakeOpenAI(flaky) as server:
        j = Judge(JudgeConfig(server.url, "fake-judge", concurrency=1, max_retries=0, backoff_s=0.01))
        out = j.judge([case] * 5)
    assert [v.status for v in out].count("unscored") == 3 and j.faults.unscored == 3 and j.faults.scored == 2


# ------------------------------------------------------------------------------------------------ the CLI
def cli(args: list[str], env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env_extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
    )


def error_lines(p: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return [line for line in p.stderr.splitlines() if line.startswith("error:")]


RUN = ["--backend", "openai", "--model", "m", "--suites", "litmus", "--limit", "4", "--temperature", "0", "--max-new-tokens", "8"]


def test_run_exits_2_on_a_401_model_endpoint(tmp_path):
    with FakeOpenAI(unauthorized) as server:
        p = cli(["run", *RUN, "--base-url", server.url, "--concurrency", "1", "--output-dir", str(tmp_path)])
        n = len(server.requests)
    assert p.returncode == 2, p.stdout + p.stderr
    [line] = error_lines(p)
    assert line.startswith(f"error: model m at {server.url}: HTTP 401 Unauthorized") and "OPENAI_API_KEY" in line
    assert n <= 2


@pytest.mark.slow
def test_score_and_eval_exit_2_on_a_401_judge(tmp_path):
    """eval: generates (a good model server), then the judge's first answers are 401: exit 2, one line, no
    metrics. score on the same run: the same. Neither leaves a metrics.json claiming all cases unscored."""
    with FakeOpenAI(text_or_verdict) as model, FakeOpenAI(unauthorized) as judge:
        args = [*RUN, "--base-url", model.url, "--judge", f"{judge.url},fake-judge", "--judge-concurrency", "2"]
        p = cli(["eval", *args, "--bootstrap", "0", "--output-dir", str(tmp_path)])
        n_eval = len(judge.requests)
        assert p.returncode == 2, p.stdout + p.stderr
        [line] = error_lines(p)
        expected = f"error: judge {judge.url}: HTTP 401 Unauthorized (Incorrect API key provided): set OPENAI_API_KEY or "
        assert line.startswith(expected) and line.endswith("KEY_ENV in --judge URL,MODEL[,KEY_ENV[,NAME]]")
        [run_dir] = [d for d in tmp_path.iterdir() if d.is_dir()]
        assert (run_dir / "generations.parquet").is_file() and not (run_dir / "metrics.json").exists()
        assert not (tmp_path / "leaderboard.csv").exists()

        p = cli(["score", str(run_dir), "--judge", f"{judge.url},fake-judge", "--judge-concurrency", "2", "--bootstrap", "0"])
        n_score = len(judge.requests) - n_eval
    assert p.returncode == 2, p.stdout + p.stderr
    [line] = error_lines(p)
    assert line.startswith(expected)
    assert not (run_dir / "metrics.json").exists()
    assert n_eval <= 3 and n_score <= 3  # the first requests in flight, nothing after
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["backend"]["api_key_source"] == "none"  # where the key came from; never the key
