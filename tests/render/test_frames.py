"""Tests for Frame, the latest-wins LatestFrameSlot and the FrameFanout built on it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from oscgan.render.frames import Frame, LatestFrameSlot
from oscgan.sinks.fanout import FrameFanout

JOIN = 10.0  # generous deadlock guard for threads; never a timing assertion


def frame(index: int, value: int = 0) -> Frame:
    return Frame(np.full((2, 3, 4), value, np.uint8), index, float(index))


def start(target, *args: object) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


# -- Frame -----------------------------------------------------------------------------------------


def test_frame_freezes_its_pixels_without_copying() -> None:
    pixels = np.zeros((2, 3, 4), np.uint8)
    f = Frame(pixels, 0, 1.5)
    assert (f.width, f.height) == (3, 2)
    assert f.rgba is pixels  # no copy on the render path
    assert not f.rgba.flags.writeable
    with pytest.raises(ValueError):
        pixels[0, 0, 0] = 1  # frozen for everyone: consumers share it


def test_frame_makes_strided_pixels_contiguous() -> None:
    wide = np.arange(2 * 6 * 4, dtype=np.uint8).reshape(2, 6, 4)
    f = Frame(wide[:, ::2], 0, 0.0)
    assert f.rgba.flags.c_contiguous and not f.rgba.flags.writeable
    assert np.array_equal(f.rgba, wide[:, ::2])
    assert wide.flags.writeable  # only the copy was frozen


def test_frame_shares_an_already_read_only_array() -> None:
    pixels = np.zeros((2, 3, 4), np.uint8)
    pixels.flags.writeable = False
    assert Frame(pixels, 0, 0.0).rgba is pixels  # no copy per consumer


@pytest.mark.parametrize("bad", [
    np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3), np.uint8),
])
def test_frame_rejects_anything_but_uint8_rgba(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 4\]"):
        Frame(bad, 0, 0.0)


def test_frame_defaults() -> None:
    f = frame(3)
    assert (f.render_ms, f.error, f.params_version) == (0.0, False, -1)


# -- LatestFrameSlot -------------------------------------------------------------------------------


def test_empty_slot() -> None:
    slot = LatestFrameSlot()
    assert slot.latest() is None
    assert slot.take(timeout=0) is None
    assert slot.wait_newer(-1, timeout=0) is None
    assert slot.dropped == 0


def test_take_returns_each_frame_once() -> None:
    slot = LatestFrameSlot()
    f = frame(0)
    slot.put(f)
    assert slot.take(timeout=0) is f
    assert slot.take(timeout=0) is None  # already taken
    assert slot.latest() is f  # but still the latest
    assert slot.dropped == 0


def test_latest_wins_and_replaced_frames_count_as_dropped() -> None:
    slot = LatestFrameSlot()
    for i in range(5):
        slot.put(frame(i))
    assert slot.dropped == 4
    assert slot.take(timeout=0).index == 4
    slot.put(frame(5))  # the previous one was taken: nothing dropped
    assert slot.dropped == 4
    slot.put(frame(6))
    assert slot.dropped == 5


def test_latest_does_not_mark_taken() -> None:
    slot = LatestFrameSlot()
    slot.put(frame(0))
    assert slot.latest().index == 0
    slot.put(frame(1))
    assert slot.dropped == 1


def test_take_times_out_without_a_new_frame() -> None:
    slot = LatestFrameSlot()
    slot.put(frame(0))
    slot.take()
    assert slot.take(timeout=0.01) is None


def test_take_waits_for_a_frame_from_another_thread() -> None:
    slot = LatestFrameSlot()
    f = frame(7)
    got: list[Frame | None] = []
    t = start(lambda: got.append(slot.take(timeout=JOIN)))
    slot.put(f)
    t.join(JOIN)
    assert got == [f]


def test_wait_newer() -> None:
    slot = LatestFrameSlot()
    slot.put(frame(3))
    assert slot.wait_newer(2, timeout=0).index == 3  # already newer: no wait
    assert slot.wait_newer(3, timeout=0.01) is None
    got: list[Frame | None] = []
    t = start(lambda: got.append(slot.wait_newer(3, timeout=JOIN)))
    slot.put(frame(3))  # not newer: the waiter keeps waiting
    slot.put(frame(4))
    t.join(JOIN)
    assert got and got[0] is not None and got[0].index == 4


# -- FrameFanout -----------------------------------------------------------------------------------


def test_publish_reaches_every_consumer_and_the_latest_slot() -> None:
    fan = FrameFanout()
    a, b = fan.add_consumer("ndi"), fan.add_consumer("web")
    f = frame(0)
    fan.publish(f)
    assert a.take(timeout=0) is f and b.take(timeout=0) is f
    assert fan.latest.latest() is f


def test_duplicate_consumer_names_are_rejected() -> None:
    fan = FrameFanout()
    first = fan.add_consumer("web")
    with pytest.raises(ValueError, match="'web' already exists"):
        fan.add_consumer("web")
    fan.publish(frame(0))
    assert first.take(timeout=0) is not None  # the first one was kept
    fan.remove_consumer("web")
    assert fan.add_consumer("web") is not first  # the name is free again


def test_removed_consumer_gets_nothing_more() -> None:
    fan = FrameFanout()
    slot = fan.add_consumer("rec")
    fan.remove_consumer("rec")
    fan.remove_consumer("rec")  # removing twice is harmless
    fan.publish(frame(0))
    assert slot.latest() is None
    assert fan.dropped() == {}


def test_dropped_per_consumer() -> None:
    fan = FrameFanout()
    fast, slow = fan.add_consumer("fast"), fan.add_consumer("slow")
    for i in range(10):
        fan.publish(frame(i))
        fast.take(timeout=0)
    assert fan.dropped() == {"fast": 0, "slow": 9}
    assert slow.take(timeout=0).index == 9


def test_a_stalled_consumer_never_blocks_publish() -> None:
    fan = FrameFanout()
    slot = fan.add_consumer("stalled")
    took_one, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def consumer() -> None:
        f = slot.take(timeout=JOIN)
        seen.append(f.index)
        took_one.set()
        release.wait(JOIN)  # a sink stuck in a network send
        f = slot.take(timeout=JOIN)
        seen.append(f.index)

    c = start(consumer)
    fan.publish(frame(0))
    assert took_one.wait(JOIN)
    published = threading.Event()

    def publisher() -> None:
        for i in range(1, 101):
            fan.publish(frame(i))
        published.set()

    p = start(publisher)
    p.join(JOIN)
    assert published.is_set(), "publish blocked on a stalled consumer"
    assert fan.dropped() == {"stalled": 99}  # frames 1..99 replaced before anyone took them
    release.set()
    c.join(JOIN)
    assert seen == [0, 100]  # the consumer skips straight to the newest frame
