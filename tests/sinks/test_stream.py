"""MPEG-TS/H.264 over UDP, end to end on loopback: the real sink streams, a PyAV reader decodes."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from oscgan.sinks.base import resize_rgba
from oscgan.sinks.stream import StreamSink, stream_url
from tests.sinks.sink_helpers import make_picture, run_worker

av = pytest.importorskip("av", reason="the stream output needs PyAV (pip install av)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class UdpReader(threading.Thread):
    """Decodes video frames from ``udp://127.0.0.1:port`` with PyAV until it has ``want`` of them."""

    def __init__(self, port: int, want: int) -> None:
        super().__init__(daemon=True)
        self.url = f"udp://127.0.0.1:{port}?timeout=8000000&overrun_nonfatal=1"
        self.want = want
        self.frames: list[np.ndarray] = []
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            self.ready.set()
            with av.open(self.url, format="mpegts", timeout=10,
                         options={"probesize": "200000", "analyzeduration": "1000000"}) as c:
                for frame in c.decode(video=0):
                    self.frames.append(frame.to_ndarray(format="rgb24"))
                    if len(self.frames) >= self.want:
                        break
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


def test_stream_url_validation():
    assert stream_url("udp://127.0.0.1:5000") == "udp://127.0.0.1:5000?pkt_size=1316"
    assert stream_url("udp://239.0.0.1:5000?pkt_size=188&ttl=1") == "udp://239.0.0.1:5000?pkt_size=188&ttl=1"
    assert stream_url("srt://127.0.0.1:9000?mode=caller").startswith("srt://")
    for bad in ("http://x:1", "udp://127.0.0.1", "udp://:5000", "127.0.0.1:5000"):
        with pytest.raises(ValueError):
            stream_url(bad)
    with pytest.raises(ValueError, match="even"):
        StreamSink("udp://127.0.0.1:5000", size=(65, 48))


def test_udp_stream_is_received_and_matches_the_picture():
    port = free_udp_port()
    pic = make_picture(64, 48)
    reader = UdpReader(port, want=8)
    reader.start()
    reader.ready.wait(2)
    time.sleep(0.3)  # let the reader bind the port before the first datagram
    sink = StreamSink(f"udp://127.0.0.1:{port}", fps=30, size=(160, 120), keyframe_s=0.2, crf=18)
    t0 = time.monotonic()
    worker = run_worker(sink, [pic], until=lambda: len(reader.frames) >= 8 or reader.error is not None,
                        timeout=20, period=1 / 30)
    reader.join(5)
    assert reader.error is None, f"reader failed: {reader.error!r}"
    assert worker.stats.errors == 0, worker.status()
    got = reader.frames[-1]
    assert got.shape == (120, 160, 3)
    expected = resize_rgba(pic, (160, 120))[..., :3]
    score = psnr(got, expected)
    mae = float(np.abs(got.astype(int) - expected.astype(int)).mean())
    print(f"UDP stream: PSNR {score:.1f} dB, mean abs error {mae:.2f}, {len(reader.frames)} frames decoded")
    assert score > 32 and mae < 4, (score, mae)
    # A wrong orientation or channel order would be far off: the comparison has teeth.
    assert psnr(got, expected[::-1]) < 20 and psnr(got, expected[..., ::-1]) < 20
    assert time.monotonic() - t0 < 20


def test_srt_without_libsrt_is_reported_as_unavailable():
    from oscgan.sinks.base import SinkUnavailable

    sink = StreamSink("srt://127.0.0.1:9", size=(64, 48))
    try:
        sink.open()
    except SinkUnavailable as e:  # the PyPI wheels: FFmpeg without libsrt
        assert "srt" in str(e) and "udp://" in str(e)
    except OSError:  # a PyAV with libsrt: nobody listens on port 9
        pass
    else:
        sink.close()
