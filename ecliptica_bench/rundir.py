"""The run directory: one typed, versioned layout, one writer, one reader.

Layout of a run directory (runs/<run_id>/), schema version RUN_SCHEMA_VERSION:

    file                  type (this module)   written by
    manifest.json         Manifest             `ecliptica run` (run.py), `ecliptica import-lm-eval` (lmeval.py) and,
                                               for a likelihood-only directory, `ecliptica likelihood`: write_manifest
    generations.parquet   GenerationRow rows   `ecliptica run`, `ecliptica import-lm-eval`: write_generations; one row
                                               per (case, condition), columns parquet_columns() = GENERATION_COLUMNS +
                                               every suite's extra columns + HASH_COLUMNS
    store.sqlite          store.RunStore       generations (and later embeddings, judge verdicts) by cache key
    scores.parquet        generations + score columns (scoring/score.py SCORE_COLUMNS): `ecliptica score`
    metrics.json          Metrics              `ecliptica score`: write_metrics
    likelihood.json       (likelihood.py)      `ecliptica likelihood`
    report.html, compare/ (report/, scoring/compare.py)

manifest.json (Manifest.to_json): the same keys whoever wrote it:
    schema_version, run_id, source ("ecliptica run" | "lm-eval" | "likelihood"), status ("running" | "complete" |
    "incomplete"), created_at, finished_at, model {name, path, fingerprint}, adapter {path} | null,
    dataset_sha256, dataset {source, sha256, ...}, seeds {sampling, dataset}, config (the resolved config the
    run id hashes; config.params[suite].max_new_tokens is the run's budget), chat_template_sha256, backend,
    warnings, summary, outputs {file: sha256}; plus the writer's own details as further top-level keys
    (Manifest.details: run's cli_args, options, versions, device, config_sha256; lm-eval's lm_eval, prompt_check).

metrics.json (Metrics): schema_version, run_id, model, model_fingerprint, adapter, dataset_sha, judge, embedder,
bootstrap, suites {suite: {metric, headline_metric, conditions, delta, delta_paper, detector_scores,
delta_corrected, delta_corrected_detector, ...}}, judge_faults, judge_panel, detectors, detector_best, scoring.
Every paper value (paper, headline, delta, delta_paper, signals) is the keyword detector's, as before issue 23;
`detectors` (each detector's role, per-row column and validation figures), `detector_best` and the per-suite
detector_scores (every detector rate raw and corrected for detector error) and delta_corrected were added
beside them in version 1 (optional keys: a file without them reads as before, so no version bump).

Versions. 1: this layout. 0: directories written before this module (no `schema_version`); they still load:
the manifest is upgraded in memory (a plain-string `model` and a flat `model_fingerprint` become
model {name, fingerprint}; the dataset sha is taken from `dataset_sha256`, `dataset_sha` or `dataset.sha256`;
`seeds.sampling` from `config.seed`; the writer from `source` / `kind`). A newer or unknown `schema_version`,
or a missing required key, is one error that says what to do: re-run `ecliptica run` / `ecliptica import-lm-eval`
(metrics.json: re-run `ecliptica score`).

Readers (score, compare, leaderboard, report, likelihood, validate) read through read_run (or read_manifest /
read_metrics / read_generations / read_scores). One error policy: an EclipticaError (a ValidationError with
one Problem) naming the file and the key, "RUN_DIR/manifest.json: model: missing ...", exit 2 through the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from .chat import CONDITIONS
from .data.io import read_json, sha256_file, write_json, write_parquet
from .errors import Problem, ValidationError
from .suites import SUITES

RUN_SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
GENERATIONS = "generations.parquet"
SCORES = "scores.parquet"
METRICS = "metrics.json"
STORE = "store.sqlite"  # store.RunStore.FILENAME (a sibling layer: not imported)
LIKELIHOOD = "likelihood.json"

# Every file of a run directory: name -> (the command that writes it, what it holds); docs/run-directory.md
# lists them in this order (ecliptica_bench/docs.py). The lock files are lock.LOCK_FILES, the report
# report/html.py's REPORT (sibling or higher layers, named here as text; tests/test_docs.py checks they agree).
FILE_DOCS: dict[str, tuple[str, str]] = {
    MANIFEST: (
        "`ecliptica run`, `ecliptica import-lm-eval` (`ecliptica likelihood` for a likelihood-only directory)",
        "what ran: the resolved config and its run id, model, adapter, dataset, seeds, backend, versions, status "
        "and summary (keys below)",
    ),
    GENERATIONS: (
        "`ecliptica run`, `ecliptica import-lm-eval`",
        "one row per case and condition: the case, the response and how it ended (columns below)",
    ),
    STORE: (
        "`ecliptica run`, `ecliptica score`",
        "the SQLite cache (WAL): generations, failed requests (errors, retried by the next run), judge verdicts "
        "and embeddings, each under its cache key (store.py); what makes a rerun generate and judge nothing",
    ),
    SCORES: (
        "`ecliptica score`",
        "generations.parquet's columns, then one column per score (columns below)",
    ),
    METRICS: (
        "`ecliptica score`",
        "per suite and condition the paper metric and the headline metric with 95% CIs, the Deltas, signals, "
        "diagnostics and the judge panel (keys below)",
    ),
    LIKELIHOOD: (
        "`ecliptica likelihood`",
        "sampling-free switching on held-out switch pairs (likelihood.py); the leaderboard's likelihood_* columns",
    ),
    "report.html": ("`ecliptica report`", "a self-contained HTML report: metrics with CIs, plots, sample responses"),
    "compare/": ("`ecliptica compare`", "compare/<run B id>.json: paired differences of this run and run B"),
    ".lock": (
        "`ecliptica run`, `score`, `import-lm-eval` (while they write)",
        "the OS file lock that keeps one writer per run directory (lock.py); a leftover file never blocks",
    ),
    ".lock.owner.json": (
        "the lock's holder",
        "pid, host, start time and command of the writer holding the lock, for the message a second writer prints",
    ),
}

SOURCES = ("ecliptica run", "lm-eval", "likelihood")

RERUN = "re-run `ecliptica run` (or `ecliptica import-lm-eval`) to write it again"
RESCORE = "re-run `ecliptica score {run_dir}`"

GENERATION_COLUMNS = [
    "run_id",
    "suite",
    "case_id",
    "prompt_id",
    "item_id",
    "condition",
    "instruction_type",
    "prompt",
    "instruction",
    "expected_characteristics",
    "source",
    "response",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "key",
]
HASH_COLUMNS = ["axis", "variant_index", "prompt_sha256", "template_sha256"]
# what the scoring stage needs of every row
REQUIRED_COLUMNS = ("suite", "case_id", "prompt_id", "condition", "instruction_type", "prompt", "response", "finish_reason")


class GenerationRow(TypedDict, total=False):
    """One row of generations.parquet: a case under one condition and its generation (suite extras beside)."""

    run_id: str
    suite: str
    case_id: str
    prompt_id: int
    item_id: str
    condition: str  # instructed | uninstructed
    instruction_type: str
    prompt: str
    instruction: str | None
    expected_characteristics: list[str]
    source: str | None
    response: str
    finish_reason: str | None  # stop | length | None (unknown: lm-eval imports)
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    key: str  # the store's generation key
    axis: str | None
    variant_index: int | None
    prompt_sha256: str | None
    template_sha256: str | None


# Docs of the columns this module adds to the dataset's (the dataset columns are documented in data/card.py
# COLUMN_DOCS and Suite.card_columns); docs/run-directory.md shows both.
GENERATION_DOCS = {
    "run_id": "the run directory's id (manifest.json `run_id`)",
    "condition": "instructed (the alignment instruction as the system message) or uninstructed (the user prompt alone)",
    "response": "the model's answer (empty string when it produced none)",
    "finish_reason": "stop (the model ended) or length (max_new_tokens reached: truncated); null when unknown",
    "prompt_tokens": "tokens of the rendered prompt",
    "completion_tokens": "tokens generated",
    "latency_s": "seconds the request took (a batch's time shared over its rows for local backends)",
    "key": "the generation's cache key in store.sqlite (store.cache_key: model fingerprint, dtype, rendered "
    "prompt, sampling params, request seed)",
    "prompt_sha256": "sha256 of the rendered prompt (chat template applied)",
    "template_sha256": "sha256 of the chat template used to render it",
}


class Metrics(TypedDict, total=False):
    """metrics.json, top level (`ecliptica score`; the per-suite blocks are scoring/score.py's)."""

    schema_version: int
    run_id: str
    model: str | None
    model_fingerprint: str | None
    adapter: str | None
    dataset_sha: str | None
    judge: dict | None
    embedder: str
    bootstrap: int
    suites: dict
    judge_faults: dict | None
    judge_panel: dict
    detectors: dict  # detector name -> {name, kind, role, column, pooled, validation, correction, note}
    detector_best: dict  # kind -> the detector whose corrected values the headline Delta uses (or None)
    scoring: dict


METRICS_DOCS = {
    "schema_version": "layout version of the run directory (RUN_SCHEMA_VERSION; absent: 0, before versions)",
    "run_id": "the run's id (manifest.json `run_id`)",
    "model": "model alias or path (manifest model.name)",
    "model_fingerprint": "fingerprint of the weights, config, tokenizer and chat template (manifest model.fingerprint)",
    "adapter": "the LoRA adapter's path, null for the base model",
    "dataset_sha": "sha256 of the cases run (manifest dataset_sha256)",
    "judge": "the judge panel: each judge's endpoint, model and template versions; null without a judge",
    "embedder": "id of the sentence embedder behind fidelity, shift, validity and identifiability",
    "bootstrap": "number of bootstrap resamples behind every CI (0: no CIs)",
    "suites": "per suite: the metrics (keys below)",
    "judge_faults": "requests, retries, scored and unscored cases, whether the endpoint died; null without a judge",
    "judge_panel": "per suite and label: agreement between judges (Cohen's kappa for 2, Krippendorff's alpha "
    "for more) and each judge's parse-failure rate (only with a judge)",
    "scoring": "how scoring ran (keys below)",
    "detectors": "every detector that scored this run: name, kind, role (keyword / learned / user), its "
    "scores.parquet column, the validation sets with n, sensitivity and specificity, and the pooled set the "
    "correction uses",
    "detector_best": "per kind: the detector whose corrected rates the headline Delta uses (user over learned over "
    "keyword, the first with validation figures), null when none has them",
}


def extra_columns() -> list[str]:
    """Every suite's extra columns, in registry order (null in the rows of other suites)."""
    return list(dict.fromkeys(c for s in SUITES.values() for c in s.extra_columns))


def parquet_columns() -> list[str]:
    return GENERATION_COLUMNS + extra_columns() + HASH_COLUMNS


# ------------------------------------------------------------------------------------------- errors
def _error(path: Path, key: str | None, message: str) -> ValidationError:
    """The one error of this module: the file, the key (None: the whole file) and what to do."""
    return ValidationError([Problem(str(path), key, message)])


def _version(path: Path, data: dict, what: str) -> int:
    v = data.get("schema_version", 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _error(path, "schema_version", f"must be a non-negative integer, got {v!r}; {what}")
    if v > RUN_SCHEMA_VERSION:
        raise _error(
            path,
            "schema_version",
            f"version {v} is newer than this ecliptica_bench reads ({RUN_SCHEMA_VERSION}): upgrade ecliptica_bench, or {what}",
        )
    return v


# ----------------------------------------------------------------------------------------- manifest
@dataclass
class ModelRef:
    name: str | None = None
    path: str | None = None
    fingerprint: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "fingerprint": self.fingerprint}


_CORE = (
    "schema_version",
    "run_id",
    "source",
    "status",
    "created_at",
    "finished_at",
    "model",
    "adapter",
    "dataset_sha256",
    "dataset",
    "seeds",
    "config",
    "chat_template_sha256",
    "backend",
    "warnings",
    "summary",
    "outputs",
)
# the core keys' docs (docs/run-directory.md); the writer's own keys (Manifest.details) follow them in the file
MANIFEST_DOCS = {
    "schema_version": "layout version of the run directory (RUN_SCHEMA_VERSION)",
    "run_id": "the directory's name: a hash of the resolved config unless --run-id named it",
    "source": "who wrote it: " + " | ".join(SOURCES),
    "status": "running | complete | incomplete (some cases failed: the next run retries them)",
    "created_at": "UTC time the run started (ISO 8601)",
    "finished_at": "UTC time it finished, null while running",
    "model": "{name, path, fingerprint}: the alias or path asked for, the resolved folder and the fingerprint of "
    "weights, config, tokenizer and chat template (adapter included)",
    "adapter": "{path} of the LoRA adapter, null for the base model",
    "dataset_sha256": "sha256 of the cases run (the built or bundled dataset after --suites and --limit)",
    "dataset": "{source, sha256, ...}: where the cases came from (bundled banks and seed, or --data)",
    "seeds": "{sampling, dataset}: the sampling seed (--seed) and the dataset's seed",
    "config": "the resolved config the run id hashes (the output-changing --model-args included); "
    "config.params[suite].max_new_tokens is the run's budget",
    "chat_template_sha256": "sha256 of the chat template the prompts were rendered with",
    "backend": "the backend and its resolved settings (vllm / hf / openai / lm-eval, dtype, batch size, every "
    "--model-args engine argument)",
    "warnings": "list of warnings raised while running (also printed)",
    "summary": "what the run did: cases, rows, generated, cached, errors, unresolved, seconds, and per suite "
    "the truncation rate, max_new_tokens and how many control generations were shared",
    "outputs": "{file: sha256} of the files written",
}
# the writers' own top-level keys (Manifest.details), after the core ones
MANIFEST_DETAILS_DOCS = {
    "cli_args": "`ecliptica run`: the command line's arguments",
    "options": "`ecliptica run`: every option's value, defaults included",
    "config_sha256": "`ecliptica run`: sha256 of `config`",
    "versions": "`ecliptica run`: versions of Python, ecliptica_bench and the installed torch, transformers, vllm, openai, peft",
    "device": "`ecliptica run`: platform, machine, CPU count and, when torch ran, CUDA and the GPU names",
    "store": "`ecliptica run`: the store's file name",
    "model_fingerprint_of": "`ecliptica import-lm-eval`: what the fingerprint was computed from",
    "finish_reason": "`ecliptica import-lm-eval`: why finish_reason is null (lm-eval does not log it)",
    "lm_eval": "`ecliptica import-lm-eval`: lm-eval's version, results and sample files (with sha256), chat "
    "template, system instruction, config and skipped samples",
    "prompt_check": "`ecliptica import-lm-eval`: how many of lm-eval's rendered prompts match ours",
    "package_version": "`ecliptica import-lm-eval`: the ecliptica_bench version that imported it",
}
# version-0 spellings folded into the typed fields on upgrade (then dropped)
_V0_ALIASES = ("model_fingerprint", "dataset_sha", "kind")
REQUIRED_MANIFEST = {0: ("run_id", "model"), 1: ("schema_version", "run_id", "source", "status", "model")}


@dataclass
class Manifest:
    """manifest.json: the same typed core whoever wrote the directory, plus the writer's own `details`."""

    run_id: str
    source: str  # one of SOURCES
    model: ModelRef
    status: str | None = None  # running | complete | incomplete
    created_at: str | None = None
    finished_at: str | None = None
    adapter: str | None = None  # the adapter's path
    dataset_sha256: str | None = None
    dataset: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=lambda: {"sampling": None, "dataset": None})
    config: dict = field(default_factory=dict)
    chat_template_sha256: str | None = None
    backend: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    summary: dict | None = None
    outputs: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # writer-specific top-level keys, written as they are
    schema_version: int = RUN_SCHEMA_VERSION  # as read: 0 for a directory upgraded in memory

    @property
    def sampling_seed(self):
        return self.seeds.get("sampling")

    def to_json(self) -> dict:
        """The file's content, always in the current schema."""
        clash = sorted(set(self.details) & set(_CORE))
        if clash:
            raise ValueError(f"Manifest.details may not hold core keys: {clash}")
        return {
            **self.details,
            "schema_version": RUN_SCHEMA_VERSION,
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "model": self.model.to_json(),
            "adapter": {"path": self.adapter} if self.adapter else None,
            "dataset_sha256": self.dataset_sha256,
            "dataset": self.dataset,
            "seeds": self.seeds,
            "config": self.config,
            "chat_template_sha256": self.chat_template_sha256,
            "backend": self.backend,
            "warnings": list(self.warnings),
            "summary": self.summary,
            "outputs": self.outputs,
        }

    @classmethod
    def from_json(cls, data, path: Path) -> Manifest:
        """Check and type a manifest.json's content (upgrading version 0 in memory); errors name path and key."""
        path = Path(path)
        if not isinstance(data, dict):
            raise _error(path, None, f"not a JSON object; {RERUN}")
        version = _version(path, data, RERUN)
        for key in REQUIRED_MANIFEST[version]:
            if key not in data:
                raise _error(path, key, f"missing (schema version {version}); {RERUN}")

        def typed(key: str, types, default=None, value=None):
            v = data.get(key) if value is None else value
            if v is None:
                return default
            if not isinstance(v, types):
                names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
                raise _error(path, key, f"must be {names} or null, got {type(v).__name__}; {RERUN}")
            return v

        run_id = data["run_id"]
        if not isinstance(run_id, str) or not run_id:
            raise _error(path, "run_id", f"must be a non-empty string, got {run_id!r}; {RERUN}")
        config = typed("config", dict, {})
        model = data["model"]
        if version >= 1 and not isinstance(model, dict):
            raise _error(path, "model", f"must be an object {{name, path, fingerprint}}; {RERUN}")
        if isinstance(model, dict):
            for k in ("name", "path", "fingerprint"):
                if model.get(k) is not None and not isinstance(model[k], str):
                    raise _error(path, f"model.{k}", f"must be a string or null, got {type(model[k]).__name__}; {RERUN}")
            ref = ModelRef(model.get("name"), model.get("path"), model.get("fingerprint"))
        elif isinstance(model, str) or model is None:
            ref = ModelRef(name=model)
        else:
            raise _error(path, "model", f"must be an object {{name, path, fingerprint}} or a name, got {model!r}; {RERUN}")
        adapter = data.get("adapter")
        if isinstance(adapter, dict):
            adapter = adapter.get("path")
        if adapter is not None and not isinstance(adapter, str):
            raise _error(path, "adapter", f"must be {{path}}, a path or null, got {adapter!r}; {RERUN}")
        dataset = typed("dataset", dict, {})
        seeds = dict(typed("seeds", dict, {}))
        if version == 0:  # the fallback chains of the readers before this module, once, here
            fp = typed("model_fingerprint", str) or typed("model_fingerprint", str, value=config.get("model_fingerprint"))
            ref.fingerprint = ref.fingerprint or fp
            sha = data.get("dataset_sha256") or data.get("dataset_sha") or dataset.get("sha256")
            data = {**data, "dataset_sha256": sha}
            if seeds.get("sampling") is None and config.get("seed") is not None:
                seeds["sampling"] = config["seed"]
            backend = data.get("backend")
            if data.get("source") == "lm-eval" or (isinstance(backend, dict) and backend.get("backend") == "lm-eval"):
                source = "lm-eval"
            elif data.get("kind") == "likelihood-only":
                source = "likelihood"
            else:
                source = "ecliptica run"
        else:
            source = data["source"]
            if source not in SOURCES:
                raise _error(path, "source", f"{source!r} is not one of {', '.join(SOURCES)}; {RERUN}")
        seeds.setdefault("sampling", None)
        seeds.setdefault("dataset", None)
        status = typed("status", str)
        warnings = typed("warnings", list, [])
        details = {k: v for k, v in data.items() if k not in _CORE and not (version == 0 and k in _V0_ALIASES)}
        return cls(
            run_id=run_id,
            source=source,
            model=ref,
            status=status,
            created_at=typed("created_at", str),
            finished_at=typed("finished_at", str),
            adapter=adapter,
            dataset_sha256=typed("dataset_sha256", str, value=data.get("dataset_sha256")),
            dataset=dataset,
            seeds=seeds,
            config=config,
            chat_template_sha256=typed("chat_template_sha256", str),
            backend=typed("backend", dict, {}),
            warnings=[str(w) for w in warnings],
            summary=typed("summary", dict),
            outputs=typed("outputs", dict, {}),
            details=details,
            schema_version=version,
        )


