"""Tests for the Pacer with a fake clock: anchor-based deadlines, late frames, rate changes."""

from __future__ import annotations

import random

import pytest

from oscgan.render.pacing import Pacer


class FakeTime:
    """A clock that only moves when slept on (with optional oversleep) or advanced by hand."""

    def __init__(self, start: float = 1000.0, oversleep: float = 0.0, seed: int = 0) -> None:
        self.t = start
        self.oversleep = oversleep
        self.rng = random.Random(seed)
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the pacer must never sleep for nothing"
        self.sleeps.append(seconds)
        self.t += seconds + self.rng.uniform(0.0, self.oversleep)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make(fps: float, **kw: float) -> tuple[Pacer, FakeTime]:
    ft = FakeTime(**kw)  # type: ignore[arg-type]
    return Pacer(fps, clock=ft.clock, sleep=ft.sleep), ft


def test_first_deadline_is_one_period_after_the_anchor() -> None:
    pacer, ft = make(25.0)
    assert pacer.period == pytest.approx(0.04)
    assert pacer.next_deadline() == pytest.approx(1000.04)
    assert pacer.wait() == pytest.approx(1000.04)
    assert pacer.next_deadline() == pytest.approx(1000.08)


def test_no_drift_over_1000_frames_with_jittery_sleeps_and_work() -> None:
    fps, jitter = 60.0, 0.003
    pacer, ft = make(fps, oversleep=jitter, seed=1)
    t0 = ft.t
    work = random.Random(2)
    for n in range(1, 1001):
        now = pacer.wait()
        deadline = t0 + n / fps
        # Never early, and late by at most one oversleep: errors do not add up frame after frame.
        assert deadline - 1e-9 <= now <= deadline + jitter + 1e-9, n
        ft.advance(work.uniform(0.0, 0.008))  # render time, well under a period
    assert pacer.late_frames == 0
    # A pacer that slept one period after each frame would now be ~1000 * (jitter/2 + work) behind.
    assert ft.t - (t0 + 1000 / fps) < 0.02


def test_sleeps_are_chunked_so_stop_is_noticed() -> None:
    pacer, ft = make(2.0)  # a 0.5 s period
    stop_after = [3]

    def stop() -> bool:
        stop_after[0] -= 1
        return stop_after[0] < 0

    now = pacer.wait(stop=stop)
    assert now < 1000.5  # returned early, before the deadline
    assert all(s <= 0.05 + 1e-12 for s in ft.sleeps)
    # The stopped wait did not count a frame: the next deadline is still the first one.
    assert pacer.next_deadline() == pytest.approx(1000.5)


def test_a_late_frame_by_less_than_a_period_keeps_the_anchor() -> None:
    pacer, ft = make(10.0)
    assert pacer.wait() == pytest.approx(1000.1)
    ft.advance(0.15)  # deadline 1000.2 missed by 0.05 s (half a period)
    n_sleeps = len(ft.sleeps)
    assert pacer.wait() == pytest.approx(1000.25)  # no sleep: already past the deadline
    assert len(ft.sleeps) == n_sleeps
    assert pacer.late_frames == 0
    assert pacer.wait() == pytest.approx(1000.3)  # back on the original grid


def test_a_frame_late_by_more_than_a_period_reanchors_without_a_burst() -> None:
    pacer, ft = make(10.0)
    pacer.wait()  # 1000.1
    ft.advance(0.55)  # deadline 1000.2 missed by 0.45 s: several slots lost
    late = pacer.wait()
    assert late == pytest.approx(1000.65)
    assert pacer.late_frames == 1
    # No catching up: every following frame is a whole period after the previous one.
    times = [pacer.wait() for _ in range(5)]
    previous = late
    for t in times:
        assert t - previous == pytest.approx(0.1)
        previous = t
    assert pacer.late_frames == 1


def test_late_frames_count_each_stall() -> None:
    pacer, ft = make(30.0)
    for _ in range(3):
        pacer.wait()
        ft.advance(0.5)
    assert pacer.late_frames == 2  # the first wait came before any stall


def test_set_fps_reanchors_at_now() -> None:
    pacer, ft = make(10.0)
    pacer.wait()
    pacer.wait()  # 1000.2
    ft.advance(0.03)
    pacer.set_fps(20.0)
    assert pacer.fps == 20.0
    assert pacer.next_deadline() == pytest.approx(1000.28)
    assert pacer.wait() == pytest.approx(1000.28)
    assert pacer.wait() == pytest.approx(1000.33)


def test_set_fps_to_the_same_rate_keeps_the_anchor() -> None:
    pacer, ft = make(10.0)
    pacer.wait()
    ft.advance(0.03)
    pacer.set_fps(10)
    assert pacer.next_deadline() == pytest.approx(1000.2)
