#!/usr/bin/env bash
# GPU readiness check (issue 17): one script an NVIDIA GPU machine runs as is, in the repo root.
#
#   bash bench/gpu_check.sh               # on the GPU machine (python3 with CUDA torch; no install needed)
#   bash bench/gpu_check.sh --cpu-smoke   # here: tiny sizes on CPU with .venv/bin/python (tests/test_gpu_check.py)
#
# The package is not installed there (it may not even be installable: requires-python): it runs from the
# working tree with PYTHONPATH=. . Missing pure-Python packages (trl and datasets with dill and multiprocess)
# come as wheels in .whl/ (carried, ignored by git) and go to a private --target folder when trl is not
# importable. Parts, each its own process with its own time limit inside one overall budget, so one failure
# or hang still leaves the other figures:
#   env      versions, GPU, and whether every module the parts need imports
#   model    random-weight models from bench/gpu_assets (no weights travel): SmolLM2-135M and -1.7B shapes
#   hf       (a) our hf backend in bf16 vs the paper's loop (HF generate, batch 8, dataset order), same
#            ECLIPTICA cases, greedy: cases/s ratio and agreement (+ fp32 agreement on the first model)
#   train    (b) CITA and DPO optimizer-step time (LoRA, bench/train_step.py's measurement)
#   vllm     (c) our vllm backend vs vLLM's own LLM.generate, where vllm is importable; else one line why not
# At the end: one `GPU_CHECK <figure> key=value ...` line per figure (and `GPU_CHECK <part> FAILED ...` for a
# part that failed). The whole output also goes to $OUT/gpu_check.log (when OUT is set) or WORK/gpu_check.log.
#
# Knobs (environment): PYTHON, GPU_CHECK_DIR (work folder, default a fresh /tmp/gpu_check.*), GPU_CHECK_WHEELS
# (the wheel folder, default .whl),
# GPU_CHECK_BUDGET_S (overall seconds, default 420 on a GPU), GPU_CHECK_MODELS (config names in
# bench/gpu_assets), GPU_CHECK_PARTS (comma list of env,model,hf,train,vllm). Exit 1 when any part failed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

MODE=gpu
case "${1:-}" in
  --cpu-smoke) MODE=cpu-smoke ;;
  "") ;;
  *) echo "usage: bash bench/gpu_check.sh [--cpu-smoke]" >&2; exit 2 ;;
esac

if [ "$MODE" = gpu ]; then
  PY=${PYTHON:-python3}
  MODELS=${GPU_CHECK_MODELS:-"smollm2-135m smollm2-1.7b"}
  BUDGET=${GPU_CHECK_BUDGET_S:-420}
  SIZE=(--cases 192 --max-new-tokens 64)
  TRAIN=(--steps 4 --warmup 1 --batch-size 8 --max-length 256)
  # per-part caps (s): env, model, hf (first model, bf16 + fp32), hf (each other model), train, vllm
  CAP_ENV=60 CAP_MODEL=120 CAP_HF1=150 CAP_HF=120 CAP_TRAIN=180 CAP_VLLM=240
else
  PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  MODELS=${GPU_CHECK_MODELS:-tiny}
  BUDGET=${GPU_CHECK_BUDGET_S:-900}
  SIZE=(--cases 8 --max-new-tokens 8)
  TRAIN=(--steps 1 --warmup 1 --batch-size 2 --max-length 64)
  CAP_ENV=120 CAP_MODEL=120 CAP_HF1=300 CAP_HF=300 CAP_TRAIN=400 CAP_VLLM=300
fi
PARTS=",${GPU_CHECK_PARTS:-env,model,hf,train,vllm},"
WORK=${GPU_CHECK_DIR:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
: > "$WORK/summary.txt"
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; LOG="$OUT/gpu_check.log"; else LOG="$WORK/gpu_check.log"; fi

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 ECLIPTICA_CACHE_DIR="$WORK/cache" TQDM_DISABLE=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
FAILED=0

run_part() {   # run_part NAME CAP ARGS...: one part in its own process, within the overall budget
  local name=$1 cap=$2 rc=0 left t
  shift 2
  left=$((BUDGET - SECONDS - 5))
  t=$((cap < left ? cap : left))
  if [ "$t" -lt 10 ]; then
    echo "GPU_CHECK $name SKIPPED reason=out_of_time budget_s=$BUDGET" >> "$WORK/summary.txt"
    FAILED=1
    return 0
  fi
  echo "=== $name: $PY bench/gpu_check.py $* (limit ${t}s, ${SECONDS}s elapsed)"
  timeout -k 10 "$t" "$PY" bench/gpu_check.py "$@" --work "$WORK" || rc=$?
  if [ "$rc" -ne 0 ]; then
    local why="rc=$rc"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="rc=$rc timed_out_after_s=$t"
    echo "GPU_CHECK $name FAILED $why (see the log above this line)" | tee -a "$WORK/summary.txt"
    FAILED=1
  fi
  return 0
}

want() { [[ "$PARTS" == *",$1,"* ]]; }

main() {
  echo "gpu_check mode=$MODE python=$PY work=$WORK log=$LOG budget=${BUDGET}s models=($MODELS)"
  local wheels=${GPU_CHECK_WHEELS:-.whl}
  if ! "$PY" -c "import trl" 2>/dev/null && ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "=== wheels: trl not importable; installing $wheels/*.whl into $WORK/site"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        "$wheels"/*.whl; then
      export PYTHONPATH="$PYTHONPATH:$WORK/site"
    else
      echo "GPU_CHECK wheels FAILED (pip install of $wheels/*.whl)" | tee -a "$WORK/summary.txt"
      FAILED=1
    fi
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; fi

  local models=($MODELS) m first="${MODELS%% *}" train_model=""
  want env && run_part env "$CAP_ENV" env
  # the first model's figures come first; the other models (bigger) only if time is left
  want model && run_part "model_$first" "$CAP_MODEL" model --model "$first"
  want hf && run_part "hf_$first" "$CAP_HF1" hf --model "$first" --fp32-agree "${SIZE[@]}"
  for m in "${models[@]:1}"; do
    want model && run_part "model_$m" "$CAP_MODEL" model --model "$m"
  done
  for m in "${models[@]}"; do [ -f "$WORK/models/$m/config.json" ] && train_model=$m; done
  if want train; then
    if [ -n "$train_model" ]; then
      run_part "train_$train_model" "$CAP_TRAIN" train --model "$train_model" "${TRAIN[@]}"
    else
      echo "GPU_CHECK train FAILED reason=no_model_built" | tee -a "$WORK/summary.txt"; FAILED=1
    fi
  fi
  for m in "${models[@]:1}"; do
    want hf && run_part "hf_$m" "$CAP_HF" hf --model "$m" "${SIZE[@]}"
  done
  want vllm && run_part vllm "$CAP_VLLM" vllm --model "$first" "${SIZE[@]}"

  echo
  echo "==== GPU_CHECK summary (mode=$MODE, ${SECONDS}s)"
  cat "$WORK/summary.txt"
  return "$FAILED"
}

set +e
main 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
