"""scripts/conditional_results.py: the conditional run's guidance sweep, evaluations against all the images, labelled
class grid and built-in model, on a tiny conditional run (two classes of shapes, 16 px, 75 px KID)."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import SHAPE_CLASSES, captured_figures, write_shapes
from test_conditional import TRAIN
from test_results_section import load_script

from ddim.cli import main

results = load_script("conditional_results")


def test_best_weight_is_the_lowest_kid_above_one_with_fid_breaking_a_tie() -> None:
    points = [{"guidance": 0.0, "kid": 0.01, "fid": 1.0}, {"guidance": 1.0, "kid": 0.02, "fid": 1.0},
              {"guidance": 1.5, "kid": 0.05, "fid": 9.0}, {"guidance": 2.0, "kid": 0.04, "fid": 8.0},
              {"guidance": 3.0, "kid": 0.04, "fid": 7.0}]
    assert results.best_weight(points) == 3.0  # 0 has the lowest KID of all, but the choice is among weights > 1
    assert results.best_weight(points[:2]) == 1.0


def test_the_grid_classes_are_flowers_102_names() -> None:
    from ddim.data.flowers import class_names

    assert len(results.CLASSES) == 8 and set(results.CLASSES) <= set(class_names())


@pytest.mark.slow
def test_a_conditional_run_is_published_with_its_sweep_grid_and_builtin_model(tmp_path: Path, monkeypatch,
                                                                             capsys) -> None:
    data, run = write_shapes(tmp_path / "data", per_class=16), tmp_path / "run"
    assert main(["train", "--data", str(data), "--run-dir", str(run), "--max-steps", "6", *TRAIN]) == 0
    builtin = tmp_path / "builtin.safetensors"
    monkeypatch.setattr(results, "BUILTIN_FILE", builtin)
    out = tmp_path / "published"
    figures = captured_figures(monkeypatch)
    arguments = [str(run), "--out", str(out), "--weights", "0,1,2,3", "--num-all", "12", "--classes",
                 ",".join(SHAPE_CLASSES), "--kid-size", "75", "--subsets", "2", "--subset-size", "4",
                 "--extra", "--device cpu --steps 2", "--builtin", "yes"]
    assert results.main(arguments) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [point["guidance"] for point in summary["sweep"]] == [0.0, 1.0, 2.0, 3.0]
    assert all(point["reference"] == "validation" and point["num_generated"] == point["num_real"]
               for point in summary["sweep"])
    best = summary["best_guidance"]
    assert best == results.best_weight(summary["sweep"]) and best in (2.0, 3.0)
    assert [point["guidance"] for point in summary["all"]] == [0.0, 1.0, best]
    assert all(point["reference"] == "all" and point["num_generated"] == 12 for point in summary["all"])
    for weight in (0, 1, best):  # the evaluations behind the points, as ddim evaluate --json writes them
        evaluated = json.loads((out / "all" / f"w{weight:g}.json").read_text())
        assert evaluated["settings"]["guidance"] == weight and evaluated["class"].startswith("all")
    for name in ("kid-vs-guidance.png", "classes.png", "samples_64.png", "losses.png", "history.csv", "results.json"):
        assert (out / name).is_file(), name
    guidance_figure = figures[-1]  # the last plot drawn: KID and FID against guidance, at the KID size measured
    assert [axis[4] for axis in guidance_figure["axes"]] == ["KID (75 px Inception)", "FID (75 px Inception)"]
    assert [len(axis[5]) for axis in guidance_figure["axes"]] == [2, 2]  # the sweep, and against all images
    assert summary["classes"]["names"] == list(SHAPE_CLASSES) and "--class" in summary["classes"]["command"]
    shown = shlex.split(summary["classes"]["command"])  # a command a reader can paste: two-word classes quoted
    assert shown[shown.index("--class") + 1:][:2] == list(SHAPE_CLASSES), summary["classes"]["command"]
    assert str(tmp_path) not in "".join(path.read_text() for path in out.rglob("*.json"))  # portable
    from ddim.loading import load_model

    shipped = load_model(builtin)
    assert shipped.class_names == tuple(SHAPE_CLASSES) and shipped.origin.metadata["dtype"] == "fp16"
    capsys.readouterr()
    assert results.main(arguments) == 0  # run again: every evaluation is kept, none measured again
    out_text = capsys.readouterr().out
    assert out_text.count("kept ") == 4 + 3 and "ddim evaluate" not in out_text



@pytest.mark.slow
def test_a_run_trained_elsewhere_is_published_from_its_export_and_history(tmp_path: Path, monkeypatch) -> None:
    """The GPU route brings back a run's history.csv and exports of chosen epochs, not its checkpoints."""
    data, run = write_shapes(tmp_path / "data", per_class=16), tmp_path / "run"
    assert main(["train", "--data", str(data), "--run-dir", str(run), "--max-steps", "3", *TRAIN]) == 0  # 1 step/epoch
    exported = tmp_path / "run-e3.safetensors"
    assert main(["export", "--checkpoint", str(run), "--out", str(exported)]) == 0
    shutil.rmtree(run / "checkpoints")
    builtin = tmp_path / "builtin.safetensors"
    monkeypatch.setattr(results, "BUILTIN_FILE", builtin)
    captured_figures(monkeypatch)
    out = tmp_path / "published"
    assert results.main([str(run), "--model", str(exported), "--out", str(out), "--weights", "0,2", "--num-all",
                         "12", "--classes", ",".join(SHAPE_CLASSES), "--kid-size", "75", "--subsets", "2",
                         "--subset-size", "4", "--extra", "--device cpu --steps 2", "--builtin", "yes"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["epoch"], summary["step"], Path(summary["checkpoint"]).name) == (3, 3, exported.name)
    assert [point["guidance"] for point in summary["all"]] == [0.0, 1.0, 2.0]
    assert json.loads((out / "all" / "w2.json").read_text())["checkpoint"].endswith(exported.name)
    published = json.loads((out / "results.json").read_text())
    assert (published["epochs_completed"], published["images_seen"]) == (3, 3 * 16)
    assert [row["epoch"] for row in published["per_epoch"]] == [1, 2, 3]
    from ddim.loading import load_model

    shipped = load_model(builtin)
    assert shipped.class_names == tuple(SHAPE_CLASSES) and shipped.origin.metadata["step"] == "3"

    # An export that is not an epoch of this history (here: the history lost its last epoch) is refused by name.
    lines = (run / "history.csv").read_text().splitlines(keepends=True)
    (run / "history.csv").write_text("".join(lines[:-1]))
    with pytest.raises(SystemExit, match=r"run-e3.safetensors \(epoch 3, step 3\) is not an epoch of .*history.csv "
                                         r"\(up to epoch 3 it ends at epoch 2, step 2\)"):
        results.main([str(run), "--model", str(exported), "--out", str(tmp_path / "again")])
    with pytest.raises(SystemExit, match="not a file written by ddim export"):
        results.main([str(run), "--model", str(run / "history.csv"), "--out", str(tmp_path / "again")])


def fake_conditional(folder: Path, kid: dict[int, float], fid: dict[float, float], kid_size: int = 299) -> Path:
    """docs/results/conditional as scripts/conditional_results.py writes it, with given numbers."""
    folder.mkdir(parents=True)
    per_epoch = [{"epoch": epoch, "val_kid_75px": value} for epoch, value in sorted(kid.items())]
    (folder / "results.json").write_text(json.dumps({"epochs_completed": max(kid), "epochs_planned": 50,
                                                     "images_seen": 32_704 * max(kid), "per_epoch": per_epoch}))

    def point(weight: float, reference: str, num: int) -> dict:
        return {"guidance": weight, "kid": fid[weight] / 1000, "kid_std": 0.001, "fid": fid[weight], "steps": 20,
                "num_generated": num, "num_real": num, "reference": reference, "kid_size": kid_size,
                "sampler": "ddim"}

    best = min((w for w in fid if w > 1), key=fid.get)
    summary = {"checkpoint": "conditional/checkpoints/step_000025550", "epoch": max(kid), "best_guidance": best,
               "sweep": [point(w, "validation", 1638) for w in sorted(fid)],
               "all": [point(w, "all", 8189) for w in sorted({0.0, 1.0, best})],
               "classes": {"command": "ddim sample --checkpoint conditional/checkpoints/step_000025550 --class "
                                      "sunflower 'water lily' --num 8 --guidance 2"}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_readme_part_of_the_conditional_run_reads_its_numbers_and_judges_the_goals(tmp_path: Path) -> None:
    from test_results_section import REPO

    conditional = load_script("results_conditional")
    keras = json.loads((REPO / "docs" / "results" / "results.json").read_text())
    keras_all = json.loads((REPO / "docs" / "results" / "evaluate-all.json").read_text())
    kid = {epoch: 1.0 / epoch for epoch in range(1, 51)}  # 0.53 first reached at epoch 2; 0.10 at 10; 0.02 at 50
    fid = {0.0: 44.0, 1.0: 40.0, 1.5: 36.0, 2.0: 33.5, 3.0: 34.0}
    text = "\n".join(conditional.render_conditional(fake_conditional(tmp_path / "c", kid, fid), keras, keras_all,
                                                    ["pretrained"]))
    assert "Built in as `--checkpoint pretrained`" in text
    assert "| first epoch at or below the Keras example's final per-epoch KID (0.53) | 2 | 32 |" in text
    assert "| FID (KID) guidance 2 (the best of the sweep above 1)" in text and "**33.5**" in text
    assert "**53.6** (KID 0.0505" in text  # the Keras example's FID against all images beside guidance 0
    assert "--checkpoint pretrained --class sunflower 'water lily'" in text  # the grid's command, shipped model
    assert "50 of 50 epochs, as many training images as the Keras example's run (1,635,200)" in text
    assert "1,638 validation images, 299 px" in text
    assert "| guidance | 0 | 1 | 1.5 | 2 | 3 |" in text
    assert text.count("**met**") == 5
    fid[2.0], kid[50] = 38.0, 0.41
    fid[0.0] = 46.5
    text = "\n".join(conditional.render_conditional(fake_conditional(tmp_path / "d", kid, fid), keras, None, []))
    assert "FID against all images at the best guidance (goal ≤ 35): 34.0, **missed**" not in text  # 3 is best now
    assert "(goal ≤ 35): 34.0, **met**" in text
    assert "per-epoch KID after epoch 50 (goal ≤ 0.3): 0.41, **missed** by 0.11" in text
    assert "at guidance 0 (goal ≤ 45): 46.5, **missed** by 1.5" in text
    assert conditional.render_conditional(tmp_path / "nothing", keras, None, []) == []
    partial = {epoch: 2.0 / epoch for epoch in range(1, 21)}  # a run published before its end, measured at 75 px
    text = "\n".join(conditional.render_conditional(fake_conditional(tmp_path / "e", partial, {0.0: 1050.1, 1.0: 990.0,
                                                                                              3.0: 980.0}, 75),
                                                    keras, None, []))
    assert "20 of 50 epochs, 654,080 training images seen (the Keras example's run: 1,635,200)" in text
    assert "1,638 validation images, 75 px" in text and "after epoch 50 (goal ≤ 0.3): not reached" in text
    assert "at guidance 0 (goal ≤ 45): 1050.1, **missed** by 1005.1" in text  # never 1.01e+03
    assert "by epoch 12 (goal ≤ 12): epoch 4, **met**" in text


def test_with_the_conditional_run_published_the_results_section_leads_with_it(tmp_path: Path) -> None:
    import shutil

    from test_results_section import REPO, section

    folder = tmp_path / "results"
    shutil.copytree(REPO / "docs" / "results", folder, ignore=shutil.ignore_patterns("conditional"))
    before = section.render(folder)
    assert "### The Keras example's recipe reproduced" not in before  # nothing to set it apart from yet
    fake_conditional(folder / "conditional", {epoch: 1.0 / epoch for epoch in range(1, 51)},
                     {0.0: 44.0, 1.0: 40.0, 2.0: 33.5})
    text = section.render(folder)
    lead, reproduction = text.split("### The Keras example's recipe reproduced (`--checkpoint keras-example`")
    assert "### The improved recipe, class-conditional" in lead and "FID at 299 px against all 8,189" in reproduction
    assert reproduction.split("\n", 2)[2] in before  # the reproduction's own text is unchanged


def test_wrong_inputs_are_named_before_any_evaluation(tmp_path: Path, capsys) -> None:
    """A missing run, a class the model lacks, a missing data folder or a bad weight is one line before hours of
    evaluation start, and nothing is written (the grid's classes were checked only at the end before)."""
    data, run = write_shapes(tmp_path / "data", per_class=16), tmp_path / "run"
    assert main(["train", "--data", str(data), "--run-dir", str(run), "--max-steps", "1", *TRAIN]) == 0
    out = tmp_path / "published"
    with pytest.raises(SystemExit) as stop:
        results.main([str(tmp_path / "no-run"), "--out", str(out)])
    assert str(stop.value) == f"conditional_results.py: error: checkpoint {tmp_path / 'no-run'} does not exist"
    with pytest.raises(SystemExit) as stop:
        results.main([str(run), "--out", str(out), "--data", str(tmp_path / "no-data"), "--classes",
                      ",".join(SHAPE_CLASSES)])
    assert str(stop.value).startswith(f"conditional_results.py: error: data folder {tmp_path / 'no-data'} does not "
                                      "exist")
    capsys.readouterr()
    for options, message in ((["--classes", f"{SHAPE_CLASSES[0]},sunflower"],
                              f"--classes: {run} has no class 'sunflower'"),
                             (["--weights", "0,x"], "--weights must be numbers separated by commas, got '0,x'"),
                             (["--weights", "0,-1"], "--weights must be finite and at least 0, got '0,-1'"),
                             (["--weights", "0,inf"], "--weights must be finite and at least 0, got '0,inf'")):
        with pytest.raises(SystemExit) as stop:
            results.main([str(run), "--out", str(out), *options])
        assert stop.value.code == 2 and message in capsys.readouterr().err, options
    assert not out.exists()
