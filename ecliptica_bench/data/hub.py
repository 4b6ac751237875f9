"""Hub I/O: the paper's source datasets (build-dataset --source hub), published ECLIPTICA sets
(build-dataset --from-hub) and publishing a built dataset (push).

Every hub call is preceded by a fast reachability check, so an offline machine gets one clear
EclipticaError at once instead of minutes of retries. The token is taken from HF_TOKEN or the hub
login and handed to huggingface_hub only; it is never printed, logged or written.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from .. import DATASET_VERSION, paths
from ..errors import EclipticaError

log = logging.getLogger(__name__)

SOURCES_FILE = "hub_sources.yaml"
DATA_EXTENSIONS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
PUBLISHED_COLUMNS = ["prompt_id", "prompt", "instruction_type", "instruction", "expected_characteristics", "source"]
SPLIT = "train"
REACH_TIMEOUT_S = 5.0
# Files a repo we push to may already hold besides <suite>/... data: anything else means it is not ours.
OWN_ROOT_FILES = {"README.md", ".gitattributes", "manifest.json"}


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


def ensure_online(what: str, check_path: str = "/api/whoami-v2", token: str | None = None, hint: str = LOCAL_HINT):
    """Fail fast, in one line, when the hub cannot be used; returns the probe's HTTP response.

    HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are checked before any network use (a load attempt would
    otherwise retry for ~23 s); then one request with a short timeout proves the endpoint answers.
    """
    from huggingface_hub import constants

    if _env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE") or constants.HF_HUB_OFFLINE:
        raise EclipticaError(
            f"{what}: the Hugging Face Hub is switched off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set); unset it, {hint}"
        )
    from huggingface_hub.utils import build_hf_headers, get_session

    if logging.getLogger().level > logging.DEBUG:  # one INFO line per HTTP request is noise unless -v
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    endpoint = constants.ENDPOINT
    try:
        headers = build_hf_headers(token=token)  # token None: the saved login, if any (gated/private repos)
        return get_session().get(endpoint + check_path, headers=headers, timeout=REACH_TIMEOUT_S)
    except Exception as exc:  # httpx connect/timeout errors; the class name is enough to say why
        raise EclipticaError(
            f"{what}: cannot reach the Hugging Face Hub at {endpoint} ({type(exc).__name__}); "
            f"check the network or HF_ENDPOINT, {hint}"
        ) from exc


def resolve_revision(repo: str, revision: str) -> str:
    """The commit sha a repo revision points at (fails fast offline, clearly when missing)."""
    resp = ensure_online(f"{repo}@{revision}", f"/api/datasets/{repo}/revision/{revision}")
    if resp.status_code in (401, 403, 404):
        raise EclipticaError(f"{repo}@{revision}: not found on the hub or not accessible (HTTP {resp.status_code})")
    if resp.status_code >= 400:
        raise EclipticaError(f"{repo}@{revision}: the hub answered HTTP {resp.status_code}")
    return resp.json().get("sha") or revision


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


def _need(rows: list[dict], columns: list[str], where: str) -> None:
    if not rows:
        raise EclipticaError(f"{where}: no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise EclipticaError(f"{where}: missing column(s) {missing} (has {sorted(rows[0])})")


# ---------------------------------------------------------------------------------------------- per-suite items


def ecliptica_items(rows: list[dict], where: str) -> list[dict]:
    """ECLIPTICA-3k rows -> its distinct prompts (id from prompt_id, category as source)."""
    _need(rows, ["prompt_id", "prompt", "source"], where)
    prompts: dict[int, dict] = {}
    for r in rows:
        pid = int(r["prompt_id"])
        item = {"id": f"hub-{pid:04d}", "text": str(r["prompt"]).strip(), "source": str(r["source"])}
        if prompts.setdefault(pid, item)["text"] != item["text"]:
            raise EclipticaError(f"{where}: prompt_id {pid} has two different prompts")
    return [prompts[k] for k in sorted(prompts)]


def truthfulqa_items(rows: list[dict], where: str) -> list[dict]:
    _need(rows, ["question", "best_answer", "correct_answers", "incorrect_answers", "category"], where)
    return [
        {
            "id": f"hub-tqa-{i:04d}",
            "text": r["question"].strip(),
            "source": r["category"],
            "best_answer": r["best_answer"],
            "correct_answers": list(r["correct_answers"]),
            "incorrect_answers": list(r["incorrect_answers"]),
        }
        for i, r in enumerate(rows)
    ]


def _harm_category(row: dict, response: int) -> str:
    cats = row.get(f"response_{response}_harm_category")
    if isinstance(cats, dict):
        hits = sorted(k for k, v in cats.items() if v)
        if hits:
            return hits[0]
    return "unspecified"


def conditional_safety_items(rows: list[dict], where: str) -> list[dict]:
    """PKU-SafeRLHF rows where exactly one response is safe; category = the unsafe response's harm category."""
    _need(rows, ["prompt", "is_response_0_safe", "is_response_1_safe"], where)
    items = []
    for i, r in enumerate(rows):
        safe0, safe1 = bool(r["is_response_0_safe"]), bool(r["is_response_1_safe"])
        if safe0 == safe1:
            continue
        items.append({"id": f"hub-pku-{i:05d}", "text": r["prompt"].strip(), "source": _harm_category(r, 1 if safe0 else 0)})
    return items


