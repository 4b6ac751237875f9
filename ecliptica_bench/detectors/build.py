"""`ecliptica build-detectors`: rebuild the learned detectors' weights and the manifest, reproducibly.

REGISTRY maps a kind to its KindBuild: the sources (sources.Source, pinned and hashed), a loader from the
verified files to a train.Labelled set, the feature config, the trainer, the reference detectors measured
on the same rows (the keyword detector, and e.g. XSTest's own string match) and the set whose pooled
held-out counts are the detector's error_counts. A new kind registers a KindBuild (register()) in its own
module, imported by _registry(); the command and the manifest handling stay shared.

Outputs (atomically, data/io.py): <out>/<kind>.json (the weights, learned.py's format) and
<out>/manifest.json, {"detectors": {name: record}, "sources": {name: Source.describe()}, "versions"}: a
rebuild of some kinds keeps the other kinds' records. Fixed seeds and lbfgs make two builds from the same
files byte-identical on one machine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import atomic_write_text, read_json, sha256_file, write_json
from ..errors import EclipticaError
from .base import WEIGHTS_DIR
from .sources import Source, materialise
from .train import Labelled, train_linear, validation_figures


@dataclass(frozen=True)
class KindBuild:
    kind: str
    name: str  # the learned detector's name, e.g. "learned:refusal-v1"
    sources: tuple[Source, ...]
    load: Callable[[dict[str, dict[str, Path]]], Labelled]  # {source name: {repo path: file}} -> training set
    features: dict
    references: dict[str, Callable[[list[str]], np.ndarray]] = field(default_factory=dict)  # name -> positive calls
    train: Callable = train_linear
    pooled: str = ""  # the validation set whose pooled counts are error_counts (default: the training set's name)
    notes: str = ""


REGISTRY: dict[str, KindBuild] = {}
KIND_MODULES = ("refusal",)  # modules of this package that register a KindBuild when imported


def register(kb: KindBuild) -> KindBuild:
    REGISTRY[kb.kind] = kb
    return kb


def _registry() -> dict[str, KindBuild]:
    for mod in KIND_MODULES:
        importlib.import_module(f"{__package__}.{mod}")
    return REGISTRY


def source_options() -> dict[str, str]:
    """{source name: the kinds that use it}, for the CLI's --source NAME=DIR help."""
    out: dict[str, list[str]] = {}
    for kb in _registry().values():
        for s in kb.sources:
            out.setdefault(s.name, []).append(kb.kind)
    return {k: ", ".join(v) for k, v in out.items()}


def _versions() -> dict:
    import scipy
    import sklearn

    return {"numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__}


def _weights_text(weights: dict) -> str:
    import json

    return json.dumps(weights, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def build(
    kinds: list[str] | None,
    local: dict[str, Path] | None,
    embed: Callable[[list[str]], np.ndarray],
    out_dir: Path | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Rebuild the detectors of `kinds` (default: all registered) into out_dir (default: the package's
    weights/); `local`: {source name: folder holding its files} (others are downloaded); `embed`: texts ->
    unit-normalised all-MiniLM-L6-v2 embeddings. Returns the manifest written."""
    reg = _registry()
    kinds = list(kinds or reg)
    unknown = [k for k in kinds if k not in reg]
    if unknown:
        raise EclipticaError(f"build-detectors: unknown kind(s) {unknown} (known: {', '.join(reg)})")
    local = dict(local or {})
    known_sources = {s.name for k in kinds for s in reg[k].sources}
    extra = sorted(set(local) - {s.name for kb in reg.values() for s in kb.sources})
    if extra:
        raise EclipticaError(f"build-detectors: unknown source(s) {extra} (known: {', '.join(sorted(known_sources))})")
    out_dir = Path(out_dir or WEIGHTS_DIR)
    path = out_dir / "manifest.json"
    manifest = read_json(path) if path.exists() else {}
    manifest.setdefault("detectors", {})
    manifest.setdefault("sources", {})
    for kind in kinds:
        kb = reg[kind]
        files = {s.name: materialise(s, local.get(s.name)) for s in kb.sources}
        data = kb.load(files)
        log(f"{kind}: {len(data.texts)} labelled texts from {', '.join(files)}; embedding")
        data.emb = np.asarray(embed(data.texts), dtype=np.float64)
        log(f"{kind}: training {kb.name} (nested grouped CV)")
        weights, validation, hyper = kb.train(data, kb.features, kb.name, seed=seed)
        wpath = out_dir / f"{kind}.json"
        atomic_write_text(wpath, _weights_text(weights))
        pooled = kb.pooled or data.name
        # drop the kind's old records (a renamed detector must not linger), then write the new ones
        manifest["detectors"] = {n: r for n, r in manifest["detectors"].items() if r.get("kind") != kind}
        trained_on = {str(g): int(n) for g, n in zip(*np.unique(data.groups, return_counts=True))}
        manifest["detectors"][kb.name] = {
            "kind": kind,
            "weights": wpath.name,
            "weights_sha256": sha256_file(wpath),
            "sources": [s.name for s in kb.sources],
            "trained_on": {data.name: trained_on},
            "labels": {str(k): int(v) for k, v in zip(*np.unique(data.labels, return_counts=True))},
            "features": kb.features,
            "hyperparameters": hyper,
            "validation": validation,
            "pooled": pooled,
            "notes": kb.notes,
        }
        for ref, fn in kb.references.items():
            manifest["detectors"][ref] = {
                "kind": kind,
                "reference": True,
                "validation": validation_figures(data, np.asarray(fn(data.texts), dtype=bool)),
                "pooled": pooled,
            }
        for s in kb.sources:
            manifest["sources"][s.name] = s.describe()
    manifest["versions"] = _versions()
    manifest["seed"] = seed
    write_json(path, manifest)
    return manifest
