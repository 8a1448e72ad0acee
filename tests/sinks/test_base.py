"""Tests for the sink framework: conversion, mailboxes, back-off, failure/hang handling, status."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from oscgan.render.frames import Frame
from oscgan.render.loop import RenderLoop
from oscgan.render.renderer import RenderResult
from oscgan.sinks.base import (Backoff, FrameConverter, FrameQueue, FrameSink, SinkManager, SinkUnavailable,
                               SinkWorker, alpha_plane, resize_rgba, rgba_to_bgra)
from oscgan.sinks.fanout import FrameFanout
from oscgan.state.params import ModelInfo, build_registry
from oscgan.state.snapshot import RenderArgs
from tests import waiting

# Frames are read-only; torch warns once when the resampler wraps one (pytest resets the
# package's own filter for each test).
pytestmark = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")

# -- helpers -----------------------------------------------------------------------------------

class FakeClock:
    """A monotonic clock the test moves by hand (thread-safe enough: one float)."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


wait_for = functools.partial(waiting.wait_for, interval=0.002)


def picture(w: int = 8, h: int = 6, value: int | None = None) -> np.ndarray:
    if value is not None:
        a = np.full((h, w, 4), value, np.uint8)
    else:
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([x * 30 % 256, y * 40 % 256, (x + y) * 10 % 256, np.full_like(x, 200)], -1).astype(np.uint8)
    a.flags.writeable = False
    return a


def frame(i: int, rgba: np.ndarray | None = None) -> Frame:
    return Frame(picture() if rgba is None else rgba, i, time.perf_counter())


class RecordingSink(FrameSink):
    """Counts calls; optional failures (open / send), slowness, or a hang in send."""

    def __init__(self, name: str = "rec", *, fail_open: bool = False, fail_send: bool = False,
                 delay: float = 0.0, clock: Callable[[], float] = time.monotonic, **kw: object) -> None:
        super().__init__(name, **kw)  # type: ignore[arg-type]
        self.fail_open, self.fail_send, self.delay, self.clock = fail_open, fail_send, delay, clock
        self.opens: list[float] = []
        self.closes = 0
        self.sent: list[Frame] = []
        self.send_threads: list[int] = []
        self.hang = threading.Event()     # set -> the next sends block until `release` is set
        self.release = threading.Event()
        self.in_send = threading.Event()

    def open(self) -> None:
        self.opens.append(self.clock())
        if self.fail_open:
            raise ConnectionRefusedError("receiver not there")

    def send(self, frame: Frame) -> None:
        self.in_send.set()
        self.send_threads.append(threading.get_ident())
        if self.hang.is_set():
            self.release.wait(30)
            return
        if self.fail_send:
            raise OSError("broken pipe")
        if self.delay:
            time.sleep(self.delay)
        self.sent.append(frame)

    def close(self) -> None:
        self.closes += 1


# -- conversion --------------------------------------------------------------------------------

def test_passthrough_shares_the_frame() -> None:
    f = frame(0)
    conv = FrameConverter()
    assert conv(f) is f


def test_stretch_resize_shape_and_flat_colour() -> None:
    a = picture(16, 8, value=77)
    out = resize_rgba(a, (5, 11), "stretch")
    assert out.shape == (11, 5, 4) and out.dtype == np.uint8
    assert (out == 77).all()  # a flat picture stays flat through interpolation


def test_downscale_is_antialiased() -> None:
    # A one-pixel checkerboard shrunk 4x must become mid-grey, not alias into stripes.
    y, x = np.mgrid[0:64, 0:64]
    a = np.zeros((64, 64, 4), np.uint8)
    a[..., :3] = (((x + y) % 2) * 255)[..., None]
    a[..., 3] = 255
    out = resize_rgba(a, (16, 16))
    assert abs(float(out[..., 0].mean()) - 127.5) < 3 and out[..., 0].std() < 10


def test_letterbox_bars_are_transparent_black_and_centred() -> None:
    a = picture(10, 10, value=200)
    out = resize_rgba(a, (30, 10), "letterbox")
    assert out.shape == (10, 30, 4)
    assert (out[:, :10] == 0).all() and (out[:, 20:] == 0).all()
    assert (out[:, 10:20] == 200).all()
    tall = resize_rgba(a, (10, 20), "letterbox")
    assert (tall[:5] == 0).all() and (tall[15:] == 0).all() and (tall[5:15] == 200).all()


