"""scripts/conditional_results.py: the conditional run's guidance sweep, evaluations against all the images, labelled
class grid and built-in model, on a tiny conditional run (two classes of shapes, 16 px, 75 px KID)."""

from __future__ import annotations

import json
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
    assert str(tmp_path) not in "".join(path.read_text() for path in out.rglob("*.json"))  # portable
    from ddim.loading import load_model

    shipped = load_model(builtin)
    assert shipped.class_names == tuple(SHAPE_CLASSES) and shipped.origin.metadata["dtype"] == "fp16"
    capsys.readouterr()
    assert results.main(arguments) == 0  # run again: every evaluation is kept, none measured again
    out_text = capsys.readouterr().out
    assert out_text.count("kept ") == 4 + 3 and "ddim evaluate" not in out_text
