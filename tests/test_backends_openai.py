"""The openai backend against a scripted loopback server: retries, Retry-After, timeouts, malformed
bodies, bounded concurrency; and through `run`: failures are recorded, never cached, retried on rerun."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ecliptica_bench.backends import GenRequest, SamplingParams
from ecliptica_bench.backends.openai import OpenAIBackend


def completion(content: str, finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
    ).encode()


class Scripted:
    """A loopback server; `script(n, body)` -> (status, headers, body bytes, delay_s) for request n (1-based)."""

    def __init__(self, script):
        self.script = script
        self.calls: list[tuple[float, dict, dict]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.calls.append((time.monotonic(), dict(self.headers), body))
                    n = len(outer.calls)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    status, headers, payload, delay = outer.script(n, body)
                    if delay:
                        time.sleep(delay)
                    self.send_response(status)
                    headers = {"Content-Type": "application/json", **headers}
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def start(script):
        s = Scripted(script)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def backend(srv, **kw) -> OpenAIBackend:
    kw = {"backoff_s": 0.01, "max_retries": 3, "timeout_s": 5.0, **kw}
    return OpenAIBackend(model="m", base_url=srv.base_url, **kw)


def req(i: int = 0) -> GenRequest:
    messages = [{"role": "user", "content": f"question {i}"}]
    return GenRequest(key=f"{i:064x}", prompt=OpenAIBackend.prompt_text(messages), messages=messages)


PARAMS = SamplingParams(temperature=0.0, max_new_tokens=16)


def test_5xx_then_success_is_retried(server):
    srv = server(lambda n, b: (503, {}, b'{"error": "busy"}', 0) if n <= 2 else (200, {}, completion("fine"), 0))
    [res] = backend(srv).generate([req()], PARAMS)
    assert res.error is None and res.text == "fine" and res.finish_reason == "stop"
    assert (res.prompt_tokens, res.completion_tokens) == (7, 3)
    assert len(srv.calls) == 3


def test_gives_up_after_max_retries(server):
    srv = server(lambda n, b: (500, {}, b'{"error": "boom"}', 0))
    [res] = backend(srv, max_retries=2).generate([req()], PARAMS)
    assert res.error and "HTTP 500" in res.error and "3 attempts" in res.error
    assert len(srv.calls) == 3


def test_4xx_is_not_retried(server):
    srv = server(lambda n, b: (400, {}, b'{"error": {"message": "bad request"}}', 0))
    [res] = backend(srv).generate([req()], PARAMS)
    assert res.error and "HTTP 400" in res.error
    assert len(srv.calls) == 1


def test_timeout_then_success(server):
    srv = server(lambda n, b: (200, {}, completion("late"), 3.0) if n == 1 else (200, {}, completion("on time"), 0))
    [res] = backend(srv, timeout_s=0.5).generate([req()], PARAMS)
    # the late answer was not waited for: the text is the second call's (no bound on wall time: CPUs differ)
    assert res.text == "on time" and res.error is None
    assert len(srv.calls) == 2


def test_timeout_every_time_is_an_error(server):
    srv = server(lambda n, b: (200, {}, completion("late"), 2.0))
    [res] = backend(srv, timeout_s=0.3, max_retries=1).generate([req()], PARAMS)
    assert res.error and "timeout" in res.error
    assert len(srv.calls) == 2


def test_429_retry_after_is_honoured(server):
    srv = server(
        lambda n, b: (429, {"Retry-After": "1"}, b'{"error": "slow down"}', 0) if n == 1 else (200, {}, completion("ok"), 0)
    )
    [res] = backend(srv, backoff_s=0.001).generate([req()], PARAMS)
    assert res.text == "ok"
    (t1, _, _), (t2, _, _) = srv.calls
    assert t2 - t1 >= 0.95, f"retried after {t2 - t1:.3f}s, Retry-After said 1s"
    assert t2 - t1 < 3


@pytest.mark.parametrize(
    "payload,ctype",
    [
        (b"this is not json", "application/json"),
        (b"<html>gateway</html>", "text/html"),
        (b'{"id": "x", "choices": []}', "application/json"),
        (b'{"choices": [{"message": {"role": "assistant"}, "finish_reason": "stop"}]}', "application/json"),
    ],
)
def test_malformed_body_is_an_error_not_retried(server, payload, ctype):
    srv = server(lambda n, b: (200, {"Content-Type": ctype}, payload, 0))
    [res] = backend(srv).generate([req()], PARAMS)
    assert res.error and "malformed" in res.error
    assert len(srv.calls) == 1


def test_concurrency_is_bounded_and_order_kept(server):
    srv = server(lambda n, b: (200, {}, completion("re: " + b["messages"][-1]["content"]), 0.15))
    results = backend(srv, concurrency=3).generate([req(i) for i in range(9)], PARAMS)
    assert [r.text for r in results] == [f"re: question {i}" for i in range(9)]
    assert srv.max_in_flight == 3


def test_request_body_and_key(server, monkeypatch):
    monkeypatch.setenv("MY_SECRET_VAR", "sk-test-123")
    srv = server(lambda n, b: (200, {}, completion("x", finish="length"), 0))
    p = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=12, seed=5)
    [res] = backend(srv, api_key_env="MY_SECRET_VAR").generate([req()], p)
    assert res.finish_reason == "length"
    _, headers, body = srv.calls[0]
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer sk-test-123"
    assert body["max_tokens"] == 12 and body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["seed"] == 5
    assert body["messages"] == [{"role": "user", "content": "question 0"}]


def test_run_records_failures_and_retries_them(server, tmp_path, monkeypatch):
    """Through `ecliptica run`: a malformed answer lands in the errors table, is not cached, and a rerun
    asks for exactly that one again. The API key never reaches the run directory."""
    from click.testing import CliRunner

    from ecliptica_bench.cli import cli
    from ecliptica_bench.store import RunStore

    broken = {"on": True}

    def script(n, body):
        text = body["messages"][-1]["content"]
        if broken["on"] and text == first_prompt and len(body["messages"]) == 1:  # its uninstructed request
            return 200, {}, b"{not json", 0
        return 200, {}, completion(f"answer {len(text)}"), 0

    from ecliptica_bench.run import load_cases
    from ecliptica_bench.suites import get_suite

    first_prompt = load_cases([get_suite("truthfulqa")], limit=4)["truthfulqa"][0]["prompt"]
    srv = server(script)
    monkeypatch.setenv("ECLIPTICA_TEST_KEY", "sk-very-secret-value")
    args = [
        "run",
        "--backend",
        "openai",
        "--model",
        "served",
        "--base-url",
        srv.base_url,
        "--api-key-env",
        "ECLIPTICA_TEST_KEY",
        "--suites",
        "truthfulqa",
        "--limit",
        "4",
        "--temperature",
        "0",
        "--max-new-tokens",
        "8",
        "--out",
        str(tmp_path / "runs"),
        "--run-id",
        "r1",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert "failed" in res.output
    run_dir = tmp_path / "runs" / "r1"
    with RunStore(run_dir) as st:
        errors = st.errors("generation")
        assert len(errors) == 1 and "malformed" in errors[0]["error"]
        assert st.missing([errors[0]["key"]]) == [errors[0]["key"]]  # not cached
        n_before = st.count_generations()
    # 4 cases (2 prompts x 2 types) x 2 conditions = 8 rows, 6 requests: the uninstructed rows of a
    # prompt share one request; one of the 6 failed
    assert n_before == 5
    calls_before = len(srv.calls)
    broken["on"] = False
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert len(srv.calls) - calls_before == 1  # only the failed one was asked again
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "generations.parquet")
    assert table.num_rows == 8
    assert table.column("template_sha256").null_count == 8  # the server renders
    for f in run_dir.iterdir():
        if f.is_file():
            assert b"sk-very-secret-value" not in f.read_bytes(), f
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["backend"]["api_key_env"] == "ECLIPTICA_TEST_KEY"
    from ecliptica_bench.run import validate_run_dir

    assert validate_run_dir(run_dir).startswith("ok")
