"""Tests for the command line: seed lists, inspect / render / convert / bench, errors, serve flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oscgan.cli import build_parser, main, parse_seeds
from oscgan.config import ConfigError, DaemonConfig
from oscgan.daemon_cli import config_from_args

FIXTURE = str(Path(__file__).resolve().parent / "fixtures" / "stylegan" / "sg2_64.pkl")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# -- parse_seeds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("0-7", list(range(8))),
    ("1,5,9", [1, 5, 9]),
    ("0-3,10", [0, 1, 2, 3, 10]),
    ("42", [42]),
    (" 3 - 4 , 7 ,", [3, 4, 7]),
    ("5-5", [5]),
    ("4294967295", [2**32 - 1]),
])
def test_parse_seeds(text: str, expected: list[int]) -> None:
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text,error", [
    ("7-3", argparse.ArgumentTypeError),
    ("", argparse.ArgumentTypeError),
    (",", argparse.ArgumentTypeError),
    ("4294967296", argparse.ArgumentTypeError),
    ("a", ValueError),
    ("1-b", ValueError),
    ("-5", ValueError),
    ("1.5", ValueError),
])
def test_parse_seeds_rejects(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_seeds(text)


@pytest.mark.parametrize("seeds,words", [("7-3", "runs backwards"), ("x", "bad --seeds 'x'")])
def test_bad_seeds_on_the_command_line(seeds: str, words: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["render", FIXTURE, "--seeds", seeds, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert words in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# -- inspect ---------------------------------------------------------------------------------------


def test_inspect(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "inspect", FIXTURE)
    assert rc == 0
    assert "architecture: stylegan2 (skip)" in out
    assert "resolution:   64x64, 3 channels" in out
    assert "z_dim=64  w_dim=64  c_dim=0  num_ws=10" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"\d+ ", line)]
    assert [r[0] for r in rows] == [str(i) for i in range(10)]
    assert rows[0] == ["0", "b4.conv1", "4px", "coarse"]
    assert rows[9] == ["9", "b64.torgb", "64px", "fine"]


def test_inspect_the_raw_generator(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "inspect", FIXTURE, "--which", "G")
    assert rc == 0 and "num_ws=10" in out


# -- render ----------------------------------------------------------------------------------------


def test_render_writes_one_png_per_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "render", FIXTURE, "--seeds", "0-1,5", "--psi", "0.7", "--device", "cpu",
                     "--out", str(tmp_path / "out"))
    assert rc == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["seed0000.png", "seed0001.png", "seed0005.png"]
    images = [png(tmp_path / "out" / n) for n in names]
    assert all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in images)
    assert not np.array_equal(images[0], images[1])


def test_render_matches_the_live_renderer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oscgan.daemon import model_info
    from oscgan.models.loader import load_generator
    from oscgan.render.renderer import Renderer
    from oscgan.state.params import build_registry
    from oscgan.state.snapshot import render_args

    rc, _, err = run(capsys, "render", FIXTURE, "--seeds", "3", "--psi", "0.5", "--device", "cpu",
                     "--out", str(tmp_path))
    assert rc == 0, err
    G = load_generator(FIXTURE, device="cpu")
    info = model_info(G)
    reg = build_registry(info)
    reg.set_many([("latent.seed", 3), ("truncation.psi", 0.5)])
    live = Renderer(G, torch.device("cpu")).render(render_args(reg.snapshot(), info)).rgba
    assert np.abs(png(tmp_path / "seed0003.png").astype(int) - live[..., :3]).max() <= 1


def test_render_a_builtin_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "render", "builtin:sg2-256", "--seeds", "7", "--device", "cpu",
                     "--out", str(tmp_path))
    assert rc == 0, err
    image = png(tmp_path / "seed0007.png")
    assert image.shape == (256, 256, 3)
    assert image.std() > 1


# -- convert ---------------------------------------------------------------------------------------


def test_convert_then_inspect_and_render_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sg2_64.safetensors"
    rc, text, err = run(capsys, "convert", FIXTURE, str(out))
    assert rc == 0, err
    assert out.is_file() and f"wrote {out}" in text and "stylegan2, 64px" in text
    rc, from_pkl, _ = run(capsys, "inspect", FIXTURE)
    rc2, from_st, _ = run(capsys, "inspect", str(out))
    assert rc == rc2 == 0
    # Everything but the file name is the same.
    assert from_st.splitlines()[1:] == from_pkl.splitlines()[1:]
    for model, folder in ((FIXTURE, "a"), (str(out), "b")):
        assert run(capsys, "render", model, "--seeds", "1", "--device", "cpu",
                   "--out", str(tmp_path / folder))[0] == 0
    assert np.array_equal(png(tmp_path / "a" / "seed0001.png"), png(tmp_path / "b" / "seed0001.png"))


def test_convert_refuses_other_suffixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "convert", FIXTURE, str(tmp_path / "model.pt"))
    assert rc == 2 and "must end in .safetensors" in err
    assert not (tmp_path / "model.pt").exists()


# -- bench -----------------------------------------------------------------------------------------


def test_bench(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "bench", FIXTURE, "--runs", "2", "--warmup", "1", "--device", "cpu",
                       "--size", "32x16")
    assert rc == 0, err
    assert "median of 2 runs after 1 warm-up" in out and "on cpu" in out
    stages = [line.split()[0] for line in out.splitlines()[3:]]
    assert stages == ["mapping", "synthesis", "to", "total"]
    assert "to RGBA 32x16" in out


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["inspect", "render", "convert", "bench"])
def test_missing_file(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, str(tmp_path / "nope.pkl")]
    if command == "convert":
        argv.append(str(tmp_path / "out.safetensors"))
    if command in ("render", "bench"):
        argv += ["--device", "cpu"]
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith(f"oscgan {command}: error: nope.pkl: file not found")
    assert "check the path" in err
    assert "damaged" not in err  # a missing file is not a broken one
    assert "Traceback" not in err


@pytest.mark.parametrize("device,words", [("tpu9", "unknown device 'tpu9'"), ("cuda:7", "cuda:7")])
def test_bad_device(device: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    for command in ("render", "bench"):
        rc, _, err = run(capsys, command, FIXTURE, "--device", device)
        assert rc == 2
        assert err.startswith(f"oscgan {command}: error: ") and words in err


def test_cuda_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    rc, _, err = run(capsys, "render", FIXTURE, "--device", "cuda")
    assert rc == 2 and "CUDA is not available" in err and "--device cpu" in err


@pytest.mark.parametrize("command", ["inspect", "render", "convert"])
def test_which_must_name_a_generator(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, FIXTURE, "--which", "D"]
    if command == "convert":
        argv.insert(2, str(tmp_path / "d.safetensors"))
    if command == "render":
        argv += ["--device", "cpu", "--out", str(tmp_path)]
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert "which='D' is not a generator" in err and "G_ema or G" in err
    assert not list(tmp_path.iterdir())


# -- serve flags over the config file --------------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_serve_without_config_or_flags_is_the_defaults() -> None:
    assert config_from_args(serve_args()) == DaemonConfig()


def test_serve_flags_override_the_file_and_absent_flags_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "show.yaml"
    path.write_text("""\
