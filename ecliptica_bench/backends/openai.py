"""Any OpenAI-compatible chat server: async client, bounded concurrency, retries, timeouts.

The server renders the chat template, so the "rendered prompt" a key is made from is the canonical
JSON of the messages, and there is no template sha. The client, its retries (429, 408, 409 and 5xx
answers, connection errors and timeouts, with exponential backoff; Retry-After honoured), the key and
the fault counter are the shared model client layer's (backends/client.py), which the LLM judge uses
too; other 4xx answers and malformed bodies fail at once. A request that still fails comes back as a
GenResult with `error` set: `run` records it and never caches it. `faults` counts what happened.

Several servers (replicas serving the same model: `--base-url` given more than once): each server gets
`concurrency` requests in flight, pulled from one shared queue, so faster servers take more. A server that
refuses or drops a connection is taken out of the pool (for REVIVE_AFTER_S, then tried again) and the
request goes back to the queue for the others; with one server left, its errors are retried as above.
Every request still ends with exactly one result. The model's identity (the cache's fingerprint) is the
served name and the set of addresses, in any order.

The API key is the one the openai client would use (client.resolve_api_key: the variable named by
`api_key_env`, else OPENAI_API_KEY, else none; `send_api_key=False`: none) and is never stored, logged or
written to the manifest (only where it came from). An answer refusing the endpoint (401, 403, 404, ...:
client.REFUSED) stops the run with one line (client.EndpointRefused) instead of failing every request.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..data.io import dumps, sha256_text
from ..errors import EclipticaError
from .base import Backend, GenRequest, GenResult, SamplingParams
from .client import MAX_RETRY_AFTER_S, CallFailed, Faults, Hooks, ModelClient, RetryPolicy, resolve_api_key, short

log = logging.getLogger(__name__)

REVIVE_AFTER_S = 30.0  # a server taken out of the pool is tried again after this long


class MalformedResponse(Exception):
    """The server answered 2xx but the body is not a usable chat completion."""


class ServerDown(Exception):
    """A server of several refused or dropped the connection: its requests go to the others."""


class _Failover(Hooks):
    """While another server is up, a refused or dropped connection to this one raises ServerDown at once
    (no retry here); the last server up keeps the client's retries."""

    def __init__(self, url: str, alive: list[str]):
        self.url, self.alive = url, alive

    def failed(self, kind: str, detail: str) -> None:
        if kind == "connection" and self.alive != [self.url]:
            raise ServerDown(f"{self.url}: connection error: {detail}")


