"""Building from and publishing to the hub: build-dataset --from-hub (a suite's published set through our
builder) and push (a built dataset as one config per suite, with our card merged onto the README push_to_hub
writes). On the side of the core layers, like lmeval: it uses data.build and the suites, nothing below imports it.

The card is read, merged and written with huggingface_hub's DatasetCard / DatasetCardData, the repo is read and
written with HfApi (dataset_info, hf_hub_download, create_commit) and datasets' push_to_hub. The token is taken
from HF_TOKEN or the hub login and handed to huggingface_hub only; it is never printed, logged or written.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .data.build import PARQUET_NAME, SPLIT, build_dataset, read_cases, validate_built
from .data.card import default_config
from .data.hub import hub_call, hub_endpoint, resolve_revision
from .data.io import staged_dir
from .errors import EclipticaError
from .suites import SUITES, Suite

# Files a repo we push to may already hold besides <suite>/... data: anything else means it is not ours.
OWN_ROOT_FILES = {"README.md", ".gitattributes", "manifest.json"}
# Header keys push_to_hub writes and the card update keeps (replacing them would stop the dataset from loading).
HUB_KEYS = ("configs", "dataset_info")
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


# ---------------------------------------------------------------------------------------------- --from-hub


def published_suite() -> Suite:
    """The suite whose published set --from-hub loads: the registry's first suite with Suite.published_rows."""
    for s in SUITES.values():
        if s.published_rows is not None:
            return s
    raise EclipticaError("--from-hub: no suite reads a published set (Suite.published_rows)")


