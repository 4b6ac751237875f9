"""Hub sources: reading the paper's source datasets (build-dataset --source hub) from the hub or local copies.

Generic only: each suite converts its source's rows into items itself (suites/<name>.py, wired through
Suite.hub_loader); building from a published set (--from-hub) and publishing (push) live in hub_publish.py.

Hub calls go through huggingface_hub (HfApi) inside hub_call: HF_HUB_OFFLINE is checked first and a connection
error becomes one clear EclipticaError at once, so an offline machine does not wait through minutes of retries.
The token (HF_TOKEN or the hub login) is handed to huggingface_hub only; it is never printed, logged or written.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import yaml

from .. import paths
from ..errors import EclipticaError

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCES_FILE = "hub_sources.yaml"
DATA_EXTENSIONS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
REACH_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------------------------------- sources


def load_sources(path: Path | None = None) -> dict[str, dict]:
    """prompts/hub_sources.yaml as {suite: spec}, checked enough to fail with a clear message."""
    path = Path(path) if path else paths.prompts_dir() / SOURCES_FILE
    if not path.exists():
        raise EclipticaError(f"{path}: hub source list not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        sources = doc["sources"]
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise EclipticaError(f"{path}: unreadable hub source list ({' '.join(str(exc).split())})") from None
    for suite, spec in sources.items():
        for key in ("repo", "revision", "split"):
            if not isinstance(spec, dict) or not spec.get(key):
                raise EclipticaError(f"{path}: source {suite!r}: missing {key!r}")
        if spec.get("files") and spec.get("format") not in ("parquet", "json", "csv"):
            raise EclipticaError(f"{path}: source {suite!r}: 'files' needs a format (parquet, json or csv)")
    return sources


def source_spec(suite: str) -> dict:
    sources = load_sources()
    if suite not in sources:
        raise EclipticaError(f"{paths.prompts_dir() / SOURCES_FILE}: no hub source for suite {suite!r}")
    return sources[suite]


def describe_inputs(suites: list[str], data_dir: Path | None) -> dict[str, str]:
    """Manifest `inputs` of a hub build: repo@revision per suite, plus sha256 of every local copy read."""
    from .io import sha256_file

    sources = load_sources()
    path = paths.prompts_dir() / SOURCES_FILE
    out = {str(path.relative_to(paths.data_root())): sha256_file(path)}
    for s in suites:
        spec = sources.get(s)
        if spec is None:
            continue
        out[f"hub:{s}"] = f"{spec['repo']}@{spec['revision']}"
        if data_dir is not None:
            for f in _local_files(Path(data_dir), s, spec):
                out[str(f.relative_to(data_dir))] = sha256_file(f)
    return out


# ---------------------------------------------------------------------------------------------- reachability


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


LOCAL_HINT = "or use local copies (build-dataset --data-dir)"


def ensure_online(what: str, hint: str = LOCAL_HINT) -> None:
    """Fail at once, in one line, when the hub is switched off: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are checked
    before any network use (a load attempt would otherwise retry for ~23 s)."""
    from huggingface_hub import constants

    if _env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE") or constants.HF_HUB_OFFLINE:
        raise EclipticaError(
            f"{what}: the Hugging Face Hub is switched off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set); unset it, {hint}"
        )


def _network_error(exc: Exception) -> bool:
    """A connection, timeout or transport error (httpx's, under huggingface_hub), not an HTTP answer."""
    module = type(exc).__module__ or ""
    return isinstance(exc, (OSError, TimeoutError)) or module.split(".")[0] in ("httpx", "httpx2", "httpcore")


def hub_call(what: str, call: Callable[[], T], hint: str = LOCAL_HINT) -> T:
    """One huggingface_hub call (HfApi ...), failing fast in one line when the hub is switched off or cannot be
    reached; HTTP answers (huggingface_hub's HfHubHTTPError: 401, 404, ...) are left to the caller."""
    ensure_online(what, hint)
    if logging.getLogger().level > logging.DEBUG:  # one INFO line per HTTP request is noise unless -v
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return call()
    except Exception as exc:
        if not _network_error(exc):
            raise
        raise EclipticaError(
            f"{what}: cannot reach the Hugging Face Hub at {hub_endpoint()} ({type(exc).__name__}); "
            f"check the network or HF_ENDPOINT, {hint}"
        ) from exc


def resolve_revision(repo: str, revision: str) -> str:
    """The commit sha a dataset repo revision points at (HfApi.dataset_info; fails fast offline, clearly when missing)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    what = f"{repo}@{revision}"
    api = HfApi(endpoint=hub_endpoint())  # token: the saved login, if any (gated/private repos)
    try:
        info = hub_call(what, lambda: api.dataset_info(repo, revision=revision, timeout=REACH_TIMEOUT_S))
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403, 404):
            raise EclipticaError(f"{what}: not found on the hub or not accessible (HTTP {status})") from exc
        raise EclipticaError(f"{what}: the hub answered HTTP {status}") from exc
    return info.sha or revision


# ---------------------------------------------------------------------------------------------- reading rows


def _local_files(data_dir: Path, suite: str, spec: dict) -> list[Path]:
    folder = data_dir / suite
    if spec.get("files"):
        files = [folder / f for f in spec["files"]]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise EclipticaError(
                f"{missing[0]}: missing local copy of {spec['repo']}:{Path(missing[0]).relative_to(folder)} "
                f"(--data-dir expects DIR/{suite}/<path in the hub repo>)"
            )
        return files
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in DATA_EXTENSIONS)
    if not files:
        raise EclipticaError(f"{folder}: no data files (*.parquet, *.jsonl, *.json, *.csv) for {spec['repo']}")
    kinds = {DATA_EXTENSIONS[p.suffix] for p in files}
    if len(kinds) > 1:
        raise EclipticaError(f"{folder}: mixed data file formats {sorted(kinds)}; keep one format")
    return files


def read_source(suite: str, data_dir: Path | None = None, spec: dict | None = None) -> list[dict]:
    """The raw rows of a suite's hub source, from local copies (data_dir) or from the hub."""
    spec = spec or source_spec(suite)
    if data_dir is not None:
        import datasets

        files = _local_files(Path(data_dir), suite, spec)
        builder = spec.get("format") or DATA_EXTENSIONS[files[0].suffix]
        with tempfile.TemporaryDirectory(prefix="ecliptica-hf-cache-") as cache:
            try:
                ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train", cache_dir=cache)
            except Exception as exc:
                raise EclipticaError(
                    f"{files[0].parent}: cannot read {builder} files for {suite} "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                ) from exc
            return ds.to_list()
    sha = resolve_revision(spec["repo"], spec["revision"])
    import datasets

    try:
        if spec.get("files"):
            urls = [f"hf://datasets/{spec['repo']}@{sha}/{f}" for f in spec["files"]]
            ds = datasets.load_dataset(spec["format"], data_files=urls, split="train")
        else:
            ds = datasets.load_dataset(spec["repo"], name=spec.get("config"), revision=sha, split=spec["split"])
    except Exception as exc:
        raise EclipticaError(
            f"{spec['repo']}@{spec['revision']}: loading failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from exc
    return ds.to_list()


def need_columns(rows: list[dict], columns: list[str], where: str) -> None:
    """Rows there and the columns a conversion reads present, or one clear error naming `where`."""
    if not rows:
        raise EclipticaError(f"{where}: no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise EclipticaError(f"{where}: missing column(s) {missing} (has {sorted(rows[0])})")


# ---------------------------------------------------------------------------------------------- items


# A suite's conversion of its source's raw rows into items: (rows, where, spec) -> [{id, text, source, **extras}];
# `where` names the source in error messages, `spec` is its hub_sources.yaml entry (for suite-specific keys).
ItemMaker = Callable[[list[dict], str, dict], list[dict]]


def load_hub_items(suite: str, make_items: ItemMaker, data_dir: Path | None = None) -> list[dict]:
    """Normalised items {id, text, source, **extras} of a suite's hub source (Suite.hub_loader)."""
    spec = source_spec(suite)
    rows = read_source(suite, data_dir, spec)
    where = str(Path(data_dir) / suite) if data_dir is not None else f"{spec['repo']}@{spec['revision']}"
    items = make_items(rows, where, spec)
    if not items:
        raise EclipticaError(f"{where}: no usable items for suite {suite!r}")
    ids = collections.Counter(it["id"] for it in items)
    if len(ids) != len(items):
        raise EclipticaError(f"{where}: duplicate item ids {[k for k, n in ids.items() if n > 1][:3]}")
    if data_dir is None and spec.get("expected_items") and len(items) != spec["expected_items"]:
        log.warning("%s: %d items, the paper used %d", where, len(items), spec["expected_items"])
    log.info("%s: %d items from %s", suite, len(items), where)
    return items


def hub_loader(suite: str, make_items: ItemMaker) -> Callable[[Path | None], list[dict]]:
    """The Suite.hub_loader of `suite`, converting rows with the suite's own `make_items` (the sources file is
    read when called, not at import)."""
    return functools.partial(load_hub_items, suite, make_items)