def length_control_items(rows: list[dict], where: str) -> list[dict]:
    _need(rows, ["instruction"], where)
    return [
        {"id": f"hub-alpaca-{i:03d}", "text": r["instruction"].strip(), "source": r.get("dataset") or "alpaca_eval"}
        for i, r in enumerate(rows)
    ]


def _axiom_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", str(name).lower().replace("&", "and"))


def litmus_items(rows: list[dict], where: str, per_cell: int = 200, seed: int = 42) -> list[dict]:
    """A seeded draw of `per_cell` prompts per (axiom x label); axiom names mapped onto ours."""
    from ..suites.litmus import AXIOMS

    first = rows[0] if rows else {}
    text_col = next((c for c in ("input", "prompt", "text") if c in first), "input")
    label_col = next((c for c in ("safety_label", "label") if c in first), "safety_label")
    _need(rows, [text_col, "axiom", label_col], where)
    known = {_axiom_key(a): a for a in AXIOMS}
    cells: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for i, r in enumerate(rows):
        label = str(r[label_col]).strip().lower()
        if label not in ("safe", "unsafe"):
            raise EclipticaError(f"{where}: row {i}: {label_col} {r[label_col]!r} is not 'safe' or 'unsafe'")
        axiom = known.get(_axiom_key(r["axiom"]), str(r["axiom"]))
        text = str(r[text_col] or "").strip()
        if text:
            cells[(axiom, label)].append(
                {"id": f"hub-litmus-{i:05d}", "text": text, "source": axiom, "axiom": axiom, "label": label}
            )
    rng = random.Random(seed)
    items, short = [], []
    for key in sorted(cells):
        pool = cells[key]
        if len(pool) < per_cell:
            short.append(f"{key[0]}/{key[1]}: {len(pool)}")
        items += rng.sample(pool, min(per_cell, len(pool)))
    if short:
        log.warning(
            "%s: fewer than %d prompts in %d of %d (axiom x label) cells (%s)",
            where,
            per_cell,
            len(short),
            len(cells),
            "; ".join(short[:4]) + ("; ..." if len(short) > 4 else ""),
        )
    unknown = sorted({a for a, _ in cells} - set(AXIOMS))
    if unknown:
        log.warning("%s: axioms not among the 7 known ones kept as they are: %s", where, unknown)
    return items


def load_hub_items(suite: str, data_dir: Path | None = None) -> list[dict]:
    """Normalised items {id, text, source, **extras} of a suite's hub source (Suite.hub_loader)."""
    spec = source_spec(suite)
    rows = read_source(suite, data_dir, spec)
    where = str(Path(data_dir) / suite) if data_dir is not None else f"{spec['repo']}@{spec['revision']}"
    if suite == "litmus":
        items = litmus_items(rows, where, int(spec.get("per_cell", 200)), int(spec.get("seed", 42)))
    else:
        items = ITEM_MAKERS[suite](rows, where)
    if not items:
        raise EclipticaError(f"{where}: no usable items for suite {suite!r}")
    ids = collections.Counter(it["id"] for it in items)
    if len(ids) != len(items):
        raise EclipticaError(f"{where}: duplicate item ids {[k for k, n in ids.items() if n > 1][:3]}")
    if data_dir is None and spec.get("expected_items") and len(items) != spec["expected_items"]:
        log.warning("%s: %d items, the paper used %d", where, len(items), spec["expected_items"])
    log.info("%s: %d items from %s", suite, len(items), where)
    return items


