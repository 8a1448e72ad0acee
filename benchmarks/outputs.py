"""Outputs: cost per frame of each available sink, and what running them all costs the render.

1. cost per frame: each output is fed ``--frames`` pictures (moving gradients with grain, so
   the encoder has real work) at 512 and 1024 px, on one thread the way its worker would:
   conversion (scale / letterbox / byte order / alpha) + ``send``. ``ms`` = wall time per
   frame, ``cpu ms`` = process CPU time per frame (includes encoder threads). The recorder's
   close (encoder flush) is included, amortised over its frames.
2. render ratio: the render loop as the daemon runs it (same torch thread policy: all cores
   but one), as fast as it can (fps 240) with every frame re-rendered (a pre-frame hook moves
   one z element), first with no outputs, then with all of them, then none again; ratio =
   fps with outputs / mean fps without (aim >= 0.9).

    python benchmarks/outputs.py                                  # builtin:sg2-256 scaled to 512 px
    python benchmarks/outputs.py --model builtin:sg2-512 --seconds 15
    python benchmarks/outputs.py --frames 30 --seconds 3          # quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oscgan.allocator import keep_freed_memory
from oscgan.daemon import model_info
from oscgan.devices import resolve_device
from oscgan.models.loader import load_generator
from oscgan.render.frames import Frame
from oscgan.render.loop import RenderLoop
from oscgan.render.renderer import Renderer
from oscgan.sinks.base import FrameConverter, FrameSink, SinkManager, check_available
from oscgan.sinks.fanout import FrameFanout
from oscgan.sinks.record import RecordSink
from oscgan.state.params import build_registry
from oscgan.tables import format_table


class NullSink(FrameSink):
    """Discards frames: what is left is the worker's conversion cost."""

    def open(self) -> None:
        pass

    def send(self, frame: Frame) -> None:
        pass

    def close(self) -> None:
        pass


def pictures(size: int, count: int = 24) -> list[np.ndarray]:
    """Moving colour gradients with a little grain (read-only RGBA, like published frames)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for i in range(count):
        p = i / count * 2 * np.pi
        r = 0.5 + 0.5 * np.sin(6 * x + p)
        g = 0.5 + 0.5 * np.sin(5 * y - p)
        b = 0.5 + 0.5 * np.sin(4 * (x + y) + 2 * p)
        rgb = np.stack([r, g, b], -1) * 230 + rng.normal(0, 6, (size, size, 3))
        a = np.empty((size, size, 4), np.uint8)
        a[..., :3] = np.clip(rgb, 0, 255)
        a[..., 3] = 255
        a.flags.writeable = False
        out.append(a)
    return out


def ndi_factory() -> tuple[Any, str]:
    """(NdiSink class or None, why not)."""
    try:
        from oscgan.sinks.ndi import NdiSink
    except ImportError as e:
        return None, f"oscgan.sinks.ndi not importable: {e}"
    ok, why = check_available(NdiSink)
    return (NdiSink, "") if ok else (None, why)


def output_variants(tmp: Path, fps: float) -> list[tuple[str, Any]]:
    """(label, factory(size) -> FrameSink) for every output this machine can run."""
    variants: list[tuple[str, Any]] = [
        ("record (x264 veryfast, crf 18)", lambda s: RecordSink(tmp / f"bench-{s}.mp4", fps)),
        ("record (x264 ultrafast, crf 18)", lambda s: RecordSink(tmp / f"bench-uf-{s}.mp4", fps, preset="ultrafast",
                                                                 name="record-uf")),
        ("convert: BGRA", lambda s: NullSink("bgra", pixel_format="BGRA")),
        ("convert: BGRA + luma alpha", lambda s: NullSink("luma", pixel_format="BGRA", alpha="luma")),
        ("convert: 1920x1080 letterbox BGRA", lambda s: NullSink("hd", size=(1920, 1080), fit="letterbox",
                                                                 pixel_format="BGRA")),
    ]
    ndi, why = ndi_factory()
    if ndi is not None:
        variants.append(("ndi (BGRA)", lambda s: ndi("oscgan-bench", fps=fps, name="ndi")))
    else:
        print(f"NDI: skipped ({why})", file=sys.stderr)
    return variants


def cost_per_frame(make: Any, size: int, frames: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per frame of convert + send, close amortised."""
    pics = pictures(size)
    sink: FrameSink = make(size)
    conv = FrameConverter.for_sink(sink)
    sink.open()
    try:
        for i in range(3):  # warm-up: encoder init, first-allocation costs
            sink.send(conv(Frame(pics[i], i, 0.0)))
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(3, 3 + frames):
            sink.send(conv(Frame(pics[i % len(pics)], i, 0.0)))
    finally:
        sink.close()
    w1, c1 = time.perf_counter(), time.process_time()
    return (w1 - w0) * 1e3 / frames, (c1 - c0) * 1e3 / frames


def render_fps(loop: RenderLoop, seconds: float) -> tuple[float, float]:
    """(fps from the frame timestamps inside the window, median render ms) after 1 s of warm-up."""
    stamps: list[tuple[float, float]] = []
    loop.post_frame.append(lambda tick: stamps.append((tick.frame.timestamp, tick.frame.render_ms)))
    loop.start()
    try:
        time.sleep(1.0)
        start = len(stamps)
        time.sleep(seconds)
        window = stamps[start:]
    finally:
        loop.stop()
    if len(window) < 2:
        return 0.0, 0.0
    fps = (len(window) - 1) / (window[-1][0] - window[0][0])
    return fps, statistics.median(ms for _, ms in window)


