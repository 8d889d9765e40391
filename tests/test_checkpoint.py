"""Checkpoints: a round trip rebuilds the model and samples identical images; bad files are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import loaded, step_checkpoints

from ddim.checkpoint import (
    CheckpointError,
    load_training_state,
    prune_checkpoints,
    resolve_checkpoint,
    write_checkpoint,
)
from ddim.config import ModelConfig, RunConfig
from ddim.model import DiffusionModel, generate_images

TINY = ModelConfig(image_size=16, widths=(8, 16), block_depth=1)


def trained_looking_model() -> DiffusionModel:
    torch.manual_seed(0)
    model = DiffusionModel(TINY)
    with torch.no_grad():
        for tensor in [*model.network.parameters(), *model.ema_network.parameters()]:
            tensor.normal_(0, 0.1)
        model.normalizer.mean.copy_(torch.tensor([0.4, 0.5, 0.3]))
        model.normalizer.variance.copy_(torch.tensor([0.05, 0.06, 0.07]))
    model.network.train()(torch.randn(4, 3, 16, 16), torch.rand(4, 1, 1, 1))  # moves BatchNorm statistics
    return model


def test_round_trip_rebuilds_the_model_and_samples_identical_images(tmp_path: Path) -> None:
    model = trained_looking_model()
    config = RunConfig(model=TINY)
    folder = write_checkpoint(tmp_path / "run" / "checkpoints" / "step_000000007", model, config, {"step": 7})
    again, again_config, found = loaded(tmp_path / "run")  # a run folder resolves to its latest checkpoint
    assert found == folder and again_config == config
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    before = generate_images(model, seed=3, indices=range(5), steps=4)
    after = generate_images(again, seed=3, indices=range(5), steps=4)
    assert torch.equal(before, after)
    assert load_training_state(folder)["step"] == 7


def test_checkpoint_paths_resolve_from_run_folder_checkpoint_folder_or_weights(tmp_path: Path) -> None:
    model, config = trained_looking_model(), RunConfig(model=TINY)
    for step in (5, 10, 15):
        write_checkpoint(tmp_path / "checkpoints" / f"step_{step:09d}", model, config)
    latest = tmp_path / "checkpoints" / "step_000000015"
    assert resolve_checkpoint(tmp_path) == latest
    assert resolve_checkpoint(latest) == latest
    assert resolve_checkpoint(latest / "model.safetensors") == latest
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in step_checkpoints(tmp_path)] == ["step_000000010", "step_000000015"]


def test_missing_truncated_and_foreign_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        loaded(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        loaded(tmp_path / "empty")
    folder = write_checkpoint(tmp_path / "c", trained_looking_model(), RunConfig(model=TINY))
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        loaded(folder)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, weights)  # a safetensors file from elsewhere
    with pytest.raises(CheckpointError, match="not a ddim checkpoint"):
        loaded(folder)
    write_checkpoint(folder, trained_looking_model(), RunConfig(model=TINY))
    (folder / "config.json").write_text('{"model": {"widths": [8, 32], "image_size": 16, "block_depth": 1}}')
    with pytest.raises(CheckpointError, match="does not match the model"):
        loaded(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        loaded(folder)
