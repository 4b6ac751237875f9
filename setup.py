"""Build step (everything else is in pyproject.toml): a wheel carries the top-level prompts/, instructions/
and judges/ folders, the source of truth, as ecliptica_bench/_data/. An editable install copies nothing and
reads the top-level folders in place (ecliptica_bench/paths.py)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_DIRS = ("prompts", "instructions", "judges")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "ecliptica_bench" / "_data"
        shutil.rmtree(target, ignore_errors=True)
        for name in DATA_DIRS:
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
