"""ECLIPTICA-3k builder: counts, schema, determinism, variants; `ecliptica build-dataset` end to end."""

import collections
import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ecliptica_bench.cli import cli
from ecliptica_bench.data.build import JSONL_NAME, PARQUET_NAME, build_dataset
from ecliptica_bench.suites import SUITES
from ecliptica_bench.suites.base import PUBLISHED_COLUMNS


@pytest.fixture(scope="module")
def ecl(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "ds"
    manifest = build_dataset(out, suites="ecliptica")
    return out, manifest, pq.read_table(out / "ecliptica" / PARQUET_NAME).to_pylist()


def test_counts(ecl):
    _, manifest, rows = ecl
    assert len(rows) == 3000
    assert len({r["prompt_id"] for r in rows}) == 300
    assert sorted({r["prompt_id"] for r in rows}) == list(range(300))
    per_cat = collections.Counter(r["source"] for r in rows if r["instruction_type"] == "neutral")
    assert len(per_cat) == 12 and set(per_cat.values()) == {25}
    per_type = collections.Counter(r["instruction_type"] for r in rows)
    assert list(per_type) == [t.name for t in SUITES["ecliptica"].instructions().types]
    assert set(per_type.values()) == {300}
    assert manifest["suites"]["ecliptica"]["rows"] == 3000
    # every prompt has exactly one row per type, and the prompt text is shared by its rows
    by_prompt = collections.defaultdict(list)
    for r in rows:
        by_prompt[r["prompt_id"]].append(r)
    for group in by_prompt.values():
        assert len({r["instruction_type"] for r in group}) == 10
        assert len({r["prompt"] for r in group}) == 1
    assert len({r["case_id"] for r in rows}) == 3000


def test_schema_and_column_order(ecl):
    out, _, rows = ecl
    table = pq.read_table(out / "ecliptica" / PARQUET_NAME)
    assert table.column_names[:6] == PUBLISHED_COLUMNS
    assert table.column_names[6:10] == ["case_id", "variant_index", "axis", "dataset_version"]
    assert str(table.schema.field("prompt_id").type) == "int64"
    assert str(table.schema.field("expected_characteristics").type) == "list<element: string>"
    first = json.loads((out / "ecliptica" / JSONL_NAME).read_text().splitlines()[0])
    assert list(first)[:6] == PUBLISHED_COLUMNS
    r = rows[0]
    t = SUITES["ecliptica"].instructions().type(r["instruction_type"])
    assert r["instruction"] == t.variants[r["variant_index"]]
    assert r["expected_characteristics"] == [c.name for c in t.characteristics]
    assert r["axis"] == t.axis


def test_every_variant_used(ecl):
    _, _, rows = ecl
    used = collections.defaultdict(set)
    for r in rows:
        used[r["instruction_type"]].add(r["variant_index"])
    assert all(v == {0, 1, 2} for v in used.values()) and len(used) == 10


def test_deterministic_and_seeded(tmp_path, ecl):
    out, manifest, rows = ecl
    again = tmp_path / "again"
    build_dataset(again, suites="ecliptica")
    for rel in ("ecliptica/" + PARQUET_NAME, "ecliptica/" + JSONL_NAME, "README.md", "manifest.json"):
        assert (again / rel).read_bytes() == (out / rel).read_bytes(), rel
    other = tmp_path / "other"
    build_dataset(other, suites="ecliptica", seed=7)
    other_rows = pq.read_table(other / "ecliptica" / PARQUET_NAME).to_pylist()
    assert [r["prompt"] for r in other_rows] != [r["prompt"] for r in rows]
    # case ids are stable across seeds: the same set, each with the same prompt text
    assert {(r["case_id"], r["prompt"]) for r in other_rows} == {(r["case_id"], r["prompt"]) for r in rows}


def test_manifest_hashes(ecl):
    from ecliptica_bench.data.io import sha256_file

    out, manifest, _ = ecl
    assert manifest["seed"] == 42
    assert "instructions/ecliptica.yaml" in manifest["inputs"]
    assert sum(1 for k in manifest["inputs"] if k.startswith("prompts/ecliptica/")) == 12
    for rel, digest in manifest["outputs"].items():
        assert sha256_file(out / rel) == digest
    assert manifest["suites"]["ecliptica"]["per_source"]["ethics"] == 250


def test_loads_as_datasetdict(ecl):
    """The way the dataset card says to load it: datasets reads the card's configs."""
    import datasets

    out, _, _ = ecl
    dd = datasets.load_dataset(str(out), name="ecliptica")
    assert list(dd) == ["train"] and dd["train"].num_rows == 3000
    assert dd["train"].column_names[:6] == PUBLISHED_COLUMNS


def test_cli_build_and_formats(tmp_path):
    res = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "j"), "--suites", "ecliptica", "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    assert "3000 rows" in res.output
    assert (tmp_path / "j" / "ecliptica" / JSONL_NAME).exists()
    assert not (tmp_path / "j" / "ecliptica" / PARQUET_NAME).exists()


def test_refuses_to_overwrite_foreign_dir(tmp_path):
    from ecliptica_bench.errors import EclipticaError

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(EclipticaError, match="refusing to overwrite"):
        build_dataset(tmp_path / "mine", suites="ecliptica")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
