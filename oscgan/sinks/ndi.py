"""NDI® output: frames become a named NDI source on the LAN (cyndilib, imported lazily).

NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video). oscgan ships no NDI
binaries: the NDI runtime comes inside the optional ``cyndilib`` wheel, with its licence file
(see ``NDI_NOTICE.txt`` beside this module).

Receivers list the source as ``HOSTNAME (NAME)``, e.g. ``STUDIO-PC (oscgan)``.
"""

from __future__ import annotations

import logging
import socket
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkUnavailable

log = logging.getLogger(__name__)

NdiFourCC = Literal["BGRA", "RGBA", "BGRX", "RGBX"]
FOURCCS: tuple[str, ...] = ("BGRA", "RGBA", "BGRX", "RGBX")
INSTALL_HINT = "pip install 'oscgan[ndi]' (or: pip install cyndilib)"


def parse_frame_rate(value: float | int | str | Fraction) -> Fraction:
    """30 -> 30/1, 29.97 -> 30000/1001, '60000/1001' -> 60000/1001, '25' -> 25/1.

    NDI carries the frame rate as a fraction; the NTSC rates (23.976, 29.97, 59.94) are
    recognised from their decimal spelling so receivers see the exact broadcast rate.
    """
    if isinstance(value, Fraction):
        fr = value
    elif isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        try:
            fr = Fraction(int(num), int(den))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"frame rate must look like 30, 29.97 or 30000/1001, got {value!r}") from None
    else:
        try:
            f = float(value)
        except ValueError:
            raise ValueError(f"frame rate must look like 30, 29.97 or 30000/1001, got {value!r}") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError(f"frame rate must be finite, got {value!r}")
        ntsc = f * 1.001
        if abs(f - round(f)) > 1e-6 and abs(ntsc - round(ntsc)) < 2e-3:
            fr = Fraction(round(ntsc) * 1000, 1001)
        else:
            fr = Fraction(f).limit_denominator(1001)
    if not 0 < fr <= 1000:
        raise ValueError(f"frame rate must be between 0 and 1000 fps, got {value!r}")
    return fr


def ndi_source_name(name: str, host: str | None = None) -> str:
    """The name receivers show: ``HOSTNAME (name)``; NDI upper-cases the machine name."""
    host = host or socket.gethostname().split(".")[0]
    return f"{host.upper()} ({name})"


class NdiSink(FrameSink):
    """Send frames as an NDI video source.

    Args:
        source: the NDI source name (receivers show ``HOSTNAME (source)``); default ``oscgan``.
        fps: frame rate announced to receivers (float, or a fraction string like ``30000/1001``).
            It is metadata: frames go out as the render loop makes them (``clock_video`` off).
        fourcc: NDI pixel layout: ``BGRA`` (default, what most receivers prefer), ``RGBA``, or
            ``BGRX`` / ``RGBX`` (alpha ignored and not transmitted: less bandwidth).
        groups: NDI groups to announce in (comma-separated; empty = the default group).
        name, size, fit, alpha, alpha_channel: see :class:`FrameSink` (``pixel_format`` follows
            ``fourcc``).
    """

    def __init__(self, source: str = "oscgan", *, fps: float | str | Fraction = 30.0,
                 fourcc: NdiFourCC = "BGRA", groups: str = "", name: str | None = None,
                 size: tuple[int, int] | None = None, fit: Any = "stretch", alpha: Any = "none",
                 alpha_channel: Any = "a") -> None:
        if fourcc not in FOURCCS:
            raise ValueError(f"NDI fourcc must be one of {', '.join(FOURCCS)}; got {fourcc!r}")
        if not source or not source.strip():
            raise ValueError("NDI source name must not be empty")
        super().__init__(name or "ndi", size=size, fit=fit, pixel_format="BGRA" if fourcc[0] == "B" else "RGBA",
                         alpha=alpha, alpha_channel=alpha_channel)
        self.source = source
        self.fourcc = fourcc
        self.frame_rate = parse_frame_rate(fps)
        self.groups = groups
        self._sender: Any = None
        self._video_frame: Any = None
        self._shape: tuple[int, int] | None = None  # (height, width) the sender was built for
        self._staging: np.ndarray | None = None
        self.source_full_name: str | None = None

    @classmethod
    def from_config(cls, cfg: Any, ctx: Any) -> NdiSink:
        fps = cfg.fps if cfg.fps is not None else ctx.fps
        opts = cfg.output_options()
        fourcc: Any = opts.pop("pixel_format", None) or "BGRA"  # the config's pixel_format is the NDI FourCC
        return cls(cfg.source or cfg.name or "oscgan", fps=fps, fourcc=fourcc, groups=cfg.groups, **opts)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import cyndilib  # noqa: F401
        except ImportError as e:
            return False, f"NDI needs the cyndilib package ({e}); {INSTALL_HINT}"
        except OSError as e:  # the bundled libndi failed to load
            return False, f"the NDI runtime inside cyndilib failed to load: {e}"
        return True, ""

    # -- FrameSink ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            import cyndilib  # noqa: F401
        except ImportError as e:
            raise SinkUnavailable(f"NDI needs the cyndilib package ({e}); {INSTALL_HINT}") from None
        if self.size is not None:
            self._start(self.size[1], self.size[0])
        # else: the sender is created on the first frame, when the render size is known

    def send(self, frame: Frame) -> None:
        h, w = frame.height, frame.width
        if self._sender is None or self._shape != (h, w):
            self._stop_sender()
            self._start(h, w)
        staging = self._staging
        assert staging is not None
        # cyndilib takes a writable 1-D uint8 buffer; our frames are shared and read-only.
        np.copyto(staging, frame.rgba)
        if not self._sender.write_video_async(staging.reshape(-1)):
            raise RuntimeError("NDI sender is not running")

    def close(self) -> None:
        self._stop_sender()

    def describe(self) -> dict[str, Any]:
        return {"ndi_source": self.source_full_name or ndi_source_name(self.source),
                "fourcc": self.fourcc, "frame_rate": f"{self.frame_rate.numerator}/{self.frame_rate.denominator}"}

    # -- internals ---------------------------------------------------------------------------
    def _start(self, height: int, width: int) -> None:
        from cyndilib import FourCC, Sender, VideoSendFrame

        vf = VideoSendFrame()
        vf.set_resolution(width, height)
        vf.set_frame_rate(self.frame_rate)
        vf.set_fourcc(getattr(FourCC, self.fourcc))
        # clock_video=False: the render loop paces frames; NDI must not block our worker too.
        sender = Sender(self.source, ndi_groups=self.groups, clock_video=False, clock_audio=False)
        sender.set_video_frame(vf)
        sender.open()
        self._sender, self._video_frame, self._shape = sender, vf, (height, width)
        self._staging = np.empty((height, width, 4), np.uint8)
        src = getattr(sender, "source", None)
        self.source_full_name = getattr(src, "name", None) or ndi_source_name(self.source)
        log.info("NDI source %r up: %dx%d %s @ %s fps", self.source_full_name, width, height, self.fourcc,
                 self.frame_rate)

    def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        self._video_frame, self._shape, self._staging = None, None, None
        if sender is not None:
            sender.close()
