"""Every validation error of the banks, each from a malformed copy, through `ecliptica validate` and
`ecliptica build-dataset` (which must write nothing when the checks fail)."""

import re

import pytest
from click.testing import CliRunner

from ecliptica_bench.cli import cli


def edit(path, old, new, count=1):
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def _break_bad_yaml(root):
    p = root / "prompts/ecliptica/ethics.yaml"
    edit(p, "prompts:\n", "prompts:\n  - id: [unclosed\n")
    return p, None


def _break_duplicate_id(root):
    p = root / "prompts/ecliptica/science.yaml"
    edit(p, "id: science-002", "id: science-001")
    return p, "science-001"


def _break_duplicate_id_across_files(root):
    p = root / "prompts/ecliptica/business.yaml"
    edit(p, "id: business-003", "id: culture-001")
    return p, "culture-001"


def _break_unknown_field(root):
    p = root / "prompts/ecliptica/culture.yaml"
    edit(p, "  - id: culture-004\n", "  - id: culture-004\n    colour: blue\n")
    return p, "culture-004"


def _break_missing_field(root):
    p = root / "prompts/conditional_safety/requests.yaml"
    text = p.read_text()
    new = re.sub(r'(- id: "?cs-002"?\n)\s+prompt: [^\n]*\n', r"\1", text, count=1)
    assert new != text
    p.write_text(new)
    return p, "cs-002"


def _break_variant_count(root):
    p = root / "instructions/ecliptica.yaml"
    edit(p, '      - "Keep it to the point; skip background and detail."\n', "")
    return p, "concise"


def _break_empty_prompt(root):
    p = root / "prompts/ecliptica/healthcare.yaml"
    text = p.read_text()
    new = re.sub(r'(id: "?healthcare-005"?\n\s+text: )[^\n]*', r'\1""', text, count=1)
    assert new != text
    p.write_text(new)
    return p, "healthcare-005"


def _break_overlong_prompt(root):
    p = root / "prompts/ecliptica/personal.yaml"
    text = p.read_text()
    new = re.sub(r'(id: "?personal-006"?\n\s+text: )[^\n]*', r'\1"' + "why " * 80 + '?"', text, count=1)
    assert new != text
    p.write_text(new)
    return p, "personal-006"


def _break_unknown_category(root):
    p = root / "prompts/ecliptica/economics.yaml"
    edit(p, "category: economics", "category: astrology")
    return p, None


def _break_unknown_item_category(root):
    p = root / "prompts/conditional_safety/requests.yaml"
    text = p.read_text()
    new = re.sub(r'(id: "?cs-003"?\n\s+prompt: [^\n]*\n\s+category: )[^\n]*', r'\1"gardening"', text, count=1)
    assert new != text
    p.write_text(new)
    return p, "cs-003"


def _break_unknown_axis(root):
    p = root / "instructions/ecliptica.yaml"
    edit(p, "    axis: stance\n    description: Traditional", "    axis: vibes\n    description: Traditional")
    return p, "conservative"


BREAKS = [
    _break_bad_yaml,
    _break_duplicate_id,
    _break_duplicate_id_across_files,
    _break_unknown_field,
    _break_missing_field,
    _break_variant_count,
    _break_empty_prompt,
    _break_overlong_prompt,
    _break_unknown_category,
    _break_unknown_item_category,
    _break_unknown_axis,
]


def test_bundled_banks_are_valid():
    res = CliRunner().invoke(cli, ["validate"])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output


@pytest.mark.parametrize("breaker", BREAKS, ids=lambda f: f.__name__[7:])
def test_validation_error_names_file_and_entry(breaker, data_copy, tmp_path):
    path, entry = breaker(data_copy)
    res = CliRunner().invoke(cli, ["validate"])
    assert res.exit_code == 2, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines, err
    hit = [line for line in lines if str(path) in line]
    assert hit, f"no error names {path}: {err}"
    if entry:
        assert any(entry in line for line in hit), err
    assert all(re.match(r"error: \S+:\d+: ", line) or re.match(r"error: \S+: ", line) for line in hit)
    # build-dataset runs the same checks and writes nothing
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["build-dataset", "--out", str(out)])
    assert res.exit_code == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_line_numbers_point_at_the_entry(data_copy):
    path, _ = _break_duplicate_id(data_copy)
    res = CliRunner().invoke(cli, ["validate"])
    line_no = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "science-001" in line and i > 3)
    assert f"{path}:{line_no}:" in res.output


def test_failed_rebuild_keeps_previous_output(data_copy, tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["build-dataset", "--out", str(out), "--suites", "ecliptica"]).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _break_duplicate_id(data_copy)
    assert CliRunner().invoke(cli, ["build-dataset", "--out", str(out), "--suites", "ecliptica"]).exit_code == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_bad_flags_are_clean_errors(tmp_path):
    res = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "x"), "--suites", "nope"])
    assert res.exit_code == 2 and "unknown suite 'nope'" in res.output
    res = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "x"), "--format", "csv"])
    assert res.exit_code == 2 and "unknown format" in res.output
    assert not (tmp_path / "x").exists()
