"""The per-epoch KID of a run trained without it (``--kid-every 0``: a GPU machine that cannot hold the Inception
weights, say), measured afterwards from checkpoints or exports of chosen epochs, with the protocol training uses.

    python scripts/epoch_kid.py RUN_DIR MODEL [MODEL ...] [--data DIR] [--device cpu] [--inception-weights FILE]
                                [--kid-steps N] [--guidance G] [--csv FILE]

MODEL: a checkpoint folder of the run (``RUN_DIR/checkpoints/step_*``) or a file written by ``ddim export`` from one
(fp16 weights are what a GPU machine can bring back; they move the KID by far less than its noise, see the test). The
run's own settings make the measurement: ``kid_steps`` DDIM steps, ``kid_image_size`` px, one estimate per
``kid_batch_size`` images, the evaluation seed, ``guidance``, as many images as the validation split holds (a
conditional run's in the validation classes). Each model's step names its epoch (the history row with that step),
and RUN_DIR/history.csv gets that epoch's ``val_kid``; the other rows and columns are kept.

``--kid-steps N`` measures with N DDIM steps instead of the run's and only prints (the history keeps the run's
protocol): how much of a per-epoch KID is the protocol's few-step sampler rather than the network. ``--guidance G``
likewise measures a conditional run at another guidance weight and only prints: a run whose history is at guidance 0
(the network's class-free branch, trained on ``class_dropout`` of the images) shows there what its conditional
samples (``--guidance 1``) would score.

``--csv FILE`` also records each measurement as a row of FILE (epoch, step, guidance, kid_steps, kid), the
printed-only ones included; a row measured again (the same epoch, guidance and steps) is replaced, the others kept.
scripts/recipe_results.py publishes a run's ``guided-kid.csv`` beside its history (the guided per-epoch KID curves).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

from ddim.cli.errors import one_line_errors
from ddim.config import RunConfig
from ddim.data import run_splits
from ddim.evaluation import keras_kid
from ddim.files import write_text
from ddim.layout import RunLayout
from ddim.loading import load_model
from ddim.metrics.inception import extract_features, load_inception
from ddim.reports import read_history, write_history
from ddim.runtime import resolve_device, resolve_runtime
from ddim.seeding import EVALUATION, mix_seed

WHOLE = ("epoch", "step")  # columns that read_history turns into floats and the history writes as integers
CSV_COLUMNS = ("epoch", "step", "guidance", "kid_steps", "kid")


def _key(row: dict) -> tuple[float, int, int]:
    """A --csv row's identity: a row measured again with the same guidance, steps and epoch replaces it."""
    return float(row["guidance"]), int(row["kid_steps"]), int(row["epoch"])


