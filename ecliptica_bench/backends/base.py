"""The one interface every backend implements, and the model fingerprint the cache keys are built on.

A backend turns a list of requests into a list of results, in the same order:

    backend.generate(requests: list[GenRequest], params: SamplingParams) -> list[GenResult]

`backend.tokenizer` renders prompts (None when the server renders them: openai), and
`backend.fingerprint` names the exact weights (+ adapter) so a cache key never outlives the model it
was made with. Heavy engines load lazily on the first `generate`, so a run whose generations are all
cached never loads a model.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..data.io import atomic_write_text, dumps, sha256_file, sha256_text
from ..errors import EclipticaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 512
    seed: int = 42
    # OpenAI-style response_format (e.g. {"type": "json_schema", ...}); only the openai backend sends it
    response_format: dict | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def key_params(self) -> dict:
        """The params that go into a generation cache key (the seed goes in separately)."""
        d = {"temperature": float(self.temperature), "top_p": float(self.top_p), "max_new_tokens": int(self.max_new_tokens)}
        if self.response_format is not None:
            d["response_format"] = self.response_format
        return d

    def check(self) -> None:
        if self.temperature < 0:
            raise EclipticaError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise EclipticaError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise EclipticaError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class GenRequest:
    key: str  # the generation cache key (store.cache_key)
    prompt: str  # the rendered prompt (openai: canonical JSON of the messages)
    messages: list[dict] = field(default_factory=list)
    seed: int | None = None  # this request's sampling seed (store.request_seed); None: SamplingParams.seed


@dataclass
class GenResult:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float  # wall time of the request (for batched backends: of its batch)
    error: str | None = None  # a per-request failure: recorded in the errors table, never cached


class Backend(ABC):
    """name: registry name; tokenizer: renders prompts (None: the server renders); fingerprint: weights id;
    resolved_dtype: the precision the weights run in."""

    name: str = ""
    tokenizer = None
    fingerprint: str = ""
    # the numeric precision the weights run in, part of every generation key (a bf16 generation is never
    # served for an fp32 request); None where a server decides (openai)
    resolved_dtype: str | None = None
    default_batch_size: int = 8
    # --model-args for the engine (parse_model_args); their output-changing part (output_args) is in every key
    model_args: dict = {}  # never mutated: each backend assigns its own

    @abstractmethod
    def generate(self, requests: list[GenRequest], params: SamplingParams) -> list[GenResult]:
        """One result per request, in order. Raise for a failure of the whole batch."""

    def plan_batches(self, requests: list[GenRequest], batch_size: int) -> list[list[GenRequest]]:
        """Split requests into the batches `run` sends, deterministically: the same requests always give the
        same batches, so a batch lost to a crash is re-sent with the same neighbours (same padding, same
        greedy output)."""
        return [requests[i : i + batch_size] for i in range(0, len(requests), batch_size)]

    def describe(self) -> dict:
        """Backend settings recorded in the run manifest."""
        return {"backend": self.name}

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------- engine arguments
# --model-args k=v,...: passed as they are to vLLM's LLM(...) or transformers' from_pretrained(...).
#
# THE RULE for the cache key and the run id: an engine argument is part of them unless it is listed here as
# one that cannot change what the model generates (memory, scheduling, compilation, logging). Anything else
# (quantization, max_model_len, rope_scaling, revision, kv_cache_dtype, trust_remote_code, an argument we do
# not know...) is part of them, so a generation is never served for a request made under other settings.
OUTPUT_NEUTRAL_ARGS = frozenset(
    {
        # vLLM: memory and scheduling
        "gpu_memory_utilization",
        "swap_space",
        "cpu_offload_gb",
        "kv_cache_memory_bytes",
        "max_num_seqs",
        "max_num_batched_tokens",
        "max_seq_len_to_capture",
        "block_size",
        "enable_prefix_caching",
        "enable_chunked_prefill",
        "max_loras",
        "max_lora_rank",
        "max_cpu_loras",
        # vLLM: compilation and logging
        "enforce_eager",
        "compilation_config",
        "disable_log_stats",
        "disable_custom_all_reduce",
        # transformers: where the weights are placed
        "device_map",
        "low_cpu_mem_usage",
        "offload_folder",
        "max_memory",
    }
)


def _typed(value: str):
    """lm-eval's typing of a --model_args value: true/false -> bool, None -> None, int, float, else the string."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_model_args(spec: str | dict | None, flag: str = "--model-args") -> dict:
    """'k=v,k2=v2' (lm-eval's --model_args form) -> {k: typed v}; a dict is taken as it is."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, dict):
        return dict(spec)
    out: dict = {}
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise EclipticaError(f"{flag} {spec!r}: {part!r} is not key=value (e.g. max_model_len=4096,enforce_eager=true)")
        if key in out:
            raise EclipticaError(f"{flag} {spec!r}: {key} is given twice")
        out[key] = _typed(value.strip())
    return out


def output_args(model_args: dict) -> dict:
    """The engine arguments that go into cache keys and the run id (see OUTPUT_NEUTRAL_ARGS), sorted."""
    return {k: model_args[k] for k in sorted(model_args) if k not in OUTPUT_NEUTRAL_ARGS}


def check_model_args(model_args: dict, owned: dict[str, str], backend: str) -> dict:
    """Refuse engine arguments that a dedicated flag sets (`owned`: argument -> flag)."""
    for k in model_args:
        if k in owned:
            raise EclipticaError(f"--model-args {k}=...: {backend} takes it from {owned[k]}; pass that instead")
    return dict(model_args)


# ------------------------------------------------------------------------------------------- dtypes
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise EclipticaError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def config_dtype(model_dir: Path) -> str:
    """The dtype a model folder's config.json declares (transformers' dtype='auto'), float32 if none."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32"
    d = cfg.get("dtype") or cfg.get("torch_dtype") or (cfg.get("text_config") or {}).get("dtype")
    return d if d in DTYPES[1:] else "float32"


