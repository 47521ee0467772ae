#!/usr/bin/env bash
# The trainer's GPU checks in one short run, for a machine with a CUDA GPU (CI has none): the GPU tests
# (tests/trainer/test_trainer_gpu.py: accuracy and resume on the GPU, a compiled bf16 transformer, SIGTERM) and the
# GPU rows of benchmarks/trainer_overhead.py (the MLP in fp32 and bf16; a small transformer and GPT-small's shape,
# compiled bf16, with their MFU). Expected to take 6 to 8 minutes on an H100/H200, most of it torch.compile;
# the time limits of the steps add up to 16 minutes.
#
# Needs python3 with a CUDA build of torch, numpy, scikit-learn and pytest (+ pytest-timeout); kubetune itself need
# not be installed: the trainer and its tests run from this checkout.
#
#   bash scripts/gpu-check.sh [OUTDIR]      # default: $OUT if set, else ./gpu-check-out
#   GPU_CHECK_STEPS="tests mlp-fp32" bash scripts/gpu-check.sh   # only these steps (to split a run in two)
#
# Each step writes its own log into OUTDIR; a failing step is reported and the next one still runs.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$root/gpu-check-out}}
mkdir -p "$out"
cd "$root" || exit 1
py=${PYTHON:-python3}
export PYTHONPATH="$root/operator:$root/trainer${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/kubetune-inductor}
failed=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUTDIR/NAME.txt
    local name=$1 limit=$2
    shift 2
    if [ -n "${GPU_CHECK_STEPS:-}" ] && [[ " $GPU_CHECK_STEPS " != *" $name "* ]]; then
        return
    fi
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "!! $name exited $rc"; failed=1; }
}

step device 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
    $py -c 'import torch; print(\"torch\", torch.__version__, torch.cuda.get_device_name(), torch.version.cuda)'"
step tests 240 "$py" -m pytest -q -p no:cacheprovider -o addopts=-ra tests/trainer/test_trainer_gpu.py
bench=("$py" benchmarks/trainer_overhead.py --device cuda)
step mlp-fp32 90 "${bench[@]}" --model mlp
step mlp-bf16 90 "${bench[@]}" --model mlp --precision bf16
step transformer-bf16-compiled 180 "${bench[@]}" --model transformer --depth 4 --width 256 --batch 32 \
    --seq-len 256 --vocab 8192 --precision bf16 --compile --mfu --chunk 50 --rounds 6
step gpt-small-bf16-compiled 300 "${bench[@]}" --model transformer --depth 12 --width 768 --batch 16 \
    --seq-len 1024 --vocab 50304 --precision bf16 --compile --mfu --chunk 20 --rounds 5
echo "logs in $out"
exit "$failed"
