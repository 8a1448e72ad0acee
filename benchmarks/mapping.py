"""Per-frame cost of the mapping engine: 200 mappings with one-euro smoothing onto a 512-wide latent.

Runs ``MappingService.pre_frame`` (what the render thread calls before every frame: read the bus,
run sources, filter banks and combine, write the registry once) on a simulated clock, with the
inputs written to a real ``SignalBus`` before each frame as OSC and MIDI would. No model, no
renderer: only the mapping cost. Reported per frame: the whole hook, and the share of it spent
in the one ``registry.set_many`` (coercing and storing the 512-float latent).

    python benchmarks/mapping.py [--frames 2000] [--mappings 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from oscgan.mapping.service import MappingService
from oscgan.signals import names
from oscgan.signals.bus import SignalBus
from oscgan.state.params import ModelInfo, build_registry
from oscgan.tables import format_table

Z_DIM = 512
INFO = ModelInfo("stylegan2", Z_DIM, 512, 14, 256, (4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256))
ONE_EURO = "{type: smooth, method: one_euro, min_cutoff: 1.0, beta: 0.5}"


def osc_faders(n: int) -> str:
    return "mappings:\n" + "".join(
        f"  - {{source: {{type: osc, address: /td/fader{i}}}, filters: [{{type: remap, in: [0, 1], out: [-2, 2]}}, "
        f"{ONE_EURO}], target: latent.z.{i % Z_DIM}}}\n" for i in range(n))


def midi_faders(n: int) -> str:
    return "mappings:\n" + "".join(
        f"  - {{source: {{type: midi_cc, channel: {1 + i // 128}, cc: {i % 128}}}, filters: [{{type: remap, "
        f"in: [0, 127], out: [-2, 2]}}, {ONE_EURO}, {{type: takeover, mode: pickup}}], "
        f"target: latent.z.{i % Z_DIM}}}\n" for i in range(n))


def lfo_slices(n: int) -> str:
    return "mappings:\n" + "".join(
        f"  - {{source: {{type: lfo, shape: sine, rate_hz: {0.05 + 0.01 * i:.3f}, phase: {(i * 0.37) % 1:.3f}}}, "
        f"filters: [{{type: remap, in: [-1, 1], out: [-0.3, 0.3]}}, {ONE_EURO}], "
        f"target: 'latent.z[{(i * 7) % (Z_DIM - 64)}:{(i * 7) % (Z_DIM - 64) + 64}]', combine: add}}\n"
        for i in range(n))


Feeder = Callable[[SignalBus, int], None]


def run(yaml_text: str, feed: Feeder, frames: int, warmup: int, fps: float = 60.0) -> tuple[list[float], list[float]]:
    """(hook µs per frame, registry write µs per frame) for one scenario."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml_text, encoding="utf-8")
        registry = build_registry(INFO)
        bus = SignalBus(log_size=16384)
        service = MappingService(registry, bus, [path], poll_interval=3600).start()
        write_times: list[float] = []
        real_set_many = registry.set_many

        def timed_set_many(items, source=""):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            out = real_set_many(items, source)
            write_times.append(time.perf_counter() - t)
            return out

        registry.set_many = timed_set_many  # type: ignore[method-assign]
        hook: list[float] = []
        writes: list[float] = []
        dt = 1.0 / fps
        try:
            for frame in range(warmup + frames):
                feed(bus, frame)
                write_times.clear()
                t0 = time.perf_counter()
                service.pre_frame(frame * dt, dt)
                elapsed = time.perf_counter() - t0
                if frame >= warmup:
                    hook.append(elapsed * 1e6)
                    writes.append(sum(write_times) * 1e6)
        finally:
            service.stop()
    return hook, writes


def all_osc_moving(n: int) -> Feeder:
    addresses = [names.osc(f"/td/fader{i}") for i in range(n)]

    def feed(bus: SignalBus, frame: int) -> None:
        for i, name in enumerate(addresses):
            bus.write(name, (0.5 + 0.5 * math.sin(frame * 0.05 + i),), 0.0)
    return feed


def some_midi_moving(n: int, moving: int) -> Feeder:
    cc = [names.midi_cc(1 + i // 128, i % 128) for i in range(n)]

    def feed(bus: SignalBus, frame: int) -> None:
        for k in range(moving):
            i = (frame * moving + k) % n
            bus.write(cc[i], int(63.5 + 63.5 * math.sin(frame * 0.05 + i)), 0.0)
    return feed


def nothing(bus: SignalBus, frame: int) -> None:
    return None


def stats(xs: list[float]) -> tuple[str, str, str]:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
    return f"{statistics.fmean(xs):.0f}", f"{statistics.median(xs):.0f}", f"{p99:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--mappings", type=int, default=200)
    args = ap.parse_args()
    n = args.mappings
    scenarios = [
        (f"{n} OSC faders -> remap -> one-euro -> latent.z.i, all moving every frame",
         osc_faders(n), all_osc_moving(n)),
        (f"same {n} mappings, inputs idle (smoothing settled)", osc_faders(n), nothing),
        (f"{n} MIDI CC -> remap -> one-euro -> pickup -> latent.z.i, 8 moving per frame",
         midi_faders(n), some_midi_moving(n, 8)),
        (f"{n} LFOs -> remap -> one-euro -> latent.z 64-wide slices (add, overlapping)",
         lfo_slices(n), nothing),
    ]
    rows = []
    worst = 0.0
    for label, text, feed in scenarios:
        hook, writes = run(text, feed, args.frames, args.warmup)
        mean, p50, p99 = stats(hook)
        rows.append([label, mean, p50, p99, f"{statistics.fmean(writes):.0f}"])
        worst = max(worst, statistics.median(hook))
    print(f"oscgan mapping benchmark: {args.frames} frames per scenario, Python {sys.version.split()[0]}, "
          f"numpy {np.__version__}")
    print(format_table(["scenario", "mean µs/frame", "median", "p99", "of which registry write (mean)"], rows))
    print(f"aim: median under 1000 µs per frame - {'met' if worst < 1000 else 'NOT met'} "
          f"(worst median {worst:.0f} µs; the mean and p99 include whatever else the machine was doing)")


if __name__ == "__main__":
    main()