ITEM_MAKERS: dict[str, Callable[[list[dict], str], list[dict]]] = {
    "ecliptica": ecliptica_items,
    "truthfulqa": truthfulqa_items,
    "conditional_safety": conditional_safety_items,
    "length_control": length_control_items,
}


def hub_loader(suite: str) -> Callable[[Path | None], list[dict]]:
    """The Suite.hub_loader for `suite` (the sources file is read when called, not at import)."""
    return functools.partial(load_hub_items, suite)


# ---------------------------------------------------------------------------------------------- --from-hub


def rows_from_published(records: list[dict], where: str) -> list[dict]:
    """Published ECLIPTICA rows (prompt_id, prompt, instruction_type, instruction, expected_characteristics,
    source [, axis]) -> our row schema, keeping the published values verbatim.

    variant_index: the index among our variants when the text is one of ours, else the phrasing's rank
    among that type's distinct published texts in prompt_id order (so 0..2 for a 3-variant type).
    """
    from ..suites import SUITES

    _need(records, PUBLISHED_COLUMNS, where)
    try:
        ours = {t.name: t for t in SUITES["ecliptica"].instructions().types}
    except EclipticaError:
        ours = {}
    records = sorted(records, key=lambda r: int(r["prompt_id"]))  # stable: keeps the published type order
    seen_texts: dict[str, list[str]] = collections.defaultdict(list)
    seen_cases: set[tuple[int, str]] = set()
    rows = []
    for r in records:
        pid, itype, text = int(r["prompt_id"]), str(r["instruction_type"]), str(r["instruction"])
        if (pid, itype) in seen_cases:
            raise EclipticaError(f"{where}: prompt_id {pid} has instruction_type {itype!r} twice")
        seen_cases.add((pid, itype))
        t = ours.get(itype)
        if t is not None and text in t.variants:
            variant = t.variants.index(text)
        else:
            if text not in seen_texts[itype]:
                seen_texts[itype].append(text)
            variant = seen_texts[itype].index(text)
        item_id = f"hub-{pid:04d}"
        rows.append(
            {
                "prompt_id": pid,
                "prompt": r["prompt"],
                "instruction_type": itype,
                "instruction": text,
                "expected_characteristics": list(r["expected_characteristics"]),
                "source": r["source"],
                "case_id": f"ecliptica/{item_id}/{itype}",
                "variant_index": variant,
                "axis": r.get("axis") or (t.axis if t is not None else "unknown"),
                "dataset_version": DATASET_VERSION,
                "suite": "ecliptica",
                "item_id": item_id,
            }
        )
    return rows


