"""Hot reload while a real StyleGAN2 renders: valid, invalid and duplicate-key edits, no frame lost."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import torch

from oscgan.daemon import model_info
from oscgan.mapping.service import MappingService
from oscgan.models.stylegan2 import Generator
from oscgan.render.loop import RenderLoop
from oscgan.render.renderer import Renderer
from oscgan.signals.bus import SignalBus
from oscgan.sinks.fanout import FrameFanout
from oscgan.state.params import build_registry

from .conftest import write_yaml

FPS = 30.0


def small_generator() -> torch.nn.Module:
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                  channel_base=256, channel_max=16, num_fp16_res=0)
    return G.eval().requires_grad_(False)


def many(n: int, value: float) -> str:
    """A long file (slow to parse) whose last entry sets mix.fine to ``value``."""
    body = "".join(f"  - {{source: {{type: osc, address: /pad{i}}}, filters: [{{type: remap, in: [0, 1], "
                   f"out: [0, 1]}}, {{type: smooth, method: one_euro}}], target: latent.z.{i % 16}, "
                   f"combine: add}}\n" for i in range(n))
    return ("mappings:\n  - {source: {type: lfo, shape: saw, rate_hz: 2}, target: affine.rotate, "
            "filters: [{type: remap, in: [-1, 1], out: [-90, 90]}]}\n" + body
            + f"  - {{source: {{type: constant, value: {value}}}, target: mix.fine}}\n")


class Running:
    """RenderLoop + MappingService on their threads; records every tick the loop makes."""

    def __init__(self, path: Path) -> None:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a 32 px model renders fastest on one thread
        G = small_generator()
        info = model_info(G)
        self.registry = build_registry(info)
        self.registry.set("output.fps", FPS)
        self.service = MappingService(self.registry, SignalBus(), [path], poll_interval=0.02).start()
        self.loop = RenderLoop(self.registry, Renderer(G, torch.device("cpu")), FrameFanout(), info)
        self.indices: list[int] = []
        self.hook_ms: list[float] = []
        self.tick_errors: list[BaseException] = []
        # Engine objects themselves (not id()s): a freed engine's id can be reused by the next one.
        self.engines: list[object] = []
        self._lock = threading.Lock()
        tick = self.loop.tick

        def recording_tick(now: float):  # type: ignore[no-untyped-def]
            try:
                frame = tick(now)
            except BaseException as e:  # the loop would count and log it; we want to see it
                self.tick_errors.append(e)
                raise
            with self._lock:
                self.indices.append(frame.index if frame is not None else -1)
                if not self.engines or self.engines[-1] is not self.service.engine:
                    self.engines.append(self.service.engine)
            return frame

        def timed_hook(now: float, dt: float) -> None:
            t0 = time.perf_counter()
            self.service.pre_frame(now, dt)
            self.hook_ms.append((time.perf_counter() - t0) * 1e3)

        self.loop.tick = recording_tick  # type: ignore[method-assign]
        self.loop.pre_frame.append(timed_hook)
        self.loop.start()

    def wait(self, predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}")

    def frames_after(self, n: int) -> None:
        start = len(self.indices)
        self.wait(lambda: len(self.indices) >= start + n, what=f"{n} more frames")

    def stop(self) -> None:
        self.loop.stop()
        self.service.stop()
        torch.set_num_threads(self._threads)


@pytest.fixture
def running(tmp_path):
    path = write_yaml(tmp_path / "show.yaml", many(150, 0.25))
    r = Running(path)
    r.path = path  # type: ignore[attr-defined]
    yield r
    r.stop()


def test_edits_while_rendering(running, caplog) -> None:
    caplog.set_level(logging.INFO)
    r, path = running, running.path
    r.wait(lambda: r.registry.get("mix.fine") == 0.25, what="the first mapping")
    r.frames_after(5)

    # 1. A valid edit is applied at a frame boundary.
    t_edit = time.monotonic()
    path.write_text(many(150, 0.5))
    r.wait(lambda: r.registry.get("mix.fine") == 0.5, what="the edit applied")
    assert time.monotonic() - t_edit < 5.0
    # The registry changes inside tick(); the recorder sees the new engine only when tick() returns.
    r.wait(lambda: len(r.engines) >= 2, timeout=2.0, what="a tick that ran the new engine")

    # 2. An invalid edit: the error is reported, the old mapping keeps running (the LFO moves on).
    path.write_text(many(150, 0.75).replace("target: mix.fine", "target: mix.fien"))
    r.wait(lambda: r.service.error is not None, what="the error")
    assert "did you mean 'mix.fine'" in r.service.error
    rotations = set()
    for _ in range(6):
        r.frames_after(2)
        rotations.add(round(float(r.registry.get("affine.rotate")), 3))
    assert len(rotations) > 2 and r.registry.get("mix.fine") == 0.5

    # 3. A duplicate key: also refused with its line, still the old mapping.
    path.write_text(many(150, 0.75).replace("target: mix.fine", "target: mix.fine, target: mix.coarse"))
    r.wait(lambda: r.service.error is not None and "duplicate key" in r.service.error, what="duplicate key error")
    assert f"{path}:153:" in r.service.error  # the last line: header, LFO, 150 pads, then it
    r.frames_after(3)
    assert r.registry.get("mix.fine") == 0.5 and r.registry.get("mix.coarse") == 0.0

    # 4. Fixed: applied, error cleared.
    path.write_text(many(150, 0.75))
    r.wait(lambda: r.registry.get("mix.fine") == 0.75 and r.service.error is None, what="the fix")
    r.frames_after(3)

    with r._lock:
        indices = list(r.indices)
    assert indices == list(range(indices[0], indices[0] + len(indices))), "a frame was skipped or failed"
    assert not r.tick_errors and r.loop.stats.errors == 0
    assert not [rec for rec in caplog.records if "hook" in rec.getMessage() and rec.levelno >= logging.ERROR]
    # Parsing 150 mappings takes far longer than a frame; it ran on the I/O thread, so no frame hook
    # came near that (the swap itself is a reference change plus copying a few arrays).
    assert r.service.reloads >= 2
    assert sorted(r.hook_ms)[len(r.hook_ms) // 2] < 5.0
