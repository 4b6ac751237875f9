"""Where the bundled data lives and where caches go (one place for both)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "_data"  # an installed wheel's copy (setup.py's build step)


def data_root() -> Path:
    """Folder holding prompts/, instructions/ and judges/: ECLIPTICA_DATA_ROOT if set; else the copy inside an
    installed wheel (ecliptica_bench/_data); else the checkout's top-level folders (editable install)."""
    if "ECLIPTICA_DATA_ROOT" in os.environ:
        return Path(os.environ["ECLIPTICA_DATA_ROOT"])
    return PACKAGE_DATA if PACKAGE_DATA.is_dir() else REPO_ROOT


def prompts_dir() -> Path:
    return data_root() / "prompts"


def instructions_dir() -> Path:
    return data_root() / "instructions"


def judges_dir() -> Path:
    return data_root() / "judges"


def cache_dir() -> Path:
    """Model conversions and other reusable artefacts (ECLIPTICA_CACHE_DIR, default ~/.cache/ecliptica)."""
    path = Path(os.environ.get("ECLIPTICA_CACHE_DIR", Path.home() / ".cache" / "ecliptica"))
    path.mkdir(parents=True, exist_ok=True)
    return path
