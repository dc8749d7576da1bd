#!/usr/bin/env bash
# GPU check, prepared for a GPU machine (none was available when it was written; see README.md).
# Run from anywhere: bash benchmarks/gpu_check.sh   (time limits add up to under 10 minutes; never run yet)
#  1. makes /tmp/monet-venv-gpu (seeing the machine's packages), installs tensorflow[and-cuda]==2.21.0
#     and requirements.txt (without its tensorflow-cpu line) there unless the installed TensorFlow
#     sees a GPU, and the kit itself (editable, no dependencies);
#  2. bench_train.py at 256 px, batch 1 and 16, float32 / mixed_bfloat16 / mixed_float16,
#     XLA off and on: reference vs kit step (on GPU the kit uses the fused step), FLOP/s against the GPU's measured matmul peak;
#     bench_adam.py (Keras's Adam vs the fused kernel);
#  3. benchmarks/bench_submission.py (the submission writer) on 3000 synthetic photos, if present;
#  4. bench_backends.py: the kit's step on TensorFlow and on JAX side by side (installs jax[cuda12]
#     if JAX sees no GPU; skipped with a message when that fails), 256 px, batch 1 and 16,
#     float32.
# Every part has its own time limit so the whole script ends inside 8 minutes; the tables are
# printed together at the end (and to $OUT/gpu_check.log, or /tmp/gpu_check.log).
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
LOG=${OUT:-/tmp}/gpu_check.log
: > "$LOG"

"${PYTHON:-python3}" -m venv --system-site-packages /tmp/monet-venv-gpu
PY=/tmp/monet-venv-gpu/bin/python
if ! "$PY" -c "import tensorflow as tf, sys; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" 2>/dev/null; then
    echo "installing tensorflow[and-cuda]==2.21.0 into /tmp/monet-venv-gpu" | tee -a "$LOG"
    grep -v '^tensorflow-cpu' requirements.txt > /tmp/monet-venv-gpu/requirements-gpu.txt
    timeout 240 "$PY" -m pip install -q "tensorflow[and-cuda]==2.21.0" -r /tmp/monet-venv-gpu/requirements-gpu.txt \
        || { echo "error: could not install the GPU wheel (no network?)" | tee -a "$LOG"; exit 2; }
fi
"$PY" -m pip install -q --no-deps -e . || { echo "error: could not install the kit" | tee -a "$LOG"; exit 2; }
"$PY" -c "import tensorflow as tf; print('GPUs:', tf.config.list_physical_devices('GPU'))" | tee -a "$LOG"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"

# float32 and bf16 without XLA first (the defaults to decide), then float16 and XLA.
timeout 170 "$PY" benchmarks/bench_train.py --variants reference,kit --sizes 256 --batches 1,16 --precisions float32,mixed_bfloat16 \
    --jit false --steps 10 --warmup 3 --no-pipeline 2>&1 | tee -a "$LOG" | grep -v '^[WIE]0000'
timeout 130 "$PY" benchmarks/bench_train.py --variants reference,kit --sizes 256 --batches 1,16 --precisions mixed_float16,float32 \
    --jit true --steps 10 --warmup 3 --no-pipeline --no-peak 2>&1 | tee -a "$LOG" | grep -v '^[WIE]0000'
timeout 60 "$PY" benchmarks/bench_train.py --variants reference,kit --sizes 256 --batches 16 --precisions mixed_float16 \
    --jit false --steps 10 --warmup 3 --no-pipeline --no-peak 2>&1 | tee -a "$LOG" | grep -v '^[WIE]0000'
timeout 40 "$PY" benchmarks/bench_adam.py --repeats 5 2>&1 | tee -a "$LOG" | grep -v '^[WIE]0000'
if [ -f benchmarks/bench_submission.py ]; then
    timeout 90 "$PY" benchmarks/bench_submission.py --photos-count 3000 --base-filters 64 2>&1 \
        | tee -a "$LOG" | grep -v '^[WIE]0000'
fi
if ! "$PY" -c "import jax, sys; sys.exit(0 if jax.devices()[0].platform == 'gpu' else 1)" 2>/dev/null; then
    timeout 120 "$PY" -m pip install -q "jax[cuda12]" 2>&1 | tail -1 | tee -a "$LOG"
fi
if "$PY" -c "import jax, sys; sys.exit(0 if jax.devices()[0].platform == 'gpu' else 1)" 2>/dev/null; then
    timeout 110 "$PY" benchmarks/bench_backends.py --sizes 256 --batches 1,16 --precisions float32 \
        --steps 8 --warmup 3 2>&1 | tee -a "$LOG" | grep -v '^[WIE]0000'
else
    echo "JAX sees no GPU here: the backend comparison is skipped" | tee -a "$LOG"
fi

echo
echo "=== summary (train step rows: size batch precision xla reference fused kit x-fused x-kit ...) ==="
grep -E '^ *256 +(1|16) ' "$LOG" | sort -u
echo "(bench_backends rows: size batch precision tensorflow-s/step jax-s/step jax-speed-up)"
echo "full log: $LOG"
