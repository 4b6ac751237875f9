"""--distributed-executor-backend mp|ray: passed through to vLLM's engine (tensor-parallel workers, and the
data-parallel replicas when there are several), refused for the other backends. The engine arguments are
checked with vllm.platforms stubbed, so this runs in the main stage without vLLM."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ecliptica_bench.errors import EclipticaError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def model_folder(tmp_path, monkeypatch):
    """A folder the backend can fingerprint and tokenize with (SmolLM2's tokenizer; weights never loaded)."""
    monkeypatch.setenv("ECLIPTICA_CACHE_DIR", str(tmp_path / "cache"))
    m = tmp_path / "m"
    shutil.copytree(REPO / "bench" / "gpu_assets" / "tokenizer", m)
    shutil.copy(REPO / "bench" / "gpu_assets" / "tiny.json", m / "config.json")
    (m / "model.safetensors").write_bytes(b"\0" * 64)
    return m


@pytest.fixture
def gpu_platform(monkeypatch):
    platform = types.SimpleNamespace(is_cpu=lambda: False)
    vllm = types.ModuleType("vllm")
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = platform
    vllm.platforms = platforms
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)


def engine_kwargs(model_folder, **kw) -> dict:
    from ecliptica_bench.backends.vllm import VLLMBackend

    return VLLMBackend(str(model_folder), **kw)._engine_kwargs()


def test_executor_backend_goes_to_the_engine(model_folder, gpu_platform):
    kw = engine_kwargs(model_folder, tensor_parallel_size=4, distributed_executor_backend="ray")
    assert kw["distributed_executor_backend"] == "ray" and kw["tensor_parallel_size"] == 4
    assert "data_parallel_backend" not in kw and "data_parallel_size" not in kw
    kw = engine_kwargs(model_folder, data_parallel_size=2, distributed_executor_backend="mp")
    assert kw["distributed_executor_backend"] == "mp"
    assert kw["data_parallel_size"] == 2 and kw["data_parallel_backend"] == "mp"


def test_no_executor_backend_leaves_vllms_default(model_folder, gpu_platform):
    kw = engine_kwargs(model_folder, data_parallel_size=2)
    assert "distributed_executor_backend" not in kw and "data_parallel_backend" not in kw


def test_executor_backend_is_in_the_manifest_description(model_folder):
    from ecliptica_bench.backends.vllm import VLLMBackend

    assert VLLMBackend(str(model_folder), distributed_executor_backend="mp").describe()["distributed_executor_backend"] == "mp"


def test_unknown_executor_backend_is_refused(model_folder):
    from ecliptica_bench.backends.vllm import VLLMBackend

    with pytest.raises(EclipticaError, match="--distributed-executor-backend must be one of mp, ray, got 'uni'"):
        VLLMBackend(str(model_folder), distributed_executor_backend="uni")


def test_cli_refuses_it_without_vllm_backend(tmp_path, model_folder):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base = [
        sys.executable,
        "-m",
        "ecliptica_bench.cli",
        "run",
        "--suites",
        "litmus",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--model",
        str(model_folder),
    ]
    p = subprocess.run(
        base + ["--backend", "hf", "--distributed-executor-backend", "ray"], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 2 and "need --backend vllm" in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = subprocess.run(
        base + ["--backend", "hf", "--distributed-executor-backend", "uni"], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 2 and "'uni' is not one of 'mp', 'ray'" in p.stderr, p.stderr
