"""``ddim demo``: the page's functions called through Gradio's own client against the served app, the
checkpoint's card from each kind of file, and the command's refusals (no Gradio, no built-in model, a taken port).

A tiny model trained for 2 epochs on synthetic images serves the page; every image the page draws is checked
against the public API's own images (one sampling path) and for pixels that are not constant.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

import ddim
from ddim.cli import main

gradio_client = pytest.importorskip("gradio_client",
                                    reason='the web demo is an optional extra: pip install "ddim[demo]"')
from gradio_client.exceptions import AppError

# Gradio's queue (pandas 3 deprecations inside Gradio itself, not ddim's)
pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
EPOCHS, STEPS_PER_EPOCH, BATCH = 2, 3, 8  # 25 train images in batches of 8: 3 steps per epoch


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run (16 px, 2 epochs of 3 steps of 8) without per-epoch KID."""
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    ddim.fit(run_dir, data=str(images), image_size=16, widths=(8, 16), block_depth=1, batch_size=BATCH, repeats=1,
             epochs=EPOCHS, kid_every=0, plot_images=4, plot_steps=2, device="cpu", progress=False,
             tensorboard=False)
    return run_dir


def serve_in_background(model, tmp_path: Path):
    """The page for ``model`` served on a free port of 127.0.0.1; returns (app, url)."""
    from ddim.demo.server import launch

    return launch(model, tmp_path / "files", port=free_port())


@pytest.fixture(scope="module")
def served(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """(Gradio client, model, url) for the tiny run's page, served in this process."""
    where = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(where / "gradio"))  # Gradio's copies of the files, not /tmp/gradio
        model = ddim.load(run, device="cpu")
        app, url = serve_in_background(model, where)
        try:
            yield gradio_client.Client(url, verbose=False, download_files=str(where / "downloads")), model, url
        finally:
            app.close()


def pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def expected_grid(images: torch.Tensor, tmp_path: Path, **grid_options) -> np.ndarray:
    return pixels(ddim.save_grid(images, tmp_path / "expected.png", **grid_options))


def generate(client, num=4, steps=3, sampler="ddim", eta=0.0, seed=7) -> tuple:
    return client.predict(num, steps, sampler, eta, seed, api_name="/generate")


def test_the_server_listens_on_127_0_0_1_by_default(served) -> None:
    from ddim.cli import build_parser

    _, _, url = served
    assert url.startswith("http://127.0.0.1:")
    args = build_parser().parse_args(["demo"])
    assert (args.host, args.port, str(args.checkpoint), args.device) == ("127.0.0.1", 7860, "pretrained", "auto")


def test_generate_draws_the_api_images_and_says_how_long_it_took(served, tmp_path: Path) -> None:
    client, model, _ = served
    grid, summary, download = generate(client, num=4, steps=3, seed=7)
    shown = pixels(grid)
    assert shown.shape == (2 + 2 * (16 + 2), 2 + 2 * (16 + 2), 3)  # 2 x 2 images of 16 px, 2 px gaps
    assert shown.std() > 1.0, "the grid's pixels are constant"
    assert np.array_equal(shown, expected_grid(ddim.generate(model, 4, steps=3, seed=7), tmp_path))
    assert summary.startswith("4 images in ") and " s (sampler ddim, steps 3, seed 7, on cpu)" in summary
    assert Path(download["value"]).read_bytes() == Path(grid).read_bytes()  # the PNG offered for download
    assert Path(download["value"]).name == "ddim-seed7-ddim-3steps.png"


def test_a_seed_gives_the_same_grid_every_time_and_another_seed_another(served) -> None:
    client, _, _ = served
    first, second, other = (pixels(generate(client, seed=seed)[0]) for seed in (5, 5, 6))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("sampler, eta", [("ddim", 0.5), ("ddpm", 0.0), ("dpmpp-2m", 0.0), ("heun", 0.0)])