def build_from_hub(repo_id: str, out: Path, formats: str = "parquet,jsonl") -> dict:
    """Write a published ECLIPTICA set (hub repo id, or a local copy of its repo folder) through our builder."""
    from .build import build_dataset

    local = Path(repo_id)
    if local.is_dir():
        where, source = str(local), f"local:{local.resolve()}"
        import datasets

        with tempfile.TemporaryDirectory(prefix="ecliptica-hf-cache-") as cache:
            try:
                records = datasets.load_dataset(str(local), split=SPLIT, cache_dir=cache).to_list()
            except Exception as exc:
                raise EclipticaError(
                    f"{local}: cannot load as a dataset folder ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                ) from exc
    else:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise EclipticaError(f"--from-hub {repo_id!r}: expected a hub repo id 'owner/name' or a local folder")
        sha = resolve_revision(repo_id, "main")
        where, source = f"{repo_id}@{sha[:12]}", f"hub:{repo_id}@{sha}"
        import datasets

        try:
            records = datasets.load_dataset(repo_id, revision=sha, split=SPLIT).to_list()
        except Exception as exc:
            raise EclipticaError(f"{repo_id}: loading failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    rows = rows_from_published(records, where)
    return build_dataset(Path(out), formats=formats, source=source, rows_by_suite={"ecliptica": rows})


# ---------------------------------------------------------------------------------------------- card merging

_FRONT = re.compile(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", re.S)


def split_card(text: str) -> tuple[dict, str]:
    """README text -> (YAML header as a dict, body)."""
    m = _FRONT.match(text)
    if not m:
        return {}, text
    meta = yaml.safe_load(m.group(1)) or {}
    if not isinstance(meta, dict):
        raise EclipticaError("README.md: YAML header is not a mapping")
    return meta, text[m.end() :]


def merge_card(hub_readme: str, ours: str, default_config: str = "ecliptica") -> str:
    """Our card body and header keys on top of the hub's README, keeping the hub's `configs` and
    `dataset_info` (written by push_to_hub; replacing them would stop the dataset from loading)."""
    hub_meta, _ = split_card(hub_readme)
    our_meta, body = split_card(ours)
    meta = {k: v for k, v in our_meta.items() if k not in ("configs", "dataset_info")}
    for k, v in hub_meta.items():
        if k not in meta:
            meta[k] = v
    configs = meta.get("configs") or []
    if any(c.get("config_name") == default_config for c in configs):
        for c in configs:
            c.pop("default", None)
            if c.get("config_name") == default_config:
                c["default"] = True
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=120) + "---\n" + body


# ---------------------------------------------------------------------------------------------- push


def _suite_dataset(directory: Path, suite: str):
    """One suite of a built dataset as an in-memory datasets.Dataset (no cache files)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    from .build import PARQUET_NAME, read_cases

    f = directory / suite / PARQUET_NAME
    table = pq.read_table(f) if f.exists() else pa.Table.from_pylist(read_cases(directory, suite))
    return datasets.Dataset(InMemoryTable(table), split=datasets.Split.TRAIN)


def _shards(ds) -> tuple[list, int]:
    """The shards push_to_hub would write (same size rule and writer batch size)."""
    from datasets import config
    from datasets.arrow_writer import get_writer_batch_size_from_data_size, get_writer_batch_size_from_features
    from datasets.utils.py_utils import convert_file_size_to_int

    nbytes = ds._estimate_nbytes()
    batch = get_writer_batch_size_from_features(ds.features) or get_writer_batch_size_from_data_size(len(ds), nbytes)
    n = int(nbytes / convert_file_size_to_int(config.MAX_SHARD_SIZE)) + 1
    return [(i, n, ds.shard(num_shards=n, index=i, contiguous=True), batch) for i in range(n)], nbytes


def _dry_run(directory: Path, ours: str, datasets_by_suite: dict, out: Path, repo_id: str) -> str:
    """Write the repo exactly as push would leave it: <suite>/train-*.parquet, README.md, manifest.json."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    from .io import staged_dir

    card_data = DatasetCardData()
    infos, configs = {}, {}
    with staged_dir(Path(out), "manifest.json") as tmp:
        for suite, ds in datasets_by_suite.items():
            shards, nbytes = _shards(ds)
            size = 0
            for i, n, shard, batch in shards:
                path = tmp / suite / f"{SPLIT}-{i:05d}-of-{n:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                shard.to_parquet(str(path), batch_size=batch)
                size += path.stat().st_size
            info = DatasetInfo(
                config_name=suite, features=ds.features, splits=SplitDict(), download_size=size, dataset_size=nbytes
            )
            info.splits.add(SplitInfo(name=SPLIT, num_bytes=nbytes, num_examples=len(ds)))
            info.size_in_bytes = size + nbytes
            infos[suite] = info
            configs[suite] = {
                "data_files": [{"split": SPLIT, "path": f"{suite}/{SPLIT}-*"}],
                **({"default": True} if suite == "ecliptica" else {}),
            }
        DatasetInfosDict(infos).to_dataset_card_data(card_data)
        MetadataConfigs(configs).to_dataset_card_data(card_data)
        card = merge_card(f"---\n{card_data.to_yaml()}\n---\n", _with_repo_id(ours, repo_id))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / "manifest.json").write_bytes((directory / "manifest.json").read_bytes())
    rows = sum(len(d) for d in datasets_by_suite.values())
    return f"dry run: wrote the repo layout of {repo_id} to {out} ({len(datasets_by_suite)} configs, {rows} rows)"


def _with_repo_id(card: str, repo_id: str) -> str:
    return card.replace('load_dataset("DIR_OR_REPO"', f'load_dataset("{repo_id}"')


def _token() -> str:
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise EclipticaError("push: no Hugging Face token; set HF_TOKEN or log in with `hf auth login`")
    return token


def _hub_error(repo_id: str, exc: Exception) -> EclipticaError:
    """One line, never echoing request headers (the token lives there)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return EclipticaError(f"push {repo_id}: the hub rejected the token (HTTP 401)")
    if status == 403:
        return EclipticaError(f"push {repo_id}: the token may not write to this repo (HTTP 403)")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return EclipticaError(f"push {repo_id}: {type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {first}")


def _check_target(api, repo_id: str, revision: str | None, suites: list[str]) -> None:
    """Refuse a repo that holds anything other than ECLIPTICA suites."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    from ..suites import SUITES

    try:
        info = api.dataset_info(repo_id, revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return
    files = [s.rfilename for s in (info.siblings or [])]
    foreign = [f for f in files if f not in OWN_ROOT_FILES and f.split("/")[0] not in SUITES]
    if foreign:
        raise EclipticaError(
            f"push {repo_id}: the repo exists and holds files that are not ECLIPTICA suites "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); refusing to push"
        )
    if "README.md" in files:
        readme = _read_hub_readme(api, repo_id, revision)
        names = [c.get("config_name") for c in (split_card(readme)[0].get("configs") or []) if isinstance(c, dict)]
        others = [n for n in names if n not in SUITES]
        if others:
            raise EclipticaError(
                f"push {repo_id}: the repo exists with configs {others} that are not ECLIPTICA suites; refusing to push"
            )


def _read_hub_readme(api, repo_id: str, revision: str | None) -> str:
    with tempfile.TemporaryDirectory(prefix="ecliptica-card-") as tmp:
        path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision, local_dir=tmp)
        return Path(path).read_text(encoding="utf-8")


