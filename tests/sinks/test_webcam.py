"""Virtual webcam output: availability messages, and frames through pyvirtualcam's Camera contract.

No v4l2loopback device exists on CI, so the frame path runs against (a) a fake ``pyvirtualcam``
module enforcing the real constructor and ``send`` contract and (b) when pyvirtualcam is
installed, the *real* ``pyvirtualcam.Camera`` with a recording backend registered through its
public ``register_backend`` hook, so its own shape/dtype checks and format encoding are used.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from oscgan.sinks import webcam as webcam_mod
from oscgan.sinks.base import resize_rgba
from oscgan.sinks.webcam import WebcamSink, rgba_to_rgb, v4l2loopback_devices
from tests.sinks.protocol_fakes import make_pyvirtualcam
from tests.sinks.sink_helpers import make_picture, run_worker

PIC = make_picture(64, 48)


@pytest.fixture()
def loopback_device(monkeypatch):
    """Pretend a v4l2loopback device exists (the availability check looks in sysfs)."""
    monkeypatch.setattr(webcam_mod, "v4l2loopback_devices", lambda: ["/dev/video10"])


def test_rgba_to_rgb_drops_alpha_and_is_contiguous():
    rgb = rgba_to_rgb(PIC)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, PIC[..., :3])


def test_v4l2loopback_devices_reads_sysfs(tmp_path):
    assert v4l2loopback_devices(str(tmp_path)) == []
    (tmp_path / "video10").mkdir()
    (tmp_path / "video2").mkdir()
    assert v4l2loopback_devices(str(tmp_path)) == ["/dev/video10", "/dev/video2"]


def test_unavailable_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    ok, why = WebcamSink.is_available()
    assert not ok and "pip install" in why and "pyvirtualcam" in why


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2loopback is Linux-only")
def test_unavailable_without_v4l2loopback_device(monkeypatch):
    mod, _ = make_pyvirtualcam()
    monkeypatch.setitem(sys.modules, "pyvirtualcam", mod)
    monkeypatch.setattr(webcam_mod, "v4l2loopback_devices", lambda: [])
    ok, why = WebcamSink.is_available()
    assert not ok
    assert "no v4l2loopback video device" in why and "modprobe v4l2loopback" in why


def test_frames_reach_the_fake_camera_as_rgb(monkeypatch, loopback_device):
    mod, world = make_pyvirtualcam()
    monkeypatch.setitem(sys.modules, "pyvirtualcam", mod)
    sink = WebcamSink(fps=25, size=(80, 60))
    worker = run_worker(sink, [PIC], until=lambda: len(world.received) >= 3)
    assert worker.stats.errors == 0, worker.status()
    assert world.opened == [{"width": 80, "height": 60, "fps": 25.0, "device": "/dev/video10",
                             "backend": "v4l2loopback"}]
    np.testing.assert_array_equal(world.received[-1], resize_rgba(PIC, (80, 60))[..., :3])
    assert world.closed == 1 and world.violations == []


def test_camera_opens_at_render_size_when_no_size_given(monkeypatch, loopback_device):
    mod, world = make_pyvirtualcam()
    monkeypatch.setitem(sys.modules, "pyvirtualcam", mod)
    sink = WebcamSink("/dev/video7", fps=30)
    run_worker(sink, [PIC], until=lambda: len(world.received) >= 1)
    assert world.opened[0]["width"] == 64 and world.opened[0]["height"] == 48
    assert world.opened[0]["device"] == "/dev/video7"
    np.testing.assert_array_equal(world.received[0], PIC[..., :3])


def test_missing_device_error_names_the_fix(monkeypatch):
    mod, _ = make_pyvirtualcam()

    def no_device(*a, **k):
        raise RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].")

    mod.Camera = no_device
    monkeypatch.setitem(sys.modules, "pyvirtualcam", mod)
    sink = WebcamSink(size=(64, 48))
    with pytest.raises(RuntimeError, match="modprobe v4l2loopback"):
        sink.open()


def test_real_pyvirtualcam_camera_with_a_recording_backend(loopback_device):
    pyvirtualcam = pytest.importorskip("pyvirtualcam")
    from pyvirtualcam import camera as cam_mod

    got: list[np.ndarray] = []
    opened: list[dict] = []

    class RecordingBackend:
        """Implements pyvirtualcam's documented Backend interface (keyword-only constructor)."""

        def __init__(self, *, width, height, fps, fourcc, device, **kw):
            opened.append({"width": width, "height": height, "fps": fps, "fourcc": fourcc, "device": device})
            self._device = device or "/dev/video42"

        def close(self):
            pass

        def send(self, frame):
            assert frame.ndim == 1 and frame.flags.c_contiguous and frame.dtype == np.uint8
            got.append(frame.copy())

        def device(self):
            return self._device

        def native_fourcc(self):
            return None

    pyvirtualcam.register_backend("oscgan-test", RecordingBackend)
    try:
        sink = WebcamSink(fps=30, backend="oscgan-test", size=(32, 24))
        worker = run_worker(sink, [PIC], until=lambda: len(got) >= 2)
    finally:
        cam_mod.BACKENDS.pop("oscgan-test", None)
    assert worker.stats.errors == 0, worker.status()
    assert opened[0]["width"] == 32 and opened[0]["height"] == 24
    assert opened[0]["fourcc"] == cam_mod.encode_fourcc(pyvirtualcam.PixelFormat.RGB.value)
    np.testing.assert_array_equal(got[-1].reshape(24, 32, 3), resize_rgba(PIC, (32, 24))[..., :3])
