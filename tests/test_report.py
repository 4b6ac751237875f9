"""The HTML run report: self-contained, every metric, plots embedded, escaped model text, no secrets,
samples per type; and a headless Chromium screenshot of it that is not blank."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_leaderboard import HOSTILE, assert_real_png, make_run_dir

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "sk-abcdefghijklmnopqrstuvwxyz0123456789"


def _run_dir(root):
    return make_run_dir(
        root,
        "run-rep",
        seed=11,
        manifest_extra={
            "options": {"api_key": SECRET, "api_key_env": "OPENAI_API_KEY", "base_url": "http://127.0.0.1:8000/v1"},
            "env": {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz012345"},
            "cli_args": ["run", "--api-key", SECRET],
        },
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report (3 samples per type) shared by the content and screenshot tests (plots take seconds)."""
    from ecliptica_bench.report import write_report

    run_dir = _run_dir(tmp_path_factory.mktemp("report"))
    out = write_report(run_dir, samples_per_type=3)
    assert out == run_dir / "report.html"
    return out


def test_report_contents(report):
    out, run_dir = report, report.parent
    html = out.read_text(encoding="utf-8")
    metrics = json.loads((run_dir / "metrics.json").read_text())

    # Self-contained: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html.lower().replace("&lt;script", "")
    assert "<link" not in html and "@import" not in html and "url(" not in html
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) >= 4
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"

    # Every suite and its headline value, the Delta, signals and per-type metrics appear.
    assert "run-rep" in html and "judge-7b@v1" in html
    for suite, sd in metrics["suites"].items():
        assert f"<h3>{suite} " in html
        v = sd["conditions"]["instructed"]["paper"]["value"]
        assert f"{v:.4g}" in html
        assert f"{sd['delta']['value']:.4g}" in html and f"{sd['delta_paper']['value']:.4g}" in html
        for name in sd["conditions"]["instructed"]["signals"]:
            assert f"<td>{name}</td>" in html
    assert "<td>fidelity</td>" in html or "<th>fidelity</th>" in html
    # the signed Delta is the headline; the paper-compatible one is shown and named as such
    assert "<th>Δ (signed)</th>" in html and "<th>Δ paper</th>" in html and "<th>truncated</th>" in html
    assert "refusal_switching_signed" in html and "Δ paper-compatible (refusal_switching)" in html

    # Model text is escaped, never live markup.
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html

    # No secrets, even from a manifest that carries some.
    assert SECRET not in html and "hf_abcdefghij" not in html
    assert "OPENAI_API_KEY" in html  # the *name* of the variable is not a secret

    # Samples: at most 3 cases per suite and instruction type, both conditions, with flags and verdicts.
    assert html.count('<div class="case">') == 3 * (10 + 2 + 2 + 2 + 1)
    assert "(3 of 4 cases shown)" in html
    assert 'class="badge ok">valid' in html and "invalid: looping" in html
    assert "judge_verdict" in html and "adheres" in html


def test_headline_rows_show_truncation_with_its_rule():
    from ecliptica_bench.report.html import headline_rows

    sc = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 16, "unscored_reason": None}
    block = {"paper": sc, "signals": {"truncation_rate": {**sc, "value": 0.25}, "valid_rate": sc}}
    metrics = {
        "suites": {
            "truthfulqa": {"metric": "epistemic_switching", "conditions": {"instructed": block}},
            "litmus": {"metric": "aqi", "conditions": {"instructed": {"paper": sc, "signals": {}}}},
        },
        "scoring": {"truncation_policy": {"truthfulqa": "counted valid: budget 64 < paper budget 256"}},
    }
    rows = {r["suite"]: r for r in headline_rows(metrics)}
    tr = rows["truthfulqa"]["truncation_rate"]
    assert tr["value"] == "0.25" and tr["reason"] == "counted valid: budget 64 < paper budget 256"
    assert rows["litmus"]["truncation_rate"] is None


def test_report_tolerates_missing_judge_and_scores(tmp_path):
    from ecliptica_bench.report import write_report

    no_judge = make_run_dir(
        tmp_path, "nj", judge=False, conditions=("instructed",), values={"ecliptica": (0.06, None), "litmus": (40.0, None)}
    )
    html = write_report(no_judge).read_text()
    assert "no judge verdicts" in html and "judge_verdict" not in html
    assert html.count('<div class="case">') == 3 * (10 + 1)
    no_scores = make_run_dir(tmp_path, "ns", scores=False, values={"truthfulqa": (0.3, 0.1)})
    html = write_report(no_scores, samples_per_type=0).read_text()
    assert "no scores.parquet" in html and "truthfulqa" in html


def test_report_cli_and_errors(tmp_path):
    from click.testing import CliRunner

    from ecliptica_bench.cli import cli

    run_dir = make_run_dir(tmp_path, "cli", values={"length_control": (2.0, 1.0)})
    res = CliRunner().invoke(cli, ["report", str(run_dir), "--samples", "1"])
    assert res.exit_code == 0, res.output
    html = (run_dir / "report.html").read_text()
    assert html.count('<div class="case">') == 2 and "length_control" in html
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["report", str(empty)])
    assert res.exit_code == 2 and "no metrics.json" in res.output
    assert not (empty / "report.html").exists()


def test_report_screenshot(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (Debian: apt-get install -y chromium)")
    png = tmp_path / "shot.png"
    profile = tmp_path / "chromium-profile"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        report.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert png.is_file(), f"no screenshot; chromium rc={proc.returncode}: {proc.stderr[-2000:]}"
    assert_real_png(png, min_bytes=20_000)
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] == 2000 and img.shape[1] == 1280
    # The dark header band is drawn: the page rendered with its CSS, not as a bare error page.
    top = img[5:40, 100:1200, :3].mean()
    assert top < 0.4, f"header band missing (mean brightness {top:.2f})"
    shutil.rmtree(profile, ignore_errors=True)
