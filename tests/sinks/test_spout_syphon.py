"""Spout (Windows) and Syphon (macOS) outputs against faithful fakes of SpoutGL and syphon-python.

The fakes (tests/sinks/protocol_fakes.py) enforce each library's real call signatures, thread
affinity and frame layout; here the real SinkWorker drives the real sinks through them. On
this (Linux) machine the real availability checks must say clearly why neither can run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from oscgan.sinks import spout as spout_mod
from oscgan.sinks import syphon as syphon_mod
from oscgan.render.frames import Frame
from oscgan.sinks.base import Backoff, SinkWorker, check_available, resize_rgba
from oscgan.sinks.fanout import FrameFanout
from oscgan.sinks.spout import SpoutSink, platform_name
from oscgan.sinks.syphon import SyphonSink
from tests.sinks.protocol_fakes import (
    GL_BGRA_EXT,
    GL_RGBA,
    make_metal,
    make_spoutgl,
    make_syphon,
)
from tests.sinks.sink_helpers import make_picture, run_worker

PIC = make_picture(64, 48)


# -- availability on this OS -------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks the Linux messages")
def test_spout_and_syphon_explain_why_they_are_missing_on_linux():
    ok, why = SpoutSink.is_available()
    assert not ok
    assert why.startswith("Spout is Windows-only; this is Linux")
    assert "--ndi" in why
    ok, why = SyphonSink.is_available()
    assert not ok
    assert why.startswith("Syphon is macOS-only; this is Linux")
    assert check_available(SpoutSink)[0] is False


def test_platform_names():
    assert platform_name("linux") == "Linux"
    assert platform_name("darwin") == "macOS"
    assert platform_name("win32") == "Windows"


def test_missing_package_is_named_with_the_pip_command(monkeypatch):
    monkeypatch.setattr(spout_mod, "current_platform", lambda: "win32")
    monkeypatch.setitem(sys.modules, "SpoutGL", None)  # import SpoutGL -> ImportError
    ok, why = SpoutSink.is_available()
    assert not ok and "pip install" in why and "SpoutGL" in why
    monkeypatch.setattr(syphon_mod, "current_platform", lambda: "darwin")
    monkeypatch.setitem(sys.modules, "syphon", None)
    ok, why = SyphonSink.is_available()
    assert not ok and "pip install" in why and "syphon-python" in why


# -- Spout -------------------------------------------------------------------------------------

@pytest.fixture()
def fake_spout(monkeypatch):
    mod, world = make_spoutgl()
    monkeypatch.setattr(spout_mod, "current_platform", lambda: "win32")
    monkeypatch.setitem(sys.modules, "SpoutGL", mod)
    monkeypatch.setitem(sys.modules, "SpoutGL.enums", mod.enums)
    monkeypatch.setitem(sys.modules, "SpoutGL.helpers", mod.helpers)
    return world


@pytest.mark.parametrize("release_takes_msec", [True, False], ids=["ReleaseSender(dwMsec)", "ReleaseSender()"])
def test_spout_call_sequence_thread_and_pixels(fake_spout, release_takes_msec):
    world = fake_spout
    world.release_takes_msec = release_takes_msec
    sink = SpoutSink("oscgan-spout", size=(80, 60))
    assert SpoutSink.is_available() == (True, "")
    worker = run_worker(sink, [PIC], until=lambda: len(world.received) >= 3)
    assert worker.stats.errors == 0, worker.status()
    assert world.violations == []

    names = [c[0] for c in world.calls]
    assert names[:2] == ["createOpenGL", "setSenderName"]
    assert names[-2:] == ["releaseSender", "closeOpenGL"]
    body = names[2:-2]
    assert body and body == ["sendImage", "setFrameSync"] * (len(body) // 2)
    # Spout's GL context belongs to one thread: everything ran on the sink's worker thread.
    threads = {c[1] for c in world.calls}
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert world.calls[1][2] == ("oscgan-spout",)
    w, h, fmt, invert, fbo = next(c[2] for c in world.calls if c[0] == "sendImage")
    assert (w, h, fmt, invert, fbo) == (80, 60, GL_RGBA, False, 0)
    # What a receiver sees: the frame scaled to the sink size, upright, RGBA.
    expected = resize_rgba(PIC, (80, 60))
    np.testing.assert_array_equal(world.received[-1], expected)
    assert world.senders == {}  # released


def test_spout_bgra_and_flip(fake_spout):
    world = fake_spout
    sink = SpoutSink("flipped", pixel_format="BGRA", flip=True)
    run_worker(sink, [PIC], until=lambda: len(world.received) >= 2)
    assert world.violations == []
    _, _, fmt, invert, _ = next(c[2] for c in world.calls if c[0] == "sendImage")
    assert fmt == GL_BGRA_EXT and invert is True
    np.testing.assert_array_equal(world.received[-1], PIC[::-1])  # native size, flipped by Spout


def test_spout_fake_is_strict(fake_spout):
    """The fake rejects what the pybind11 binding rejects, and fails like Spout without a context."""
    import SpoutGL

    s = SpoutGL.SpoutSender()
    s.setSenderName("x")
    buf = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(TypeError):
        s.sendImage(buf, width=4, height=4, glFormat=GL_RGBA, invert=False, hostFbo=0)
    assert s.sendImage(buf, 4, 4, GL_RGBA, False, 0) is False  # no GL context on this thread
    assert fake_spout.violations == ["sendImage without a current OpenGL context on this thread"]
    assert s.createOpenGL() is True
    with pytest.raises(BufferError):
        s.sendImage(buf, 8, 8, GL_RGBA, False, 0)
    with pytest.raises(BufferError):
        s.sendImage(np.zeros((4, 8, 4), np.uint8)[:, ::2], 4, 4, GL_RGBA, False, 0)
    assert s.sendImage(buf, 4, 4, GL_RGBA, False, 0) is True
    assert s.closeOpenGL() is True


def test_spout_send_failure_is_retried_not_fatal(fake_spout, monkeypatch):
    """sendImage returning False (no DX11 interop) raises, so the worker reopens with back-off."""
    world = fake_spout
    fails = {"n": 2}
    orig = sys.modules["SpoutGL"].SpoutSender.sendImage

    def flaky(self, *args):
        if fails["n"] > 0:
            fails["n"] -= 1
            return False
        return orig(self, *args)

    monkeypatch.setattr(sys.modules["SpoutGL"].SpoutSender, "sendImage", flaky)
    sink = SpoutSink("flaky")
    fanout = FrameFanout()
    worker = SinkWorker(sink, fanout, poll=0.005, backoff=Backoff(initial=0.01, maximum=0.02))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        i = 0
        while not world.received and time.monotonic() < deadline:
            fanout.publish(Frame(PIC, i, time.perf_counter()))
            i += 1
            time.sleep(0.01)
    finally:
        worker.stop()
    assert world.received, worker.status()
    assert worker.stats.errors == 2 and worker.stats.opens == 3
    assert "sendImage failed" in (worker.stats.last_error or "")
    assert world.violations == []  # every reopen released the old sender and context first
    assert [c[0] for c in world.calls].count("createOpenGL") == 3
    assert [c[0] for c in world.calls].count("closeOpenGL") == 3


# -- Syphon ------------------------------------------------------------------------------------

@pytest.fixture()
def fake_syphon(monkeypatch):
    metal = make_metal()
    mods, world = make_syphon(metal)
    monkeypatch.setattr(syphon_mod, "current_platform", lambda: "darwin")
    monkeypatch.setitem(sys.modules, "Metal", metal)
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return world


def test_syphon_publishes_bgra_textures_on_the_fast_path(fake_syphon):
    world = fake_syphon
    assert SyphonSink.is_available() == (True, "")
    sink = SyphonSink("oscgan-syphon", size=(96, 72))
    worker = run_worker(sink, [PIC], until=lambda: len(world.received) >= 3)
    assert worker.stats.errors == 0, worker.status()
    assert world.violations == []
    names = [c[0] for c in world.calls]
    assert names[0] == "SyphonMetalServer" and names[-1] == "stop"
    assert set(names[1:-1]) == {"publish_frame_texture"}
    assert world.calls[0][2] == ("oscgan-syphon",)
    # BGRA8Unorm, unflipped: Syphon can blit it straight into its IOSurface.
    assert world.blits == len(world.received) and world.render_passes == 0
    np.testing.assert_array_equal(world.received[-1], resize_rgba(PIC, (96, 72)))
    assert world.servers == {}


def test_syphon_flip(fake_syphon):
    world = fake_syphon
    run_worker(SyphonSink("f", flip=True), [PIC], until=lambda: len(world.received) >= 1)
    np.testing.assert_array_equal(world.received[-1], PIC[::-1])
    assert world.render_passes >= 1


def test_syphon_fake_rejects_wrong_image_shape(fake_syphon):
    import Metal
    import syphon
    from syphon.utils.numpy import copy_image_to_mtl_texture
    from syphon.utils.raw import create_mtl_texture

    server = syphon.SyphonMetalServer("x")
    tex = create_mtl_texture(server.device, 4, 4, Metal.MTLPixelFormatBGRA8Unorm)
    with pytest.raises(AssertionError):
        copy_image_to_mtl_texture(np.zeros((4, 4, 3), np.uint8), tex)
    with pytest.raises(ValueError):
        copy_image_to_mtl_texture(np.zeros((2, 4, 4), np.uint8), tex)
    server.stop()
    server.publish_frame_texture(tex)
    assert fake_syphon.violations == ["publish_frame_texture after stop()"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks the Linux messages")
@pytest.mark.parametrize("flag, message", [
    ("--spout", "--spout: Spout is Windows-only; this is Linux"),
    ("--syphon", "--syphon: Syphon is macOS-only; this is Linux"),
])
def test_serve_with_an_unavailable_output_fails_before_loading_the_model(flag, message):
    model = Path(__file__).parent.parent / "fixtures" / "stylegan" / "sg2_64.pkl"
    proc = subprocess.run([sys.executable, "-m", "oscgan", "serve", "--model", str(model), "--device", "cpu",
                           "--http-port", "0", "--osc-port", "0", flag, "show"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "oscgan serving" not in proc.stdout + proc.stderr  # it never started