def build_from_hub(repo_id: str, out: Path, formats: str = "parquet,jsonl") -> dict:
    """Write a published set (hub repo id, or a local copy of its repo folder) through our builder."""
    import datasets

    suite = published_suite()
    local = Path(repo_id)
    if local.is_dir():
        where, source = str(local), f"local:{local.resolve()}"
        with tempfile.TemporaryDirectory(prefix="ecliptica-hf-cache-") as cache:
            try:
                records = datasets.load_dataset(str(local), split=SPLIT, cache_dir=cache).to_list()
            except Exception as exc:
                raise EclipticaError(
                    f"{local}: cannot load as a dataset folder ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                ) from exc
    else:
        if not REPO_ID.fullmatch(repo_id):
            raise EclipticaError(f"--from-hub {repo_id!r}: expected a hub repo id 'owner/name' or a local folder")
        sha = resolve_revision(repo_id, "main")
        where, source = f"{repo_id}@{sha[:12]}", f"hub:{repo_id}@{sha}"
        try:
            records = datasets.load_dataset(repo_id, revision=sha, split=SPLIT).to_list()
        except Exception as exc:
            raise EclipticaError(f"{repo_id}: loading failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    rows = suite.published_rows(records, where)
    return build_dataset(Path(out), formats=formats, source=source, rows_by_suite={suite.name: rows})


# ---------------------------------------------------------------------------------------------- the card


def read_card(text: str, where: str):
    """README text -> huggingface_hub.DatasetCard (.data: the YAML header, .text: the body); one clear error
    when the header is not a YAML mapping."""
    import yaml
    from huggingface_hub import DatasetCard

    try:
        return DatasetCard(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise EclipticaError(f"{where}: README.md has an unreadable YAML header ({' '.join(str(exc).split())[:200]})") from exc


def merge_card(hub_card, ours, default: str | None):
    """Our card's body and header keys on top of the hub's card (DatasetCards), keeping the hub's `configs` and
    `dataset_info` (written by push_to_hub); `default` becomes the default config when the hub lists it."""
    from huggingface_hub import DatasetCard, DatasetCardData

    meta = {k: v for k, v in ours.data.to_dict().items() if k not in HUB_KEYS}
    for k, v in hub_card.data.to_dict().items():
        meta.setdefault(k, v)
    configs = meta.get("configs") or []
    if default is not None and any(c.get("config_name") == default for c in configs):
        for c in configs:
            c.pop("default", None)
            if c.get("config_name") == default:
                c["default"] = True
    card = DatasetCard(ours.content)
    card.data = DatasetCardData(**meta)
    return card


def _with_repo_id(card: str, repo_id: str) -> str:
    return card.replace('load_dataset("DIR_OR_REPO"', f'load_dataset("{repo_id}"')


# ---------------------------------------------------------------------------------------------- push


def _suite_dataset(directory: Path, suite: str):
    """One suite of a built dataset as an in-memory datasets.Dataset (no cache files)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

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


def _dry_run(directory: Path, ours, datasets_by_suite: dict, out: Path, repo_id: str, default: str | None) -> str:
    """Write the repo exactly as push would leave it: <suite>/train-*.parquet, README.md, manifest.json."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

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
                **({"default": True} if suite == default else {}),
            }
        DatasetInfosDict(infos).to_dataset_card_data(card_data)
        MetadataConfigs(configs).to_dataset_card_data(card_data)
        hub_card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n")
        merge_card(hub_card, ours, default).save(tmp / "README.md")
        (tmp / "manifest.json").write_bytes((directory / "manifest.json").read_bytes())
    rows = sum(len(d) for d in datasets_by_suite.values())
    return f"dry run: wrote the repo layout of {repo_id} to {out} ({len(datasets_by_suite)} configs, {rows} rows)"


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


def _read_hub_card(api, repo_id: str, revision: str | None):
    """The repo's README.md as a DatasetCard (HfApi.hf_hub_download: DatasetCard.load takes no revision)."""
    with tempfile.TemporaryDirectory(prefix="ecliptica-card-") as tmp:
        path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision, local_dir=tmp)
        return read_card(Path(path).read_text(encoding="utf-8"), f"push {repo_id}")


def _check_target(api, repo_id: str, revision: str | None) -> None:
    """Refuse a repo that holds anything other than our suites."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

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
        configs = _read_hub_card(api, repo_id, revision).data.get("configs") or []
        others = [c.get("config_name") for c in configs if isinstance(c, dict) and c.get("config_name") not in SUITES]
        if others:
            raise EclipticaError(
                f"push {repo_id}: the repo exists with configs {others} that are not ECLIPTICA suites; refusing to push"
            )


def push_dataset(
    directory: Path, repo_id: str, private: bool = False, revision: str | None = None, dry_run: Path | None = None
) -> str:
    """Publish a built dataset: one config per suite (split train), the registry's first suite the default
    config, then our card merged onto the README push_to_hub wrote. Returns a one-line summary."""
    directory = Path(directory)
    manifest = validate_built(directory)
    if not REPO_ID.fullmatch(repo_id):
        raise EclipticaError(f"--repo-id {repo_id!r}: expected 'owner/name'")
    default = default_config(list(manifest["suites"]))
    suites = sorted(manifest["suites"], key=lambda s: s != default)  # the default config first
    ours = read_card(_with_repo_id((directory / "README.md").read_text(encoding="utf-8"), repo_id), str(directory))
    if dry_run is not None:
        if Path(dry_run).resolve() == directory.resolve():
            raise EclipticaError(f"--dry-run {dry_run}: must differ from the dataset directory")
        by_suite = {s: _suite_dataset(directory, s) for s in suites}
        return _dry_run(directory, ours, by_suite, Path(dry_run), repo_id, default)

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = _token()
    api = HfApi(endpoint=hub_endpoint(), token=token)
    try:
        hub_call(f"push {repo_id}", api.whoami, hint="or write the layout locally with --dry-run PATH")
    except HfHubHTTPError as exc:
        raise _hub_error(repo_id, exc) from None
    by_suite = {s: _suite_dataset(directory, s) for s in suites}
    try:
        _check_target(api, repo_id, revision)
        for s in suites:
            by_suite[s].push_to_hub(
                repo_id,
                config_name=s,
                split=SPLIT,
                set_default=(s == default) or None,
                private=private,
                token=token,
                revision=revision,
                commit_message=f"Upload {s} ({len(by_suite[s])} rows)",
            )
        card = merge_card(_read_hub_card(api, repo_id, revision), ours, default)
        api.create_commit(
            repo_id,
            repo_type="dataset",
            revision=revision,
            commit_message="Update dataset card",
            operations=[
                CommitOperationAdd("README.md", str(card).encode("utf-8")),
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
