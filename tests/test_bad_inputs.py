"""Bad input never crashes: mutated prompt/instruction files, corrupted built datasets and run directories,
broken preference files and bad CLI numbers all end in a clean `error: ...` (exit 2), no traceback, and no
half-written output. Where a random mutation happens to leave a valid file, exit 0 is accepted."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecliptica_bench.cli import cli

REPO = Path(__file__).resolve().parent.parent
SEQ = itertools.count()
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("ECLIPTICA_FUZZ_EXAMPLES", "15")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ----------------------------------------------------------------------------------------------- helpers
def invoke(args: list[str]):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_clean(res, allow_ok: bool = True) -> None:
    """Exit 2 with only `error: ...` lines on stderr and no exception escaping (or exit 0 if allowed)."""
    ok = {0, 2} if allow_ok else {2}
    detail = f"exit {res.exit_code}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}\nexc: {res.exception!r}"
    assert res.exit_code in ok, detail
    assert res.exception is None or isinstance(res.exception, SystemExit), detail
    assert "Traceback" not in res.output, detail
    if res.exit_code == 2:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert lines, detail
        usage_error = lines[0].startswith("Usage:")  # click's own flag parsing: "Error: ..." after usage
        if usage_error:
            assert any(ln.startswith("Error: ") for ln in lines), detail
        else:
            assert all(ln.startswith("error: ") for ln in lines), detail


def snapshot(d: Path) -> dict[str, str] | None:
    """File -> sha256 for everything under d (None when d does not exist)."""
    if not d.exists():
        return None
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


MUTATIONS = ("delete_line", "duplicate_line", "garbage", "truncate", "swap_lines")


@st.composite
def mutation(draw):
    op = draw(st.sampled_from(MUTATIONS))
    pos = draw(st.floats(0, 1, exclude_max=True))
    pos2 = draw(st.floats(0, 1, exclude_max=True))
    garbage = draw(st.binary(min_size=1, max_size=12))
    return op, pos, pos2, garbage


def mutate(data: bytes, m) -> bytes:
    op, pos, pos2, garbage = m
    lines = data.splitlines(keepends=True)
    i, j = int(pos * len(lines)), int(pos2 * len(lines))
    if op == "delete_line":
        return b"".join(lines[:i] + lines[i + 1 :])
    if op == "duplicate_line":
        return b"".join(lines[: i + 1] + lines[i:])
    if op == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)
    k = int(pos * len(data))
    if op == "garbage":
        return data[:k] + garbage + data[k:]
    return data[:k]  # truncate


def describe(m) -> str:
    op, pos, _, garbage = m
    return f"{op}@{pos:.2f}" + (f" {garbage!r}" if op == "garbage" else "")


# -------------------------------------------------------------------------- prompt / instruction files
BANK_FILES = sorted(
    str(p.relative_to(REPO))
    for d in ("prompts", "instructions")
    for p in (REPO / d).rglob("*.yaml")
    if p.name != "hub_sources.yaml" and "preferences" not in p.parts
)


def suite_of(rel: str) -> str:
    p = Path(rel)
    return p.stem if p.parts[0] == "instructions" else p.parts[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzdata") / "data"
    for d in ("prompts", "instructions", "judges"):
        shutil.copytree(REPO / d, root / d)
    return root


@FUZZ
@given(rel=st.sampled_from(BANK_FILES), m=mutation())
def test_mutated_bank_files_fail_cleanly(rel, m, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ECLIPTICA_DATA_ROOT", str(data_root))
    target = data_root / rel
    original = (REPO / rel).read_bytes()
    target.write_bytes(mutate(original, m))
    try:
        res = invoke(["validate"])
        assert_clean(res)
        out = tmp_path / f"ds-{next(SEQ)}"
        res2 = invoke(["build-dataset", "--out", out, "--suites", suite_of(rel), "--format", "jsonl"])
        assert_clean(res2)
        if res2.exit_code == 2:
            assert not out.exists(), f"partial output left by build-dataset after {describe(m)} of {rel}"
        else:
            assert (out / "manifest.json").exists()
        shutil.rmtree(out, ignore_errors=True)
    finally:
        target.write_bytes(original)


def test_empty_and_binary_bank_files(data_copy, tmp_path):
    """Deterministic edge cases: an empty file, a non-UTF-8 file, a YAML list instead of a mapping."""
    target = data_copy / "instructions" / "truthfulqa.yaml"
    for content in (b"", b"\xff\xfe\x00garbage\x00", b"- a\n- b\n", b"types: 3\n", b": : :\n  - [\n"):
        target.write_bytes(content)
        res = invoke(["validate"])
        assert_clean(res, allow_ok=False)
        assert "truthfulqa.yaml" in res.stderr
        out = tmp_path / "ds"
        res = invoke(["build-dataset", "--out", out, "--suites", "truthfulqa"])
        assert_clean(res, allow_ok=False)
        assert not out.exists()


# -------------------------------------------------------------------------------------- built datasets
def text_answer(body, n):
    return 200, {}, f"An answer of {len(body['messages'][-1]['content'])} characters."


@pytest.fixture(scope="module")
def gen_server():
    with FakeOpenAI(text_answer, model="served") as srv:
        yield srv


def corrupt(path: Path, m) -> None:
    path.write_bytes(mutate(path.read_bytes(), m))


def built_files(ds: Path) -> list[str]:
    return sorted(str(p.relative_to(ds)) for p in ds.rglob("*") if p.is_file())


@FUZZ
@given(data=st.data(), m=mutation())
def test_corrupted_built_dataset_fails_cleanly(data, m, built_dataset, gen_server, tmp_path):
    ds = tmp_path / f"ds-{next(SEQ)}"
    shutil.copytree(built_dataset, ds)
    rel = data.draw(st.sampled_from(built_files(built_dataset)))
    corrupt(ds / rel, m)
    res = invoke(["validate", ds])
    assert_clean(res)
    if res.exit_code == 0:
        assert (ds / rel).read_bytes() == (built_dataset / rel).read_bytes() or rel == "README.md", (
            f"validate accepted a changed {rel} ({describe(m)})"
        )
    suite = Path(rel).parts[0] if "/" in rel else "truthfulqa"
    runs = tmp_path / f"runs-{next(SEQ)}"
    res = invoke(
        [
            "run",
            "--data",
            ds,
            "--backend",
            "openai",
            "--model",
            "served",
            "--base-url",
            gen_server.url,
            "--suites",
            suite,
            "--limit",
            "2",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0",
            "--out",
            runs,
            "--run-id",
            "r",
        ]
    )
    assert_clean(res)
    if res.exit_code == 2:
        assert snapshot(runs) is None or not (runs / "r" / "generations.parquet").exists()
    shutil.rmtree(ds)
    shutil.rmtree(runs, ignore_errors=True)


# ----------------------------------------------------------------------------------------- run directories
@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """A small fake run (truthfulqa, 4 prompts x 2 types x 2 conditions) scored once: has a store.sqlite."""
    from test_score import cases, synthetic_response, write_run

    rows = [
        {**c, "condition": cond, "response": synthetic_response(c, cond, random.Random(0))}
        for c in cases("truthfulqa", 4)
        for cond in ("instructed", "uninstructed")
    ]
    run = write_run(tmp_path_factory.mktemp("fuzzrun") / "run", rows)
    res = invoke(["score", run, "--bootstrap", "10"])
    assert res.exit_code == 0, res.output
    assert (run / "store.sqlite").exists() and (run / "metrics.json").exists()
    return run


RUN_FILES = ("generations.parquet", "manifest.json", "store.sqlite")


@FUZZ
@given(rel=st.sampled_from(RUN_FILES), m=mutation())
def test_corrupted_run_dir_fails_cleanly(rel, m, scored_run, tmp_path):
    run = tmp_path / f"run-{next(SEQ)}"
    shutil.copytree(scored_run, run)
    corrupt(run / rel, m)
    before = snapshot(run)
    res = invoke(["validate", run])
    assert_clean(res)
    res = invoke(["score", run, "--bootstrap", "10"])
    assert_clean(res)
    if res.exit_code == 2:
        after = snapshot(run)
        for f in ("scores.parquet", "metrics.json"):
            assert after.get(f) == before.get(f), f"{f} changed by a failed score ({rel} {describe(m)})"
    shutil.rmtree(run)


def test_run_dir_edge_cases(scored_run, tmp_path):
    """Empty files, a store that is not SQLite, a manifest that is JSON but not an object."""
    cases = {
        "generations.parquet": [b"", b"PAR1"],
        "manifest.json": [b"", b"[1, 2]", b"null", b'{"run_id": 3}'],
        "store.sqlite": [b"", b"not a database at all" * 50],
    }
    seen = []
    for rel, contents in cases.items():
        for content in contents:
            run = tmp_path / f"r{len(seen)}"
            shutil.copytree(scored_run, run)
            (run / rel).write_bytes(content)
            for args in (["validate", run], ["score", run, "--bootstrap", "10"]):
                res = invoke(args)
                assert_clean(res)
                seen.append((rel, content[:20], args[0], res.exit_code))
    # an empty / non-parquet generations file can never be accepted
    assert all(code == 2 for rel, _, _, code in seen if rel == "generations.parquet")


# ------------------------------------------------------------------------------------ preference files
GOOD_PREF = {
    "id": "p1-a",
    "pair_id": "p1",
    "kind": "switch",
    "instruction_type": "strict",
    "instruction": "Refuse anything risky.",
    "prompt": "How do I pick a lock?",
    "chosen": "I can't help with that.",
    "rejected": "Sure: insert a tension wrench...",
}


@FUZZ
@given(
    drop=st.sets(st.sampled_from(sorted(GOOD_PREF))),
    blank=st.sets(st.sampled_from(sorted(GOOD_PREF))),
    as_type=st.sampled_from(["str", "int", "null", "list"]),
    n_rows=st.integers(1, 4),
)
def test_bad_preference_rows(drop, blank, as_type, n_rows, tmp_path):
    repl = {"str": "  ", "int": 7, "null": None, "list": ["x"]}[as_type]
    rows = []
    for i in range(n_rows):
        r = {**GOOD_PREF, "id": f"p{i}-a", "pair_id": f"p{i}"}
        for k in blank:
            r[k] = repl
        for k in drop:
            r.pop(k, None)
        rows.append(r)
    src = tmp_path / f"prefs-{next(SEQ)}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / f"out-{next(SEQ)}"
    res = invoke(["build-prefs", "--source", src, "--out", out, "--heldout", "0"])
    assert_clean(res)
    if drop or blank:
        assert res.exit_code == 2, res.output
        assert str(src.name) in res.stderr
        assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"{not json\n", b"[1,2]\n", b"\xff\xfe\n", b"\n\n"])
def test_unreadable_preference_files(content, tmp_path):
    src = tmp_path / "prefs.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out"
    res = invoke(["build-prefs", "--source", src, "--out", out])
    assert_clean(res, allow_ok=False)
    assert not out.exists()


def test_preference_parquet_that_is_not_parquet(tmp_path):
    src = tmp_path / "prefs.parquet"
    src.write_bytes(b"PAR1 this is not parquet")
    res = invoke(["build-prefs", "--source", src, "--out", tmp_path / "out"])
    assert_clean(res, allow_ok=False)
    assert "prefs.parquet" in res.stderr and not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------------------- CLI flags
BAD_FLAGS = [
    ["run", "--limit", "-1"],
    ["run", "--limit", "0"],
    ["run", "--temperature", "-3"],
    ["run", "--top-p", "0"],
    ["run", "--top-p", "1.5"],
    ["run", "--max-new-tokens", "0"],
    ["run", "--batch-size", "0"],
    ["run", "--concurrency", "0"],
    ["run", "--suites", "nosuchsuite"],
    ["run", "--suites", ","],
    ["run", "--backend", "nosuchbackend"],
    ["run", "--limit", "many"],
    ["run", "--condition", "sideways"],
    ["run", "--api-key-env", "NO_SUCH_KEY_VAR"],  # a named key variable must be set
    ["build-dataset", "--suites", "nosuchsuite"],
    ["build-dataset", "--format", "csv"],
    ["build-prefs", "--heldout", "1.5"],
    ["build-prefs", "--heldout", "-0.1"],
    ["build-prefs", "--max-pairs", "0"],
    ["build-prefs", "--source", "nosuchsource"],
]


@pytest.mark.parametrize("args", BAD_FLAGS, ids=lambda a: " ".join(a))
def test_bad_flags_exit_2(args, tmp_path, gen_server):
    extra = ["--out", tmp_path / "out"]
    if args[0] == "run":  # a live server, so an accepted flag ends quickly (and fails the test) instead of retrying
        extra += (["--backend", "openai"] if "--backend" not in args else []) + [
            "--base-url",
            gen_server.url,
            "--model",
            "served",
            "--max-new-tokens",
            "8",
            "--limit",
            "2",
            "--suites",
            "truthfulqa",
        ]
        extra = [a for i, a in enumerate(extra) if not (a in args or (i and extra[i - 1] in args))]
    res = invoke(args + extra)
    assert_clean(res, allow_ok=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


JUDGE = ["--judge-base-url", "{url}", "--judge-model", "fake-judge"]
SCORE_FLAGS = [
    ["--bootstrap", "-1"],
    ["--judge-concurrency", "0", *JUDGE],
    ["--judge-timeout", "0", *JUDGE],
    ["--judge-timeout", "-5", *JUDGE],
    ["--judge-base-url", "{url}"],  # without --judge-model
    ["--judge-api-key-env", "ECLIPTICA_NO_SUCH_VAR", *JUDGE],
    ["--embedder", "/no/such/embedder"],
]


@pytest.mark.parametrize("flags", SCORE_FLAGS, ids=lambda a: " ".join(a[:2]))
def test_bad_score_flags_exit_2(flags, scored_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    before = snapshot(run)
    with FakeOpenAI() as judge:  # live, so an accepted flag finishes quickly (and fails the test)
        res = invoke(["score", run, "--bootstrap", "10"] + [f.format(url=judge.url) for f in flags])
    assert_clean(res, allow_ok=False)
    assert snapshot(run) == before


def test_bootstrap_zero_means_no_cis(scored_run, tmp_path):
    """--bootstrap 0 is documented as 'no CIs', not an error."""
    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    res = invoke(["score", run, "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    m = json.loads((run / "metrics.json").read_text())
    paper = m["suites"]["truthfulqa"]["conditions"]["instructed"]["paper"]
    assert paper["value"] is not None and paper["ci_low"] is None and paper["ci_high"] is None
