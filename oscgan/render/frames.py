"""Frame (uint8 RGBA HWC + timestamp) and the latest-wins slot every consumer reads from."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One published picture.

    Attributes:
        rgba: [H, W, 4] uint8, C-contiguous, read-only (consumers share it; never write).
        index: frame counter of the render loop, strictly increasing from 0.
        timestamp: ``time.perf_counter()`` seconds when the frame was published.
        render_ms: wall time of the render that produced it, in milliseconds.
        error: True when this frame repeats the last good picture because rendering failed.
        params_version: version of the parameter snapshot the picture reflects (-1 = unknown).
    """

    rgba: np.ndarray
    index: int
    timestamp: float
    render_ms: float = 0.0
    error: bool = False
    params_version: int = -1

    def __post_init__(self) -> None:
        a = self.rgba
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 4:
            raise ValueError(f"Frame.rgba must be uint8 [H, W, 4], got {a.dtype} {a.shape}")
        if a.flags.writeable:
            a = np.ascontiguousarray(a)
            a.flags.writeable = False
            object.__setattr__(self, "rgba", a)

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])


class LatestFrameSlot:
    """A one-frame mailbox: ``put`` replaces, readers get the newest and never block the writer.

    A slow reader simply misses frames; ``dropped`` counts frames that were replaced before
    anyone took them with ``take``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._frame = frame
            self._taken = False
            self._cond.notify_all()

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one (does not mark it taken)."""
        with self._cond:
            return self._frame

    def take(self, timeout: float | None = None) -> Frame | None:
        """Wait for a frame not yet taken, mark it taken and return it (None on timeout)."""
        with self._cond:
            if self._taken:
                self._cond.wait_for(lambda: not self._taken, timeout)
            if self._taken:
                return None
            self._taken = True
            return self._frame

    def wait_newer(self, index: int, timeout: float | None = None) -> Frame | None:
        """Wait for a frame whose index is greater than ``index`` (None on timeout)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._frame is not None and self._frame.index > index, timeout
            )
            f = self._frame
            return f if f is not None and f.index > index else None
