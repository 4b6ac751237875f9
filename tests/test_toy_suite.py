"""A sixth suite from outside the package: a module and a data folder (tests/fixtures/toy_suite/, copied into
tmp_path) registered through ECLIPTICA_SUITES or an entry point, then build -> run (scripted OpenAI server)
-> score -> leaderboard -> report through the real CLI, with no other change to the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fake_openai import FakeOpenAI

from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.suites import BUNDLED, SUITES, get_suite, parse_suites, reload_suites

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "toy_suite"
LABEL = "T1 shout switching"
# prompts whose SHOUT answer the scripted model gets wrong (mixed case): 1 of the 6
MISSES = ("What do bees make?",)
N_PROMPTS = 6


@pytest.fixture
def plugin_dir(tmp_path):
    """tmp_path holding toy_suite.py and its data/ folder (prompts/toy/, instructions/toy.yaml)."""
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.fixture
def registry(monkeypatch):
    """The registry reloaded around the test; plugin modules the test imported are forgotten afterwards."""
    monkeypatch.delenv("ECLIPTICA_SUITES", raising=False)
    before = set(sys.modules)
    reload_suites()
    yield monkeypatch
    reload_suites()
    for name in set(sys.modules) - before:
        if name.startswith(("toy_", "plugin_")):
            del sys.modules[name]


def _env(plugin_dir: Path, **extra) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH", "")) if p),
        "ECLIPTICA_SUITES": "toy_suite",
        "ECLIPTICA_CACHE_DIR": str(plugin_dir / "cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("ECLIPTICA_DATA_ROOT", None)
    return {**env, **extra}


def ecliptica(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900
    )


def _ok(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 0, f"exit {p.returncode}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-6000:]}"


def scripted(body: dict, n: int):
    """SHOUT: the answer in capitals (except for the prompts in MISSES: mixed case); WHISPER: lower case;
    no instruction (the uninstructed control): mixed case."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
    prompt = body["messages"][-1]["content"]
    answer = f"Here is a short answer to your question: {prompt} It is a good one."
    if system is None:
        return 200, {}, answer
    if "CAPITAL" in system:
        return 200, {}, answer if prompt in MISSES else answer.upper()
    assert "lower case" in system, system
    return 200, {}, answer.lower()


# ------------------------------------------------------------------------------------------ registry
def test_env_var_plugin_is_registered_after_the_bundled_suites(plugin_dir, registry):
    registry.syspath_prepend(str(plugin_dir))
    registry.setenv("ECLIPTICA_SUITES", " toy_suite , ")
    reload_suites()
    assert list(SUITES) == [*(s.name for s in BUNDLED), "toy"]
    toy = get_suite("toy")
    assert toy.paper.label == LABEL and toy.data_root == plugin_dir / "data"
    assert [s.name for s in parse_suites("toy,litmus")] == ["litmus", "toy"]  # registry order
    assert [s.name for s in parse_suites("all")][-1] == "toy"
    with pytest.raises(
        EclipticaError, match=r"unknown suite 'toys' \(known: .*, toy; a plugin suite registers through ECLIPTICA_SUITES"
    ):
        get_suite("toys")
    assert [t.name for t in toy.instructions().types] == ["shout", "whisper"]
    rows = toy.build_rows(toy.bundled_items())
    assert len(rows) == 2 * N_PROMPTS and {r["suite"] for r in rows} == {"toy"}


def _dist(root: Path, spec: str) -> None:
    """A minimal installed distribution on sys.path whose entry point (group ecliptica_bench.suites) is spec."""
    info = root / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ecliptica_bench.suites]\n{spec}\n")


@pytest.mark.parametrize("spec", ["toy = toy_suite", "toy = toy_suite:SUITE"])
def test_entry_point_plugin_names_a_module_or_a_suite(plugin_dir, registry, spec):
    _dist(plugin_dir, spec)
    registry.syspath_prepend(str(plugin_dir))
    reload_suites()
    assert list(SUITES)[-1] == "toy" and len(SUITES) == len(BUNDLED) + 1
    # the same module also named in ECLIPTICA_SUITES: one suite, not a clash
    registry.setenv("ECLIPTICA_SUITES", "toy_suite")
    reload_suites()
    assert list(SUITES).count("toy") == 1


@pytest.mark.parametrize(
    "source, needle",
    [
        ("raise RuntimeError('boom')\n", "ECLIPTICA_SUITES: plugin_bad: module 'plugin_bad' does not import: RuntimeError: boom"),
        ("X = 1\n", "ECLIPTICA_SUITES: plugin_bad: module 'plugin_bad' has no module-level SUITE"),
        ("SUITE = 'toy'\n", "ECLIPTICA_SUITES: plugin_bad: SUITE is a str, not an ecliptica_bench.suites.base.Suite"),
        (
            "import dataclasses\nfrom toy_suite import SUITE as _T\nSUITE = dataclasses.replace(_T, name='litmus')\n",
            "ECLIPTICA_SUITES: plugin_bad: suite name 'litmus' clashes with a registered suite (bundled)",
        ),
        (
            "import dataclasses\nfrom toy_suite import SUITE as _T\nSUITE = dataclasses.replace(_T, name='../up')\n",
            "suite name '../up' must be lowercase letters, digits and underscores",
        ),
    ],
)
def test_a_bad_plugin_is_one_line_naming_the_module(plugin_dir, registry, source, needle):
    (plugin_dir / "plugin_bad.py").write_text(source)
    registry.syspath_prepend(str(plugin_dir))
    registry.setenv("ECLIPTICA_SUITES", "plugin_bad")
    reload_suites()
    with pytest.raises(EclipticaError) as exc:
        get_suite("litmus")
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    registry.setenv("ECLIPTICA_SUITES", "no_such_plugin_module")
    reload_suites()
    with pytest.raises(EclipticaError, match="no_such_plugin_module: module 'no_such_plugin_module' does not import"):
        list(SUITES)