def test_every_sampler_draws_what_the_api_draws(served, tmp_path: Path, sampler: str, eta: float) -> None:
    client, model, _ = served
    grid, summary, _ = generate(client, num=2, steps=2, sampler=sampler, eta=eta, seed=3)
    options = {"eta": eta} if eta else {}
    assert np.array_equal(pixels(grid), expected_grid(ddim.generate(model, 2, steps=2, sampler=sampler, seed=3,
                                                                     **options), tmp_path))
    assert f"sampler {sampler}" in summary and ("eta 0.5" in summary) == bool(eta)


@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, "steps must be between 1 and 10,000, got 0"),
    ({"steps": 10001}, "steps must be between 1 and 10,000, got 10,001"),
    ({"num": 0}, "number of images must be between 1 and 64, got 0"),
    ({"num": 65}, "number of images must be between 1 and 64, got 65"),
    ({"seed": -1}, "seed must be between 0 and"),
    ({"steps": None}, "steps must be a whole number, got None"),
    ({"sampler": "heun", "eta": 0.5}, "eta applies to the ddim sampler only, not heun"),
    ({"sampler": "euler"}, "euler is not in the list of choices"),  # Gradio's own check of the dropdown
])
def test_a_bad_value_is_a_message_naming_it(served, values: dict, message: str) -> None:
    client, _, _ = served
    with pytest.raises(AppError, match=message.replace("(", r"\(")) as refused:
        generate(client, **values)
    assert "Traceback" not in str(refused.value)


def test_interpolate_draws_the_api_path_as_a_strip_a_gif_and_a_frame_slider(served, tmp_path: Path) -> None:
    client, model, _ = served
    frame, slider, strip, summary, png, gif = client.predict(2, 0, 3, 5, 2, api_name="/interpolate")
    path = ddim.interpolate(model, seed=2, start=0, end=3, frames=5, steps=2)
    assert np.array_equal(pixels(strip), expected_grid(path, tmp_path, columns=5))
    assert pixels(strip).std() > 1.0
    assert slider["maximum"] == 4 and slider["value"] == 2
    from ddim.reports import to_uint8
    assert np.array_equal(pixels(frame), to_uint8(path[2]).permute(1, 2, 0).numpy())  # the middle frame
    assert Path(png["value"]).read_bytes() == Path(strip).read_bytes()
    with Image.open(gif["value"]) as animation:
        assert animation.format == "GIF" and animation.n_frames == 2 * 5 - 2  # there and back
    assert summary.startswith("5 frames in ") and "images 0 → 3" in summary
    with pytest.raises(AppError, match="from image and to image are both 1"):
        client.predict(2, 1, 1, 5, 2, api_name="/interpolate")
    with pytest.raises(AppError, match="frames must be between 2 and 60, got 1"):
        client.predict(2, 0, 1, 1, 2, api_name="/interpolate")


def test_the_card_shows_images_seen_epochs_kid_and_the_config(served, run: Path) -> None:
    client, model, _ = served
    facts, config = client.predict(api_name="/card")
    steps = EPOCHS * STEPS_PER_EPOCH
    assert f"| training images seen | {steps * BATCH} ({steps} steps of {BATCH}) |" in facts
    assert f"| epochs | {EPOCHS} of {EPOCHS} |" in facts
    assert "| validation KID | unknown" in facts  # this run measured none (kid_every 0)
    assert "step_000000006" in facts and "unconditional" in facts
    assert json.loads(config) == model.run_config.to_dict()


def test_an_unconditional_model_has_no_class_picker_or_guidance(served) -> None:
    client, model, url = served
    assert model.class_names == ()
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]["parameters"]
    assert [p["label"] for p in parameters] == ["Number of images", "Steps", "Sampler", "eta", "Seed"]
    import httpx
    labels = {c.get("props", {}).get("label") for c in httpx.get(url + "config").json()["components"]}
    assert "Seed" in labels and not labels & {"Class", "Guidance weight"}


