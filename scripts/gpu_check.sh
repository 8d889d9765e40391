#!/usr/bin/env bash
# The GPU checks (issues 4 and 9) as ONE prepared call on a lent GPU machine (the device tool), where
# PyTorch, torchvision, scipy, safetensors, tqdm and matplotlib are installed but nothing can be fetched.
# Prepare here:  python scripts/make_compact_flowers.py ../shared/data/flowers102 local/flowers64
# Run there:     bash scripts/gpu_check.sh        (carry: local/flowers64; results land in $OUT, 3 files)
# Then here:     tar -xf FILES_AT/results.tar -C docs/results/gpu
#                ddim evaluate --generated FILES_AT/samples0.npz FILES_AT/samples1.npz --data ../shared/data/flowers102
#                (the Inception weights cannot travel, so KID/FID are computed back here on the CPU; the exported
#                model in results.tar generates the 8,189 images of the FID-against-all figure here too)
# The recipe issue's runs (issue 24) instead, with CHECK=recipe (see recipe_runs below; carry: local/flowers64):
#   run there:  CHECK=recipe bash scripts/gpu_check.sh    (again in the same warm machine: the runs resume)
#   then here:  mkdir -p local/gpu && for f in FILES_AT/*.tar; do tar -xf $f -C local/gpu; done
#               python scripts/epoch_kid.py local/gpu/runs/NAME local/gpu/exports/NAME-e*.safetensors \
#                 --data ../shared/data/flowers102     (each run's per-epoch KID at its exported epochs, here)
#               python scripts/conditional_results.py local/gpu/runs/conditional --data ../shared/data/flowers102 \
#                 --model local/gpu/exports/conditional-e50.safetensors --builtin yes   (its FID, grid, built-in model)
# The training loop's host time on the GPU, with CHECK=profile (carry: local/flowers64; about 3 min; results in $OUT:
#   profile.txt (the recipe's bench step, the loop's log and its 40 costliest functions), train.prof, bench-recipe.json,
#   profile-history.csv (the loop's own images/s per epoch)).
# Test here on the CPU with tiny settings (a few minutes):
#   DEVICE=cpu TRAIN_LIMIT=120 BENCH="--rounds 1 --iterations 1 --warmup 1 --widths 8,16 --block-depth 1 --image-size 16" \
#   TRAIN="--max-steps 4 --epochs 2 --widths 8,16 --block-depth 1 --image-size 16 --train-images 64 --validation-images 32" \
#   SAMPLES=40 OUT=/tmp/gpu-check-test bash scripts/gpu_check.sh
# (tests/test_epoch_kid.py runs CHECK=recipe so, with two tiny runs, and measures what comes back.)
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
PROFILE_STEPS=${PROFILE_STEPS:-1533}   # CHECK=profile: three epochs of the 64-image batch

