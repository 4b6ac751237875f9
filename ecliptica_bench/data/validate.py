"""`ecliptica validate`: one entry point for banks, built datasets and run directories."""

from __future__ import annotations

from pathlib import Path

from ..rundir import is_run_dir
from ..suites import SUITES


def validate_path(path: Path | None) -> str:
    from .build import MANIFEST, validate_banks, validate_built

    if path is None:
        validate_banks(list(SUITES.values()))
        return f"ok: bundled banks and instruction files of {len(SUITES)} suites"
    path = Path(path)
    # a run dir also has a manifest.json: recognise it by its store or generations first
    if is_run_dir(path):
        from ..run import validate_run_dir

        return validate_run_dir(path)
    if (path / MANIFEST).exists():
        manifest = validate_built(path)
        return f"ok: built dataset {path} ({sum(s['rows'] for s in manifest['suites'].values())} rows)"
    from ..errors import EclipticaError

    raise EclipticaError(f"{path}: not a built dataset (no {MANIFEST}) or run directory")
