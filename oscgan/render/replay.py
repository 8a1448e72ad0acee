"""`oscgan replay`: re-render a recorded control session offline, frame-exact, to a video or PNGs."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from oscgan.render.renderer import Renderer
from oscgan.render.session import FrameState, Session
from oscgan.state.params import ModelInfo
from oscgan.state.snapshot import RenderArgs, frame_noise_seed, render_args

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")


def check_model(session: Session, info: ModelInfo, model: str) -> None:
    """ValueError when the model cannot replay the session (its parameter vectors would not fit)."""
    h = session.header
    for key in ("z_dim", "num_ws"):
        want = h.get(key)
        have = getattr(info, key)
        if want is not None and int(want) != have:
            raise ValueError(f"{model} has {key}={have} but {session.path} was recorded with "
                             f"{h.get('model')!r} ({key}={want}); pass the recorded model with --model")
    if h.get("model") and model != h["model"]:
        log.warning("replaying %s with %s (recorded with %s): frames will differ from the live show",
                    session.path, model, h["model"])


def replay_frames(session: Session, G: nn.Module, info: ModelInfo, device: torch.device, *,
                  size: tuple[int, int] | None = None, fit: str | None = None,
                  fps: float | None = None) -> Iterator[tuple[FrameState, np.ndarray]]:
    """Yield (frame state, [H, W, 4] uint8 RGBA) for every frame of the session, in order.

    Mirrors ``RenderLoop.tick``: the same ``render_args`` from the frame's parameters and travel
    phase, the same per-frame noise seed, and the last picture repeated while paused or when
    nothing changed (so the pictures equal the live ones bit for bit on the same device).
    """
    header = session.header
    if size is None and header.get("size"):
        size = (int(header["size"][0]), int(header["size"][1]))
    renderer = Renderer(G, device, out_size=size, fit=fit or header.get("fit") or "stretch")
    noise_seed = session.noise_seed
    last: np.ndarray | None = None
    last_args: RenderArgs | None = None
    warned = False
    for st in session.frame_states(fps):
        args = render_args(st.params, info, st.phase)
        if args.uses_random_noise:
            if noise_seed is not None:
                args = dataclasses.replace(args, noise_seed=frame_noise_seed(noise_seed, st.index))
            elif not warned:
                log.warning("%s was recorded without a noise seed: 'random' noise will not match the "
                            "live show", session.path)
                warned = True
        paused = bool(st.params.get("output.paused", False))
        if last is not None and (paused or (args == last_args and not args.uses_random_noise)):
            yield st, last
            continue
        result = renderer.render(args)
        if result.error is not None or result.rgba is None:
            if last is None:
                raise RuntimeError(f"frame {st.index}: render failed: {result.error}")
            log.error("frame %d: render failed (repeating the previous picture): %s", st.index, result.error)
            yield st, last
            continue
        last, last_args = result.rgba, args
        yield st, last


class PngWriter:
    """Writes frames as DIR/frame_000000.png (lossless: for exact comparisons and editing)."""

    def __init__(self, folder: str | Path, compress_level: int = 1) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.compress_level = compress_level
        self.frames = 0

    def write(self, rgba: np.ndarray, index: int) -> None:
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(
            self.folder / f"frame_{index:06d}.png", compress_level=self.compress_level)
        self.frames += 1

    def close(self) -> None:
        pass


@dataclasses.dataclass
class ReplayResult:
    out: Path
    frames: int
    fps: float
    size: tuple[int, int] | None
    seconds: float

    def summary(self) -> str:
        size = f"{self.size[0]}x{self.size[1]}" if self.size else "native size"
        return (f"wrote {self.frames} frames ({self.frames / self.fps:.1f} s at {self.fps:g} fps, {size}) "
                f"to {self.out} in {self.seconds:.1f} s")


def replay(session_path: str | Path, out: str | Path, *, model: str | None = None,
           size: tuple[int, int] | None = None, fps: float | None = None, fit: str | None = None,
           device: str | None = None, crf: int = 16, preset: str = "medium", progress: bool = True,
           which: str = "G_ema") -> ReplayResult:
    """Re-render ``session_path`` into ``out`` (a .mp4/.mkv/.mov file, or a folder of PNGs).

    ``model`` defaults to the recorded one; ``size`` to the recorded output size; ``fps`` to the
    recorded rate (another rate re-times the performance: frame n at n / fps seconds).
    """
    from oscgan.daemon import model_info
    from oscgan.devices import resolve_device
    from oscgan.models.loader import load_generator
    from oscgan.sinks.record import VideoWriter

    t0 = time.perf_counter()
    session = Session.load(session_path)
    model = model or session.header.get("model")
    if not model:
        raise ValueError(f"{session_path}: the header names no model; pass --model")
    if not session.frames:
        raise ValueError(f"{session_path}: no frames were recorded")
    dev = resolve_device(device)
    G = load_generator(model, which=which, device=dev)
    info = model_info(G)
    check_model(session, info, model)
    out = Path(out)
    rate = fps or session.fps
    writer: Any
    if out.suffix.lower() in VIDEO_SUFFIXES:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = VideoWriter(out, rate, crf=crf, preset=preset)
    else:
        writer = PngWriter(out)
    total = session.frame_count(fps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=f"replay {Path(session_path).name}")
    first: int | None = None
    frames = 0
    shape: tuple[int, int] | None = None
    try:
        for st, rgba in replay_frames(session, G, info, dev, size=size, fit=fit, fps=fps):
            first = st.index if first is None else first
            writer.write(rgba, st.index - first)
            shape = (int(rgba.shape[1]), int(rgba.shape[0]))
            frames += 1
            if bar is not None:
                bar.update(1)
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    return ReplayResult(out, frames, rate, shape, time.perf_counter() - t0)