model: faces.pkl
fps: 25
size: 640x480
device: cpu
fit: letterbox
osc: {host: 0.0.0.0, port: 9100, allow_from: [10.0.0.0/8], out: 10.0.0.2:9001}
http: {host: 0.0.0.0, port: 8081, zeroconf: false}
params: {truncation.psi: 0.5}
""", encoding="utf-8")
    kept = config_from_args(serve_args("--config", str(path)))
    assert kept == DaemonConfig.model_validate({
        "model": "faces.pkl", "fps": 25, "size": (640, 480), "device": "cpu", "fit": "letterbox",
        "osc": {"host": "0.0.0.0", "port": 9100, "allow_from": ["10.0.0.0/8"], "out": "10.0.0.2:9001"},
        "http": {"host": "0.0.0.0", "port": 8081, "zeroconf": False},
        "params": {"truncation.psi": 0.5}})
    cfg = config_from_args(serve_args(
        "--config", str(path), "--model", "builtin:sg3t-256", "--fps", "60", "--size", "1280x720",
        "--osc-port", "9200", "--osc-allow", "127.0.0.1", "--osc-allow", "192.168.0.0/16",
        "--http-port", "9090", "--zeroconf"))
    assert cfg.model == "builtin:sg3t-256" and cfg.fps == 60.0 and cfg.size == (1280, 720)
    assert cfg.osc.port == 9200 and cfg.osc.allow_from == ["127.0.0.1", "192.168.0.0/16"]
    assert cfg.http.port == 9090 and cfg.http.zeroconf is True
    # What no flag named stays as the file has it.
    assert cfg.device == "cpu" and cfg.fit == "letterbox"
    assert cfg.osc.host == "0.0.0.0" and cfg.osc.out == "10.0.0.2:9001"
    assert cfg.http.host == "0.0.0.0"
    assert cfg.params == {"truncation.psi": 0.5}


def test_serve_flags_are_validated_like_the_file() -> None:
    with pytest.raises(ValueError):
        config_from_args(serve_args("--osc-out", "nowhere"))
    with pytest.raises(ValueError):
        config_from_args(serve_args("--fps", "0"))


def test_serve_with_a_broken_config_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("osc:\n  prot: 9000\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        config_from_args(serve_args("--config", str(path), "--osc-port", "9001"))