def write_manifest(run_dir: Path, manifest: Manifest) -> Path:
    """RUN_DIR/manifest.json in the current schema, atomically."""
    path = Path(run_dir) / MANIFEST
    write_json(path, manifest.to_json())
    return path


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise _error(path, None, f"not found (is {Path(run_dir)} a run directory?); {RERUN}")
    return Manifest.from_json(read_json(path), path)


# --------------------------------------------------------------------------------------- generations
def write_generations(run_dir: Path, rows: list[GenerationRow]) -> str:
    """RUN_DIR/generations.parquet (parquet_columns(), in order), atomically; returns its sha256."""
    for i, r in enumerate(rows):
        missing = [c for c in GENERATION_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"generation row {i} lacks {missing}")
    path = Path(run_dir) / GENERATIONS
    write_parquet(path, list(rows), parquet_columns())
    return sha256_file(path)


def _read_parquet(path: Path, missing: str, fix: str):
    """A run directory's parquet file as a DataFrame, or the module's one error (missing / unreadable + what to do)."""
    import pandas as pd

    if not path.exists():
        raise _error(path, None, missing)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise _error(path, None, f"unreadable parquet ({exc}); {fix}") from exc


def read_generations(run_dir: Path):
    """generations.parquet as a DataFrame, checked (columns, conditions, suites, one row per case and condition)."""

    run_dir = Path(run_dir)
    path = run_dir / GENERATIONS
    df = _read_parquet(path, f"not found (is {run_dir} a run directory from `ecliptica run`?)", RERUN)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise _error(path, None, f"missing column(s) {', '.join(missing)}; {RERUN}")
    bad = sorted(set(df["condition"]) - set(CONDITIONS))
    if bad:
        raise _error(path, "condition", f"unknown condition(s) {', '.join(map(str, bad))} (expected instructed/uninstructed)")
    unknown = sorted(set(map(str, df["suite"].unique())) - set(SUITES))
    if unknown:
        raise _error(path, "suite", f"unknown suite(s) {', '.join(unknown)} (known: {', '.join(SUITES)})")
    dup = df.duplicated(["case_id", "condition"])
    if dup.any():
        row = df[dup].iloc[0]
        raise _error(path, f"case {row['case_id']!r} ({row['condition']})", "appears more than once")
    df = df.reset_index(drop=True)
    df["response"] = df["response"].fillna("").astype(str)
    return df


