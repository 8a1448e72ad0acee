"""Tests for video recording (every frame, timed by index) and control-stream recording."""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from oscgan.render.frames import Frame
from oscgan.render.loop import RenderLoop
from oscgan.render.renderer import RenderResult
from oscgan.render.session import ControlRecorder, Session, SessionError, session_header
from oscgan.sinks.base import SinkManager
from oscgan.sinks.fanout import FrameFanout
from oscgan.sinks.record import RecordSink, VideoWriter, even_size, fps_fraction
from oscgan.sinks.registry import RecordSinkConfig, SinkContext, create_sink
from oscgan.state.params import ModelInfo, build_registry
from oscgan.state.snapshot import RenderArgs

av = pytest.importorskip("av", reason="recording needs PyAV (pip install av)")
pytestmark = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")

from .test_base import RecordingSink, wait_for  # noqa: E402


def coloured(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """Frame i as a flat grey level that survives H.264 (steps of 8 levels)."""
    a = np.empty((h, w, 4), np.uint8)
    a[..., :3] = (i * 8) % 240 + 8
    a[..., 3] = 255
    a.flags.writeable = False
    return a


def decode(path: Path) -> tuple[list[np.ndarray], list[int], object]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.base_rate  # r_frame_rate: the nominal rate (average_rate counts gaps)
        frames, pts = [], []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts)
        return frames, pts, (rate, s.time_base, s.width, s.height)