# NAME;EPOCHS TO BRING BACK;OPTIONS, one run a line: the improved recipe and its leave-one-out arms (10 epochs; the
# recipe itself again, so that the arms are compared with a run of the same machine and data copy) and the 50-epoch
# conditional run. Every exported epoch is an fp16 EMA network of about 3.9 MB; 4 go in each returned file (16 MiB at
# most) and all returned files together must stay under 64 MiB, so 16 exports in all. These are the runs of
# docs/results/recipe-gpu (one H200, TRAIN_LIMIT=470: the arms finished in 3.8 min each, all four at once; the
# conditional run reached epoch 26).
RECIPE_RUNS=${RECIPE_RUNS:-"improved;5 10;--recipe improved --epochs 10
improved-no-flip;5 10;--recipe improved --epochs 10 --no-flip
improved-no-lr-schedule;5 10;--recipe improved --epochs 10 --lr-schedule constant --lr-warmup-steps 0 --lr-decay-steps none
conditional;5 10 15 20 25 30 35 40 45 50;--recipe improved --conditional --guidance 0"}
export RECIPE_RUNS
RUNS_DIR=${RUNS_DIR:-runs/gpu}   # inside the checkout (git-ignored): a second call on the warm machine resumes

recipe_runs() {
  # All runs at once on the one GPU (small batches leave it mostly idle), per-epoch KID off (no Inception
  # weights there), every epoch's checkpoint kept; stopped at TRAIN_LIMIT with SIGTERM, which saves a checkpoint.
  local name epochs options pids=()
  mkdir -p "$OUT" "$RUNS_DIR"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RUNS_DIR/machine.txt" 2>&1
  while IFS=';' read -r name epochs options; do
    [ -n "$name" ] || continue
    if [ -n "$(ls -A "$RUNS_DIR/$name/checkpoints" 2>/dev/null)" ]; then
      set -- --resume "$RUNS_DIR/$name"
    else
      # shellcheck disable=SC2086
      set -- --data "$DATA" --run-dir "$RUNS_DIR/$name" $options --kid-every 0 --keep-checkpoints 100 \
        --no-tensorboard --device "$DEVICE" $TRAIN
    fi
    timeout -s TERM "$TRAIN_LIMIT" python3 -m ddim train "$@" --no-progress > "$RUNS_DIR/$name.log" 2>&1 &
    pids+=($!)
  done <<< "$RECIPE_RUNS"
  for pid in "${pids[@]}"; do wait "$pid"; done
  python3 - "$RUNS_DIR" "$OUT" <<'PY'
import os, shutil, sys, tarfile
from pathlib import Path
from ddim.cli import main as ddim
from ddim.reports import read_history
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
exports, bundle = runs / "exports", runs / "bundle"
shutil.rmtree(bundle, ignore_errors=True)
(bundle / "runs").mkdir(parents=True)
wanted = []
for line in os.environ["RECIPE_RUNS"].splitlines():
    if not line.strip():
        continue
    name, epochs, _ = line.split(";", 2)
    run = runs / name
    print((runs / f"{name}.log").read_text()[-1500:], flush=True)
    if not (run / "history.csv").is_file():
        print(f"{name}: no epoch finished")
        continue
    (bundle / "runs" / name).mkdir()
    for item in ("history.csv", "config.json", "losses.png"):
        if (run / item).is_file():
            shutil.copy(run / item, bundle / "runs" / name / item)
    shutil.copy(runs / f"{name}.log", bundle / "runs" / f"{name}.log")
    grids = sorted((run / "samples").glob("*.png"))
    if grids:
        shutil.copy(grids[-1], bundle / "runs" / name / grids[-1].name)
    step_of = {int(row["epoch"]): int(row["step"]) for row in read_history(run / "history.csv")}
    print(f"{name}: {max(step_of)} epochs finished")
    for epoch in map(int, epochs.split()):
        checkpoint = run / "checkpoints" / f"step_{step_of.get(epoch, -1):09d}"
        if checkpoint.is_dir():
            target = exports / f"{name}-e{epoch}.safetensors"
            if not target.is_file():
                exports.mkdir(exist_ok=True)
                assert ddim(["export", "--checkpoint", str(checkpoint), "--out", str(target)]) == 0
            wanted.append(target)
with tarfile.open(out / "results.tar", "w") as tar:
    tar.add(bundle, arcname=".")
    tar.add(runs / "machine.txt", arcname="machine.txt")
for part in range(0, len(wanted), 4):  # each returned file holds at most 16 MiB
    with tarfile.open(out / f"exports{part // 4}.tar", "w") as tar:
        for file in wanted[part:part + 4]:
            tar.add(file, arcname=f"exports/{file.name}")
for file in sorted(out.iterdir()):
    size = file.stat().st_size
    print(f"{file.name}: {size / 2**20:.1f} MiB{'  (over 16 MiB: it will not come back)' if size > 16 * 2**20 else ''}")
PY
}
profile_loop() {
  # Why one training run reached only 34-48% of the bench step's images/s on the H200 (docs/results/recipe-gpu): the
  # improved conditional recipe's bench step (the loop's own batch, step and EMA update), then the training loop itself
  # for PROFILE_STEPS steps under cProfile, its host time by function (a host sync shows as time in item/tolist).
  mkdir -p "$OUT"
  local run
  run=$(mktemp -d)/run
  # shellcheck disable=SC2086
  python3 -m ddim bench --device "$DEVICE" --recipe improved --conditional --no-sampling $BENCH \
    --json "$OUT/bench-recipe.json" 2>&1 | grep -v "^W" | tee "$OUT/profile.txt"
  # shellcheck disable=SC2086
  python3 -m cProfile -o "$OUT/train.prof" -m ddim train --data "$DATA" --run-dir "$run" --recipe improved \
    --conditional --guidance 0 --kid-every 0 --max-steps "$PROFILE_STEPS" --no-progress --no-tensorboard \
    --device "$DEVICE" $TRAIN 2>&1 | grep -v "^W" | tail -20 | tee -a "$OUT/profile.txt"
  cp "$run/history.csv" "$OUT/profile-history.csv"
  # Written to the file first and then shown in part: `tee | head` would end tee with SIGPIPE (exit 141 under pipefail).
  python3 - "$OUT/train.prof" <<'PY' >>"$OUT/profile.txt" || return 1
import pstats, sys
stats = pstats.Stats(sys.argv[1], stream=sys.stdout)
stats.sort_stats("cumulative").print_stats(r"ddim/(training|data|ema)", 25)  # the loop's own functions
stats.sort_stats("tottime").print_stats(40)  # where the host time goes
PY
  grep -A 30 -m 1 "cumulative" "$OUT/profile.txt"
}
if [ "${CHECK:-all}" = recipe ]; then
  recipe_runs
  exit $?
fi
if [ "${CHECK:-all}" = profile ]; then
  profile_loop
  exit $?
fi
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
