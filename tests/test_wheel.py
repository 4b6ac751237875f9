"""The wheel works on its own: built from a copy of the checkout, installed into a fresh venv that cannot see
the checkout (the dependencies come from .venv's site-packages through a plain .pth line, which does not run
.venv's .pth files, so the checkout's editable finder stays off), `ecliptica build-dataset` and a run against
a scripted OpenAI server succeed from a temp directory with the prompts/instructions/judges the wheel carries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("ecliptica_bench", "prompts", "instructions", "judges", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def sh(args, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, f"{args}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    src = tmp_path / "src"
    for name in SOURCES:  # build from a copy: the build leaves build/ and *.egg-info behind
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_data"))
        else:
            shutil.copy2(REPO / name, src / name)
    sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            tmp_path / "dist",
            src,
        ]
    )
    (wheel,) = (tmp_path / "dist").glob("ecliptica_bench-*.whl")

    venv = tmp_path / "venv"
    sh([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = Path(sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # a path line: no .pth of .venv runs
    sh([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel])

    env = {k: v for k, v in os.environ.items() if k not in ("ECLIPTICA_DATA_ROOT", "PYTHONPATH", "VIRTUAL_ENV")}
    work = tmp_path / "work"
    work.mkdir()
    where = sh(
        [
            py,
            "-c",
            "import ecliptica_bench, ecliptica_bench.paths as p; print(ecliptica_bench.__file__); "
            "print(p.data_root()); import sys; print(any('__editable__' in repr(f) for f in sys.meta_path))",
        ],
        cwd=work,
        env=env,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and Path(where[1]).is_relative_to(venv), where
    assert where[2] == "False"  # the checkout's editable finder is not active
    for d in ("prompts", "instructions", "judges"):  # the wheel carries every data file
        shipped = sorted(p.relative_to(Path(where[1]) / d) for p in (Path(where[1]) / d).rglob("*") if p.is_file())
        assert shipped == sorted(
            p.relative_to(REPO / d) for p in (REPO / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ), d

    ecliptica = venv / "bin" / "ecliptica"
    out = sh([ecliptica, "build-dataset", "--out", "ds"], cwd=work, env=env).stdout
    assert "ecliptica" in out and (work / "ds" / "ecliptica").is_dir()
    with FakeOpenAI(model="served") as server:
        sh(
            [
                ecliptica,
                "run",
                "--data",
                "ds",
                "--backend",
                "openai",
                "--model",
                "served",
                "--base-url",
                server.url,
                "--suites",
                "ecliptica,truthfulqa",
                "--limit",
                "2",
                "--max-new-tokens",
                "8",
                "--temperature",
                "0",
                "--out",
                "runs",
                "--run-id",
                "r",
            ],
            cwd=work,
            env=env,
        )
    rows = pq.read_table(work / "runs" / "r" / "generations.parquet").to_pylist()
    assert {r["suite"] for r in rows} == {"ecliptica", "truthfulqa"} and all(r["response"] is not None for r in rows)
    assert len(server.requests) > 0
