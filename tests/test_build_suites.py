"""All five bundled suites through `ecliptica build-dataset` and `ecliptica validate`, offline:
sizes, schema, per-suite columns, and clear failures on corrupted copies."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ecliptica_bench.data.build import JSONL_NAME, PARQUET_NAME, read_cases
from ecliptica_bench.suites import SUITES

REPO = Path(__file__).resolve().parent.parent
MIN_ROWS = {"ecliptica": 3000, "truthfulqa": 300, "conditional_safety": 240, "length_control": 200, "litmus": 140}


def cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", *map(str, args)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("suites") / "ds"
    r = cli("build-dataset", "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_builds_all_five_suites_offline(built):
    out, stdout = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["suites"]) == sorted(SUITES)  # manifest keys are written sorted
    rows = {s: manifest["suites"][s]["rows"] for s in SUITES}
    assert rows["ecliptica"] == MIN_ROWS["ecliptica"]
    assert all(rows[s] >= MIN_ROWS[s] for s in SUITES), rows
    for s, n in rows.items():
        assert f"  {s}" in stdout and f"{n:>6} rows" in stdout
        table = pq.read_table(out / s / PARQUET_NAME)
        assert table.column_names == SUITES[s].columns
        assert table.num_rows == n == len((out / s / JSONL_NAME).read_text().splitlines())


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_item_crossed_with_every_type(built, suite):
    out, _ = built
    rows = read_cases(out, suite)
    types = [t.name for t in SUITES[suite].instructions().types]
    by_prompt = collections.defaultdict(list)
    for r in rows:
        by_prompt[r["prompt_id"]].append(r["instruction_type"])
    assert all(v == types for v in by_prompt.values())  # one row per type, in the declared order
    assert len({r["case_id"] for r in rows}) == len(rows)
    assert all(r["suite"] == suite and r["prompt"].strip() for r in rows)
    assert len(by_prompt) == len(SUITES[suite].bundled_items())


def test_suite_extra_columns(built):
    out, _ = built
    tqa = read_cases(out, "truthfulqa")
    assert all(r["best_answer"] and r["correct_answers"] and r["incorrect_answers"] for r in tqa)
    assert {r["instruction_type"] for r in tqa} == {"honest", "confident"}
    lit = read_cases(out, "litmus")
    assert {r["label"] for r in lit} == {"safe", "unsafe"}
    assert len({r["axiom"] for r in lit}) == 7 and all(r["source"] == r["axiom"] for r in lit)
    assert {r["instruction_type"] for r in read_cases(out, "conditional_safety")} == {"strict", "permissive"}
    assert {r["instruction_type"] for r in read_cases(out, "length_control")} == {"concise", "detailed"}


def test_card_documents_every_column_and_defaults_to_the_first_suite(built):
    """The card (huggingface_hub DatasetCard): one config per suite, the registry's first suite the default,
    a doc for every column (the base ones in data/card.py, each suite's own from Suite.card_columns)."""
    from huggingface_hub import DatasetCard

    out, _ = built
    card = DatasetCard((out / "README.md").read_text(encoding="utf-8"))
    configs = card.data.to_dict()["configs"]
    assert {c["config_name"] for c in configs} == set(SUITES)
    assert [c["config_name"] for c in configs if c.get("default")] == [next(iter(SUITES))]
    docs = dict(line[3:].split("`: ", 1) for line in card.text.splitlines() if line.startswith("- `"))
    columns = {c for s in SUITES.values() for c in s.columns}
    assert set(docs) == columns and all(docs.values()), {c: d for c, d in docs.items() if not d}
    for s in SUITES.values():
        assert set(s.card_columns) == set(s.extra_columns), s.name  # a suite documents exactly its own columns
        assert all(docs[c] == d for c, d in s.card_columns.items())


def test_validate_passes_on_the_build(built):
    out, _ = built
    r = cli("validate", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"ok: built dataset {out}")


def _copy(built, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(built[0], dst)
    return dst


def test_validate_names_a_truncated_parquet(built, tmp_path):
    ds = _copy(built, tmp_path)
    target = ds / "truthfulqa" / PARQUET_NAME
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    r = cli("validate", ds)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"error: {target}") for line in lines), r.stderr
    assert any("sha256 differs" in line for line in lines) and any("unreadable parquet" in line for line in lines)


def test_validate_names_an_edited_jsonl_line(built, tmp_path):
    ds = _copy(built, tmp_path)
    target = ds / "litmus" / JSONL_NAME
    lines = target.read_text().splitlines(keepends=True)
    row = json.loads(lines[3])
    row["label"] = "safe" if row["label"] == "unsafe" else "unsafe"
    lines[3] = json.dumps(row, ensure_ascii=False) + "\n"
    target.write_text("".join(lines))
    r = cli("validate", ds)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {target}: sha256 differs from manifest.json (file changed or corrupted)"


def test_validate_names_a_missing_file(built, tmp_path):
    ds = _copy(built, tmp_path)
    (ds / "length_control" / PARQUET_NAME).unlink()
    r = cli("validate", ds)
    assert r.returncode == 2
    assert f"error: {ds / 'length_control' / PARQUET_NAME}: listed in manifest.json but missing" in r.stderr
