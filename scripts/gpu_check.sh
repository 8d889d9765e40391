#!/usr/bin/env bash
# The GPU checks (issues 4 and 9) as ONE prepared call on a lent GPU machine (the device tool), where
# PyTorch, torchvision, scipy, safetensors, tqdm and matplotlib are installed but nothing can be fetched.
# Prepare here:  python scripts/make_compact_flowers.py ../shared/data/flowers102 local/flowers64
# Run there:     bash scripts/gpu_check.sh        (carry: local/flowers64; results land in $OUT, 3 files)
# Then here:     tar -xf FILES_AT/results.tar -C docs/results/gpu
#                ddim evaluate --generated FILES_AT/samples0.npz FILES_AT/samples1.npz --data ../shared/data/flowers102
#                (the Inception weights cannot travel, so KID/FID are computed back here on the CPU; the exported
#                model in results.tar generates the 8,189 images of the FID-against-all figure here too)
# Test here on the CPU with tiny settings (a few minutes):
#   DEVICE=cpu TRAIN_LIMIT=120 BENCH="--rounds 1 --iterations 1 --warmup 1 --widths 8,16 --block-depth 1 --image-size 16" \
#   TRAIN="--max-steps 4 --epochs 2 --widths 8,16 --block-depth 1 --image-size 16 --train-images 64 --validation-images 32" \
#   SAMPLES=40 OUT=/tmp/gpu-check-test bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1 DDIM_CACHE_DIR=${DDIM_CACHE_DIR:-/tmp/ddim-cache}
OUT=${OUT:-/tmp/ddim-gpu-out}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-local/flowers64}
TRAIN_LIMIT=${TRAIN_LIMIT:-420}   # seconds for the 50-epoch recipe
BENCH=${BENCH:---rounds 5 --iterations 20 --warmup 5}
TRAIN=${TRAIN:-}
SAMPLES=${SAMPLES:-1638}          # as many as the validation set, returned as uint8 npz in two files
WORK=$(mktemp -d)
mkdir -p "$OUT" "$WORK/results"
R=$WORK/results
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$R/machine.txt"
for mode in default reduce-overhead; do
  [ "$DEVICE" = cpu ] && [ "$mode" = reduce-overhead ] && continue  # CUDA graphs need CUDA
  for batch in 64 512; do
    python3 -m ddim bench --device "$DEVICE" --batch-size $batch --sample-batch-size $batch --compile $mode $BENCH \
      --json "$R/bench$batch-$mode.json" 2>&1 | grep -v "^W" | tee -a "$R/bench.txt"
  done
done
# The full default recipe (per-epoch KID off: no Inception weights there; losses and grids still run;
# TensorBoard off: the package is not installed there).
start=$(date +%s)
timeout "$TRAIN_LIMIT" python3 -m ddim train --data "$DATA" --run-dir "$WORK/run" --kid-every 0 --no-progress --no-tensorboard \
  --device "$DEVICE" $TRAIN 2>&1 | grep -v "^W" | tail -60 > "$R/train.txt"
echo "train exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$R/train.txt"
cp -r "$WORK/run/history.csv" "$WORK/run/losses.png" "$WORK/run/samples" "$WORK/run/config.json" "$R/" 2>/dev/null
python3 -m ddim export --checkpoint "$WORK/run" --out "$R/model.safetensors" | tee -a "$R/train.txt"
python3 - "$WORK/run" "$SAMPLES" "$DEVICE" <<'PY'
import os, sys, time, numpy as np, torch
from ddim.loading import load_model
from ddim.model import generate_images
from ddim.reports import to_uint8
from ddim.runtime import resolve_runtime
run, count, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = load_model(run, device=device)
runtime = resolve_runtime(device)
started = time.perf_counter()
images = generate_images(model, seed=0, indices=range(count), steps=20, batch_size=512, device=device, runtime=runtime)
print(f"sampled {count} images (20 DDIM steps, {runtime.describe()}) in {time.perf_counter() - started:.1f} s "
      f"from {model.origin.source}")
pixels = to_uint8(images).permute(0, 2, 3, 1).numpy()
for part, chunk in enumerate(np.array_split(pixels, 2)):  # returned files are limited to 16 MiB each
    np.savez_compressed(os.path.join(os.environ.get("OUT", "/tmp/ddim-gpu-out"), f"samples{part}.npz"), images=chunk)
PY
tar -cf "$OUT/results.tar" -C "$R" .
ls -la "$OUT"
