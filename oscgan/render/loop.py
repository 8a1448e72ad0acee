"""The render loop: tick = parameters -> snapshot -> render -> fan-out, paced from an anchor."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from oscgan.render.frames import Frame
from oscgan.render.pacing import Pacer
from oscgan.render.renderer import Renderer, RenderResult
from oscgan.sinks.fanout import FrameFanout
from oscgan.state.params import ModelInfo, ParamRegistry, ParamSnapshot
from oscgan.state.snapshot import RenderArgs, frame_noise_seed, render_args

log = logging.getLogger(__name__)

PreFrameHook = Callable[[float, float], None]  # (now seconds, dt seconds)
PostFrameHook = Callable[["FrameTick"], None]


@dataclass(frozen=True)
class FrameTick:
    """What a post-frame hook learns about one published frame (e.g. the control recorder)."""

    frame: Frame
    now: float                 # loop clock seconds the tick ran at
    travel_phase: float        # accumulated latent.travel.speed phase used for this frame
    snapshot: ParamSnapshot    # the parameter values the frame was resolved from


@dataclass
class LoopStats:
    """Live numbers for /health and OSC telemetry (read without locking; floats/ints only)."""

    frames: int = 0            # frames published
    renders: int = 0           # frames actually rendered (unchanged ones are re-sent)
    errors: int = 0            # renders that failed
    last_error: str | None = None
    fps: float = 0.0           # published frames per second (smoothed)
    render_ms: float = 0.0     # last render's wall time
    late_frames: int = 0       # times the loop fell more than a frame behind
    started: float = field(default_factory=time.time)


class RenderLoop:
    """Runs on its own thread until ``stop()``.

    Per tick: wait for the deadline; run pre-frame hooks (mappings, LFOs) with the time
    passed in; take one frozen parameter snapshot; resolve RenderArgs; render (or re-send the
    previous frame when nothing changed or output is paused); publish to the fan-out.
    A failed render re-sends the last good picture flagged ``error`` and the loop goes on.
    """

    def __init__(self, registry: ParamRegistry, renderer: Renderer, fanout: FrameFanout,
                 model: ModelInfo, clock: Callable[[], float] = time.perf_counter,
                 noise_seed: int | None = 0, tempo: Callable[[], float] | None = None) -> None:
        self.registry, self.renderer, self.fanout, self.model = registry, renderer, fanout, model
        self.clock = clock
        # Current tempo in bpm (MIDI clock or configured) for beat-synced travel.
        self.tempo = tempo or (lambda: 120.0)
        # 'random' noise is drawn from frame_noise_seed(noise_seed, frame index), so a recorded
        # session replays with identical grain; None = torch's global RNG.
        self.noise_seed = noise_seed
        self.stats = LoopStats()
        self.pre_frame: list[PreFrameHook] = []
        self.post_frame: list[PostFrameHook] = []  # called on the render thread after publish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._travel_phase = 0.0
        self._last_args: RenderArgs | None = None
        self._last_good: np.ndarray | None = None
        self._last_frame_time: float | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("render loop already started")
        self._thread = threading.Thread(target=self._run, name="oscgan-render", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("render thread did not stop within %.0f s", timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        pacer = Pacer(float(self.registry.get("output.fps")), clock=self.clock)
        while not self._stop.is_set():
            pacer.set_fps(float(self.registry.get("output.fps")))
            now = pacer.wait(stop=self._stop.is_set)
            if self._stop.is_set():
                break
            try:
                self.tick(now)
            except Exception:  # noqa: BLE001 - a bug in one tick must not end the show
                self.stats.errors += 1
                self.stats.last_error = "internal error in render loop (see log)"
                log.exception("render loop tick failed")
            self.stats.late_frames = pacer.late_frames

    def travel_rate(self, snap: Mapping[str, object]) -> float:
        """Keyframes per second: one per ``latent.travel.beats`` beats, else ``latent.travel.speed``."""
        beats = float(snap["latent.travel.beats"])
        if beats > 0:
            return self.tempo() / 60.0 / beats
        return float(snap["latent.travel.speed"])

    def tick(self, now: float) -> Frame | None:
        """One frame at time ``now`` (seconds on the loop clock); returns the published frame."""
        dt = 0.0 if self._last_frame_time is None else max(0.0, now - self._last_frame_time)
        self._last_frame_time = now
        for hook in list(self.pre_frame):
            try:
                hook(now, dt)
            except Exception:  # noqa: BLE001
                log.exception("pre-frame hook %r failed", hook)
        snap = self.registry.snapshot()
        paused = bool(snap["output.paused"])
        if not paused:
            self._travel_phase += dt * self.travel_rate(snap)
        args = render_args(snap, self.model, self._travel_phase)
        if self.noise_seed is not None and args.uses_random_noise:
            args = dataclasses.replace(args, noise_seed=frame_noise_seed(self.noise_seed, self.stats.frames))
        render_ms = 0.0
        error = False
        if self._last_good is not None and (paused or (args == self._last_args and not args.uses_random_noise)):
            rgba = self._last_good
        else:
            result: RenderResult = self.renderer.render(args)
            self.stats.renders += 1
            render_ms = result.timings.get("total", 0.0)
            self.stats.render_ms = render_ms
            if result.error is not None:
                self.stats.errors += 1
                if result.error != self.stats.last_error:
                    log.error("render failed (keeping the last good frame): %s", result.error)
                self.stats.last_error = result.error
                if self._last_good is None:
                    return None
                rgba, error = self._last_good, True
            else:
                rgba = result.rgba
                rgba.flags.writeable = False  # shared by every consumer from here on
                self._last_good = rgba
                self._last_args = args
        frame = Frame(rgba, self.stats.frames, time.perf_counter(), render_ms, error, snap.version)
        self.fanout.publish(frame)
        self.stats.frames += 1
        if self.post_frame:
            tick = FrameTick(frame, now, self._travel_phase, snap)
            for post in list(self.post_frame):
                try:
                    post(tick)
                except Exception:  # noqa: BLE001
                    log.exception("post-frame hook %r failed", post)
        if dt > 0:
            inst = 1.0 / dt
            self.stats.fps = inst if self.stats.fps == 0 else 0.9 * self.stats.fps + 0.1 * inst
        return frame