def push_dataset(
    directory: Path, repo_id: str, private: bool = False, revision: str | None = None, dry_run: Path | None = None
) -> str:
    """Publish a built dataset: one config per suite (split train), ecliptica the default config,
    then our card merged onto the README push_to_hub wrote. Returns a one-line summary."""
    from .build import validate_built

    directory = Path(directory)
    manifest = validate_built(directory)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise EclipticaError(f"--repo-id {repo_id!r}: expected 'owner/name'")
    suites = sorted(manifest["suites"], key=lambda s: s != "ecliptica")  # the default config first
    ours = (directory / "README.md").read_text(encoding="utf-8")
    if dry_run is not None:
        if Path(dry_run).resolve() == directory.resolve():
            raise EclipticaError(f"--dry-run {dry_run}: must differ from the dataset directory")
        by_suite = {s: _suite_dataset(directory, s) for s in suites}
        return _dry_run(directory, ours, by_suite, Path(dry_run), repo_id)

    token = _token()
    resp = ensure_online(f"push {repo_id}", token=token, hint="or write the layout locally with --dry-run PATH")
    if resp.status_code == 401:
        raise EclipticaError(f"push {repo_id}: the hub rejected the token (HTTP 401)")
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    by_suite = {s: _suite_dataset(directory, s) for s in suites}
    api = HfApi(endpoint=hub_endpoint(), token=token)
    try:
        _check_target(api, repo_id, revision, suites)
        for s in suites:
            by_suite[s].push_to_hub(
                repo_id,
                config_name=s,
                split=SPLIT,
                set_default=(s == "ecliptica") or None,
                private=private,
                token=token,
                revision=revision,
                commit_message=f"Upload {s} ({len(by_suite[s])} rows)",
            )
        card = merge_card(_read_hub_readme(api, repo_id, revision), _with_repo_id(ours, repo_id))
        api.create_commit(
            repo_id,
            repo_type="dataset",
            revision=revision,
            commit_message="Update dataset card",
            operations=[
                CommitOperationAdd("README.md", card.encode("utf-8")),
                CommitOperationAdd("manifest.json", (directory / "manifest.json").read_bytes()),
            ],
        )
    except EclipticaError:
        raise
    except HfHubHTTPError as exc:
        raise _hub_error(repo_id, exc) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise _hub_error(repo_id, exc) from None
    rows = sum(len(d) for d in by_suite.values())
    where = f"{hub_endpoint()}/datasets/{repo_id}" + (f" (revision {revision})" if revision else "")
    return f"pushed {len(suites)} configs ({rows} rows) to {where}"
