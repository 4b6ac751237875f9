#!/usr/bin/env bash
# Lint: ruff (pyflakes + pycodestyle, [tool.ruff] in pyproject.toml) and the import layering
# (import-linter, [tool.importlinter]). Needs the dev extra (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check --no-cache .
.venv/bin/lint-imports --no-cache
.venv/bin/ruff format --check --no-cache .