def test_a_conditional_model_gets_a_class_picker_and_guidance_that_draw_what_the_api_draws(tmp_path: Path) -> None:
    from ddim.config import ModelConfig, RunConfig, TrainConfig
    from ddim.model import DiffusionModel, ModelOrigin

    torch.manual_seed(0)
    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1, conditional=True,
                                       class_names=("pink primrose", "sunflower"))).eval()
    for parameter in model.ema_network.parameters():  # a network that draws something, not the zero output
        parameter.data.normal_(0, 0.05)
    # trained with --guidance 0 (its per-epoch KID measured the unconditional sampler), as the built-in model was
    model.origin = ModelOrigin(RunConfig(model=model.config, train=TrainConfig(guidance=0.0)), tmp_path)
    app, url = serve_in_background(model, tmp_path)
    try:
        import httpx
        controls = {c["props"].get("label"): c["props"] for c in httpx.get(url + "config").json()["components"]
                    if "props" in c}
        assert controls["Class"]["value"] == "pink primrose"
        assert controls["Guidance weight"]["value"] == 1.0  # follows the class from the start, not 0
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]
        assert [p["label"] for p in parameters["parameters"]][-2:] == ["Class", "Guidance weight"]
        grid, summary, _ = client.predict(4, 3, "ddim", 0.0, 7, "sunflower", 3.0, api_name="/generate")
        expected = ddim.generate(model, 4, steps=3, seed=7, classes="sunflower", guidance=3.0)
        assert np.array_equal(pixels(grid), expected_grid(expected, tmp_path))
        other, _, _ = client.predict(4, 3, "ddim", 0.0, 7, "pink primrose", 3.0, api_name="/generate")
        assert not np.array_equal(pixels(grid), pixels(other))  # the class changes the images
        strip = client.predict(2, 0, 1, 3, 2, "sunflower", 2.0, api_name="/interpolate")[2]
        path = ddim.interpolate(model, seed=2, start=0, end=1, frames=3, steps=2, classes="sunflower", guidance=2.0)
        assert np.array_equal(pixels(strip), expected_grid(path, tmp_path, columns=3))
        with pytest.raises(AppError, match="less than minimum value 0"):  # Gradio's own check of the slider
            client.predict(4, 3, "ddim", 0.0, 7, "sunflower", -1.0, api_name="/generate")
    finally:
        app.close()


