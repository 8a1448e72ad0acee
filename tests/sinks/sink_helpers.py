"""Helpers for output tests: a test picture, and driving a real SinkWorker from a real fan-out."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkWorker
from oscgan.sinks.fanout import FrameFanout


def make_picture(width: int = 64, height: int = 48) -> np.ndarray:
    """[H, W, 4] uint8 RGBA, read-only: distinct per row and column, and not symmetric.

    Red ramps left to right, green ramps top to bottom, blue marks the top-left quadrant, so a
    swapped channel order, a vertical or horizontal flip, or a transposed size all show up.
    """
    y, x = np.mgrid[0:height, 0:width]
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., 0] = x * 255 // max(1, width - 1)
    rgba[..., 1] = y * 255 // max(1, height - 1)
    rgba[..., 2] = np.where((x < width // 2) & (y < height // 2), 200, 30)
    rgba[..., 3] = 255
    rgba.flags.writeable = False
    return rgba



def run_worker(sink: FrameSink, frames: list[np.ndarray], *, until: Callable[[], object],
               timeout: float = 5.0, period: float = 0.01) -> SinkWorker:
    """Start a real SinkWorker on ``sink``, publish ``frames`` (cycling) until ``until()`` holds,
    then stop the worker (which closes the sink on its own thread)."""
    fanout = FrameFanout()
    worker = SinkWorker(sink, fanout, poll=0.005)
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        i = 0
        while not until():
            if time.monotonic() > deadline or worker.state == "failed":
                raise AssertionError(f"sink never satisfied the test; worker status: {worker.status()}")
            fanout.publish(Frame(frames[i % len(frames)], i, time.perf_counter()))
            i += 1
            time.sleep(period)
    finally:
        worker.stop(timeout=5)
    return worker