def live_sink_configs(tmp: Path) -> list[dict[str, Any]]:
    """Every real output type this machine can run, at the render size (as a show would use them)."""
    import socket

    from oscgan.sinks.registry import SINK_TYPES

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wanted = {"record": {"path": str(tmp / "ratio.mp4")}, "ndi": {"source": "oscgan-bench"},
              "udp_stream": {"url": f"udp://127.0.0.1:{port}"}, "spout": {}, "syphon": {}, "webcam": {}}
    out = []
    for kind, extra in wanted.items():
        entry = SINK_TYPES.get(kind)
        if entry is None:
            continue
        try:
            cls = entry.sink_class()
        except ImportError as e:
            print(f"{kind}: skipped ({e})", file=sys.stderr)
            continue
        if cls is None:
            continue
        ok, why = cls.is_available()
        if not ok:
            print(f"{kind}: skipped ({why})", file=sys.stderr)
            continue
        out.append({"type": kind, **extra})
    return out


def ratio_run(args: argparse.Namespace, tmp: Path) -> tuple[list[list[object]], float, list[str]]:
    from pydantic import TypeAdapter

    from oscgan.sinks.registry import SinkConfig, SinkContext, create_sink

    dev = resolve_device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - 1))
    G = load_generator(args.model, device=dev)
    info = model_info(G)
    size = (args.size, args.size)
    configs = [TypeAdapter(SinkConfig).validate_python(c) for c in live_sink_configs(tmp)
               if not args.outputs or c["type"] in args.outputs.split(",")]

    def make_loop(fanout: FrameFanout) -> RenderLoop:
        registry = build_registry(info)
        registry.set("output.fps", 240.0)
        loop = RenderLoop(registry, Renderer(G, dev, out_size=size), fanout, info)
        k = [0]

        def move(now: float, dt: float) -> None:  # a new z every frame: nothing is cached
            k[0] += 1
            path = f"latent.z.{k[0] % info.z_dim}"
            registry.set(path, -0.3 if registry.get(path) == 0.3 else 0.3, source="bench")

        loop.pre_frame.append(move)
        return loop

    rows: list[list[object]] = []
    none: list[float] = []
    some: list[float] = []
    # Alternate the two cases so drift on a shared machine hits both alike.
    for r in range(args.rounds):
        for with_outputs in (False, True):
            fanout = FrameFanout()
            mgr = None
            if with_outputs:
                mgr = SinkManager(fanout, fps=30.0)
                ctx = SinkContext(fps=30.0, frame_size=size, model=args.model)
                for c in configs:
                    mgr.add(create_sink(c, ctx))
                mgr.start()
            fps, render_ms = render_fps(make_loop(fanout), args.seconds)
            detail = ""
            if mgr is not None:
                mgr.stop()
                detail = ", ".join(f"{n}: {s['frames_sent']} sent / {s['dropped']} dropped"
                                   + (f" ({s['state']}: {s['last_error']})" if s["errors"] else "")
                                   for n, s in mgr.status().items())
                some.append(fps)
            else:
                none.append(fps)
            rows.append([r + 1, "all outputs" if with_outputs else "none", f"{fps:.2f}", f"{render_ms:.1f}", detail])
    ratio = statistics.median(some) / statistics.median(none)
    return rows, ratio, [c.type for c in configs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin:sg2-256")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=512, help="render output size for the ratio run (default 512)")
    p.add_argument("--frames", type=int, default=60, help="frames per output cost measurement (default 60)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each ratio run (default 8)")
    p.add_argument("--rounds", type=int, default=3, help="alternating none / all-outputs rounds (default 3)")
    p.add_argument("--skip-cost", action="store_true", help="only the render ratio")
    p.add_argument("--outputs", default="", help="comma-separated output types for the ratio run "
                   "(default: every available one)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: cores - 1)")
    args = p.parse_args(argv)
    # What the daemon and the CLI do at start, so every loop here runs on the same allocator settings.
    keep_freed_memory()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        torch.set_num_threads(1)  # sinks use their own single-threaded paths; keep the numbers honest
        if not args.skip_cost:
            rows = []
            for label, make in output_variants(tmp, 30.0):
                cells: list[object] = [label]
                for size in (512, 1024):
                    wall, cpu = cost_per_frame(make, size, args.frames)
                    cells += [f"{wall:.2f}", f"{cpu:.2f}"]
                rows.append(cells)
            print(f"output cost per frame ({args.frames} frames, {os.cpu_count()} CPU cores, "
                  f"load average {os.getloadavg()[0]:.2f})")
            print(format_table(["output", "512 ms", "512 cpu ms", "1024 ms", "1024 cpu ms"], rows))
            print()
        ratio_rows, ratio, kinds = ratio_run(args, tmp)
        print(f"render fps with and without outputs ({args.model} -> {args.size}x{args.size}, {args.device}, "
              f"{torch.get_num_threads()} render threads, {args.seconds:g} s per run; outputs: {', '.join(kinds)})")
        print(format_table(["round", "outputs", "fps", "render ms", "detail"], ratio_rows))
        print(f"ratio (median fps with all outputs / median with none): {ratio:.3f}  (aim >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
