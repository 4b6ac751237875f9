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


# ------------------------------------------------------------------------------------------ pictures vs ties
def _tied_board():
    """Three rows, board order a, b, c: on truthfulqa b and c are tied by the paired test (Δ -0.04 vs +0.04,
    CI ±0.15), a differs; on length_control nothing is tied; likelihood safety margins: a = b tied."""
    import pandas as pd

    from ecliptica_bench.report.leaderboard import columns

    df = pd.DataFrame({"method": ["a", "b", "c"]}).reindex(columns=columns())
    df["method"] = ["a", "b", "c"]
    for s, deltas, tied in (("truthfulqa", [0.9, -0.04, 0.04], [0, 1]), ("length_control", [3.9, 2.3, 0.2], [0, 0])):
        df[f"{s}__paper"] = [0.9, 0.4, 0.45]
        df[f"{s}__paper_ci_half"] = [0.01, 0.2, 0.2]  # b and c overlap, a does not
        df[f"{s}__delta"] = df[f"{s}__delta_paper"] = deltas
        df[f"{s}__delta_ci_half"] = [0.15, 0.15, 0.15]
        df[f"{s}__tied_with_next"] = tied + [float("nan")]
    df["likelihood__safety__margin"] = [4.5, 3.9, -0.3]
    df["likelihood__safety__margin_ci_half"] = [3.2, 3.3, 2.7]
    df["likelihood__safety__tied_with_next"] = [1, 0, float("nan")]
    df["iae_suites"] = "truthfulqa;length_control"
    return df


def _cell_colours(ax):
    """The RGBA matplotlib draws for each cell of the panel's image (rows x columns x 4)."""
    im = ax.images[0]
    return im.cmap(im.norm(im.get_array()))


def test_heatmap_colours_rows_the_tie_test_cannot_tell_apart_alike():
    import matplotlib.pyplot as plt
    import numpy as np

    from ecliptica_bench.report.plots import heatmap_figure

    fig = heatmap_figure(_tied_board())
    try:
        score, delta, lik = fig.axes[:3]
        assert "share a colour" in delta.get_title(loc="left") and "likelihood margin" in lik.get_title(loc="left")
        assert "relative to the methods on this board" in fig._suptitle.get_text()
        d = _cell_colours(delta)  # columns: truthfulqa, length_control (registry order)
        assert np.allclose(d[1, 0], d[2, 0])  # b = c on truthfulqa: one colour
        assert not np.allclose(d[0, 0], d[1, 0])
        assert len({tuple(np.round(d[i, 1], 6)) for i in range(3)}) == 3  # length_control: no ties, three colours
        s = _cell_colours(score)
        assert np.allclose(s[1, 0], s[2, 0]) and not np.allclose(s[0, 0], s[1, 0])  # overlapping CIs
        m = _cell_colours(lik)
        assert np.allclose(m[0, 0], m[1, 0]) and not np.allclose(m[1, 0], m[2, 0])
    finally:
        plt.close(fig)


def test_radar_draws_tied_methods_at_one_point():
    import matplotlib.pyplot as plt
    import numpy as np

    from ecliptica_bench.report.leaderboard import ABS_TITLE, REL_TITLE, normalised_gains
    from ecliptica_bench.report.plots import radar_figure, radar_ties

    df = _tied_board()
    gains = normalised_gains(df)
    fig = radar_figure(gains, radar_ties(df))
    try:
        for ax in fig.axes:
            title = ax.get_title()
            if not (title.startswith(REL_TITLE) or title.startswith(ABS_TITLE)):
                continue
            assert "drawn alike" in title
            polys = [p.get_xy() for p in ax.patches]  # one filled polygon per method, board order
            radius = [p[:, 1] for p in polys]  # (angle, radius) per vertex; vertex 0 = truthfulqa
            assert np.isclose(radius[1][0], radius[2][0]) and not np.isclose(radius[0][0], radius[1][0])
            assert len({round(float(r[1]), 6) for r in radius}) == 3  # length_control untied
    finally:
        plt.close(fig)
    # without the ties the raw normalised gains differ for b and c
    rel = gains[REL_TITLE]
    assert rel.loc["b", "truthfulqa"] != pytest.approx(rel.loc["c", "truthfulqa"])


def test_board_table_shows_tie_marks_and_likelihood_margins():
    from ecliptica_bench.report.board import board_table

    t = board_table(_tied_board())
    col = t["columns"].index("safety likelihood margin (nats)")
    tq = t["columns"].index("truthfulqa Δ")
    assert [r[col] for r in t["rows"]] == ["4.50 ± 3.20 =", "3.90 ± 3.30", "-0.30 ± 2.70"]
    assert [r[tq].endswith(" =") for r in t["rows"]] == [False, True, False]
    # a and b switch on safety in likelihood (CI above 0) with no conditional_safety Δ on this board
    assert t["note"].startswith("Axes that move in likelihood") and "a: safety" in t["note"] and "c:" not in t["note"]
