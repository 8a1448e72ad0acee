"""Anchor-based frame pacing: deadline = t0 + n / fps, so sleeps never accumulate drift."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Waits for the next frame deadline.

    Deadlines are computed from an anchor, not from the previous wake-up, so small sleep
    errors never add up. When a frame runs late by more than a whole period the anchor is
    moved to now (frames are skipped, never rendered in a burst to catch up).
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock, self._sleep = clock, sleep
        self.fps = float(fps)
        self._t0 = clock()
        self._n = 0
        self.late_frames = 0

    def set_fps(self, fps: float) -> None:
        """Change the rate; re-anchors at the current frame so the change is immediate."""
        fps = float(fps)
        if fps != self.fps:
            self.fps = fps
            self._t0, self._n = self._clock(), 0

    @property
    def period(self) -> float:
        return 1.0 / self.fps

    def next_deadline(self) -> float:
        return self._t0 + (self._n + 1) / self.fps

    def wait(self, stop: Callable[[], bool] | None = None) -> float:
        """Sleep until the next deadline (or return early when ``stop()`` turns true); returns now."""
        deadline = self.next_deadline()
        now = self._clock()
        if now > deadline + self.period:
            # Too late: skip the missed slots instead of bursting to catch up.
            self.late_frames += 1
            self._t0, self._n = now, 0
            return now
        while now < deadline:
            if stop is not None and stop():
                return now
            self._sleep(min(deadline - now, 0.05))
            now = self._clock()
        self._n += 1
        return now