def test_bgra_swaps_red_and_blue_only() -> None:
    a = picture()
    b = rgba_to_bgra(a)
    np.testing.assert_array_equal(b, a[..., (2, 1, 0, 3)])
    conv = FrameConverter(pixel_format="BGRA")
    np.testing.assert_array_equal(conv(frame(0, a)).rgba, a[..., (2, 1, 0, 3)])


def test_alpha_modes() -> None:
    a = np.zeros((2, 3, 4), np.uint8)
    a[0, 0, :3] = 255          # white
    a[0, 1, :3] = (255, 0, 0)  # red
    a[0, 2, :3] = (0, 0, 255)  # blue
    a[..., 3] = 9
    luma = alpha_plane(a, "luma")
    assert luma[0, 0] == 255 and luma[1, 0] == 0          # white opaque, black transparent
    assert abs(int(luma[0, 1]) - round(0.299 * 255)) <= 1  # ITU-R 601 weights
    assert abs(int(luma[0, 2]) - round(0.114 * 255)) <= 1
    assert (alpha_plane(a, "opaque") == 255).all()
    np.testing.assert_array_equal(alpha_plane(a, "channel", "r"), a[..., 0])
    np.testing.assert_array_equal(alpha_plane(a, "channel", "a"), a[..., 3])


def test_converter_combines_resize_alpha_and_byte_order() -> None:
    a = picture(8, 8, value=100)
    conv = FrameConverter((16, 4), "letterbox", "BGRA", "luma")
    out = conv(frame(3, a))
    assert out.index == 3 and out.rgba.shape == (4, 16, 4)
    assert not out.rgba.flags.writeable
    inner = out.rgba[:, 6:10]
    assert (inner[..., :3] == 100).all() and (inner[..., 3] == 100).all()  # grey: luma == value
    assert (out.rgba[:, :6] == 0).all()
    # The same picture re-sent (loop unchanged) reuses the converted array.
    assert conv(frame(4, a)).rgba is out.rgba


def test_bad_output_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="pixel_format"):
        RecordingSink(pixel_format="YUV")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fit"):
        FrameConverter(fit="crop")
    with pytest.raises(ValueError, match="alpha"):
        RecordingSink(alpha="magic")  # type: ignore[arg-type]


# -- mailboxes and back-off --------------------------------------------------------------------

