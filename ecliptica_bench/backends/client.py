"""The one model client layer: every call to an OpenAI-compatible server goes through here, the model under
test (backends/openai.py) and the LLM judge (scoring/judge.py) alike.

- The key (`resolve_api_key`), as the openai client finds it: the environment variable the user names (unset:
  one clear error); else OPENAI_API_KEY when it is set; else none (local servers accept any). NO_KEY_ENV
  ("none", or --no-api-key) sends none even when OPENAI_API_KEY is set. The key is never stored, logged or
  put in a manifest; only where it came from (`ApiKey.source`) is recorded.
- Refusals: an answer that refuses the endpoint itself, not one request (REFUSED: 401, 402, 403, 404, 405,
  407: a key, quota, URL or model problem that every other request would meet too) ends the command at once
  with `EndpointRefused`, one line naming the endpoint and what to pass, instead of degrading every case to
  an error. Other 4xx (400, 413, 422: this request's own problem) stay per-request failures.
- The client: `ModelClient` is an AsyncOpenAI over one server, with one timeout per attempt.
- Retries: openai-python's own retry loop (it retries 408, 409, 429 and 5xx answers, timeouts and
  connection errors, obeys `x-should-retry`, and does not retry a server that asks for more than 120 s
  in Retry-After). What we set is the wait (`RetryPolicy`): the server's `retry-after-ms` / `Retry-After`
  (seconds or an HTTP date, read by openai's own parser) when it gives one, else exponential backoff
  with jitter; every wait is capped. The one hook into the client is `_calculate_retry_timeout` (a
  private method, the same in openai 2.x on httpx and 3.x on httpx2); the policy is `RetryPolicy.wait`.
- Faults: `Faults` counts every attempt (requests, retries, timeouts, connection errors, HTTP 429 / 5xx /
  other 4xx, malformed bodies). The counting sits in an HTTP transport under the client, so each retry the
  client makes on its own is seen; `Hooks` lets a caller act on each attempt, and end the call at once by
  raising (take a server out of a pool, declare an endpoint dead, take over an answer it handles itself).
- A call that still fails raises `CallFailed` (its kind, the server's message, the attempts made).
"""

from __future__ import annotations

import contextvars
import functools
import http as http_status
import importlib
import json
import math
import os
import random
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass

from ..errors import EclipticaError

NO_KEY = "EMPTY"  # sent when there is no key: local servers (vLLM, llama.cpp) accept any key
DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # the openai client's own default
NO_KEY_ENV = "none"  # a KEY_ENV that says: send no key
# answers that refuse the endpoint, not the request: the command stops (EndpointRefused)
REFUSED = (401, 402, 403, 404, 405, 407)
MAX_RETRY_AFTER_S = 120.0  # openai's own limit: a server asking for a longer wait is not retried
KINDS = ("http_429", "http_5xx", "http_4xx", "timeout", "connection", "malformed")

# retries of the call in progress, in this task (the client's retry loop and our transport run in the caller's task)
_RETRIES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("ecliptica_retries", default=None)


@dataclass(frozen=True)
class ApiKey:
    """A key and where it came from (`source`: "env:NAME", "none" or "none (--no-api-key)"); repr hides the key."""

    value: str
    source: str
    flag: str  # the option that names the key's variable, for hints

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r})"

    def hint(self) -> str:
        """What to pass when the server refused this key."""
        if self.source.startswith("env:"):
            return f"the key in {self.source[4:]} was refused; set a valid one or name another variable with {self.flag}"
        if self.source == "none (--no-api-key)":
            return f"drop --no-api-key; set {DEFAULT_KEY_ENV} or name the key's variable with {self.flag}"
        return f"set {DEFAULT_KEY_ENV} or name the key's variable with {self.flag}"


def resolve_api_key(env_name: str | None, flag: str, send: bool = True) -> ApiKey:
    """The key the openai client would use: the variable named `env_name` (it must be set), else
    OPENAI_API_KEY when set, else none. `send=False` or env_name NO_KEY_ENV: none. `flag`: the option that
    names the variable, for errors and hints."""
    if not send or env_name == NO_KEY_ENV:
        return ApiKey(NO_KEY, "none (--no-api-key)" if not send else f"none ({flag} {NO_KEY_ENV})", flag)
    if env_name:
        key = os.environ.get(env_name)
        if not key:
            raise EclipticaError(f"{flag}: environment variable {env_name} is not set")
        return ApiKey(key, f"env:{env_name}", flag)
    key = os.environ.get(DEFAULT_KEY_ENV)
    if key:
        return ApiKey(key, f"env:{DEFAULT_KEY_ENV}", flag)
    return ApiKey(NO_KEY, "none", flag)


def read_api_key(env_name: str | None, flag: str, send: bool = True) -> str:
    """The key itself (resolve_api_key)."""
    return resolve_api_key(env_name, flag, send).value


