#!/usr/bin/env bash
# Every number of the README's Results section from one finished run, written into docs/results/:
#   samples_64.png, history.csv, losses.png, results.json      (scripts/publish_results.py)
#   the built-in model src/ddim/pretrained/flowers102-64px.safetensors   (BUILTIN=yes, the default)
#   evaluate-validation.json  KID ± std and FID at 299 px, as many samples as validation images (1,638)
#   evaluate-all.json         FID against all 8,189 images with as many samples (N > 2,048)
#   study/                    the sampler study: KID against network evaluations (csv, png, json)
# and then the README's Results section from all of them (scripts/results_section.py; skipped where OUT is not
# docs/results).
#
#   bash scripts/final_results.sh RUN_DIR_OR_CHECKPOINT [DATA_DIR]
#
# On the 2-core CPU this takes about two hours (most of it the study and the 8,189 samples); the
# environment variables below shrink it for a trial: NUM_ALL=64 STUDY_NUM=32 EVALUATIONS=5,10 ...
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: bash scripts/final_results.sh RUN_DIR_OR_CHECKPOINT [DATA_DIR]}
DATA=${2:-../shared/data/flowers102}
OUT=${OUT:-docs/results}
PYTHON=${PYTHON:-python}
HARDWARE=${HARDWARE:-a 2-core CPU (no GPU), at nice 10 in the background, shared with test runs (about 60 images/s when idle)}
BUILTIN=${BUILTIN:-yes}
NUM_VALIDATION=${NUM_VALIDATION:-}          # empty: as many as the validation set holds
NUM_ALL=${NUM_ALL:-8189}
STUDY_NUM=${STUDY_NUM:-}                    # empty: as many as the validation set holds
EVALUATIONS=${EVALUATIONS:-5,10,20,50}
SAMPLERS=${SAMPLERS:-ddim,ddim:eta=1,ddpm,dpmpp-2m,heun}
STUDY_TITLE=${STUDY_TITLE:-sampler study of the final EMA network of the run in docs/results}
EXTRA=${EXTRA:-}                            # e.g. "--device cpu --subset-size 50" for a trial
mkdir -p "$OUT"
# Run again after an interruption, it keeps an evaluation already written for this checkpoint with as many samples
# (all the reference images where NUM is empty), and the sampler study measures only the points it lacks (ddim
# study continues a study of the same weights and settings).
CHECKPOINT=$($PYTHON -c 'import sys; from ddim.checkpoint import resolve_checkpoint as r; print(r(sys.argv[1]))' "$RUN")
written_for_checkpoint() {  # FILE NUM
  [ -f "$1" ] && $PYTHON -c 'import json, sys
e = json.load(open(sys.argv[1]))
sys.path.insert(0, "scripts"); from portable_results import portable_path
sys.exit(e.get("checkpoint") not in (sys.argv[2], portable_path(sys.argv[2])) or e.get("num_generated") != int(sys.argv[3] or e.get("num_real")))' \
    "$1" "$CHECKPOINT" "$2" && echo "kept $1 (written earlier for $CHECKPOINT)"
}
set -x
$PYTHON scripts/publish_results.py "$RUN" --out "$OUT" --hardware "$HARDWARE" --builtin "$BUILTIN"
written_for_checkpoint "$OUT/evaluate-validation.json" "$NUM_VALIDATION" ||
  $PYTHON -m ddim evaluate --checkpoint "$RUN" --data "$DATA" ${NUM_VALIDATION:+--num $NUM_VALIDATION} \
    --no-progress --json "$OUT/evaluate-validation.json" $EXTRA
written_for_checkpoint "$OUT/evaluate-all.json" "$NUM_ALL" ||
  $PYTHON -m ddim evaluate --checkpoint "$RUN" --data "$DATA" --reference all --num "$NUM_ALL" \
    --no-progress --json "$OUT/evaluate-all.json" $EXTRA
$PYTHON -m ddim study --checkpoint "$RUN" --data "$DATA" --samplers "$SAMPLERS" --evaluations "$EVALUATIONS" \
  ${STUDY_NUM:+--num $STUDY_NUM} --title "$STUDY_TITLE" --no-progress --out "$OUT/study" $EXTRA
$PYTHON scripts/portable_results.py "$OUT"/*.json "$OUT/study/study.json"  # no path of this machine
if [ "$(realpath "$OUT")" = "$(realpath docs/results)" ]; then $PYTHON scripts/results_section.py; fi