# ------------------------------------------------------------------------------------ fingerprints
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_CONFIG_FILES = (
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
_fp_lock = threading.Lock()


def _weights_cache_path() -> Path:
    return paths.cache_dir() / "weight_shas.json"


def _weight_sha(path: Path) -> str:
    """sha256 of a weight file, cached by (absolute path, size, mtime) so reruns do not re-hash gigabytes."""
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = _weights_cache_path()
    with _fp_lock:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            cache = {}
        if ident in cache:
            return cache[ident]
    digest = sha256_file(path)
    with _fp_lock:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            cache = {}
        cache[ident] = digest
        atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    return digest


def folder_fingerprint(folder: Path) -> dict:
    """Config/tokenizer/template files by sha256 and weight files by (size, sha256)."""
    folder = Path(folder)
    out: dict = {"files": {}, "weights": {}}
    for name in _CONFIG_FILES:
        p = folder / name
        if p.is_file():
            out["files"][name] = sha256_file(p)
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES):
            out["weights"][p.name] = [p.stat().st_size, _weight_sha(p)]
    if not out["weights"]:
        raise EclipticaError(f"{folder}: no weight files (*.safetensors, *.bin, *.gguf) found")
    return out


def model_fingerprint(model_dir: Path, adapter_dir: Path | None = None) -> str:
    """sha256 over the model folder's fingerprint (+ the adapter's): changes whenever weights,
    config, tokenizer or chat template change, and only then."""
    parts = {"model": folder_fingerprint(model_dir)}
    if adapter_dir is not None:
        parts["adapter"] = folder_fingerprint(adapter_dir)
    return sha256_text(dumps(parts))


def local_model_dir(name_or_path: str) -> Path:
    """A local folder for a model: the path itself, or the hub snapshot (downloaded if needed and allowed)."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise EclipticaError(f"{p}: not a model folder (no config.json)")
        return p.resolve()
    if p.exists():
        raise EclipticaError(f"{p}: a model must be a folder (config.json + weights), not a file")
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise EclipticaError(f"{name_or_path}: model folder not found")
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                name_or_path, allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]
            )
        )
    except Exception as exc:  # offline, unknown repo, auth: one clear line
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise EclipticaError(
            f"{name_or_path}: not a local folder and not loadable from the hub{offline}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def check_adapter(adapter: str | None) -> Path | None:
    """The LoRA adapter folder: `adapter` itself, or the adapter/ inside an `ecliptica train --output-dir` folder."""
    if adapter is None:
        return None
    p = Path(adapter).expanduser()
    if not (p / "adapter_config.json").is_file() and (p / "adapter" / "adapter_config.json").is_file():
        p = p / "adapter"
    if not (p / "adapter_config.json").is_file():
        raise EclipticaError(f"{p}: not a LoRA adapter folder (no adapter_config.json, nor adapter/adapter_config.json)")
    return p.resolve()


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:
        raise EclipticaError(f"{model_dir}: cannot load the tokenizer: {type(exc).__name__}: {exc}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok
