"""Record a short live session (registry changes, random noise, travel, pause) and replay it.

The replay must be frame-exact: two replays give identical pictures, and both equal the live
frames bit for bit when written as PNGs (within H.264 loss as MP4).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oscgan import cli
from oscgan.daemon import model_info
from oscgan.models.loader import load_generator
from oscgan.render.loop import FrameTick, RenderLoop
from oscgan.render.renderer import Renderer
from oscgan.render.replay import replay
from oscgan.render.session import ControlRecorder, Session, session_header
from oscgan.sinks.fanout import FrameFanout
from oscgan.state.params import build_registry

av = pytest.importorskip("av", reason="video replay needs PyAV (pip install av)")

MODEL = str(Path(__file__).parent / "fixtures" / "stylegan" / "sg2_64.pkl")
FPS = 10.0

# frame index -> parameter changes made just before that frame (as OSC / MIDI / a mapping would)
SCRIPT: dict[int, list[tuple[str, object, str]]] = {
    2: [("latent.seed", 3, "osc")],
    4: [("truncation.psi", 0.9, "midi"), ("noise.mode", "random", "osc")],
    7: [("mix.coarse", 0.5, "mapping")],
    10: [("noise.mode", "const", "osc"), ("latent.keyframes.count", 2, "osc"), ("latent.travel.speed", 2.0, "web")],
    13: [("output.paused", True, "osc")],
    15: [("output.paused", False, "osc"), ("const.corruption", 0.5, "osc"), ("latent.z.3", 1.0, "midi")],
}
N_FRAMES = 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """Run the render loop by hand (times 0, 0.1, ...) with the control recorder attached."""
    tmp = tmp_path_factory.mktemp("live")
    G = load_generator(MODEL, device="cpu")
    info = model_info(G)
    registry = build_registry(info)
    registry.set("output.fps", FPS, source="config")
    now = [50.0]  # the loop clock, moved by hand: change and frame times are on it
    loop = RenderLoop(registry, Renderer(G, torch.device("cpu")), FrameFanout(), info,
                      clock=lambda: now[0], noise_seed=1234)
    session = tmp / "session.jsonl"
    rec = ControlRecorder(session, registry, session_header(MODEL, info, FPS, None, "stretch", "cpu", 1234))
    rec.attach(loop)
    frames: list[np.ndarray] = []
    loop.post_frame.append(lambda tick: frames.append(tick.frame.rgba))
    t0 = now[0]
    for i in range(N_FRAMES):
        now[0] = t0 + (i - 0.5) / FPS  # changes arrive half-way between two frames
        for path, value, source in SCRIPT.get(i, []):
            registry.set(path, value, source=source)
        now[0] = t0 + i / FPS
        loop.tick(now[0])
    rec.close()
    assert len(frames) == N_FRAMES
    return session, frames


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def test_live_session_exercises_noise_travel_and_pause(live: tuple[Path, list[np.ndarray]]) -> None:
    session, frames = live
    assert not np.array_equal(frames[4], frames[5])  # random noise: a new grain every frame
    assert np.array_equal(frames[12], frames[13]) and np.array_equal(frames[13], frames[14])  # paused
    assert not np.array_equal(frames[10], frames[11])  # travelling
    s = Session.load(session)
    assert len(s.frames) == N_FRAMES and len(s.events) == sum(len(v) for v in SCRIPT.values())
    assert s.frames[11].phase > s.frames[10].phase


def test_two_replays_are_identical_and_equal_the_live_frames(live: tuple[Path, list[np.ndarray]],
                                                             tmp_path: Path) -> None:
    session, frames = live
    a = replay(session, tmp_path / "a", device="cpu", progress=False)
    b = replay(session, tmp_path / "b", device="cpu", progress=False)
    assert a.frames == b.frames == N_FRAMES
    pa, pb = read_pngs(tmp_path / "a"), read_pngs(tmp_path / "b")
    assert len(pa) == N_FRAMES
    for i, (x, y, z) in enumerate(zip(pa, pb, frames)):
        assert np.array_equal(x, y), f"replays differ at frame {i}"
        assert np.array_equal(x, z), f"replay differs from the live frame {i}"


def test_mp4_replay_matches_live_within_codec_loss(live: tuple[Path, list[np.ndarray]], tmp_path: Path) -> None:
    session, frames = live
    out = tmp_path / "r.mp4"
    result = replay(session, out, device="cpu", progress=False, size=(96, 96), crf=10)
    assert result.frames == N_FRAMES and result.size == (96, 96)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height, s.base_rate) == (96, 96, 10)
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == N_FRAMES
    for i, (d, live_rgba) in enumerate(zip(decoded, frames)):
        ref = np.asarray(Image.fromarray(live_rgba[..., :3]).resize((96, 96), Image.Resampling.BILINEAR))
        mse = float(((d.astype(np.float64) - ref) ** 2).mean())
        psnr = 10 * np.log10(255 ** 2 / max(mse, 1e-9))
        assert psnr > 24, f"frame {i}: PSNR {psnr:.1f} dB"


def test_replay_retimed_to_another_fps(live: tuple[Path, list[np.ndarray]], tmp_path: Path) -> None:
    session, frames = live
    result = replay(session, tmp_path / "fast", fps=20.0, device="cpu", progress=False)
    assert result.frames == 2 * (N_FRAMES - 1) + 1
    png = read_pngs(tmp_path / "fast")
    # Frame n is at n / 20 s; the seed change arrived at 0.15 s (between live frames 1 and 2),
    # so re-timed frame 3 already shows it. Where nothing else moved, pictures equal the live ones.
    assert np.array_equal(png[0], frames[0]) and np.array_equal(png[2], frames[1])
    assert np.array_equal(png[3], frames[2]) and np.array_equal(png[4], frames[2])
    assert not np.array_equal(png[3], png[2])


def test_cli_replay(live: tuple[Path, list[np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    session, _ = live
    rc = cli.main(["replay", str(session), "--out", str(tmp_path / "c.mp4"), "--device", "cpu",
                   "--no-progress", "--preset", "ultrafast"])
    assert rc == 0
    assert f"wrote {N_FRAMES} frames" in capsys.readouterr().out
    rc = cli.main(["replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.mp4")])
    assert rc == 2
    assert "cannot read" in capsys.readouterr().err


def test_replay_refuses_a_model_that_does_not_fit(live: tuple[Path, list[np.ndarray]], tmp_path: Path) -> None:
    session, _ = live
    sg3 = str(Path(MODEL).with_name("sg3t_64.pkl"))
    G = load_generator(sg3, device="cpu")
    if model_info(G).num_ws == model_info(load_generator(MODEL, device="cpu")).num_ws:
        pytest.skip("fixture models happen to share num_ws")
    with pytest.raises(ValueError, match="pass the recorded model"):
        replay(session, tmp_path / "y", model=sg3, device="cpu", progress=False)


def test_frame_tick_is_exported() -> None:
    assert FrameTick.__dataclass_fields__.keys() >= {"frame", "now", "travel_phase", "snapshot"}


def test_daemon_records_video_and_session_that_replays(tmp_path: Path) -> None:
    """The real daemon with --record and --record-control, driven over OSC, stopped by SIGTERM."""
    pytest.importorskip("pythonosc")
    from tests.test_daemon_e2e import RunningDaemon

    video, session = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    d = RunningDaemon("--record", str(video), "--record-control", str(session))
    try:
        d.wait_for(lambda: d.health()["sinks"].get("record", {}).get("state") == "open", what="recorder open")
        d.client.send_message("/oscgan/noise/mode", "random")
        d.client.send_message("/oscgan/truncation/psi", 0.4)
        d.wait_for(lambda: d.value("/oscgan/truncation/psi") == [pytest.approx(0.4)], what="psi")
        time.sleep(0.5)
        d.client.send_message("/oscgan/latent/seed", 99)
        time.sleep(0.5)
        health = d.health()
        assert health["control_recording"]["path"] == str(session)
        assert health["sinks"]["record"]["errors"] == 0
    finally:
        assert d.stop() == 0
    s = Session.load(session)
    assert [e.path for e in s.events][-3:] == ["noise.mode", "truncation.psi", "latent.seed"]
    assert all(e.source.startswith("osc") for e in s.events)  # e.g. "osc:127.0.0.1:PORT"
    with av.open(str(video)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == len(s.frames) > 10  # the file holds every published frame
    out = tmp_path / "replay"
    result = replay(session, out, device="cpu", progress=False)
    assert result.frames == len(s.frames)
    png = read_pngs(out)
    for i in (0, len(png) // 2, len(png) - 1):  # replay == live video within H.264 loss
        mse = float(((decoded[i].astype(np.float64) - png[i][..., :3]) ** 2).mean())
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 24, f"frame {i}"
