"""Network stream output: H.264 in MPEG-TS over UDP (or SRT where FFmpeg has it), via PyAV.

Low latency by construction: x264 ``zerolatency`` (no B-frames, no lookahead), a keyframe with
repeated SPS/PPS every ``keyframe_s`` so a player that joins late starts within that time, and
TS packets sized to fit one UDP datagram (``pkt_size=1316`` = 7 x 188).
Play it with ``ffplay -fflags nobuffer udp://127.0.0.1:5000`` or VLC (``udp://@:5000``).
"""

from __future__ import annotations

import logging
import time
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkUnavailable

log = logging.getLogger(__name__)

SCHEMES: tuple[str, ...] = ("udp", "srt")
INSTALL_HINT = "pip install 'oscgan[stream]' (or: pip install av)"
UDP_PACKET = 1316  # 7 MPEG-TS packets of 188 bytes: one datagram under a 1500-byte MTU


def stream_url(url: str) -> str:
    """Validate a stream URL and add ``pkt_size=1316`` to UDP ones that do not set it.

    ValueError for other schemes or a missing host/port.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"stream URL must start with {' or '.join(s + '://' for s in SCHEMES)}, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        raise ValueError(f"stream URL needs a host and a port, e.g. udp://127.0.0.1:5000; got {url!r}")
    if parts.scheme == "udp":
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.setdefault("pkt_size", str(UDP_PACKET))
        parts = parts._replace(query=urlencode(query))
    return urlunsplit(parts)


class StreamSink(FrameSink):
    """Encode frames to H.264 and stream them as MPEG-TS to a URL.

    Args:
        url: ``udp://HOST:PORT`` (unicast or multicast) or ``srt://HOST:PORT`` (needs a PyAV
            whose FFmpeg was built with libsrt; the PyPI wheels are not).
        fps: frame rate written into the stream (frames are stamped by wall clock, so a slow
            render shows as a lower rate, not as slow motion).
        codec: FFmpeg encoder (``libx264``; ``h264_nvenc`` on NVIDIA machines).
        preset: x264 speed/quality trade-off; ``ultrafast`` / ``superfast`` for live use.
        crf: constant quality 0 (lossless) .. 51, used when ``bitrate`` is None.
        bitrate: target bits per second (e.g. 6_000_000) for a capped, steadier stream; None = crf.
        keyframe_s: seconds between keyframes (late joiners wait at most this long).
        name, size, fit: see :class:`FrameSink`; width and height must be even (4:2:0 video).
    """

    def __init__(self, url: str, *, fps: float = 30.0, codec: str = "libx264", preset: str = "ultrafast",
                 crf: int = 20, bitrate: int | None = None, keyframe_s: float = 1.0, name: str | None = None,
                 size: tuple[int, int] | None = None, fit: Any = "stretch") -> None:
        super().__init__(name or "stream", size=size, fit=fit, pixel_format="RGBA", alpha="none")
        self.url = stream_url(url)
        if size is not None and (size[0] % 2 or size[1] % 2):
            raise ValueError(f"stream size must be even for H.264 4:2:0 video, got {size[0]}x{size[1]}")
        if not fps > 0:
            raise ValueError(f"stream fps must be positive, got {fps}")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec, self.preset, self.crf, self.bitrate = codec, preset, int(crf), bitrate
        self.keyframe_s = float(keyframe_s)
        self._container: Any = None
        self._stream: Any = None
        self._shape: tuple[int, int] | None = None  # (height, width)
        self._t0 = 0.0
        self._last_pts = -1

    @classmethod
    def from_config(cls, cfg: Any, ctx: Any) -> StreamSink:
        return cls(cfg.url, fps=cfg.fps or ctx.fps, codec=cfg.codec, preset=cfg.preset, crf=cfg.crf,
                   bitrate=cfg.bitrate, keyframe_s=cfg.keyframe_s, name=cfg.label(), size=cfg.size, fit=cfg.fit)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import av  # noqa: F401
        except ImportError as e:
            return False, f"streaming needs PyAV ({e}); {INSTALL_HINT}"
        return True, ""

    # -- FrameSink ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            import av  # noqa: F401
        except ImportError as e:
            raise SinkUnavailable(f"streaming needs PyAV ({e}); {INSTALL_HINT}") from None
        if self.size is not None:
            self._start(self.size[1], self.size[0])
        # else: the encoder starts on the first frame, when the render size is known

    def send(self, frame: Frame) -> None:
        import av

        h, w = frame.height, frame.width
        if self._container is None or self._shape != (h, w):
            self._stop()
            if w % 2 or h % 2:
                raise SinkUnavailable(f"the picture is {w}x{h}; H.264 streams need an even size: "
                                      "set the output's size (e.g. --stream-size 640x360)")
            self._start(h, w)
        vf = av.VideoFrame.from_ndarray(frame.rgba, format="rgba")
        # Wall-clock timestamps in 1/fps units, strictly increasing: frames the worker missed
        # leave a gap instead of making the stream run fast.
        pts = max(self._last_pts + 1, round((time.perf_counter() - self._t0) * self.fps))
        vf.pts, self._last_pts = pts, pts
        vf.time_base = self._stream.codec_context.time_base
        self._mux(self._stream.encode(vf))

    def close(self) -> None:
        self._stop()

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "codec": self.codec}

    # -- internals ---------------------------------------------------------------------------
    def _start(self, height: int, width: int) -> None:
        import av

        container = av.open(self.url, "w", format="mpegts")
        try:
            stream: Any = container.add_stream(self.codec, rate=self.fps)  # a VideoStream
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            cc = stream.codec_context
            cc.time_base = 1 / self.fps
            gop = max(1, round(float(self.fps) * self.keyframe_s))
            cc.gop_size = gop
            opts = {"preset": self.preset, "tune": "zerolatency"}
            if self.codec == "libx264":
                opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1"
            if self.bitrate:
                cc.bit_rate = int(self.bitrate)
                opts["maxrate"], opts["bufsize"] = str(int(self.bitrate)), str(int(self.bitrate))
            else:
                opts["crf"] = str(self.crf)
            cc.options = opts
            # Opening the network output happens here, so a missing protocol fails now.
            container.start_encoding()
        except av.error.ProtocolNotFoundError:
            container.close()
            scheme = urlsplit(self.url).scheme
            raise SinkUnavailable(f"this PyAV's FFmpeg has no {scheme}:// protocol (the PyPI wheels ship "
                                  f"without libsrt); use udp://, or build PyAV against an FFmpeg with "
                                  f"{scheme} support (pip install av --no-binary av)") from None
        except BaseException:
            container.close()
            raise
        self._container, self._stream, self._shape = container, stream, (height, width)
        self._t0, self._last_pts = time.perf_counter(), -1
        log.info("streaming %dx%d H.264 (%s) to %s", width, height, self.codec, self.url)

    def _mux(self, packets: Any) -> None:
        for p in packets:
            self._container.mux(p)

    def _stop(self) -> None:
        container, stream = self._container, self._stream
        self._container = self._stream = self._shape = None
        if container is None:
            return
        try:
            self._container = container  # flush the encoder's last packets
            self._mux(stream.encode(None))
        except Exception:  # noqa: BLE001 - closing must not fail because the network did
            log.debug("flushing the stream encoder failed", exc_info=True)
        finally:
            self._container = None
            container.close()