class OpenAIBackend(Backend):
    name = "openai"
    tokenizer = None
    default_batch_size = 64  # requests handed over per call; `concurrency` bounds how many are in flight per server

    def __init__(
        self,
        model: str,
        base_url: str | list[str] | tuple[str, ...] | None = None,
        api_key_env: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        send_api_key: bool = True,
    ):
        urls = [u.rstrip("/") for u in ([base_url] if isinstance(base_url, str) else list(base_url or ())) if u]
        if not urls:
            raise EclipticaError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        twice = sorted({u for u in urls if urls.count(u) > 1})
        if twice:
            raise EclipticaError(f"--base-url {twice[0]} is given more than once")
        if concurrency < 1:
            raise EclipticaError(f"--concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.base_urls = urls
        self.base_url = urls[0]
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.policy = RetryPolicy(max_retries, backoff_s, max_backoff_s, MAX_RETRY_AFTER_S)
        self._api_key = resolve_api_key(api_key_env, "--api-key-env", send_api_key)  # fail fast; never logged
        self.faults = Faults()  # over every generate() of this backend
        self._down: dict[str, float] = {}  # server -> when it was taken out of the pool
        # what the server serves under this name, at this address (these addresses): the best identity we can see
        ident = {"base_url": urls[0]} if len(urls) == 1 else {"base_urls": sorted(urls)}
        self.fingerprint = sha256_text(dumps({"backend": "openai", **ident, "model": model}))

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "base_url": self.base_url,
            "base_urls": self.base_urls,
            "served_model": self.model,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "api_key_env": self.api_key_env,
            "api_key_source": self._api_key.source,
        }  # the variable's name only, never its value

    @staticmethod
    def prompt_text(messages: list[dict]) -> str:
        """What a key is made from when the server renders: the messages, canonically."""
        return dumps(messages)

    def _client(self, base_url: str, alive: list[str]) -> ModelClient:
        return ModelClient(
            base_url,
            self._api_key,
            self.timeout_s,
            self.policy,
            self.faults,
            _Failover(base_url, alive),
            who=f"model {self.model} at",
        )

    def _live_servers(self) -> list[str]:
        """Servers not taken out of the pool in the last REVIVE_AFTER_S; all of them when none is left."""
        now = time.monotonic()
        live = [u for u in self.base_urls if now - self._down.get(u, -REVIVE_AFTER_S) >= REVIVE_AFTER_S]
        return live or list(self.base_urls)

    def generate(self, requests: list[GenRequest], params: SamplingParams) -> list[GenResult]:
        if not requests:
            return []
        return asyncio.run(self._generate_all(requests, params))

    async def _generate_all(self, requests, params) -> list[GenResult]:
        """`concurrency` workers per live server pull request indices from one queue. A server that goes
        down while another is up is taken out of the pool: its request goes back to the queue and its
        workers stop. The last server up is never taken out: its errors are retried (or reported) as usual."""
        results: list[GenResult | None] = [None] * len(requests)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(requests)):
            queue.put_nowait(i)
        alive = self._live_servers()
        clients = {u: self._client(u, alive) for u in alive}

        async def worker(url: str) -> None:
            while True:
                i = await queue.get()
                try:
                    if url not in alive:  # went down while this worker waited: leave it to the others
                        queue.put_nowait(i)
                        return
                    results[i] = await self._one(clients[url], requests[i], params)
                except ServerDown as exc:
                    if url in alive and len(alive) > 1:
                        alive.remove(url)
                        self._down[url] = time.monotonic()
                        log.warning(
                            "openai: %s; its requests go to the other %d server(s) (retried in %gs)",
                            exc,
                            len(alive),
                            REVIVE_AFTER_S,
                        )
                    queue.put_nowait(i)  # again: elsewhere, or here without failover if none is left
                finally:
                    queue.task_done()

        workers = {asyncio.create_task(worker(u)) for u in list(alive) for _ in range(self.concurrency)}
        joined = asyncio.create_task(queue.join())
        try:
            pending = {joined, *workers}
            while not joined.done():
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished - {joined}:
                    if task.exception() is not None:  # a bug, not a server's answer: the batch fails, as before
                        raise task.exception()
        finally:
            for task in (joined, *workers):
                task.cancel()
            await asyncio.gather(joined, *workers, return_exceptions=True)
            for c in clients.values():
                await c.close()
        return results

    async def _one(self, client: ModelClient, req: GenRequest, params: SamplingParams) -> GenResult:
        """One request, retried by the client; a server going down among several raises ServerDown (_Failover)."""
        body = dict(
            model=self.model,
            messages=req.messages,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            seed=req.seed if req.seed is not None else params.seed,
        )
        if not params.greedy:
            body["top_p"] = params.top_p
        if params.response_format is not None:
            body["response_format"] = params.response_format
        t0 = time.monotonic()
        try:
            resp = await client.chat(**body)
            return self._parse(resp, time.monotonic() - t0)
        except MalformedResponse as exc:
            return self._failed(str(client.malformed(str(exc))), t0)
        except CallFailed as exc:
            return self._failed(str(exc), t0)

    @staticmethod
    def _failed(error: str, t0: float) -> GenResult:
        return GenResult(
            text="",
            finish_reason="error",
            prompt_tokens=None,
            completion_tokens=None,
            latency_s=time.monotonic() - t0,
            error=error,
        )

    @staticmethod
    def _parse(resp, latency: float) -> GenResult:
        try:
            choice = resp.choices[0]
            text = choice.message.content
            finish = choice.finish_reason
        except (AttributeError, IndexError, TypeError, KeyError):
            raise MalformedResponse(f"no choices[0].message.content in {short(repr(resp))}") from None
        if not isinstance(text, str):
            raise MalformedResponse(f"choices[0].message.content is {type(text).__name__}, not a string")
        usage = getattr(resp, "usage", None)
        return GenResult(
            text=text,
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            latency_s=latency,
        )
