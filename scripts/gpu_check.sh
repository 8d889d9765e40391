#!/usr/bin/env bash
# The GPU checks of issue 4, as one prepared script for a lent GPU machine (the device tool), where
# PyTorch, torchvision, scipy, safetensors, tqdm and matplotlib are installed but nothing can be fetched.
# Prepare here:  python scripts/make_compact_flowers.py ../shared/data/flowers102 local/flowers64
# Run there:     bash scripts/gpu_check.sh        (carry: local/flowers64; results land in $OUT)
# Then here:     ddim evaluate --generated FILES_AT/samples0.npz FILES_AT/samples1.npz --data ../shared/data/flowers102
#                (the Inception weights cannot travel, so KID is computed back here on the CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1 DDIM_CACHE_DIR=/tmp/ddim-cache
OUT=${OUT:-/tmp/ddim-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
for mode in default reduce-overhead; do
  python3 -m ddim bench --device cuda --batch-size 64 --sample-batch-size 1024 --compile $mode --rounds 5 \
    --iterations 20 --warmup 5 --json "$OUT/bench64-$mode.json" 2>&1 | grep -v "^W" | tee -a "$OUT/bench.txt"
  python3 -m ddim bench --device cuda --batch-size 512 --no-sampling --compile $mode --rounds 5 --iterations 10 \
    --warmup 5 --json "$OUT/bench512-$mode.json" 2>&1 | grep -v "^W" | tee -a "$OUT/bench.txt"
done
# The full default recipe (KID off: no Inception weights there; per-epoch losses and grids still run).
start=$(date +%s)
timeout 420 python3 -m ddim train --data local/flowers64 --run-dir /tmp/ddim-run --kid-every 0 --no-progress \
  --compile reduce-overhead 2>&1 | grep -v "^W" | tail -60 > "$OUT/train.txt"
echo "train exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/train.txt"
cp /tmp/ddim-run/history.csv /tmp/ddim-run/losses.png "$OUT/" 2>/dev/null
python3 - <<'PY'
import os, numpy as np, torch
from ddim.checkpoint import load_model
from ddim.model import generate_images
from ddim.reports import to_uint8
from ddim.speed import resolve_speed
model, _, folder = load_model("/tmp/ddim-run", device="cuda")
images = generate_images(model, seed=0, indices=range(1638), steps=20, batch_size=1024, device="cuda",
                         speed=resolve_speed("cuda"))
pixels = to_uint8(images).permute(0, 2, 3, 1).numpy()
for part, chunk in enumerate(np.array_split(pixels, 2)):  # returned files are limited to 16 MiB each
    np.savez_compressed(os.path.join(os.environ.get("OUT", "/tmp/ddim-gpu-out"), f"samples{part}.npz"), images=chunk)
PY
ls -la "$OUT"
