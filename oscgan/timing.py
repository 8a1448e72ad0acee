"""Wall-clock timing for `oscgan bench` and the benchmarks: warm-up, device sync, samples in ms."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_samples(fn: Callable[[], object], runs: int, warmup: int,
                 sync: Callable[[], None] = lambda: None) -> list[float]:
    """``runs`` timings of ``fn`` in milliseconds after ``warmup`` untimed calls.

    ``sync`` waits for queued device work (``torch.cuda.synchronize``) so each sample is the
    whole call, not just its launch.
    """
    return time_interleaved([fn], runs, warmup, sync)[0]


def time_interleaved(fns: list[Callable[[], object]], runs: int, warmup: int,
                     sync: Callable[[], None] = lambda: None) -> list[list[float]]:
    """Samples (ms) of each function, timed in alternation so load changes hit all of them alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    sync()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            sync()
            samples[i].append((time.perf_counter() - t0) * 1000)
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)
