"""A loopback OpenAI-compatible chat server for judge tests and the judge throughput bench.

`FakeOpenAI(behaviour, latency_s)` serves POST /v1/chat/completions on 127.0.0.1 from a thread pool.
`behaviour(body, n)` gets the request JSON and the 1-based request number and returns
(status, headers, reply) where reply is the message content (str) for 200, or an error body (dict).
The default behaviour answers every requested key with true, reading the keys from the json_schema or,
in json_object mode, from the prompt's "keys are exactly: ..." line. `kill()` makes it die mid-run:
open connections are dropped unanswered and new ones refused.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEYS_RE = re.compile(r"keys are exactly: ([\w ,]+)\.")


def requested_keys(body: dict) -> list[str]:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return list(fmt["json_schema"]["schema"]["properties"])
    text = body["messages"][-1]["content"]
    m = KEYS_RE.findall(text) or KEYS_RE.findall(body["messages"][0]["content"])
    return [k.strip() for k in m[-1].split(",")] if m else []


def requested_enums(body: dict) -> dict[str, list]:
    """{key: allowed strings} of the json_schema's enum (non-boolean) keys; {} in json_object mode."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return {}
    return {k: p["enum"] for k, p in fmt["json_schema"]["schema"]["properties"].items() if "enum" in p}


def all_true(body: dict, n: int):
    """Every boolean key true; every enum key its first allowed value."""
    enums = requested_enums(body)
    return 200, {}, json.dumps({k: enums[k][0] if k in enums else True for k in requested_keys(body)})


def completion(content: str, model: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class FakeOpenAI:
    def __init__(self, behaviour=all_true, latency_s: float = 0.0, model: str = "fake-judge"):
        self.behaviour = behaviour
        self.latency_s = latency_s
        self.model = model
        self.requests: list[dict] = []
        self.dead = False
        self.headers_seen: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being served at once
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if outer.dead:  # a dead endpoint: drop the connection without an answer
                    self.close_connection = True
                    return
                with outer._lock:
                    outer.requests.append(body)
                    outer.headers_seen.append(dict(self.headers))
                    n = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if outer.latency_s:
                        time.sleep(outer.latency_s)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                status, headers, reply = outer.behaviour(body, n)
                if status == 200:
                    payload = completion(reply, body.get("model", outer.model))
                else:
                    payload = reply if isinstance(reply, dict) else {"error": {"message": str(reply), "type": "error"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and hung up
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default listen backlog of 5 drops concurrent connects (1 s SYN retry)
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def kill(self) -> None:
        """The endpoint dies: open connections get no answer, new ones are refused."""
        self.dead = True
        threading.Thread(target=self.stop, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        except Exception:
            pass


if __name__ == "__main__":
    # a server in its own process (the bench: a real endpoint never shares the client's GIL)
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    server = FakeOpenAI(latency_s=args.latency)
    print(server.url, flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin
    finally:
        server.stop()
