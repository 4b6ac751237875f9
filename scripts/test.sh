#!/usr/bin/env bash
# Set up and run the whole test suite: the main stage, then the vLLM stage in its own venv
# (skip that with ECLIPTICA_SKIP_VLLM=1). Extra arguments go to pytest's main stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bash scripts/lint.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
if [ "${ECLIPTICA_SKIP_VLLM:-0}" != 1 ] && [ -f scripts/test_vllm.sh ]; then
  bash scripts/test_vllm.sh
fi