def test_two_plugins_with_one_name_clash(plugin_dir, registry):
    (plugin_dir / "plugin_twin.py").write_text(
        "import dataclasses\nfrom toy_suite import SUITE as _T\nSUITE = dataclasses.replace(_T, description='twin')\n"
    )
    registry.syspath_prepend(str(plugin_dir))
    registry.setenv("ECLIPTICA_SUITES", "toy_suite,plugin_twin")
    reload_suites()
    with pytest.raises(
        EclipticaError, match=r"plugin_twin: suite name 'toy' clashes with a registered suite \(ECLIPTICA_SUITES: toy_suite\)"
    ):
        len(SUITES)


def test_import_is_lazy_and_a_bad_plugin_exits_2_from_the_cli(plugin_dir):
    env = _env(plugin_dir, ECLIPTICA_SUITES="no_such_plugin_module")
    # importing the registry loads no plugin (nor scans the entry points): no error yet
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ecliptica_bench.suites as s; assert s.SUITES._suites is None",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _ok(p)
    p = ecliptica(env, "build-dataset", "--out", str(plugin_dir / "ds"), "--suites", "litmus", cwd=plugin_dir)
    assert p.returncode == 2, p.stderr
    assert "error: ECLIPTICA_SUITES: no_such_plugin_module: module 'no_such_plugin_module' does not import" in p.stderr
    assert "Traceback" not in p.stderr and not (plugin_dir / "ds").exists()


# ------------------------------------------------------------------------------------------ end to end
def test_toy_suite_build_run_score_leaderboard_through_the_cli(plugin_dir):
    env = _env(plugin_dir)
    ds, runs = plugin_dir / "ds", plugin_dir / "runs"
    _ok(ecliptica(env, "build-dataset", "--out", str(ds), "--suites", "toy", cwd=plugin_dir))
    manifest = json.loads((ds / "manifest.json").read_text())
    assert list(manifest["suites"]) == ["toy"]

    with FakeOpenAI(behaviour=scripted) as srv:
        p = ecliptica(
            env,
            "run",
            "--backend",
            "openai",
            "--model",
            "toy-model",
            "--base-url",
            srv.url,
            "--suites",
            "toy",
            "--data",
            str(ds),
            "--temperature",
            "0",
            "--out",
            str(runs),
            "--run-id",
            "toy",
            cwd=plugin_dir,
        )
        _ok(p)
        # instructed: 6 prompts x 2 types; uninstructed: one request per prompt (both types share it)
        assert len(srv.requests) == 2 * N_PROMPTS + N_PROMPTS
        assert {r["max_tokens"] for r in srv.requests if "max_tokens" in r} <= {32}  # the suite's own budget
    run_dir = runs / "toy"

    _ok(ecliptica(env, "score", str(run_dir), "--bootstrap", "200", cwd=plugin_dir))
    m = json.loads((run_dir / "metrics.json").read_text())
    assert list(m["suites"]) == ["toy"]
    toy = m["suites"]["toy"]
    assert toy["metric"] == "shout_switching"
    # by hand: all-caps rate SHOUT 5/6 (one miss), WHISPER 0 -> 5/6; uninstructed: the same mixed-case answer
    # to both types -> 0 - 0 = 0; Delta = 5/6
    ins, unins = toy["conditions"]["instructed"], toy["conditions"]["uninstructed"]
    expected = (N_PROMPTS - len(MISSES)) / N_PROMPTS
    assert ins["paper"]["value"] == pytest.approx(expected)
    assert ins["components"]["caps_shout"]["value"] == pytest.approx(expected)
    assert ins["components"]["caps_whisper"]["value"] == pytest.approx(0.0)
    assert unins["paper"]["value"] == pytest.approx(0.0)
    assert toy["delta"]["value"] == pytest.approx(expected)
    assert toy["delta_paper"]["value"] == pytest.approx(expected)
    assert ins["paper"]["ci_low"] <= expected <= ins["paper"]["ci_high"]

    csv, md = plugin_dir / "board.csv", plugin_dir / "board.md"
    _ok(
        ecliptica(
            env,
            "leaderboard",
            str(run_dir),
            "-o",
            str(csv),
            "--markdown",
            str(md),
            "--name",
            f"{run_dir}=toy-model",
            "--plots",
            str(plugin_dir / "plots"),
            cwd=plugin_dir,
        )
    )
    assert sorted((plugin_dir / "plots").glob("*.png"))  # the board plots draw the toy suite
    board = pd.read_csv(csv)
    assert list(board["method"]) == ["toy-model"]
    assert board.loc[0, "toy__paper"] == pytest.approx(expected, abs=1e-6)
    assert board.loc[0, "toy__delta"] == pytest.approx(expected, abs=1e-6)
    assert board.loc[0, "toy__delta_paper"] == pytest.approx(expected, abs=1e-6)
    assert board.loc[0, "iae_suites"] == "toy"
    assert board.loc[0, "iae_abs"] == pytest.approx(100 * expected, abs=1e-4)  # scale (0, 1)
    text = md.read_text()
    assert "toy" in text and LABEL in text and f"{expected:.3f}" in text

    _ok(ecliptica(env, "report", str(run_dir), "--samples", "1", cwd=plugin_dir))
    html = (run_dir / "report.html").read_text()
    assert "shout_switching" in html and "shout" in html and "whisper" in html
