"""Optional LLM judge over any OpenAI-compatible endpoint (SPEC.md section 5).

Per case the judge answers the labels of its template's schema. Every suite owns one template
(Suite.judge_template, loaded from Suite.judges_dir(): judges/ of the suite's data root, so a plugin suite
ships its own); a template declares its version ('{# version: X #}') and its schema ('{# schema: {...JSON...} #}'):
    characteristics  true: one boolean verdict per expected characteristic of the case's instruction type
    labels           {name: {"values": [...] (default [true, false]), "true": [...] values counted as "yes"
                     (default [true]), "when": {column: value} ask only on rows whose column has that value,
                     "detector": the keyword-detector column it is compared with ("!col": its negation)}}
    metric           the judge-based suite score (scoring/panel.py): {"kind": "rate"|"contrast"|"safe", ...}
    contrastive      the suite's contrastive template (a file name beside this one; scoring/panel.py)
    gold             the suite's gold-set labels, entry rules and detectors (scoring/gold.py)
A case may instead carry its own labels (JudgeCase.labels: the contrastive mode's per-response types). Verdicts are structured JSON: the request asks for
`response_format` json_schema (a strict schema built from the characteristic names); if the server
rejects that (HTTP 400/422, or a 5xx that names the response format, as llama.cpp's server does), the
rest of the run uses json_object and the prompt's own key list. A reply that does not parse or has the
wrong shape is re-asked once; if it still fails the case is "unscored" (never "wrong").

Transport: the shared model client layer (backends/client.py, as the model under test uses it): one
client, bounded concurrency, the client's retries with exponential backoff that honours Retry-After
(each wait capped at max_wait_s), per-request timeouts. Faults are counted per attempt (`JudgeFaults`);
after `dead_after` consecutive connection-level failures the endpoint is declared dead and the remaining
cases are unscored at once, so scoring always completes.

Verdicts are cached in the run's store under cache_key("judgment", judge_model, template_version,
input=<rendered judge prompt>). Only final outcomes are cached (ok, unparseable); transport faults are
not, so a later re-score retries them. The API key is read from the environment variable named by the
caller, else OPENAI_API_KEY, as the openai client does (client.resolve_api_key; KEY_ENV "none": no key); it is
never stored, logged or put in a cache key. An answer that refuses the endpoint (401, 403, 404, ...:
client.REFUSED) stops the command with one line (client.EndpointRefused) instead of leaving every case
unscored; timeouts, connection errors and 5xx still leave only the cases they hit unscored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import paths
from ..backends.client import ApiKey, CallFailed, Faults, Hooks, ModelClient, RetryPolicy, resolve_api_key
from ..errors import EclipticaError
from ..store import RunStore, cache_key

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "ecliptica_judge_v1.j2"
ANSWERS_PROMPT = "answers_prompt"
BOOL = (True, False)
_VERSION_RE = re.compile(r"\{#\s*version:\s*([\w.\-]+)\s*#\}")
_SCHEMA_RE = re.compile(r"\{#-?\s*schema:\s*(\{.*?\})\s*-?#\}", re.S)
DEFAULT_SCHEMA = {"characteristics": True, "labels": {ANSWERS_PROMPT: {}}}


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key_env: str | None = None
    concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 60.0  # cap on any single wait (backoff or Retry-After)
    max_tokens: int = 256
    template: str = DEFAULT_TEMPLATE
    dead_after: int = 8  # consecutive connection errors / timeouts -> endpoint dead
    name: str | None = None  # the judge's name in a panel (default: the model name)
    key_flag: str = "--judge-api-key-env"  # the option that names api_key_env, for errors and hints

    @property
    def label(self) -> str:
        return self.name or self.model

    def __post_init__(self):
        if self.concurrency < 1:
            raise EclipticaError(f"--judge-concurrency must be >= 1, got {self.concurrency}")
        if not self.timeout_s > 0:
            raise EclipticaError(f"--judge-timeout must be > 0 seconds, got {self.timeout_s}")

    def api_key(self) -> ApiKey:
        return resolve_api_key(self.api_key_env, self.key_flag)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.backoff_s, self.max_wait_s, self.max_wait_s)


@dataclass
class JudgeFaults(Faults):
    """The transport's counts (client.Faults: requests, retries, timeouts, ...), then the judge's own."""

    reasks: int = 0
    json_schema_rejected: bool = False
    endpoint_dead: bool = False
    cases: int = 0
    cached: int = 0
    scored: int = 0
    unscored: int = 0
    unscored_reasons: dict = field(default_factory=dict)


@dataclass
class Verdict:
    status: str  # "ok" | "unscored"
    reason: str | None = None  # why unscored: unparseable, fault:<kind>, endpoint_dead
    verdict: dict | None = None  # {label: value} for the labels asked (characteristics, answers_prompt, ...)
    cached: bool = False
    raw: str | None = None  # the judge's reply the verdict was parsed from
    chars: tuple[str, ...] = ()  # which verdict keys are characteristics

    @property
    def adherence(self) -> float:
        """Share of the expected characteristics the judge found (NaN when unscored or none asked)."""
        if self.status != "ok" or not self.verdict:
            return math.nan
        chars = [self.verdict[c] for c in self.chars if c in self.verdict]
        return float(sum(chars) / len(chars)) if chars else math.nan

    @property
    def answers_prompt(self) -> float:
        if self.status != "ok" or not self.verdict or ANSWERS_PROMPT not in self.verdict:
            return math.nan
        return float(self.verdict[ANSWERS_PROMPT])


@dataclass(frozen=True)
class JudgeCase:
    prompt: str
    response: str
    characteristics: tuple[tuple[str, str], ...]  # (name, description)
    row: dict = field(default_factory=dict, compare=False, hash=False)  # extra template variables (row columns)
    labels: tuple[tuple[str, tuple], ...] | None = None  # explicit (label, allowed values); None: the schema's


def template_path(name: str | Path, directory: Path | None = None) -> Path:
    """A bare file name is looked up in `directory` (default: the data root's judges/; a suite's own:
    Suite.judges_dir()); anything with a folder part is a path as given (Suite.judge_template_path())."""
    p = Path(name)
    if p.is_absolute() or len(p.parts) > 1:
        return p
    return Path(directory if directory is not None else paths.judges_dir()) / p


def load_judge_template(name: str | Path = DEFAULT_TEMPLATE, directory: Path | None = None):
    """(jinja2 template, version id, schema dict) from template_path(name, directory) (see the module docstring)."""
    import jinja2

    path = template_path(name, directory)
    if not path.exists():
        raise EclipticaError(f"{path}: judge template not found")
    text = path.read_text(encoding="utf-8")
    m = _VERSION_RE.search(text)
    if not m:
        raise EclipticaError(f"{path}: no '{{# version: ... #}}' line: a judge template must carry its version id")
    schema = DEFAULT_SCHEMA
    sm = _SCHEMA_RE.search(text)
    if sm:
        try:
            schema = json.loads(sm.group(1))
        except json.JSONDecodeError as exc:
            raise EclipticaError(f"{path}: schema comment is not valid JSON ({exc.msg})") from None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    return env.from_string(text), m.group(1), schema


def schema_labels(schema: dict, case: JudgeCase) -> dict[str, tuple]:
    """{label: allowed values} the template asks about this case, in prompt order."""
    if case.labels is not None:
        return {k: tuple(v) for k, v in case.labels}
    out = {n: BOOL for n, _ in case.characteristics} if schema.get("characteristics") else {}
    for name, spec in (schema.get("labels") or {}).items():
        when = spec.get("when") or {}
        if all(str(case.row.get(col)) == str(v) for col, v in when.items()):
            out[name] = tuple(spec.get("values", BOOL))
    return out


def verdict_schema(keys: Sequence[str], allowed: dict | None = None) -> dict:
    def prop(k):
        vals = (allowed or {}).get(k, BOOL)
        return {"type": "boolean"} if tuple(vals) == BOOL else {"type": "string", "enum": list(vals)}

    return {"type": "object", "properties": {k: prop(k) for k in keys}, "required": list(keys), "additionalProperties": False}


def _allowed(value, vals) -> bool:
    if tuple(vals) == BOOL:
        return isinstance(value, bool)
    return isinstance(value, str) and value in vals


def parse_verdict(content: str | None, keys: Sequence[str], allowed: dict | None = None) -> tuple[dict | None, str | None]:
    """({key: value} | None, error). Tolerates code fences and text around one JSON object; extra keys are
    dropped; every expected key must be present with an allowed value (`allowed`: key -> values; a JSON
    boolean where not given)."""
    if not content or not content.strip():
        return None, "empty reply"
    text = content.strip()
    if text.startswith("```"):
        text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            return None, "not JSON"
        try:
            obj = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            return None, f"not JSON ({exc.msg})"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    missing = [k for k in keys if k not in obj]
    if missing:
        return None, f"missing keys: {', '.join(missing)}"
    bad = [k for k in keys if not _allowed(obj[k], (allowed or {}).get(k, BOOL))]
    if bad:
        if all(tuple((allowed or {}).get(k, BOOL)) == BOOL for k in bad):
            return None, f"not true/false: {', '.join(bad)}"
        return None, f"not an allowed value: {', '.join(bad)}"
    return {k: obj[k] for k in keys}, None


def _values_hint(allowed: dict) -> str:
    enums = {k: v for k, v in allowed.items() if tuple(v) != BOOL}
    if not enums:
        return "true or false"
    return "true or false, except " + "; ".join(f"{k}: one of {', '.join(map(str, v))}" for k, v in enums.items())


class _Fault(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class _SchemaRejected(Exception):
    """The server refused the json_schema response format of a request sent in that mode."""


class _Watch(Hooks):
    """The judge's part in each attempt: a dead endpoint is asked nothing more; timeouts and connection
    errors count towards its death; a refusal of json_schema is taken over (not retried, not a fault)."""

    def __init__(self, judge: Judge):
        self.judge = judge

    def before(self) -> None:
        if self.judge.faults.endpoint_dead:
            raise _Fault("endpoint_dead")

    def failed(self, kind: str, detail: str) -> None:
        self.judge._connection_failed()
        if self.judge.faults.endpoint_dead:
            raise _Fault("endpoint_dead")

    def answered(self, request, status: int, body: str | None) -> None:
        self.judge._consecutive_conn = 0
        if status >= 400:
            try:
                sent_mode = (json.loads(request.content or b"{}").get("response_format") or {}).get("type")
            except ValueError:
                sent_mode = None
            if Judge._schema_rejected(status, body or "", sent_mode):
                raise _SchemaRejected(status)


class Judge:
    def __init__(self, config: JudgeConfig, store: RunStore | None = None):
        self.config = config
        self.store = store
        self.template, self.version, self.schema = load_judge_template(config.template)
        self.faults = JudgeFaults()
        self.mode = "json_schema"
        self._consecutive_conn = 0
        self._api_key = config.api_key()  # fail fast on a missing env var; never logged

    # ---------------------------------------------------------------------------------------------
    def labels(self, case: JudgeCase) -> dict[str, tuple]:
        return schema_labels(self.schema, case)

    def render(self, case: JudgeCase) -> str:
        labels = self.labels(case)
        return (
            self.template.render(
                {
                    **case.row,
                    "prompt": case.prompt,
                    "response": case.response or "",
                    "characteristics": [{"name": n, "description": d} for n, d in case.characteristics],
                    "keys": list(labels),
                    "labels": labels,
                }
            ).strip()
            + "\n"
        )

    def key(self, rendered: str) -> str:
        return cache_key("judgment", judge_model=self.config.model, template_version=self.version, input=rendered)

    def judge(self, cases: Sequence[JudgeCase]) -> list[Verdict]:
        """Judge every case (cache first); always returns one Verdict per case."""
        return asyncio.run(self._judge_all(list(cases)))

    # ---------------------------------------------------------------------------------------------
    async def _judge_all(self, cases: list[JudgeCase]) -> list[Verdict]:
        cfg = self.config
        client = ModelClient(cfg.base_url, self._api_key, cfg.timeout_s, cfg.policy(), self.faults, _Watch(self), who="judge")
        sem = asyncio.Semaphore(max(1, self.config.concurrency))

        async def one(case):
            async with sem:
                return await self._judge_one(client, case)

        try:
            out = await asyncio.gather(*(one(c) for c in cases))
        finally:
            await client.close()
        for v in out:
            self.faults.cases += 1
            self.faults.cached += v.cached
            if v.status == "ok":
                self.faults.scored += 1
            else:
                self.faults.unscored += 1
                self.faults.unscored_reasons[v.reason] = self.faults.unscored_reasons.get(v.reason, 0) + 1
        return out

    async def _judge_one(self, client, case: JudgeCase) -> Verdict:
        rendered = self.render(case)
        key = self.key(rendered)
        allowed = self.labels(case)
        keys = list(allowed)
        chars = tuple(n for n, _ in case.characteristics if n in allowed)
        if self.store is not None:
            hit = self.store.get_judgment(key)
            if hit is not None:
                if hit["status"] == "ok":
                    # re-parsed from the stored raw reply (no new call), else from the stored verdict
                    verdict, err = parse_verdict(hit["raw"], keys, allowed)
                    if verdict is None:
                        verdict, err = parse_verdict(json.dumps(hit["verdict"]), keys, allowed)
                    if verdict is not None:
                        return Verdict("ok", None, verdict, cached=True, raw=hit["raw"], chars=chars)
                elif hit["status"] == "unparseable":
                    return Verdict("unscored", "unparseable", None, cached=True, raw=hit["raw"], chars=chars)
        messages = [{"role": "user", "content": rendered}]
        try:
            content = await self._request(client, messages, keys, allowed)
            verdict, err = parse_verdict(content, keys, allowed)
            if verdict is None:
                self.faults.reasks += 1
                messages += [
                    {"role": "assistant", "content": content or ""},
                    {
                        "role": "user",
                        "content": f"That reply could not be used ({err}). Reply with only a JSON "
                        f"object with exactly these keys: {', '.join(keys)}; every value "
                        f"{_values_hint(allowed)}.",
                    },
                ]
                content = await self._request(client, messages, keys, allowed)
                verdict, err = parse_verdict(content, keys, allowed)
        except _Fault as f:
            return Verdict("unscored", "endpoint_dead" if f.kind == "endpoint_dead" else f"fault:{f.kind}", chars=chars)
        if verdict is None:
            if self.store is not None:
                self.store.put_judgment(key, self.config.model, self.version, None, "unparseable", content)
            return Verdict("unscored", "unparseable", raw=content, chars=chars)
        if self.store is not None:
            self.store.put_judgment(key, self.config.model, self.version, verdict, "ok", content)
        return Verdict("ok", None, verdict, raw=content, chars=chars)

    def _format(self, keys: list[str], allowed: dict | None = None) -> dict:
        if self.mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "strict": True, "schema": verdict_schema(keys, allowed)},
            }
        return {"type": "json_object"}

    @staticmethod
    def _schema_rejected(status: int, body: str, sent_mode: str | None) -> bool:
        """Did the server reject the json_schema response format of a request sent in that mode?
        (Several requests may be in flight when the first rejection flips the mode.)"""
        if sent_mode != "json_schema":
            return False
        if status in (400, 422):
            return True
        return status >= 500 and any(w in body.lower() for w in ("response_format", "json_schema", "schema", "grammar"))

    async def _request(self, client: ModelClient, messages: list[dict], keys: list[str], allowed: dict | None = None) -> str:
        while True:
            try:
                # response_format goes in extra_body: sent as-is, it skips the client's per-request
                # recursive parameter transform of the schema (the largest client-side CPU cost per call)
                resp = await client.chat(
                    model=self.config.model,
                    messages=messages,
                    temperature=0,
                    max_tokens=self.config.max_tokens,
                    extra_body={"response_format": self._format(keys, allowed)},
                )
            except _SchemaRejected as exc:
                if self.mode == "json_schema":
                    log.warning("judge endpoint rejected response_format json_schema (HTTP %s); using json_object", exc)
                self.mode = "json_object"
                self.faults.json_schema_rejected = True
                continue  # the same request, in json_object mode
            except CallFailed as exc:
                raise _Fault(f"http_{exc.status_code}" if exc.kind == "http_4xx" else exc.kind) from None
            if not hasattr(resp, "choices"):  # a 2xx body that is no chat completion (text, HTML)
                raise _Fault(client.malformed(f"a {type(resp).__name__}, not a chat completion").kind)
            return resp.choices[0].message.content or "" if resp.choices else ""

    def _connection_failed(self) -> None:
        self._consecutive_conn += 1
        if self._consecutive_conn >= self.config.dead_after and not self.faults.endpoint_dead:
            log.warning(
                "judge endpoint unreachable after %d consecutive failures; remaining cases are unscored", self._consecutive_conn
            )
            self.faults.endpoint_dead = True
