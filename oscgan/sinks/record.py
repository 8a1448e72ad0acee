"""Recording: H.264 video of every published frame through PyAV, timed by frame index."""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkUnavailable

if TYPE_CHECKING:
    from oscgan.sinks.registry import RecordSinkConfig, SinkContext

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def fps_fraction(fps: float) -> Fraction:
    """30 -> 30/1, 29.97 -> 2997/100, 59.94 -> 2997/50: a rational rate for the container."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """yuv420p needs even width and height: round odd ones down (never below 2)."""
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


def check_pyav(codec: str = "libx264") -> tuple[bool, str]:
    """(True, "") when PyAV is importable and has ``codec`` for encoding."""
    try:
        import av
    except ImportError as e:
        return False, f"PyAV is not installed ({e}); install it with: pip install av"
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001 - av raises different types across versions
        return False, f"this FFmpeg build (PyAV {av.__version__}) has no {codec!r} encoder"
    return True, ""


class VideoWriter:
    """Encodes RGBA frames into a video file; frame ``n`` is shown at ``n / fps`` seconds.

    ``write(rgba, index)`` places the picture by its index (relative to the first one written),
    so gaps (dropped frames) hold the previous picture and the file plays at the right speed.
    yuv420p output: odd sizes are cropped by one pixel. ``crf`` / ``preset`` apply to x264.

    Args:
        path: output file; its container follows the suffix (.mp4, .mkv, .mov).
        fps: frames per second (the time base is 1/fps).
        crf: x264 constant rate factor (0 lossless .. 51 worst). preset: x264 speed preset.
        codec: FFmpeg encoder name. threads: encoder threads (0 = FFmpeg's choice).
        pixel_format: byte order of the arrays given to ``write`` ('RGBA' or 'BGRA').
    """

    def __init__(self, path: str | Path, fps: float, *, crf: int = 18, preset: str = "veryfast",
                 codec: str = "libx264", threads: int = 0, pixel_format: str = "RGBA") -> None:
        import av

        self.path = Path(path)
        self.rate = fps_fraction(fps)
        self.crf, self.preset, self.codec, self.threads = crf, preset, codec, threads
        self._av_format = {"RGBA": "rgba", "BGRA": "bgra"}[pixel_format]
        self._container: Any = av.open(str(self.path), mode="w")
        self._stream: Any = None
        self._first: int | None = None
        self._last: int | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def _add_stream(self, width: int, height: int) -> None:
        w, h = even_size((width, height))
        if (w, h) != (width, height):
            log.info("recording %s at %dx%d (yuv420p needs even sizes; frames are %dx%d)",
                     self.path, w, h, width, height)
        s = self._container.add_stream(self.codec, rate=self.rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if self.codec.startswith("libx26"):
            s.options = {"crf": str(self.crf), "preset": self.preset}
        if self.threads:
            s.codec_context.thread_count = self.threads
        self._stream, self.size = s, (w, h)

    def write(self, rgba: np.ndarray, index: int | None = None) -> None:
        """Encode one [H, W, 4] uint8 picture at frame ``index`` (default: the next one)."""
        import av

        if self._container is None:
            raise RuntimeError(f"{self.path} is already closed")
        h, w = rgba.shape[:2]
        if self._stream is None:
            self._add_stream(w, h)
        assert self.size is not None
        ew, eh = self.size
        if (w, h) != (ew, eh):
            if w < ew or h < eh:
                raise ValueError(f"frame is {w}x{h} but {self.path} records {ew}x{eh}")
            rgba = np.ascontiguousarray(rgba[:eh, :ew])
        if index is None:
            index = 0 if self._last is None else self._last + 1
        if self._first is None:
            self._first = index
        if self._last is not None and index <= self._last:
            return  # same or older frame again (e.g. re-sent after a reopen): keep pts increasing
        vf = av.VideoFrame.from_ndarray(rgba, format=self._av_format)
        vf.pts = index - self._first
        vf.time_base = 1 / self.rate
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self._last = index
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        c, self._container = self._container, None
        if c is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    c.mux(packet)
        finally:
            c.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordSink(FrameSink):
    """``--record out.mp4``: every published frame, H.264 yuv420p, at the daemon's fps.

    Lossless sink: the worker feeds it from a bounded queue (``queue_seconds`` of frames) rather
    than a latest-frame slot, so live outputs may drop frames while the file keeps them all;
    only when the encoder falls further behind than the queue are frames dropped (logged
    loudly, counted in /health). Frames are timed by their index (``pts = index / fps``), so
    the file plays at the nominal fps even when the loop ran late. If the recorder fails and
    is reopened, it continues in a new file ``NAME.partN.mp4`` instead of overwriting.
    """

    lossless = True
    send_timeout = 10.0
    close_timeout = 60.0

    def __init__(self, path: str | Path, fps: float, *, name: str = "record",
                 size: tuple[int, int] | None = None, fit: str = "stretch", alpha: str = "none",
                 alpha_channel: str = "a", crf: int = 18, preset: str = "veryfast", codec: str = "libx264",
                 threads: int = 0, queue_seconds: float = 2.0, pixel_format: str = "RGBA") -> None:
        if size is not None:
            size = even_size(size)
        super().__init__(name, size=size, fit=fit, pixel_format=pixel_format,  # type: ignore[arg-type]
                         alpha=alpha, alpha_channel=alpha_channel)  # type: ignore[arg-type]
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"record path {self.path} should end in one of {', '.join(VIDEO_SUFFIXES)}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be 0..51, got {crf}")
        if codec.startswith("libx26") and preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        self.fps = float(fps)
        fps_fraction(self.fps)
        self.crf, self.preset, self.codec, self.threads = crf, preset, codec, threads
        self.queue_seconds = queue_seconds
        self._writer: VideoWriter | None = None
        self._segment = 0
        self.files: list[Path] = []

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return check_pyav("libx264")

    @classmethod
    def from_config(cls, cfg: RecordSinkConfig, ctx: SinkContext) -> RecordSink:
        return cls(cfg.path, ctx.fps, crf=cfg.crf, preset=cfg.preset, codec=cfg.codec, threads=cfg.threads,
                   queue_seconds=cfg.queue_seconds, **cfg.output_options())

    def _segment_path(self) -> Path:
        if self._segment == 0:
            return self.path
        return self.path.with_name(f"{self.path.stem}.part{self._segment}{self.path.suffix}")

    def open(self) -> None:
        ok, why = check_pyav(self.codec)
        if not ok:
            raise SinkUnavailable(why)
        path = self._segment_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = VideoWriter(path, self.fps, crf=self.crf, preset=self.preset, codec=self.codec,
                                   threads=self.threads, pixel_format=self.pixel_format)
        self._segment += 1
        self.files.append(path)
        log.info("recording video to %s (%g fps, crf %d, %s)", path, self.fps, self.crf, self.preset)

    def send(self, frame: Frame) -> None:
        w = self._writer
        if w is None:
            raise RuntimeError("recorder is not open")
        w.write(frame.rgba, frame.index)

    def close(self) -> None:
        w, self._writer = self._writer, None
        if w is not None:
            w.close()
            log.info("recording %s closed: %d frames", w.path, w.frames)

    def describe(self) -> dict[str, Any]:
        w = self._writer
        path = w.path if w is not None else (self.files[-1] if self.files else self.path)
        return {"path": str(path), "frames_written": w.frames if w is not None else None}
