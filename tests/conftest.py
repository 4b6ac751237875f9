import os

# Tests never touch the hub: each miss would otherwise hang ~23 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def built_dataset(tmp_path_factory):
    """All five suites built once from the bundled banks (seed 42)."""
    from ecliptica_bench.data.build import build_dataset

    out = tmp_path_factory.mktemp("built") / "ds"
    build_dataset(out)
    return out


@pytest.fixture(scope="session")
def embedded_model_dir():
    """The embedded SmolLM2 converted to a plain HF folder (cached across runs)."""
    from ecliptica_bench.models import embedded_model_dir as resolve

    return resolve()


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A writable copy of prompts/ and instructions/ with ECLIPTICA_DATA_ROOT pointing at it."""
    import shutil

    root = tmp_path / "data"
    for d in ("prompts", "instructions", "judges"):
        if (REPO / d).exists():
            shutil.copytree(REPO / d, root / d)
    monkeypatch.setenv("ECLIPTICA_DATA_ROOT", str(root))
    return root


class VLLMServer(tuple):
    """(base_url, model): unpacks as a pair, or read .base_url / .model."""

    def __new__(cls, base_url: str, model: str):
        return super().__new__(cls, (base_url, model))

    base_url = property(lambda self: self[0])
    model = property(lambda self: self[1])


@pytest.fixture(scope="session")
def vllm_server(embedded_model_dir, tmp_path_factory):
    """A real vLLM OpenAI-compatible server on the embedded model (127.0.0.1, a free port), for the whole
    session; yields VLLMServer(base_url=".../v1", model="smollm2-135m"). Only in the vllm stage."""
    pytest.importorskip("vllm")
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = "smollm2-135m"
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    # a busy 2-core machine can need more than vLLM's default 600 s for the engine to come up
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
        "VLLM_ENGINE_READY_TIMEOUT_S": os.environ.get("VLLM_ENGINE_READY_TIMEOUT_S", "900"),
    }
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(embedded_model_dir),
            "--served-model-name",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "bfloat16",
            "--max-model-len",
            "2048",
            "--enforce-eager",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + float(os.environ.get("ECLIPTICA_VLLM_SERVER_TIMEOUT", "960"))
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"vLLM server not ready in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield VLLMServer(base + "/v1", name)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