def test_video_writer_times_frames_by_index(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    with VideoWriter(out, 25, crf=10, preset="ultrafast") as w:
        for i in (0, 1, 2, 5, 6):  # 3 and 4 were dropped: 2 must be held for three frame times
            w.write(coloured(i), i)
        w.write(coloured(6), 6)  # a repeat of an index is ignored (pts must increase)
    frames, pts, (rate, tb, width, height) = decode(out)
    assert (width, height, rate) == (64, 48, 25) and len(frames) == 5
    times = [round(float(p * tb) * 25) for p in pts]
    assert times == [0, 1, 2, 5, 6]
    for f, i in zip(frames, (0, 1, 2, 5, 6)):
        assert abs(float(f.mean()) - ((i * 8) % 240 + 8)) < 3


def test_odd_sizes_and_rates() -> None:
    assert even_size((641, 361)) == (640, 360) and even_size((1, 1)) == (2, 2)
    assert fps_fraction(29.97) * 100 == 2997 and fps_fraction(30) == 30
    with pytest.raises(ValueError):
        fps_fraction(0)


def test_odd_frame_is_cropped_to_even(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 30) as w:
        for i in range(3):
            w.write(coloured(i, 33, 17))
    _, _, (_, _, width, height) = decode(out)
    assert (width, height) == (32, 16)


def test_recording_keeps_every_frame_while_a_slow_output_drops(tmp_path: Path) -> None:
    fps, n = 60.0, 90
    fanout = FrameFanout()
    mgr = SinkManager(fanout, fps=fps)
    rec = RecordSink(tmp_path / "show.mp4", fps, crf=12, preset="ultrafast", size=(32, 24))
    slow = RecordingSink("slow", delay=0.05)
    mgr.add(rec)
    mgr.add(slow)
    mgr.start()
    wait_for(lambda: mgr.status()["record"]["state"] == "open", what="recorder open")
    worst = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        fanout.publish(Frame(coloured(i), i, t0))
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(1 / fps)
    mgr.stop()
    st = mgr.status()
    assert worst < 0.01, "publishing must never wait for an output"
    assert st["slow"]["dropped"] > 0
    assert st["record"]["dropped"] == 0 and st["record"]["frames_sent"] == n
    frames, pts, (rate, tb, width, height) = decode(tmp_path / "show.mp4")
    assert len(frames) == n and (width, height) == (32, 24) and rate == 60
    assert [round(float(p * tb) * fps) for p in pts] == list(range(n))
    levels = [float(f.mean()) for f in frames]
    assert all(abs(lv - ((i * 8) % 240 + 8)) < 3 for i, lv in enumerate(levels))


class SlowEncoder(RecordSink):
    def send(self, frame: Frame) -> None:
        time.sleep(0.02)
        super().send(frame)


def test_overflowing_recorder_drops_loudly_but_never_blocks(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="oscgan.sinks.base")
    fanout = FrameFanout()
    mgr = SinkManager(fanout, fps=10.0)  # queue = 2 s * 10 fps = 20 frames
    rec = SlowEncoder(tmp_path / "slow.mp4", 10.0, preset="ultrafast")
    mgr.add(rec)
    mgr.start()
    wait_for(lambda: mgr.status()["record"]["state"] == "open", what="recorder open")
    t0 = time.perf_counter()
    for i in range(60):
        fanout.publish(Frame(coloured(i), i, time.perf_counter()))
    assert time.perf_counter() - t0 < 0.1
    mgr.stop()
    st = mgr.status()["record"]
    assert st["dropped"] > 0 and st["frames_sent"] + st["dropped"] == 60
    assert any("DROPPING" in r.getMessage() for r in caplog.records)
    frames, _, _ = decode(tmp_path / "slow.mp4")
    assert len(frames) == st["frames_sent"]


def test_reopen_after_failure_writes_a_new_part(tmp_path: Path) -> None:
    rec = RecordSink(tmp_path / "a.mp4", 30)
    rec.open()
    rec.send(Frame(coloured(0), 0, 0.0))
    rec.close()
    rec.open()
    rec.send(Frame(coloured(1), 1, 0.0))
    rec.close()
    assert [p.name for p in rec.files] == ["a.mp4", "a.part1.mp4"]
    assert all(len(decode(p)[0]) == 1 for p in rec.files)


def test_record_config_builds_the_sink(tmp_path: Path) -> None:
    cfg = RecordSinkConfig(path=str(tmp_path / "c.mp4"), size="641x360", crf=20, preset="fast")  # type: ignore[arg-type]
    sink = create_sink(cfg, SinkContext(fps=24.0))
    assert isinstance(sink, RecordSink)
    assert sink.size == (640, 360) and sink.fps == 24.0 and sink.crf == 20 and sink.name == "record"
    with pytest.raises(ValueError, match="should end in"):
        RecordSink(tmp_path / "c.avi", 30)


def test_record_flags_merge_into_the_daemon_config(tmp_path: Path) -> None:
    from oscgan.cli import build_parser
    from oscgan.daemon_cli import config_from_args

    cfg_file = tmp_path / "d.yaml"
    cfg_file.write_text(f"sinks:\n  - {{type: record, path: {tmp_path / 'cfg.mp4'}}}\n")
    args = build_parser().parse_args(["serve", "--config", str(cfg_file), "--record", "live.mp4",
                                      "--record-control", "s.jsonl"])
    cfg = config_from_args(args)
    assert [(s.label(), s.path) for s in cfg.sinks] == [("record", str(tmp_path / "cfg.mp4")),
                                                        ("record2", "live.mp4")]
    assert cfg.record_control == "s.jsonl"
    assert isinstance(args, argparse.Namespace)


# -- control stream ----------------------------------------------------------------------------

INFO = ModelInfo("stylegan2", 4, 4, 4, 8, (4, 4, 8, 8))


class FlatRenderer:
    def render(self, args: RenderArgs) -> RenderResult:
        return RenderResult(np.zeros((4, 4, 4), np.uint8), {"total": 0.1})


def test_control_recorder_logs_header_changes_and_every_frame(tmp_path: Path) -> None:
    registry = build_registry(INFO)
    registry.set("truncation.psi", 0.5, source="config")
    loop = RenderLoop(registry, FlatRenderer(), FrameFanout(), INFO)  # type: ignore[arg-type]
    path = tmp_path / "s.jsonl"
    rec = ControlRecorder(path, registry, session_header("builtin:x", INFO, 30.0, None, "stretch", "cpu", 0))
    rec.attach(loop)
    loop.tick(1.0)
    registry.set("latent.seed", 7, source="osc")
    registry.set("latent.z.1", 0.25, source="midi")
    loop.tick(1.1)
    loop.tick(1.2)
    t = threading.Thread(target=registry.set, args=("noise.mode", "random"), kwargs={"source": "web"})
    t.start()
    t.join()
    loop.tick(1.3)
    rec.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["params"]["truncation.psi"] == 0.5
    assert lines[0]["model"] == "builtin:x" and lines[0]["fps"] == 30.0 and lines[0]["noise_seed"] == 0
    s = Session.load(path)
    assert [(e.path, e.value, e.source) for e in s.events] == [
        ("latent.seed", 7, "osc"), ("latent.z", (0.0, 0.25, 0.0, 0.0), "midi"), ("noise.mode", "random", "web")]
    assert [f.index for f in s.frames] == [0, 1, 2, 3]
    assert [f.changes for f in s.frames] == [{}, {"latent.seed": 7, "latent.z": (0.0, 0.25, 0.0, 0.0)}, {},
                                             {"noise.mode": "random"}]
    assert [round(f.t - s.frames[0].t, 6) for f in s.frames] == [0.0, 0.1, 0.2, 0.3]  # loop clock
    states = list(s.frame_states())
    assert states[-1].params["latent.seed"] == 7 and states[-1].params["noise.mode"] == "random"
    assert states[0].params["latent.seed"] == 0
    assert loop.post_frame == []  # detached


def test_vector_changes_are_logged_as_elements(tmp_path: Path) -> None:
    info = ModelInfo("stylegan2", 64, 8, 4, 8, (4, 4, 8, 8))
    registry = build_registry(info)
    now = [0.0]
    loop = RenderLoop(registry, FlatRenderer(), FrameFanout(), info, clock=lambda: now[0])  # type: ignore[arg-type]
    path = tmp_path / "v.jsonl"
    rec = ControlRecorder(path, registry, {"fps": 30.0})
    rec.attach(loop)
    loop.tick(0.0)
    now[0] = 0.05
    registry.set("latent.z.5", 0.5, source="midi")
    registry.set("latent.z.6", -1.0, source="midi")
    loop.tick(0.1)
    now[0] = 0.15
    registry.set("latent.z", [1.0] * 64, source="osc")  # most elements: the whole value
    loop.tick(0.2)
    rec.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    sets = [x for x in lines if x["type"] == "set"]
    assert sets[0]["elements"] == {"5": 0.5} and "value" not in sets[0]
    assert sets[1]["elements"] == {"6": -1.0} and sets[2]["value"] == [1.0] * 64
    frames = [x for x in lines if x["type"] == "frame"]
    assert frames[1]["elements"] == {"latent.z": {"5": 0.5, "6": -1.0}} and frames[1]["changes"] == {}
    s = Session.load(path)
    z = [st.params["latent.z"] for st in s.frame_states()]
    assert z[1][5] == 0.5 and z[1][6] == -1.0 and sum(z[1]) == -0.5 and z[2] == (1.0,) * 64
    z_retimed = [st.params["latent.z"] for st in s.frame_states(fps=20.0)]
    assert z_retimed[-1] == (1.0,) * 64


def test_session_retimed_states_apply_events_by_time(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    head = {"type": "header", "format": "oscgan-session", "version": 1, "fps": 10.0,
            "params": {"latent.seed": 0, "latent.travel.speed": 0.0}}
    rows = [head,
            {"type": "frame", "i": 0, "t": 0.0, "v": 0, "phase": 0.0, "changes": {}},
            {"type": "set", "t": 0.14, "path": "latent.seed", "value": 5, "source": "osc"},
            {"type": "frame", "i": 1, "t": 0.1, "v": 0, "phase": 0.0, "changes": {}},
            {"type": "frame", "i": 2, "t": 0.2, "v": 1, "phase": 1.0, "changes": {"latent.seed": 5}}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"type\": \"fra")  # cut-off last line
    s = Session.load(path)
    assert s.frame_count() == 3 and s.frame_count(20.0) == 5
    fast = list(s.frame_states(20.0))
    assert [st.params["latent.seed"] for st in fast] == [0, 0, 0, 5, 5]   # t = 0, .05, .1, .15, .2
    assert [round(st.phase, 3) for st in fast] == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert [st.index for st in fast] == [0, 1, 2, 3, 4]


def test_bad_session_files_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"type": "frame"}\n')
    with pytest.raises(SessionError, match=r"bad.jsonl:1: not an oscgan session"):
        Session.load(p)
    p.write_text('{"type": "header", "format": "oscgan-session", "version": 1, "fps": 30, "params": {}}\n'
                 '{"type": "frame", "i": "x"}\n{}\n')
    with pytest.raises(SessionError, match=r"bad.jsonl:2: bad frame line"):
        Session.load(p)
