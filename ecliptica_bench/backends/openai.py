"""Any OpenAI-compatible chat server: async client, bounded concurrency, retries, timeouts.

The server renders the chat template, so the "rendered prompt" a key is made from is the canonical
JSON of the messages, and there is no template sha. Retries: 429, 408, 409 and 5xx answers and
connection errors/timeouts are retried with exponential backoff (a Retry-After header, in seconds or
as a date, is honoured); other 4xx answers and malformed bodies fail at once. A request that still
fails comes back as a GenResult with `error` set: `run` records it and never caches it.

The API key is read from the environment variable named by `api_key_env` and is never stored,
logged or written to the manifest.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time

from ..data.io import dumps, sha256_text
from ..errors import EclipticaError
from .base import Backend, GenRequest, GenResult, SamplingParams

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 120.0


class MalformedResponse(Exception):
    """The server answered 2xx but the body is not a usable chat completion."""


class OpenAIBackend(Backend):
    name = "openai"
    tokenizer = None
    default_batch_size = 64   # requests handed over per call; `concurrency` bounds how many are in flight

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 5,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0):
        if not base_url:
            raise EclipticaError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if concurrency < 1:
            raise EclipticaError(f"--concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # what the server serves under this name, at this address: the best identity we can see
        self.fingerprint = sha256_text(dumps({"backend": "openai", "base_url": self.base_url, "model": model}))

    def describe(self) -> dict:
        return {"backend": self.name, "base_url": self.base_url, "served_model": self.model,
                "concurrency": self.concurrency, "timeout_s": self.timeout_s, "max_retries": self.max_retries,
                "api_key_env": self.api_key_env}   # the variable's name only, never its value

    @staticmethod
    def prompt_text(messages: list[dict]) -> str:
        """What a key is made from when the server renders: the messages, canonically."""
        return dumps(messages)

    def _client(self):
        from openai import AsyncOpenAI

        # retries are ours (to honour Retry-After and record what happened), so the client's are off
        return AsyncOpenAI(base_url=self.base_url, api_key=os.environ.get(self.api_key_env) or "EMPTY",
                           max_retries=0, timeout=self.timeout_s)

    def generate(self, requests: list[GenRequest], params: SamplingParams) -> list[GenResult]:
        if not requests:
            return []
        return asyncio.run(self._generate_all(requests, params))

    async def _generate_all(self, requests, params) -> list[GenResult]:
        sem = asyncio.Semaphore(self.concurrency)
        client = self._client()
        try:
            async def one(req):
                async with sem:
                    return await self._one(client, req, params)
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await client.close()

    async def _one(self, client, req: GenRequest, params: SamplingParams) -> GenResult:
        import openai

        body = dict(model=self.model, messages=req.messages, max_tokens=params.max_new_tokens,
                    temperature=params.temperature, seed=req.seed if req.seed is not None else params.seed)
        if not params.greedy:
            body["top_p"] = params.top_p
        if params.response_format is not None:
            body["response_format"] = params.response_format
        t0 = time.monotonic()
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                resp = await client.chat.completions.create(**body)
                return self._parse(resp, time.monotonic() - t0)
            except MalformedResponse as exc:
                return self._failed(f"malformed response: {exc}", t0)
            except openai.APIStatusError as exc:
                last = f"HTTP {exc.status_code}: {_short(exc.message)}"
                if exc.status_code not in RETRY_STATUS:
                    return self._failed(last, t0)
                wait = retry_after_seconds(exc.response.headers)
            except openai.APITimeoutError:
                last = f"timeout after {self.timeout_s:g}s"
            except openai.APIConnectionError as exc:
                last = f"connection error: {_short(str(exc.__cause__ or exc))}"
            except (ValueError, TypeError, AttributeError) as exc:   # undecodable JSON and the like
                return self._failed(f"malformed response: {type(exc).__name__}: {_short(str(exc))}", t0)
            if attempt == self.max_retries:
                break
            if wait is None:
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)
            log.debug("openai: %s; retry %d/%d in %.2fs", last, attempt + 1, self.max_retries, wait)
            await asyncio.sleep(wait)
        return self._failed(f"{last} (gave up after {self.max_retries + 1} attempts)", t0)

    @staticmethod
    def _failed(error: str, t0: float) -> GenResult:
        return GenResult(text="", finish_reason="error", prompt_tokens=None, completion_tokens=None,
                         latency_s=time.monotonic() - t0, error=error)

    @staticmethod
    def _parse(resp, latency: float) -> GenResult:
        try:
            choice = resp.choices[0]
            text = choice.message.content
            finish = choice.finish_reason
        except (AttributeError, IndexError, TypeError, KeyError):
            raise MalformedResponse(f"no choices[0].message.content in {_short(repr(resp))}") from None
        if not isinstance(text, str):
            raise MalformedResponse(f"choices[0].message.content is {type(text).__name__}, not a string")
        usage = getattr(resp, "usage", None)
        return GenResult(text=text, finish_reason="length" if finish == "length" else "stop",
                         prompt_tokens=getattr(usage, "prompt_tokens", None),
                         completion_tokens=getattr(usage, "completion_tokens", None), latency_s=latency)


def retry_after_seconds(headers) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, capped; None when absent or unreadable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(ms) / 1000))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, when.timestamp() - time.time()))


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."
