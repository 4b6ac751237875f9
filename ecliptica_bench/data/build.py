"""build-dataset and validate: bank -> cases -> DIR/<suite>/ (parquet + jsonl), a card and a manifest.

Layout of a built dataset (also the layout `push` uploads):
    DIR/README.md                      dataset card; YAML header lists one config per suite
    DIR/manifest.json                  seed, source, counts, sha256 of every input and output file
    DIR/<suite>/train-00000-of-00001.parquet
    DIR/<suite>/train.jsonl
"""

from __future__ import annotations

import collections
from pathlib import Path

from .. import DATASET_VERSION, __version__
from ..errors import EclipticaError, Problem, ValidationError
from ..suites import SUITES, Suite, parse_suites
from .card import render_card
from .io import sha256_file, staged_dir, write_json, write_jsonl, write_parquet

MANIFEST = "manifest.json"
SPLIT = "train"
PARQUET_NAME = f"{SPLIT}-00000-of-00001.parquet"
JSONL_NAME = f"{SPLIT}.jsonl"
FORMATS = {"parquet", "jsonl"}


def validate_banks(suites: list[Suite]) -> None:
    """Load every bank and instruction file of these suites, collecting all problems before raising."""
    problems: list[Problem] = []
    for s in suites:
        for load in (s.instructions, s.bundled_items):
            try:
                load()
            except ValidationError as exc:
                problems += exc.problems
    if problems:
        raise ValidationError(problems)


def build_dataset(
    out: Path,
    suites: str | None = None,
    seed: int = 42,
    formats: str = "parquet,jsonl",
    source: str = "bundled",
    data_dir: Path | None = None,
    rows_by_suite: dict[str, list[dict]] | None = None,
) -> dict:
    """Build and write the dataset; returns the manifest. Nothing is written unless all checks pass."""
    fmts = {f.strip() for f in formats.split(",") if f.strip()}
    if not fmts or fmts - FORMATS:
        raise EclipticaError(f"--format: unknown format(s) {sorted(fmts - FORMATS) or formats!r} (choose from parquet, jsonl)")
    chosen = parse_suites(suites) if rows_by_suite is None else [SUITES[n] for n in rows_by_suite]
    if rows_by_suite is None:
        if source == "bundled":
            validate_banks(chosen)
        rows_by_suite = {s.name: s.build_rows(s.items(source, data_dir), seed) for s in chosen}
        inputs = {
            str(p.relative_to(s.root())): sha256_file(p)
            for s in chosen
            for p in (s.input_files() if source == "bundled" else s.input_files()[:1])
        }
        if source == "hub":
            from .hub import describe_inputs

            inputs.update(describe_inputs([s.name for s in chosen], data_dir))
    else:
        inputs = {}
    manifest = {
        "dataset_version": DATASET_VERSION,
        "package_version": __version__,
        "seed": seed,
        "source": source,
        "split": SPLIT,
        "inputs": inputs,
        "suites": {},
        "outputs": {},
    }
    out = Path(out)
    with staged_dir(out, MANIFEST) as tmp:
        for s in chosen:
            rows = rows_by_suite[s.name]
            if "parquet" in fmts:
                write_parquet(tmp / s.name / PARQUET_NAME, rows, s.columns)
            if "jsonl" in fmts:
                write_jsonl(tmp / s.name / JSONL_NAME, rows, s.columns)
            manifest["suites"][s.name] = {
                "rows": len(rows),
                "prompts": len({r["prompt_id"] for r in rows}),
                "columns": s.columns,
                "per_instruction_type": dict(sorted(collections.Counter(r["instruction_type"] for r in rows).items())),
                "per_source": dict(sorted(collections.Counter(r["source"] for r in rows).items())),
                "max_new_tokens": s.max_new_tokens,
                "metric": s.metric,
            }
        (tmp / "README.md").write_text(render_card(manifest), encoding="utf-8")
        manifest["outputs"] = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json(tmp / MANIFEST, manifest)
    return manifest


def read_cases(path: Path, suite: str) -> list[dict]:
    """The rows of one suite from a built dataset, as plain dicts (parquet preferred)."""
    import json

    import pyarrow.parquet as pq

    path = Path(path)
    if (path / suite / PARQUET_NAME).exists():
        return pq.read_table(path / suite / PARQUET_NAME).to_pylist()
    with open(path / suite / JSONL_NAME, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def validate_built(path: Path) -> dict:
    """Check a built dataset against its manifest: every file present with its sha256, schema and counts."""
    import json

    import pyarrow.parquet as pq

    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.exists():
        raise ValidationError([Problem(str(mpath), None, "missing: not a built ecliptica dataset")])
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        outputs, suites = manifest["outputs"], manifest["suites"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValidationError([Problem(str(mpath), None, f"unreadable manifest: {exc}")]) from None
    problems: list[Problem] = []
    for rel, digest in outputs.items():
        f = path / rel
        if not f.exists():
            problems.append(Problem(str(f), None, "listed in manifest.json but missing"))
        elif sha256_file(f) != digest:
            problems.append(Problem(str(f), None, "sha256 differs from manifest.json (file changed or corrupted)"))
    for name, info in suites.items():
        if name not in SUITES:
            problems.append(Problem(str(mpath), f"suite {name!r}", "unknown suite"))
            continue
        f = path / name / PARQUET_NAME
        if f.exists():
            try:
                table = pq.read_table(f)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                problems.append(Problem(str(f), None, f"unreadable parquet: {exc}"))
                continue
            if table.column_names != SUITES[name].columns:
                problems.append(
                    Problem(str(f), None, f"columns {table.column_names} differ from the schema {SUITES[name].columns}")
                )
            if table.num_rows != info.get("rows"):
                problems.append(Problem(str(f), None, f"{table.num_rows} rows, manifest says {info.get('rows')}"))
    if problems:
        raise ValidationError(problems)
    return manifest
