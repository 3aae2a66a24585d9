#!/usr/bin/env bash
# The model side on a CUDA GPU in one call (docs/benchmarks.rst, "Model side on a GPU"):
#   1. the machine: GPU, driver, torch/numpy/numba versions;
#   2. python -m benchmarks.model_speed --device cuda (all models, cpu-small and paper configs);
#   3. the user path on the GPU: cimd-train (prob_unet and cimd, cpu-small, on the shipped synthetic
#      ambiblobs-ct data), cimd-sample, then ambiseg-eval on what was sampled.
# Usage (repository root, torch with CUDA importable as python3): OUT=folder bash benchmarks/model_gpu_run.sh
# DEVICE=cpu runs step 3 on the CPU instead (the same commands, for comparison) and skips step 2;
# STEPS (default 300) and MODELS (default "prob_unet cimd") change step 3.
set -u
OUT=${OUT:-/tmp/model_gpu_run}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
STEPS=${STEPS:-300}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1 | head -3
$PY -c "import sys, torch, numpy, numba; print(sys.version.split()[0], 'torch', torch.__version__, 'numpy',
numpy.__version__, 'numba', numba.__version__, 'cuda', torch.cuda.is_available())"

if [ "$DEVICE" != cpu ]; then
    echo "== model_speed"
    timeout 420 $PY -m benchmarks.model_speed --device "$DEVICE" --json "$OUT/model_speed_gpu.json" \
        2>&1 | tee "$OUT/model_speed.log"
fi

echo "== user path on $DEVICE ($STEPS training steps each)"
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
for model in ${MODELS:-prob_unet cimd}; do
    log="$OUT/user_path_$model.log"
    start=$EPOCHREALTIME
    timeout 150 $PY -c "import sys; from cimd_model.cli import train_main; sys.exit(train_main(sys.argv[1:]))" \
        --model "$model" --data ambiblobs-ct --config cpu-small --steps "$STEPS" --out "$work/$model" \
        --device "$DEVICE" --no-progress --log-every 100 > "$log" 2>&1
    rc=$?
    mid=$EPOCHREALTIME
    timeout 150 $PY -c "import sys; from cimd_model.cli import sample_main; sys.exit(sample_main(sys.argv[1:]))" \
        --checkpoint "$work/$model" --split test --n 16 --out "$work/$model/preds" \
        --gts-out "$work/$model/gts" --device "$DEVICE" --no-progress >> "$log" 2>&1
    rc2=$?
    end=$EPOCHREALTIME
    timeout 120 $PY -m ambiseg_metrics "$work/$model/preds" "$work/$model/gts" \
        --out "$OUT/eval_${model}_$DEVICE.csv" >> "$log" 2>&1
    rc3=$?
    echo "$model: train rc=$rc $(seconds "$start" "$mid") s, sample rc=$rc2 $(seconds "$mid" "$end") s, eval rc=$rc3"
    tail -n 16 "$log"
done