def test_the_guidance_slider_starts_at_the_runs_guidance_where_it_follows_the_class() -> None:
    from ddim.config import ModelConfig, RunConfig, TrainConfig
    from ddim.demo.actions import default_guidance
    from ddim.model import DiffusionModel, ModelOrigin

    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1, conditional=True,
                                       class_names=("pink primrose", "sunflower")))
    assert default_guidance(model) == 1.0  # a model built here: the defaults
    for trained, expected in ((0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (3.0, 3.0)):
        model.origin = ModelOrigin(RunConfig(model=model.config, train=TrainConfig(guidance=trained)), Path("run"))
        assert default_guidance(model) == expected


def test_a_long_request_reports_its_progress_in_steps(served) -> None:
    client, _, _ = served
    job = client.submit(2, 200, "ddim", 0.0, 0, api_name="/generate")
    reported = set()
    while not job.done():
        for update in job.status().progress_data or []:
            reported.add((update.length, update.unit, update.desc))
        time.sleep(0.005)
    assert job.result()[1].startswith("2 images in ")
    assert (200, "steps", "sampling") in reported


def test_draw_grid_reports_progress_once_per_step(run: Path, tmp_path: Path) -> None:
    from ddim.demo.actions import draw_grid

    model = ddim.load(run, device="cpu")
    seen: list[tuple[int, int]] = []
    grid = draw_grid(model, tmp_path, num=2, steps=4, sampler="heun", eta=0, seed=0,
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and grid.seconds > 0


def copy_checkpoint(run: Path, where: Path) -> Path:
    """The run's last checkpoint in a new run folder (its history.csv not copied)."""
    checkpoint = where / "checkpoints" / "step_000000006"
    shutil.copytree(run / "checkpoints" / "step_000000006", checkpoint)
    return checkpoint


def test_the_card_reads_kid_from_the_training_state(run: Path, tmp_path: Path) -> None:
    from ddim.demo.card import card_markdown, read_card

    checkpoint = copy_checkpoint(run, tmp_path)
    state = torch.load(checkpoint / "training_state.pt", weights_only=True)
    for row, kid in zip(state["history"], (0.9, 0.7)):  # as a run with per-epoch KID records them
        row["val_kid"] = kid
    state["best_kid"] = 0.7
    torch.save(state, checkpoint / "training_state.pt")
    card = read_card(ddim.load(checkpoint))
    assert (card.images_seen, card.epochs, card.last_kid, card.last_kid_epoch, card.best_kid) == (48, 2, 0.7, 2, 0.7)
    assert "| validation KID | 0.7000 after epoch 2 (best 0.7000); 75 px Inception" in card_markdown(card)
    from ddim.demo.card import summary_line

    assert summary_line(card) == ("48 training images seen · 2 epochs · per-epoch validation KID 0.700 (epoch 2) at "
                                  "75 px, the per-epoch protocol (not the 299 px KID and FID of ddim evaluate)")


def test_the_card_falls_back_to_the_runs_history_and_to_the_exported_metadata(run: Path, tmp_path: Path) -> None:
    from ddim.demo.card import read_card
    from ddim.reports import write_history

    checkpoint = copy_checkpoint(run, tmp_path / "run")
    (checkpoint / "training_state.pt").unlink()
    write_history([{"epoch": 1, "step": 3, "val_kid": 0.9}, {"epoch": 2, "step": 6, "val_kid": 0.8},
                   {"epoch": 3, "step": 9, "val_kid": 0.5}], tmp_path / "run" / "history.csv")
    card = read_card(ddim.load(checkpoint))  # epoch 3 came after this checkpoint: not its card
    assert (card.step, card.images_seen, card.epochs, card.last_kid, card.best_kid) == (6, 48, 2, 0.8, 0.8)

    source = copy_checkpoint(run, tmp_path / "elsewhere")
    exported = tmp_path / "model.safetensors"
    assert main(["export", "--checkpoint", str(source), "--out", str(exported)]) == 0
    shutil.rmtree(tmp_path / "elsewhere")  # only the file's own metadata is left to read
    card = read_card(ddim.load(exported))
    assert (card.step, card.images_seen, card.epochs, card.last_kid) == (6, 48, 2, None)

    source = copy_checkpoint(run, tmp_path / "measured")  # a run with per-epoch KID: the file records it
    state = torch.load(source / "training_state.pt", weights_only=True)
    for row, kid in zip(state["history"], (0.9, 0.7)):
        row["val_kid"] = kid
    torch.save({**state, "best_kid": 0.7}, source / "training_state.pt")
    assert main(["export", "--checkpoint", str(source), "--out", str(exported)]) == 0
    shutil.rmtree(tmp_path / "measured")
    card = read_card(ddim.load(exported))
    assert (card.step, card.epochs, card.last_kid, card.last_kid_epoch, card.best_kid) == (6, 2, 0.7, 2, 0.7)

    from ddim import export
    from ddim.config import ModelConfig, RunConfig
    from ddim.model import DiffusionModel
    bare = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    file = export.export_model(bare, RunConfig(model=bare.config), tmp_path / "bare.safetensors")
    card = read_card(ddim.load(file))
    assert (card.step, card.images_seen, card.epochs, card.last_kid) == (None, None, None, None)
    from ddim.demo.card import card_markdown
    assert "| training images seen | unknown |" in card_markdown(card)


def test_the_page_title_names_a_builtin_model_as_checkpoint_takes_it(tmp_path: Path, monkeypatch) -> None:
    """The page of a built-in model is titled by its --checkpoint names (the file name of the package's copy told a
    user nothing); any other exported file by its own name."""
    from ddim import export
    from ddim.config import ModelConfig, RunConfig
    from ddim.demo.card import read_card, title
    from ddim.model import DiffusionModel

    bare = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    file = export.export_model(bare, RunConfig(model=bare.config), tmp_path / "flowers.safetensors")
    assert title(read_card(ddim.load(file))) == "flowers.safetensors"
    monkeypatch.setitem(export.BUILTIN_MODELS, "pretrained", file)
    monkeypatch.setitem(export.BUILTIN_MODELS, "flowers-by-name", file)
    assert title(read_card(ddim.load("pretrained"))) == "pretrained / flowers-by-name (built in)"


def test_ddim_demo_without_the_builtin_model_says_so_in_one_line(capsys, monkeypatch, tmp_path: Path) -> None:
    from ddim import export

    monkeypatch.setitem(export.BUILTIN_MODELS, export.BUILTIN_NAME, tmp_path / "missing.safetensors")
    assert main(["demo"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("ddim demo: error: this ddim install has no built-in model")
    assert "--checkpoint PATH" in error


def test_ddim_demo_without_gradio_names_the_pip_command(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    assert main(["demo", "--checkpoint", "anything"]) == 1
    assert capsys.readouterr().err == 'ddim demo: error: the web demo needs Gradio, which is not installed: ' \
                                      'pip install "ddim[demo]"\n'


def test_ddim_demo_on_a_taken_port_says_so(run: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--checkpoint", str(run), "--device", "cpu", "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert error == f"ddim demo: error: cannot serve on 127.0.0.1:{port}: the port is taken or the address is not " \
                    "one of this machine's; choose another with --port or --host\n"


def test_ddim_demo_serves_the_page_until_ctrl_c_then_removes_its_files(run: Path, tmp_path: Path) -> None:
    import signal

    import httpx

    port = free_port()
    environment = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    command = [sys.executable, "-m", "ddim", "demo", "--checkpoint", str(run), "--device", "cpu", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    try:
        first = server.stdout.readline()
        assert first == f"ddim demo: serving {run / 'checkpoints' / 'step_000000006'} on http://127.0.0.1:{port}/ " \
                        "(Ctrl-C stops it)\n"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()["title"] == "ddim demo: run, step 6"
        assert len(list(tmp_path.glob("ddim-demo-*"))) == 1  # the folder of the files it offers
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0 and rest.strip().endswith("ddim demo: stopped (SIGINT)")
    assert "Traceback" not in rest and not list(tmp_path.glob("ddim-demo-*"))


def test_sigterm_stops_the_demo_and_leaves_no_file_of_it_in_the_temp_folder(run: Path, tmp_path: Path) -> None:
    import signal

    port = free_port()
    environment = {key: value for key, value in os.environ.items() if key != "GRADIO_TEMP_DIR"}
    environment["TMPDIR"] = str(tmp_path)  # Gradio's default cache, tmp_path/gradio, is in here too
    command = [sys.executable, "-m", "ddim", "demo", "--checkpoint", str(run), "--device", "cpu", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    try:
        assert server.stdout.readline().startswith("ddim demo: serving")
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False,
                                      download_files=str(tmp_path.parent / f"{tmp_path.name}-downloads"))
        client.predict(4, 2, "ddim", 0.0, 1, api_name="/generate")  # a grid PNG, which Gradio copies
        assert list(tmp_path.rglob("*.png"))
        server.send_signal(signal.SIGTERM)
        rest, _ = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0 and rest.strip().endswith("ddim demo: stopped (SIGTERM)"), rest
    assert list(tmp_path.rglob("*")) == []  # neither its own files nor Gradio's copies and history folder


def test_import_ddim_and_its_commands_do_not_import_gradio() -> None:
    code = "import sys, ddim, ddim.cli, ddim.demo; ddim.cli.build_parser(); print('gradio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(ddim.__file__).parents[1])})
    assert result.stdout.strip() == "False"


def test_the_page_takes_no_uploads(served: tuple) -> None:
    import httpx

    _, _, url = served
    response = httpx.post(url.rstrip("/") + "/gradio_api/upload", files={"files": ("big.bin", b"x" * 20_000)},
                          timeout=30)
    assert response.status_code == 413  # Gradio's own size check: nothing is stored or served back
