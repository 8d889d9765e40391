"""Publish a run's results into the repository: docs/results/ and the built-in model.

    python scripts/publish_results.py RUN_DIR [--hardware "2-core CPU"] [--builtin yes]

Writes docs/results/samples_64.png (64 images of the latest EMA network, 20 DDIM steps, seed 0),
history.csv and losses.png (copied from the run), results.json (epoch reached, images seen, wall
time, hardware, the per-epoch validation KID) and, with --builtin yes, exports the EMA network as the
built-in model (src/ddim/pretrained/flowers102-64px.safetensors, fp16). KID/FID at 299 px are measured
separately with `ddim evaluate ... --json docs/results/evaluate-*.json` (see the README's Results).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
from pathlib import Path

from ddim import __version__
from ddim.checkpoint import load_model, load_training_state
from ddim.export import BUILTIN_FILE, export_model
from ddim.files import write_text
from ddim.model import generate_images
from ddim.reports import save_grid

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (its latest checkpoint) or one of its checkpoints")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--hardware", default="2-core CPU (no GPU), background run at nice 10")
    parser.add_argument("--builtin", choices=("yes", "no"), default="no")
    args = parser.parse_args()
    model, config, checkpoint = load_model(args.run_dir)  # a run folder (its latest) or one checkpoint folder
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else args.run_dir
    state = load_training_state(checkpoint)
    history = state["history"]
    epoch = history[-1]["epoch"] if history else 0
    args.out.mkdir(parents=True, exist_ok=True)
    images = generate_images(model, seed=0, indices=range(64), steps=20, batch_size=64)
    save_grid(images, args.out / "samples_64.png", columns=8)
    for name in ("history.csv", "losses.png"):
        shutil.copyfile(run_dir / name, args.out / name)
    results = {
        "ddim_version": __version__, "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": checkpoint.name, "epochs_completed": int(epoch), "epochs_planned": config.train.epochs,
        "step": int(state["step"]), "images_seen": int(state["step"]) * config.train.batch_size,
        "wall_seconds": round(sum(r.get("seconds", 0) + r.get("eval_seconds", 0) for r in history), 1),
        "hardware": args.hardware,
        "per_epoch": [{"epoch": int(r["epoch"]), "train_noise_loss": r.get("train_noise_loss"),
                       "val_noise_loss": r.get("val_noise_loss"), "val_kid_75px": r.get("val_kid")} for r in history],
        "grid": {"file": "samples_64.png", "sampler": "ddim", "steps": 20, "seed": 0, "network": "EMA"},
        "config": config.to_dict(),
    }
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    if args.builtin == "yes":  # its data is named portably: flowers102 downloads where no --data is given
        portable = dataclasses.replace(config, data=dataclasses.replace(config.data, path="flowers102", cache_dir=None))
        export_model(model, portable, BUILTIN_FILE, info={"step": int(state["step"]), "epoch": int(epoch),
                                                        "source": "docs/results (the README's Results run)"})
    print(f"published epoch {epoch} (step {state['step']}) of {checkpoint} to {args.out}"
          + (f" and {BUILTIN_FILE}" if args.builtin == "yes" else ""))


if __name__ == "__main__":
    main()
