"""The sampler study: KID and FID against network evaluations, its plot and CSV, and a study that continues."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import captured_figures, header

from ddim.cli import main


def study_rows(checkpoint: str = "runs/a/checkpoints/best") -> list[dict[str, Any]]:
    return [{"checkpoint": checkpoint, "sampler": sampler, "steps": e, "evaluations": e, "kid": 0.03 + 0.001 * e,
             "kid_std": 0.002, "kid_per_batch": 0.03, "fid": 40.0 + e, "kid_size": 75, "num": 500, "num_real": 1638,
             "reference": "validation", "subsets": 50, "subset_size": 1000, "seed": 0, "seconds": 1.0}
            for sampler in ("ddim", "ddim eta=1") for e in (2, 5, 10)]


def test_plot_study_labels_every_panel_names_the_checkpoint_and_takes_titles(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ddim.plots import plot_study

    figures = captured_figures(monkeypatch)
    plot_study(study_rows(), tmp_path / "default.png")  # narrow value ranges: once a panel without tick labels
    plot_study(study_rows(), tmp_path / "titled.png", title="flowers, EMA", subtitle="my protocol")
    default, titled = figures
    assert default["texts"][0] == "sample quality of runs/a/checkpoints/best"
    assert "75 px Inception" in default["texts"][1] and "N = 500" in default["texts"][1]
    assert titled["texts"] == ["flowers, EMA", "my protocol"]
    for axis in default["axes"]:
        assert [label for label in axis[1] if label] == ["2", "5", "10"]  # every measured evaluation count
        assert any(axis[2])
        assert axis[4].endswith("(75 px Inception, N = 500)")
        assert axis[5][0] != axis[5][1]  # the two samplers differ in marker and dashes


def test_plot_study_labels_each_budget_once_when_heun_lands_next_to_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ddim.plots import evaluation_ticks, plot_study

    figures = captured_figures(monkeypatch)
    rows = [{**row, "sampler": sampler, "evaluations": e, "steps": e}
            for row in study_rows()[:1] for sampler in ("ddim", "dpmpp-2m") for e in (5, 10, 20, 50)]
    rows += [{**rows[0], "sampler": "heun", "evaluations": e, "steps": (e + 1) // 2} for e in (5, 9, 19, 49)]
    plot_study(rows, tmp_path / "study.png")
    for axis in figures[0]["axes"]:  # 9, 19 and 49 (heun alone) would print over 10, 20 and 50 (three samplers)
        assert [label for label in axis[1] if label] == ["5", "10", "20", "50"]
        assert axis[0][0] < 5 and axis[0][1] > 50  # every point still inside the axis
    assert evaluation_ticks([1, 2, 3, 5, 7, 10, 15, 20, 30, 50]) == [1, 2, 3, 5, 7, 10, 15, 20, 30, 50]  # the default
    assert evaluation_ticks([9, 10, 10]) == [10] and evaluation_ticks([9, 10]) == [10]  # ties: the larger
    assert evaluation_ticks([]) == []


def test_study_rows_and_csv_carry_checkpoint_kid_size_n_and_sampler(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:

    import ddim.study

    real = np.zeros((20, 4))
    monkeypatch.setattr(ddim.study, "reference_features", lambda *args, **kwargs: (real, None))
    monkeypatch.setattr(ddim.study, "generated_features", lambda *args, num, **kwargs: np.zeros((num, 4)))
    monkeypatch.setattr(ddim.study, "feature_metrics",
                        lambda *args, **kwargs: {"kid": 0.1, "kid_std": 0.01, "kid_per_batch": 0.1, "fid": 9.0})
    rows = ddim.study.run_study(SimpleNamespace(class_names=()), None, SimpleNamespace(image_size=299), samplers=[("ddim", {}), ("heun", {})],
                                evaluations=[2, 3], num=10, seed=4, checkpoint="runs/a")
    assert [(r["sampler"], r["evaluations"]) for r in rows] == [("ddim", 2), ("ddim", 3), ("heun", 1), ("heun", 3)]
    assert {(r["checkpoint"], r["kid_size"], r["num"], r["num_real"], r["seed"]) for r in rows} == {("runs/a", 299, 10, 20, 4)}

    ddim.study.write_study(rows, tmp_path / "study.csv")
    assert header(tmp_path / "study.csv") == list(ddim.study.STUDY_COLUMNS)
    with open(tmp_path / "study.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert written[2]["sampler"] == "heun" and written[2]["kid_size"] == "299" and written[2]["num"] == "10"
    old = [{"sampler": "ddim", "steps": 5, "evaluations": 5, "kid": 0.1, "kid_std": 0.0, "fid": 9.0, "num": 10}]
    ddim.study.write_study(old, tmp_path / "old.csv", checkpoint="runs/b")  # rows from an older caller
    with open(tmp_path / "old.csv", newline="") as handle:
        assert next(csv.DictReader(handle))["checkpoint"] == "runs/b"


def test_study_writes_kid_against_evaluations(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    import ddim.plots
    import ddim.study

    titles, plot = [], ddim.plots.plot_study

    def plotted(rows, path, **options):
        titles.append(options.get("title"))
        return plot(rows, path, **options)

    monkeypatch.setattr(ddim.plots, "plot_study", plotted)
    assert main(["study", "--checkpoint", str(tiny_run), "--samplers", "ddim,heun,ddim:eta=1", "--evaluations", "1,2,4",
                 "--num", "12", "--subsets", "3", "--subset-size", "10", "--out", str(tmp_path), "--device", "cpu",
                 "--no-progress", "--title", "tiny flowers"]) == 0
    with open(tmp_path / "study.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sampler"], int(r["evaluations"])) for r in rows] == [
        ("ddim", 1), ("ddim", 2), ("ddim", 4), ("heun", 1), ("heun", 3), ("ddim eta=1", 1), ("ddim eta=1", 2),
        ("ddim eta=1", 4)]  # heun spends 2 * steps - 1: the most steps within 2 is 1 (measured once), within 4 is 2
    assert all(np.isfinite(float(r["kid"])) and np.isfinite(float(r["fid"])) for r in rows)
    assert (tmp_path / "study.png").is_file() and titles == ["tiny flowers"]  # --title reaches the plot
    assert {int(r["subset_size"]) for r in rows} == {10}  # asked 10 of 12 images: 10 used

    assert main(["study", "--checkpoint", str(tiny_run), "--samplers", "ddim", "--evaluations", "1", "--num", "12",
                 "--subsets", "3", "--out", str(tmp_path / "whole"), "--device", "cpu", "--no-progress"]) == 0
    study = json.loads((tmp_path / "whole" / "study.json").read_text())
    assert study["subset_size"] == study["points"][0]["subset_size"] == 12  # not the default 1000 asked for


def test_an_interrupted_study_continues_where_it_stopped(tiny_run: Path, tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    import ddim.study

    measure = ["--samplers", "ddim,heun", "--evaluations", "1,3", "--num", "12", "--subsets", "3", "--subset-size",
               "10", "--device", "cpu", "--no-progress"]
    generate = ddim.study.generated_features
    calls: list[int] = []

    def counted(*args, **kwargs):
        calls.append(kwargs["steps"])
        # a point's finished batches are kept where an interrupted point continues (tested with ddim evaluate's)
        assert kwargs["partial_dir"] == Path(os.environ["DDIM_CACHE_DIR"]) / "partial"
        if len(calls) == 3 and interrupt:
            raise KeyboardInterrupt  # as if stopped while measuring the third point
        return generate(*args, **kwargs)

    monkeypatch.setattr(ddim.study, "generated_features", counted)
    study = tmp_path / "study"
    interrupt = True
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--out", str(study)]) == 130  # Ctrl-C's status
    saved = json.loads((study / "study.json").read_text())
    assert saved["finished"] is False and [(p["sampler"], p["steps"]) for p in saved["points"]] == [("ddim", 1), ("ddim", 3)]
    assert len(list(csv.DictReader((study / "study.csv").open()))) == 2

    interrupt, calls[:] = False, []
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--out", str(study)]) == 0
    assert calls == [1, 2]  # only heun's two points are measured
    printed = capsys.readouterr().out
    assert "2 points measured earlier with these settings" in printed and printed.count("(measured earlier)") == 2
    resumed = json.loads((study / "study.json").read_text())
    assert resumed["finished"] is True and (study / "study.png").is_file()

    calls[:] = []
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "study.json").read_text())
    assert len(calls) == 4
    keys = ("sampler", "steps", "evaluations", "kid", "kid_std", "fid")
    assert [[p[k] for k in keys] for p in resumed["points"]] == [[p[k] for k in keys] for p in whole["points"]]

    calls[:] = []  # other settings, other weights or --recompute: every point is measured again
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--seed", "5", "--out", str(study)]) == 0
    assert len(calls) == 4 and "measured other settings (seed was 0, now 5)" in capsys.readouterr().out
    earlier_weights = sorted((tiny_run / "checkpoints").glob("step_*"))[0]
    calls[:] = []
    assert main(["study", "--checkpoint", str(earlier_weights), *measure, "--seed", "5", "--out", str(study)]) == 0
    assert len(calls) == 4 and "measured other settings (other weights)" in capsys.readouterr().out
    calls[:] = []
    assert main(["study", "--checkpoint", str(earlier_weights), *measure, "--seed", "5", "--recompute",
                 "--out", str(study)]) == 0
    assert len(calls) == 4 and "measured earlier" not in capsys.readouterr().out


def test_earlier_points_come_only_from_a_readable_study_of_the_same_protocol(tmp_path: Path) -> None:
    from ddim.study import earlier_points

    protocol = {"weights_sha256": "ab", "num": 8}
    path = tmp_path / "study.json"
    assert earlier_points(path, protocol) == ([], "")
    point = {"sampler": "ddim", "steps": 5, "kid": 0.1, "fid": 20.0}
    path.write_text(json.dumps({"points": [point]}))  # written before studies recorded their protocol
    assert earlier_points(path, protocol)[1].endswith("does not record its settings (an older ddim wrote it); "
                                                      "measuring every point")
    path.write_text(json.dumps({"protocol": protocol, "points": [point]}))
    assert earlier_points(path, protocol) == ([point], f"{path}: 1 point measured earlier with these settings")
    edited = [{"sampler": "heun"}, {**point, "kid": "abc"}, {**point, "fid": float("nan")}, {**point, "steps": True}]
    path.write_text(json.dumps({"protocol": protocol, "points": [point, *edited]}))  # NaN: json writes NaN
    assert earlier_points(path, protocol) == ([point], f"{path}: 1 point measured earlier with these settings (4 "
                                                       "without a valid KID and FID will be measured again)")
    path.write_text('{"protocol": ')
    assert earlier_points(path, protocol)[0] == [] and "cannot be read" in earlier_points(path, protocol)[1]