def test_frame_queue_is_fifo_bounded_and_never_blocks() -> None:
    overflowed: list[int] = []
    q = FrameQueue(3, on_overflow=lambda f: overflowed.append(f.index))
    t0 = time.perf_counter()
    for i in range(5):
        q.put(frame(i))
    assert time.perf_counter() - t0 < 0.05
    assert q.dropped == 2 and overflowed == [3, 4]
    assert [q.take(0).index for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    assert q.take(timeout=0.01) is None


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    b = Backoff()
    delays = [b.next_delay() for _ in range(10)]
    assert delays[:7] == [0.5, 1, 2, 4, 8, 16, 30] and delays[-1] == 30
    b.reset()
    assert b.next_delay() == 0.5


# -- failures ----------------------------------------------------------------------------------

def test_open_failures_retry_with_exponential_backoff(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    fanout = FrameFanout()
    sink = RecordingSink(fail_open=True, clock=clock)
    w = SinkWorker(sink, fanout, clock=clock, poll=0.001)
    caplog.set_level(logging.ERROR, logger="oscgan.sinks.base")
    w.start()
    try:
        expected = [0.0]
        for delay in (0.5, 1, 2, 4, 8):
            wait_for(lambda: len(sink.opens) == len(expected), what=f"attempt {len(expected)}")
            wait_for(lambda: w.state == "retrying", what="retrying")
            st = w.status()
            assert st["next_retry_s"] == delay and "ConnectionRefusedError" in st["last_error"]
            clock.advance(delay * 0.9)
            time.sleep(0.02)
            assert len(sink.opens) == len(expected)  # not before its time
            clock.advance(delay * 0.1)
            expected.append(expected[-1] + delay)
        wait_for(lambda: len(sink.opens) == len(expected), what="last attempt")
        assert [round(t - 100.0, 6) for t in sink.opens] == expected
        assert sink.closes >= 5  # closed after every failed open
        # 6 failures within 30 s of fake time: logged once, the rest rate-limited.
        logged = [r for r in caplog.records if "receiver not there" in r.getMessage()]
        assert len(logged) == 1
    finally:
        w.stop()


def test_send_failure_closes_and_reopens_after_backoff() -> None:
    clock = FakeClock()
    fanout = FrameFanout()
    sink = RecordingSink(fail_send=True, clock=clock)
    w = SinkWorker(sink, fanout, clock=clock, poll=0.001)
    w.start()
    try:
        wait_for(lambda: w.state == "open", what="open")
        fanout.publish(frame(0))
        wait_for(lambda: w.state == "retrying", what="retrying after send failure")
        assert sink.closes == 1 and w.stats.errors == 1 and "broken pipe" in w.stats.last_error
        sink.fail_send = False
        clock.advance(0.5)
        wait_for(lambda: w.state == "open" and len(sink.opens) == 2, what="reopen")
        fanout.publish(frame(1))
        wait_for(lambda: len(sink.sent) == 1, what="frame after reopen")
        assert sink.sent[0].index == 1 and w.status()["frames_sent"] == 1
    finally:
        w.stop()


def test_hung_send_is_abandoned_and_a_fresh_thread_takes_over() -> None:
    clock = FakeClock()
    fanout = FrameFanout()
    sink = RecordingSink(clock=clock)
    sink.send_timeout = 2.0
    mgr = SinkManager(fanout, clock=clock, watchdog_interval=0.005, poll=0.001)
    w = mgr.add(sink)
    mgr.start()
    try:
        wait_for(lambda: w.state == "open", what="open")
        sink.hang.set()
        fanout.publish(frame(0))
        wait_for(sink.in_send.is_set, what="send entered")
        stale = sink.send_threads[-1]
        clock.advance(1.0)
        time.sleep(0.03)
        assert w.stats.hangs == 0  # under the timeout: still waiting
        clock.advance(1.5)
        wait_for(lambda: w.stats.hangs == 1, what="hang detected")
        st = mgr.status()["rec"]
        assert st["state"] == "retrying" and "did not return within 2 s" in st["last_error"]
        assert st["stuck_threads"] == 1 and st["next_retry_s"] == 0.5
        wait_for(lambda: sink.closes >= 1, what="close() from the fresh thread (unblocks backends)")
        sink.hang.clear()
        clock.advance(0.5)
        wait_for(lambda: len(sink.opens) == 2 and w.state == "open", what="reopen on a fresh thread")
        fanout.publish(frame(1))
        wait_for(lambda: len(sink.sent) == 1, what="frames flow again")
        assert sink.send_threads[-1] != stale
        n_calls = len(sink.send_threads)
        sink.release.set()  # the stuck call finally returns: its thread must just exit
        wait_for(lambda: mgr.status()["rec"]["stuck_threads"] == 0, what="stale thread exit")
        time.sleep(0.02)
        assert len(sink.send_threads) == n_calls and sink.sent[-1].index == 1
    finally:
        sink.release.set()
        mgr.stop()


def test_too_many_stuck_threads_gives_up() -> None:
    clock = FakeClock()
    fanout = FrameFanout()
    sink = RecordingSink(clock=clock)
    sink.send_timeout = 1.0
    sink.hang.set()
    mgr = SinkManager(fanout, clock=clock, watchdog_interval=0.005, poll=0.001, max_abandoned=2)
    w = mgr.add(sink)
    mgr.start()
    try:
        for n in (1, 2):
            wait_for(lambda: w.state == "open", what="open")
            sink.in_send.clear()
            fanout.publish(frame(n))
            wait_for(sink.in_send.is_set, what="send entered")
            clock.advance(1.5)
            wait_for(lambda: w.stats.hangs == n, what=f"hang {n}")
            clock.advance(5)
        wait_for(lambda: w.state == "failed", what="give up")
        assert w.status()["stuck_threads"] == 2
    finally:
        sink.release.set()
        mgr.stop()


def test_unavailable_backend_is_reported_once_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    class Missing(RecordingSink):
        @classmethod
        def is_available(cls) -> tuple[bool, str]:
            return False, "libfoo not installed; pip install foo"

    caplog.set_level(logging.WARNING, logger="oscgan.sinks.base")
    mgr = SinkManager(FrameFanout())
    mgr.add(Missing("a"))
    mgr.add(Missing("b"))
    mgr.start()
    st = mgr.status()
    mgr.stop()
    assert st["a"]["state"] == "failed" and "libfoo not installed" in st["a"]["last_error"]
    assert sum("libfoo" in r.getMessage() for r in caplog.records) == 1


def test_sink_unavailable_raised_in_open_stops_retrying() -> None:
    class Gone(RecordingSink):
        def open(self) -> None:
            raise SinkUnavailable("no GPU texture sharing on this OS")

    w = SinkWorker(Gone(), FrameFanout(), poll=0.001)
    w.start()
    wait_for(lambda: w.state == "failed", what="failed")
    assert "no GPU texture sharing" in w.status()["last_error"]
    w.stop()


def test_duplicate_names_are_rejected() -> None:
    mgr = SinkManager(FrameFanout())
    mgr.add(RecordingSink("x"))
    with pytest.raises(ValueError, match="named 'x'"):
        mgr.add(RecordingSink("x"))


# -- the loop keeps going ----------------------------------------------------------------------

INFO = ModelInfo("stylegan2", 4, 4, 4, 8, (4, 4, 8, 8))


class QuickRenderer:
    def __init__(self) -> None:
        self.n = 0

    def render(self, args: RenderArgs) -> RenderResult:
        self.n += 1
        return RenderResult(np.full((16, 16, 4), self.n % 256, np.uint8), {"total": 0.1})


def test_broken_hung_and_slow_sinks_never_slow_the_render() -> None:
    fps = 100.0
    registry = build_registry(INFO)
    registry.set("output.fps", fps)
    registry.set("noise.mode", "random")  # every frame is rendered anew
    fanout = FrameFanout()
    loop = RenderLoop(registry, QuickRenderer(), fanout, INFO)  # type: ignore[arg-type]
    mgr = SinkManager(fanout, fps=fps, watchdog_interval=0.02)
    good = RecordingSink("good")
    scaled = RecordingSink("scaled", size=(32, 8), fit="letterbox", pixel_format="BGRA", alpha="luma")
    bad_open = RecordingSink("bad_open", fail_open=True)
    bad_send = RecordingSink("bad_send", fail_send=True)
    slow = RecordingSink("slow", delay=0.05)
    hung = RecordingSink("hung")
    hung.send_timeout = 0.2
    hung.hang.set()
    for s in (good, scaled, bad_open, bad_send, slow, hung):
        mgr.add(s)
    mgr.start()
    loop.start()
    try:
        time.sleep(1.2)
    finally:
        loop.stop()
        published = loop.stats.frames
        mgr.stop()
        hung.release.set()
    st = mgr.status()
    assert published >= 0.9 * 1.2 * fps, f"render slowed down: {published} frames"
    assert len(good.sent) >= 0.95 * published
    assert len(scaled.sent) >= 0.9 * published and scaled.sent[0].rgba.shape == (8, 32, 4)
    assert st["slow"]["dropped"] > 0.5 * published and 10 <= st["slow"]["frames_sent"] <= 30
    assert st["bad_open"]["errors"] >= 2 and st["bad_open"]["frames_sent"] == 0
    assert st["bad_send"]["errors"] >= 2
    assert st["hung"]["hangs"] >= 1
    for name in ("good", "scaled", "slow"):
        assert st[name]["state"] == "closed" and st[name]["errors"] == 0


class FailingAfterFirst:
    def __init__(self) -> None:
        self.n = 0

    def render(self, args: RenderArgs) -> RenderResult:
        self.n += 1
        if self.n > 1:
            return RenderResult(None, {"total": 0.1}, "CUDA out of memory")
        return RenderResult(np.full((4, 4, 4), 42, np.uint8), {"total": 0.1})


def test_outputs_keep_the_last_good_picture_while_rendering_fails() -> None:
    registry = build_registry(INFO)
    registry.set("noise.mode", "random")
    fanout = FrameFanout()
    loop = RenderLoop(registry, FailingAfterFirst(), fanout, INFO)  # type: ignore[arg-type]
    sink = RecordingSink("out", size=(8, 8))
    w = SinkWorker(sink, fanout, poll=0.001)
    w.start()
    try:
        wait_for(lambda: w.state == "open", what="open")
        for i in range(3):
            loop.tick(float(i))
            wait_for(lambda: len(sink.sent) == i + 1, what=f"frame {i}")
    finally:
        w.stop()
    assert [f.error for f in sink.sent] == [False, True, True]
    assert all((f.rgba == 42).all() and f.rgba.shape == (8, 8, 4) for f in sink.sent)
