"""Tests for RenderLoop.tick driven by hand (and one run on its thread)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import torch
from torch import nn

from oscgan.render.frames import Frame
from oscgan.render.loop import RenderLoop
from oscgan.render.renderer import Renderer, RenderResult
from oscgan.sinks.fanout import FrameFanout
from oscgan.state.params import ModelInfo, build_registry
from oscgan.state.snapshot import RenderArgs

from .conftest import Rig

INFO = ModelInfo("stylegan2", 4, 4, 4, 8, (4, 4, 8, 8))


class FakeRenderer:
    """Records every RenderArgs; each render is a new flat picture, or a failure while ``fail`` is set."""

    def __init__(self) -> None:
        self.calls: list[RenderArgs] = []
        self.fail: str | None = None

    def render(self, args: RenderArgs) -> RenderResult:
        self.calls.append(args)
        if self.fail is not None:
            return RenderResult(None, {"total": 1.0}, self.fail)
        return RenderResult(np.full((4, 6, 4), len(self.calls), np.uint8), {"total": 2.5})


@pytest.fixture
def setup() -> tuple[RenderLoop, FakeRenderer, FrameFanout]:
    renderer, fanout = FakeRenderer(), FrameFanout()
    loop = RenderLoop(build_registry(INFO), renderer, fanout, INFO)  # type: ignore[arg-type]
    return loop, renderer, fanout


def test_first_tick_renders_and_publishes(setup) -> None:
    loop, renderer, fanout = setup
    frame = loop.tick(1.0)
    assert isinstance(frame, Frame)
    assert frame.index == 0 and not frame.error and frame.render_ms == 2.5
    assert fanout.latest.latest() is frame
    assert len(renderer.calls) == 1
    assert (loop.stats.frames, loop.stats.renders, loop.stats.errors) == (1, 1, 0)


def test_unchanged_args_resend_the_last_frame_without_rendering(setup) -> None:
    loop, renderer, fanout = setup
    first = loop.tick(0.0)
    again = loop.tick(0.1)
    assert again is not None and again.rgba is first.rgba
    assert again.index == 1 and again.render_ms == 0.0
    assert loop.stats.renders == 1 and loop.stats.frames == 2
    assert len(renderer.calls) == 1
    loop.registry.set("latent.seed", 5)
    changed = loop.tick(0.2)
    assert loop.stats.renders == 2
    assert renderer.calls[-1].seeds == (5,)
    assert not np.array_equal(changed.rgba, first.rgba)


def test_a_change_that_leaves_args_equal_does_not_render(setup) -> None:
    loop, renderer, _ = setup
    loop.tick(0.0)
    loop.registry.set("output.fps", 60.0)  # new snapshot version, same RenderArgs
    frame = loop.tick(0.1)
    assert loop.stats.renders == 1
    assert frame.params_version == loop.registry.snapshot().version


def test_random_noise_renders_every_frame(setup) -> None:
    loop, renderer, _ = setup
    loop.registry.set("noise.mode", "random")
    for i in range(4):
        loop.tick(i * 0.1)
    assert loop.stats.renders == 4
    loop.registry.set("noise.strength", 0.0)  # random noise at strength 0 is still
    loop.tick(0.5)
    loop.tick(0.6)
    assert loop.stats.renders == 5


def test_paused_output_resends_the_last_frame(setup) -> None:
    loop, renderer, _ = setup
    first = loop.tick(0.0)
    loop.registry.set_many([("output.paused", True), ("latent.seed", 9)])
    for i in range(3):
        frame = loop.tick(0.1 * (i + 1))
        assert frame.rgba is first.rgba
    assert loop.stats.renders == 1 and loop.stats.frames == 4
    loop.registry.set("output.paused", False)
    loop.tick(0.5)
    assert loop.stats.renders == 2 and renderer.calls[-1].seeds == (9,)


def test_paused_before_any_frame_still_renders_one(setup) -> None:
    loop, renderer, _ = setup
    loop.registry.set("output.paused", True)
    assert loop.tick(0.0) is not None
    assert loop.stats.renders == 1


def test_a_failed_render_resends_the_last_good_frame_flagged(setup, caplog) -> None:
    loop, renderer, fanout = setup
    good = loop.tick(0.0)
    loop.registry.set("latent.seed", 3)
    renderer.fail = "RuntimeError: boom"
    with caplog.at_level(logging.ERROR, logger="oscgan.render.loop"):
        bad = loop.tick(0.1)
        bad2 = loop.tick(0.2)  # a failure is retried, not taken as the new picture
    assert bad.error and bad2.error
    assert bad.rgba is good.rgba and bad2.rgba is good.rgba
    assert fanout.latest.latest() is bad2
    assert loop.stats.errors == 2 and loop.stats.renders == 3
    assert loop.stats.last_error == "RuntimeError: boom"
    assert sum("boom" in r.getMessage() for r in caplog.records) == 1  # logged once, not per frame
    renderer.fail = None
    ok = loop.tick(0.3)
    assert not ok.error and not np.array_equal(ok.rgba, good.rgba)
    assert loop.stats.errors == 2
    assert loop.tick(0.4).rgba is ok.rgba  # and re-sent as usual from then on
    assert loop.stats.renders == 4


def test_a_failure_before_any_good_frame_publishes_nothing(setup) -> None:
    loop, renderer, fanout = setup
    renderer.fail = "OutOfMemoryError: CUDA out of memory"
    assert loop.tick(0.0) is None
    assert loop.tick(0.1) is None
    assert fanout.latest.latest() is None
    assert loop.stats.frames == 0 and loop.stats.errors == 2
    renderer.fail = None
    frame = loop.tick(0.2)
    assert frame is not None and frame.index == 0 and not frame.error


def test_frame_indices_increase_by_one(setup) -> None:
    loop, renderer, _ = setup
    indices = []
    for i in range(12):
        if i % 4 == 1:
            loop.registry.set("latent.seed", i)
        renderer.fail = "RuntimeError: x" if i % 5 == 3 else None
        frame = loop.tick(i * 0.05)
        indices.append(frame.index)
    assert indices == list(range(12))


def test_params_version_is_the_snapshot_version(setup) -> None:
    loop, _, _ = setup
    for i in range(4):
        loop.registry.set("truncation.psi", 0.1 * (i + 1))
        frame = loop.tick(float(i))
        assert frame.params_version == loop.registry.snapshot().version == i + 1


def test_pre_frame_hooks_get_now_and_dt(setup) -> None:
    loop, _, _ = setup
    seen: list[tuple[float, float]] = []
    loop.pre_frame.append(lambda now, dt: seen.append((now, dt)))
    loop.tick(10.0)
    loop.tick(10.25)
    loop.tick(10.75)
    loop.tick(10.5)  # a clock that steps back never gives a negative dt
    assert seen == [(10.0, 0.0), (10.25, 0.25), (10.75, 0.5), (10.5, 0.0)]


def test_a_hook_that_raises_does_not_stop_the_tick(setup, caplog) -> None:
    loop, renderer, _ = setup
    ran: list[str] = []

    def bad(now: float, dt: float) -> None:
        raise ZeroDivisionError("hook bug")

    loop.pre_frame.extend([bad, lambda now, dt: ran.append("after")])
    with caplog.at_level(logging.ERROR, logger="oscgan.render.loop"):
        frame = loop.tick(0.0)
    assert frame is not None and ran == ["after"]
    assert any("pre-frame hook" in r.getMessage() for r in caplog.records)


def test_hook_changes_land_in_the_same_frame(setup) -> None:
    loop, renderer, _ = setup
    loop.pre_frame.append(lambda now, dt: loop.registry.set("latent.seed", int(now)))
    loop.tick(42.0)
    assert renderer.calls[-1].seeds == (42,)


def test_travel_speed_advances_the_phase_with_dt(setup) -> None:
    loop, renderer, _ = setup
    loop.registry.set_many([("latent.keyframes", (10, 20, 30)), ("latent.keyframes.count", 3),
                            ("latent.travel.speed", 2.0)])
    loop.tick(5.0)  # first tick: dt 0
    assert renderer.calls[-1].seeds == (10,)
    loop.tick(5.25)  # + 0.5 keyframe
    assert renderer.calls[-1].seeds == (10, 20)
    assert renderer.calls[-1].seed_weights == pytest.approx((0.5, 0.5))
    loop.tick(5.5)  # keyframe 1
    assert renderer.calls[-1].seeds == (20,)
    loop.tick(6.5)  # + 2 keyframes: wrapped around to keyframe 0
    assert renderer.calls[-1].seeds == (10,)
    loop.registry.set("output.paused", True)
    loop.tick(6.75)  # paused: time passes but the walk stands still
    loop.registry.set("output.paused", False)
    loop.tick(6.875)  # + 0.25 keyframe from 3.0 (it would be 3.75 had the pause moved on)
    assert renderer.calls[-1].seeds == (10, 20)
    assert renderer.calls[-1].seed_weights == pytest.approx((0.84375, 0.15625))  # smoothstep(0.25)


def test_manual_travel_and_phase_add_up(setup) -> None:
    loop, renderer, _ = setup
    loop.registry.set_many([("latent.keyframes", (10, 20, 30)), ("latent.keyframes.count", 3),
                            ("latent.travel", 0.5), ("latent.travel.speed", 1.0)])
    loop.tick(0.0)
    assert renderer.calls[-1].seeds == (20,)
    loop.tick(1.0)
    assert renderer.calls[-1].seeds == (30,)


def test_fps_stat_follows_the_tick_rate(setup) -> None:
    loop, _, _ = setup
    for i in range(50):
        loop.tick(i * 0.1)
    assert loop.stats.fps == pytest.approx(10.0)


def test_ticks_with_a_real_generator(small_G: nn.Module) -> None:
    rig = Rig(small_G)
    fanout = FrameFanout()
    loop = RenderLoop(rig.registry, rig.renderer, fanout, rig.info)
    first = loop.tick(0.0)
    assert first.rgba.shape == (32, 32, 4) and not first.rgba.flags.writeable
    assert np.array_equal(first.rgba, rig.frame())
    assert loop.tick(0.1).rgba is first.rgba
    rig.registry.set("affine.rotate", 90.0)
    assert not np.array_equal(loop.tick(0.2).rgba, first.rgba)
    assert loop.stats.renders == 2 and loop.stats.render_ms > 0


def test_failing_real_renderer_keeps_the_last_good_frame(small_G: nn.Module,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(small_G)
    loop = RenderLoop(rig.registry, rig.renderer, FrameFanout(), rig.info)
    good = loop.tick(0.0)

    def oom(*args: object, **kwargs: object) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(small_G.synthesis, "forward", oom)
    rig.registry.set("latent.seed", 8)
    frame = loop.tick(0.1)
    assert frame.error and frame.rgba is good.rgba
    assert "OutOfMemoryError" in loop.stats.last_error


def test_start_and_stop_on_the_thread() -> None:
    renderer, fanout = FakeRenderer(), FrameFanout()
    registry = build_registry(INFO)
    registry.set_many([("output.fps", 240.0), ("noise.mode", "random")])  # render every frame
    loop = RenderLoop(registry, renderer, fanout, INFO)  # type: ignore[arg-type]
    hook_threads: list[str] = []
    loop.pre_frame.append(lambda now, dt: hook_threads.append(threading.current_thread().name))
    loop.start()
    try:
        assert loop.running
        with pytest.raises(RuntimeError, match="already started"):
            loop.start()
        assert fanout.latest.wait_newer(2, timeout=10.0) is not None  # a few frames went out
    finally:
        loop.stop(timeout=10.0)
    assert not loop.running
    assert set(hook_threads) == {"oscgan-render"}
    frames = loop.stats.frames
    assert frames >= 3 and loop.stats.errors == 0
    assert fanout.latest.latest().index == frames - 1
    loop.stop()  # stopping twice is harmless


def test_a_crashing_tick_does_not_end_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    renderer, fanout = FakeRenderer(), FrameFanout()
    registry = build_registry(INFO)
    registry.set("output.fps", 240.0)
    loop = RenderLoop(registry, renderer, fanout, INFO)  # type: ignore[arg-type]
    crashes = [2]
    real_tick = loop.tick

    def flaky(now: float):
        if crashes[0] > 0:
            crashes[0] -= 1
            raise KeyError("bug")
        return real_tick(now)

    monkeypatch.setattr(loop, "tick", flaky)
    loop.start()
    try:
        assert fanout.latest.wait_newer(-1, timeout=10.0) is not None
    finally:
        loop.stop(timeout=10.0)
    assert loop.stats.errors == 2
    assert "internal error" in loop.stats.last_error



def test_beat_synced_travel_follows_the_tempo():
    """latent.travel.beats = 2 at 120 bpm: one keyframe per second; tempo changes apply at once."""
    from oscgan.render.loop import RenderLoop

    bpm = [120.0]
    loop = RenderLoop.__new__(RenderLoop)
    loop.tempo = lambda: bpm[0]
    snap = {"latent.travel.beats": 2.0, "latent.travel.speed": 5.0}
    assert loop.travel_rate(snap) == pytest.approx(1.0)
    bpm[0] = 174.0
    assert loop.travel_rate(snap) == pytest.approx(174 / 60 / 2)
    assert loop.travel_rate({"latent.travel.beats": 0.0, "latent.travel.speed": 5.0}) == 5.0


def test_tempo_from_prefers_midi_clock():
    from oscgan.signals.bus import SignalBus
    from oscgan.signals.names import MIDI_CLOCK_BPM, tempo_from

    bus = SignalBus()
    assert tempo_from(bus, 128.0) == 128.0
    bus.write(MIDI_CLOCK_BPM, 174.0, 0.0)
    assert tempo_from(bus, 128.0) == 174.0
    bus.write(MIDI_CLOCK_BPM, 0.0, 1.0)
    assert tempo_from(bus, 128.0) == 128.0
