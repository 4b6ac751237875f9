"""The generated documentation (ecliptica_bench/docs.py) is current, complete and self-contained.

docs/cli.md, docs/run-directory.md, results/SCHEMA.md and the suite table of docs/metrics.md must equal what
`python -m ecliptica_bench.docs` writes now; every run-directory column and metrics.json key the code
writes has a doc; nothing in the repository points outside it."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import click
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_score import cases, write_run

from ecliptica_bench import docs

REPO = Path(__file__).resolve().parent.parent


def test_generated_files_are_current():
    stale = [str(p.relative_to(REPO)) for p in docs.stale(REPO)]
    assert not stale, f"stale generated docs {stale}: run `{docs.REGENERATE}`"


def test_every_column_and_key_has_a_doc_in_code():
    assert docs.undocumented() == []


def test_file_table_names_the_files_the_code_writes():
    from ecliptica_bench.likelihood import FILENAME as LIKELIHOOD_FILE
    from ecliptica_bench.lock import LOCK_FILES
    from ecliptica_bench.report.html import REPORT
    from ecliptica_bench.rundir import FILE_DOCS, GENERATIONS, MANIFEST, METRICS, SCORES
    from ecliptica_bench.store import RunStore

    for name in (MANIFEST, GENERATIONS, SCORES, METRICS, RunStore.FILENAME, LIKELIHOOD_FILE, REPORT, *LOCK_FILES):
        assert name in FILE_DOCS, name
    text = docs.run_directory_markdown()
    for name in FILE_DOCS:
        assert f"| `{name}` |" in text


class HashEmbedder:
    """Unit vectors from a hash of the text: scoring runs end to end without a model."""

    id = path = "hash-embedder"

    def __init__(self):
        self.store, self.calls = None, 0

    def encode(self, texts):
        out = (
            np.stack([np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=16) for t in texts])
            if texts
            else np.zeros((0, 16))
        )
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_metrics_json_keys_are_documented(tmp_path):
    """Score a small run of every suite (both conditions) and check each key it writes is in the docs' tables."""
    from ecliptica_bench.measures.stats import SCORE_DOCS
    from ecliptica_bench.rundir import METRICS_DOCS
    from ecliptica_bench.scoring.score import (
        CONDITION_DOCS,
        SCORE_COLUMNS,
        SCORING_DOCS,
        SIGNAL_DOCS,
        SUITE_DOCS,
        column_type,
        score_run,
    )
    from ecliptica_bench.suites import SUITES

    rows = []
    for suite in SUITES:
        for i, c in enumerate(cases(suite, 4)):
            for cond in ("instructed", "uninstructed"):
                rows.append({**c, "condition": cond, "response": f"{cond} answer {i} about {c['prompt']}"})
    run = write_run(tmp_path / "run", rows)
    m = score_run(run, n_boot=20, embedder_obj=HashEmbedder())
    # the types docs/run-directory.md gives the score columns are the ones written
    schema = pq.read_schema(run / "scores.parquet")
    arrow = {"bool": "bool", "string": "string", "int64": "int64", "float64": "double"}
    assert {c: str(schema.field(c).type) for c in SCORE_COLUMNS} == {c: arrow[column_type(c)] for c in SCORE_COLUMNS}
    assert set(m) <= set(METRICS_DOCS)
    assert set(m["scoring"]) <= set(SCORING_DOCS)
    assert set(m["suites"]) == set(SUITES)
    for suite, entry in m["suites"].items():
        assert set(entry) <= set(SUITE_DOCS), suite
        assert set(entry["conditions"]) == {"instructed", "uninstructed"}, suite
        for cond, block in entry["conditions"].items():
            assert set(block) <= set(CONDITION_DOCS), (suite, cond)
            assert set(block["signals"]) <= set(SIGNAL_DOCS), (suite, cond)
            assert set(block["paper"]) == set(SCORE_DOCS)


def test_cli_reference_shows_usage_defaults_and_leaves_hidden_options_out():
    @click.group()
    def grp():
        """A group."""

    @grp.command("go")
    @click.argument("run_dir")
    @click.option("--output-dir", default="runs", show_default=True, help="Runs go to OUTPUT_DIR/<run_id>/.")
    @click.option("--out", "old", hidden=True, help="old name")
    @click.option("--judge", multiple=True, metavar="URL,MODEL", help="A judge | repeatable.")
    @click.option("--mode", type=click.Choice(["a", "b"]), default="a")
    @click.option("--need", required=True, type=int)
    def go(run_dir, output_dir, old, judge, mode, need):
        """Do it."""

    text = docs.cli_markdown(grp, "tool")
    assert "```text\ntool go [OPTIONS] RUN_DIR\n```" in text
    assert "| `--output-dir` | TEXT | `runs` | Runs go to OUTPUT_DIR/&lt;run_id>/. |" in text
    assert "| `--judge` | URL,MODEL |  | A judge \\| repeatable. (repeatable) |" in text
    assert "| `--mode` | a \\| b | `a` |  |" in text
    assert "| `--need` | INTEGER |  | (required) |" in text
    assert "old name" not in text and "`--out`" not in text


def test_check_mode_reports_stale_files_and_the_writer_fixes_them(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "docs" / "metrics.md", tmp_path / "docs" / "metrics.md")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale:" in capsys.readouterr().err
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "results" / "SCHEMA.md").read_text(encoding="utf-8") == (REPO / "results" / "SCHEMA.md").read_text(
        encoding="utf-8"
    )


def _repo_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        files = [REPO / f for f in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked sdist)
        files = [p for p in REPO.rglob("*") if not {".git", ".venv"} & set(p.relative_to(REPO).parts)]
    return [f for f in files if f.is_file() and f.suffix not in {".parquet", ".whl", ".png", ".sqlite", ".safetensors", ".bin"}]


def test_nothing_in_the_repository_points_outside_it():
    needle = "../" + "shared"  # spelled in two parts so this file does not match itself
    hits = []
    for f in _repo_text_files():
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{f.relative_to(REPO)}:{n}" for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert hits == []


def test_readme_commands_use_options_the_cli_has():
    """Every `ecliptica <command> ... --option` in the code blocks of README.md and the hand-written docs/ pages
    names an option of that command."""
    from ecliptica_bench.cli import cli

    root = click.Context(cli, info_name="ecliptica")
    if cli.get_command(root, "eval") is None:
        pytest.skip("`ecliptica eval` is not in this checkout's CLI yet")
    generated = {p.name for p in docs.generated(REPO)}
    pages = [REPO / "README.md"] + [p for p in sorted((REPO / "docs").glob("*.md")) if p.name not in generated]
    blocks = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        blocks += re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        blocks += re.findall(r"(?m)(?:^    .*\n)+", text)  # indented code blocks
    problems = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            m = re.search(r"\becliptica ([a-z][a-z-]*)(.*)", line)
            if not m:
                continue
            cmd = cli.get_command(root, m.group(1))
            if cmd is None:
                problems.append(f"no command {m.group(1)!r}: {line.strip()}")
                continue
            known = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts] if not getattr(p, "hidden", False)}
            for opt in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", m.group(2).split("#")[0]):
                if opt not in known:
                    problems.append(f"{m.group(1)}: {opt} ({line.strip()})")
    assert problems == []