def recorded(path: Path) -> dict[tuple[float, int, int], dict]:
    """The rows of a --csv file by :func:`_key` ({} where it does not exist yet); a file of another kind is refused."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise SystemExit(f"--csv {path}: not a file this script wrote (its columns are "
                             f"{', '.join(reader.fieldnames or ())}, expected {', '.join(CSV_COLUMNS)})")
        return {_key(row): row for row in reader}


def record(path: Path, rows: list[dict]) -> None:
    """Put ``rows`` (:data:`CSV_COLUMNS`) into the CSV at ``path``: a row with the same epoch, guidance and
    kid_steps as one already there replaces it; the file stays sorted by guidance, steps and epoch."""
    kept = recorded(path)
    kept.update({_key(row): row for row in rows})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept[k] for k in sorted(kept))
    write_text(path, text.getvalue())


def epoch_kids(run_dir: Path, models: list[str], *, data: str | None = None, device: str = "auto",
               inception_weights: str | None = None, kid_steps: int | None = None,
               guidance: float | None = None, csv_file: Path | None = None) -> dict[int, float]:
    """``{epoch: KID}`` for each of ``models`` (see the module's text), also written into the run's history unless
    ``kid_steps`` (DDIM steps other than the run's) or ``guidance`` (a weight other than the run's) is given, and
    into ``csv_file`` (:func:`record`) where given."""
    layout = RunLayout(Path(run_dir))
    if not layout.history.is_file():
        raise SystemExit(f"{layout.history} does not exist: RUN_DIR must be the run folder the models come from")
    config = RunConfig.load(layout.config)
    train = config.train
    if guidance is not None and not config.model.conditional:
        raise SystemExit(f"--guidance {guidance}: {layout.config} is not a conditional run (it has no classes to guide)")
    notes = " and ".join(([f"{kid_steps} DDIM steps"] if kid_steps is not None else [])
                         + ([f"guidance {guidance:g}"] if guidance is not None else []))
    history = read_history(layout.history)
    epoch_of_step = {int(row["step"]): int(row["epoch"]) for row in history}
    runtime = resolve_runtime(resolve_device(device), train.precision, train.channels_last, train.compile)
    splits = run_splits(config, data=data)
    extractor = load_inception(inception_weights or train.inception_weights, train.kid_image_size, runtime.device)
    real = extract_features(extractor.to(runtime.device), splits.validation)
    labels = splits.validation_labels.tolist() if config.model.conditional else None
    if csv_file is not None:
        recorded(Path(csv_file))  # a file of another kind is refused now, not after the measurements
    steps, weight = kid_steps or train.kid_steps, train.guidance if guidance is None else guidance
    kids: dict[int, float] = {}
    for source in models:
        model = load_model(source, device=runtime.device).to(memory_format=runtime.memory_format())  # as trained
        step = model.origin.step
        if step not in epoch_of_step:
            raise SystemExit(f"{source}: its step ({step}) ends no epoch of {layout.history} "
                             f"(its epochs end at steps {', '.join(map(str, sorted(epoch_of_step)))})")
        if model.origin.config.model != config.model:
            raise SystemExit(f"{source}: its network settings are not those of {layout.config}")
        kid = keras_kid(model, extractor, real, count=len(splits.validation), steps=steps,
                        seed=mix_seed(train.seed, EVALUATION), batch_size=train.kid_batch_size,
                        generation_batch_size=train.eval_batch_size, runtime=runtime, labels=labels,
                        guidance=weight)
        kids[epoch_of_step[step]] = kid
        print(f"epoch {epoch_of_step[step]} (step {step}, {source}): KID {kid:.4f}"
              f"{f' with {notes} (not written into the history)' if notes else ''}", flush=True)
        if csv_file is not None:  # at once: a long series stopped midway keeps what it measured
            record(Path(csv_file), [{"epoch": epoch_of_step[step], "step": step, "guidance": f"{weight:g}",
                                     "kid_steps": steps, "kid": kid}])
    if notes:  # another protocol than the run's: printed only
        return kids
    for row in history:
        row.update({key: int(row[key]) for key in WHOLE})
        if row["epoch"] in kids:
            row["val_kid"] = kids[row["epoch"]]
    write_history(history, layout.history)
    return kids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the run folder (its config.json and history.csv)")
    parser.add_argument("models", nargs="+", help="checkpoint folders or ddim export files of the run's epochs")
    parser.add_argument("--data", help="the run's images, where they are not where it was trained")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--inception-weights", help="the FID Inception weights (default: the run's, or the bundled)")
    parser.add_argument("--kid-steps", type=int, default=None,
                        help="DDIM steps instead of the run's kid_steps; only prints, the history is kept")
    parser.add_argument("--guidance", type=float, default=None,
                        help="a conditional run's guidance weight instead of the run's; only prints, the history is "
                             "kept")
    parser.add_argument("--csv", type=Path, default=None,
                        help="also record each measurement in this CSV (epoch, step, guidance, kid_steps, kid)")
    args = parser.parse_args()
    if args.kid_steps is not None and args.kid_steps < 1:
        parser.error(f"--kid-steps must be at least 1, got {args.kid_steps}")
    if args.guidance is not None and not (math.isfinite(args.guidance) and args.guidance >= 0):
        parser.error(f"--guidance must be a finite number of at least 0, got {args.guidance}")
    with one_line_errors("epoch_kid.py"):
        epoch_kids(args.run_dir, args.models, data=args.data, device=args.device,
                   inception_weights=args.inception_weights, kid_steps=args.kid_steps, guidance=args.guidance,
                   csv_file=args.csv)


if __name__ == "__main__":
    main()