class EndpointRefused(EclipticaError):
    """The server refused the endpoint itself (REFUSED): the command stops with this one line."""


def refusal(who: str, base_url: str, status: int, body: str | None, key: ApiKey | None) -> EndpointRefused:
    """The one-line error for a REFUSED answer: who (judge / model), where, the status, the server's words, what to do."""
    try:
        phrase = http_status.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    said = ""
    if body:
        try:
            obj = json.loads(body)
            err = obj.get("error") if isinstance(obj, dict) else None
            said = (err.get("message") if isinstance(err, dict) else err) or obj.get("message") or ""
        except (ValueError, AttributeError):
            said = body
    if status in (401, 403, 407):
        todo = key.hint() if key is not None else f"set {DEFAULT_KEY_ENV}"
    elif status == 402:
        todo = "the account behind the key has no credit or quota left"
    else:
        todo = "check the URL (it ends in /v1) and the model name the server serves"
    text = f"{who} {base_url}: HTTP {status} {phrase}".rstrip() + (f" ({short(str(said), 160)})" if said else "") + f": {todo}"
    return EndpointRefused(" ".join(text.split()))


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_s: float = 0.5  # the first backoff; doubled at each retry, with jitter (x 0.5..1)
    max_backoff_s: float = 60.0  # cap on a backoff
    max_wait_s: float = MAX_RETRY_AFTER_S  # cap on a server-given Retry-After

    def wait(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `retry` (0-based); `retry_after`: what the server asked, if anything."""
        if retry_after is not None and math.isfinite(retry_after):
            return min(self.max_wait_s, max(0.0, retry_after))
        return min(self.max_backoff_s, self.backoff_s * 2 ** min(retry, 60)) * (0.5 + random.random() / 2)


@dataclass
class Faults:
    """What happened on the wire, counted per attempt. Names are those metrics.json's judge_faults records."""

    requests: int = 0  # attempts sent, retries included
    retries: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    http_429: int = 0
    http_5xx: int = 0
    http_4xx: int = 0  # other 4xx (never retried, except 408 and 409)
    malformed: int = 0  # 2xx answers that are not a usable chat completion

    def to_dict(self) -> dict:
        return asdict(self)


class Hooks:
    """What a caller adds to each attempt (defaults: nothing). Any exception a hook raises ends the call
    at once, past the client's retries, and reaches the caller as it is."""

    def before(self) -> None:
        """Before each attempt is sent."""

    def failed(self, kind: str, detail: str) -> None:
        """An attempt got no answer: kind is "timeout" or "connection"."""

    def answered(self, request, status: int, body: str | None) -> None:
        """An attempt got an answer (body: only for status >= 400). Raising takes the answer over: it is
        neither retried nor counted as a fault."""


class CallFailed(Exception):
    """A call that failed for good. kind: one of KINDS; attempts: how many were sent."""

    def __init__(self, kind: str, detail: str, attempts: int, status_code: int | None = None, body: object = None):
        self.kind, self.detail, self.attempts, self.status_code, self.body = kind, detail, attempts, status_code, body
        super().__init__(detail + (f" (gave up after {attempts} attempts)" if attempts > 1 else ""))


def short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."


def _env_proxy(base_url: str) -> str | None:
    """The proxy the environment sets for this server (HTTPS_PROXY, NO_PROXY, ...), as the default client would use."""
    parts = urllib.parse.urlsplit(base_url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


@functools.cache
def _classes():
    """(http module, Stopped, transport class, client class), built on the HTTP library the installed
    openai uses (httpx, or httpx2 from openai 3)."""
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient, OpenAIError

    base = next(c for c in DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
    http = importlib.import_module(base.__module__.partition(".")[0])

    class Stopped(OpenAIError):
        """Carries a hook's exception through the client's retry loop, which passes an OpenAIError on at
        once (any other exception it would retry, in openai 2.x)."""

        def __init__(self, exc: Exception):
            super().__init__(str(exc))
            self.exc = exc

    class CountingTransport(http.AsyncBaseTransport):
        """Under the client: counts each attempt and runs the caller's hooks."""

        def __init__(self, inner, faults: Faults, hooks: Hooks, refuse=None):
            self.inner, self.faults, self.hooks = inner, faults, hooks
            self.refuse = refuse  # (status, body) -> the exception that ends the command; None: a normal 4xx

        @staticmethod
        def _run(hook, *args) -> None:
            try:
                hook(*args)
            except Exception as exc:
                raise Stopped(exc) from exc

        async def handle_async_request(self, request):
            self._run(self.hooks.before)
            self.faults.requests += 1
            try:
                response = await self.inner.handle_async_request(request)
            except http.TimeoutException as exc:
                self.faults.timeouts += 1
                self._run(self.hooks.failed, "timeout", short(str(exc) or type(exc).__name__))
                raise
            except http.TransportError as exc:
                self.faults.connection_errors += 1
                self._run(self.hooks.failed, "connection", short(str(exc) or type(exc).__name__))
                raise
            status = response.status_code
            body = None
            if status >= 400:
                await response.aread()
                body = response.text
            self._run(self.hooks.answered, request, status, body)
            if status in REFUSED and self.refuse is not None:
                raise Stopped(self.refuse(status, body))
            if status == 429:
                self.faults.http_429 += 1
            elif status >= 500:
                self.faults.http_5xx += 1
            elif status >= 400:
                self.faults.http_4xx += 1
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    class Client(AsyncOpenAI):
        """AsyncOpenAI whose waits between retries are RetryPolicy's, and counted."""

        policy: RetryPolicy = RetryPolicy()
        faults: Faults | None = None

        def retry_wait(self, retry: int, headers) -> float:
            """Seconds before retry number `retry` (0-based) after an answer with these headers (None: no answer)."""
            return self.policy.wait(retry, self._parse_retry_after_header(headers))

        def _calculate_retry_timeout(self, remaining_retries, options, response_headers=None) -> float:
            # called by the client's retry loop once before each retry
            if self.faults is not None:
                self.faults.retries += 1
            retries = _RETRIES.get()
            if retries is not None:
                retries[0] += 1
            return self.retry_wait(options.get_max_retries(self.max_retries) - remaining_retries, response_headers)

    return http, Stopped, CountingTransport, Client


def _refuse(who: str, base_url: str, key: ApiKey | None, status: int, body: str | None) -> EndpointRefused:
    return refusal(who, base_url, status, body, key)


class ModelClient:
    """One AsyncOpenAI client over one server: base_url, the key, the timeout, the retry policy, the fault
    counter. `await chat(**body)` -> a ChatCompletion, or raises CallFailed (or what a hook raised)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | ApiKey,
        timeout_s: float,
        policy: RetryPolicy,
        faults: Faults,
        hooks: Hooks | None = None,
        who: str | None = None,
    ):
        """`who` ("judge", "model"): a REFUSED answer ends the command (EndpointRefused naming who and
        base_url); None: it is a failed call like any other 4xx."""
        from openai import DefaultAsyncHttpxClient

        http, _, transport_class, client_class = _classes()
        self.base_url, self.timeout_s, self.policy, self.faults = base_url, timeout_s, policy, faults
        key = api_key if isinstance(api_key, ApiKey) else None
        api_key = api_key.value if isinstance(api_key, ApiKey) else api_key
        refuse = None if who is None else functools.partial(_refuse, who, base_url, key)
        limits = http.Limits(max_connections=1000, max_keepalive_connections=100)  # the openai client's defaults
        inner = http.AsyncHTTPTransport(limits=limits, proxy=_env_proxy(base_url))
        self.client = client_class(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=policy.max_retries,
            http_client=DefaultAsyncHttpxClient(transport=transport_class(inner, faults, hooks or Hooks(), refuse)),
        )
        self.client.policy, self.client.faults = policy, faults

    async def chat(self, **body):
        import openai

        stopped = _classes()[1]
        retries = [0]
        token = _RETRIES.set(retries)
        try:
            try:
                resp = await self.client.chat.completions.create(**body)
            finally:
                _RETRIES.reset(token)
        except stopped as exc:
            raise exc.exc  # what the hook raised, as it raised it
        except openai.APIStatusError as exc:
            status = exc.status_code
            kind = "http_429" if status == 429 else "http_5xx" if status >= 500 else "http_4xx"
            raise CallFailed(kind, f"HTTP {status}: {short(exc.message)}", retries[0] + 1, status, exc.body) from exc
        except openai.APITimeoutError as exc:
            raise CallFailed("timeout", f"timeout after {self.timeout_s:g}s", retries[0] + 1) from exc
        except openai.APIConnectionError as exc:
            raise CallFailed("connection", f"connection error: {short(str(exc.__cause__ or exc))}", retries[0] + 1) from exc
        except (ValueError, TypeError, AttributeError) as exc:  # a 2xx body that does not decode, and the like
            self.faults.malformed += 1
            raise CallFailed("malformed", f"malformed response: {type(exc).__name__}: {short(str(exc))}", 1) from exc
        return resp

    def retry_wait(self, retry: int, headers) -> float:
        """What the client waits before retry number `retry` (0-based) after an answer with these headers."""
        return self.client.retry_wait(retry, headers)

    def malformed(self, detail: str) -> CallFailed:
        """A 2xx answer the caller found unusable: counted, and the error to raise or record."""
        self.faults.malformed += 1
        return CallFailed("malformed", f"malformed response: {detail}", 1)

    async def close(self) -> None:
        await self.client.close()