def read_scores(run_dir: Path):
    """scores.parquet (generations + score columns) as a DataFrame."""

    run_dir = Path(run_dir)
    path = run_dir / SCORES
    df = _read_parquet(path, f"not found (run `ecliptica score {run_dir}` first)", RESCORE.format(run_dir=run_dir))
    if "response" in df.columns:
        df["response"] = df["response"].fillna("").astype(str)
    return df


# ------------------------------------------------------------------------------------------- metrics
def write_metrics(run_dir: Path, metrics: Metrics) -> Metrics:
    """RUN_DIR/metrics.json with the schema version, atomically; returns what was written."""
    out: Metrics = {"schema_version": RUN_SCHEMA_VERSION, **{k: v for k, v in metrics.items() if k != "schema_version"}}
    write_json(Path(run_dir) / METRICS, out)
    return out


def read_metrics(run_dir: Path) -> Metrics:
    """metrics.json, checked at the top level (an object with `suites`; version 0 = before schema_version)."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    if not path.is_file():
        raise _error(path.parent, None, f"no {METRICS} (run `ecliptica score {run_dir}` first)")
    data = read_json(path)
    what = RESCORE.format(run_dir=run_dir)
    if not isinstance(data, dict):
        raise _error(path, None, f"must be a JSON object; {what}")
    _version(path, data, what)
    if not isinstance(data.get("suites"), dict):
        raise _error(path, "suites", f"missing or not an object; {what}")
    return data


def read_likelihood(run_dir: Path) -> dict | None:
    """likelihood.json (`ecliptica likelihood`), or None when the directory has none."""
    path = Path(run_dir) / LIKELIHOOD
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise _error(path, None, "must be a JSON object; re-run `ecliptica likelihood`")
    return data


# ----------------------------------------------------------------------------------------------- run
@dataclass
class Run:
    """A run directory as read: its manifest, and (when asked for) generations and metrics."""

    path: Path
    manifest: Manifest
    generations: object | None = None  # pandas DataFrame
    metrics: Metrics | None = None


def read_run(run_dir: Path, *, generations: bool = True, metrics: bool | None = None) -> Run:
    """Read a run directory. generations: read and check generations.parquet. metrics: True = metrics.json is
    required, None = read when present, False = not read. Checked in that order, then the manifest."""
    run_dir = Path(run_dir)
    df = read_generations(run_dir) if generations else None
    m = None
    if metrics or (metrics is None and (run_dir / METRICS).is_file()):
        m = read_metrics(run_dir)
    return Run(run_dir, read_manifest(run_dir), df, m)


def is_run_dir(path: Path) -> bool:
    """A directory `ecliptica run` / `import-lm-eval` wrote (its store or generations; a built dataset also has
    a manifest.json)."""
    return (Path(path) / STORE).exists() or (Path(path) / GENERATIONS).exists()
