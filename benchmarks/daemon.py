"""Daemon under OSC load: sustained fps against a bare generator loop, and OSC-to-frame latency.

Everything runs in this process except the OSC sender (a separate process by default, as a
real controller would be; ``--sender thread`` puts it in here, the worst case for the GIL):

1. bare loop: the same model on the same device and CPU thread count, ``z_from_seed`` + mapping
   (with truncation) + synthesis + uint8 RGBA to host memory, a new seed every frame;
2. daemon control run: ``Daemon`` (render loop capped at ``--fps``, 240 = as fast as it can; OSC
   and HTTP on free loopback ports) with a pre-frame hook that changes one z element per frame,
   so every frame re-renders (mapping included) without any OSC traffic;
3. daemon under load: a sender pushing ``--rate`` messages per second (anchor-paced) that
   alternate ``/oscgan/latent/z/<i>`` and ``/oscgan/truncation/psi`` with values that differ
   every time; ratio = published fps / bare fps (aim >= 0.95). Measured in alternating windows
   as the daemon runs (the render loop drains the OSC socket before each frame) and, for
   comparison, with that hook taken out (the receive thread applies each datagram on arrival);
4. latency, load still running: ``--probes`` single ``/oscgan/latent/seed`` messages at random
   moments; for each, the first published frame whose parameter version includes the new seed;
   latency = frame timestamp - send time (aim: one frame period + the render time); then the
   same without the drain hook, for comparison;
5. the bare loop again, since a shared machine drifts; the ratio uses the mean of both.

Each fps run lasts ``--seconds`` after a second of warm-up. Frames are recorded on the render
thread as they are published (see FrameRecorder), so none is missed.

    python benchmarks/daemon.py [--model builtin:sg2-256] [--device cpu] [--seconds 10] [--rate 1000]
    python benchmarks/daemon.py --model tests/fixtures/stylegan/sg2_64.pkl --seconds 3   # quick
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import resource
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from oscgan.allocator import keep_freed_memory
from oscgan.config import DaemonConfig, HttpConfig, OscConfig
from oscgan.daemon import Daemon
from oscgan.devices import resolve_device
from oscgan.models.loader import load_generator
from oscgan.render.convert import images_to_rgba
from oscgan.render.frames import Frame
from oscgan.sinks.fanout import FrameFanout
from oscgan.signals.osc_protocol import encode_message
from oscgan.state.latents import z_from_seed
from oscgan.tables import format_table

HOST = "127.0.0.1"
PSI = 0.7  # the registry's default truncation.psi, so both loops do the same work
WARMUP_S = 1.0  # seconds of running (and of load) before an fps window opens


# -- bare generator loop ----------------------------------------------------------------------------

def cpu_seconds() -> float:
    """CPU time used so far by all threads of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class BareResult:
    fps: float
    frame_ms: float  # median wall time of one frame
    cpu: float  # CPU time of this process / wall time (1.0 = one core busy)


@torch.inference_mode()
def bare_loop(G: Any, device: torch.device, seconds: float, warmup: float = WARMUP_S) -> BareResult:
    """Frames per second of mapping + synthesis + RGBA conversion, a new seed every frame."""
    c = torch.zeros([1, G.c_dim], device=device) if G.c_dim else None

    def frame(seed: int) -> None:
        z = torch.from_numpy(z_from_seed(seed, G.z_dim))[None].to(device)  # [1, z_dim]
        ws = G.mapping(z, c, truncation_psi=PSI)  # [1, num_ws, w_dim]
        img = G.synthesis(ws, noise_mode="const")  # [1, C, H, W]
        images_to_rgba(img)[0].cpu().numpy()  # to host memory, as the renderer hands frames on

    seed = 0
    t0 = time.perf_counter()
    while seed < 3 or time.perf_counter() - t0 < warmup:
        frame(seed)
        seed += 1
    samples: list[float] = []
    c0, t0 = cpu_seconds(), time.perf_counter()
    while (now := time.perf_counter()) - t0 < seconds:
        frame(seed)
        samples.append(time.perf_counter() - now)
        seed += 1
    elapsed = time.perf_counter() - t0
    return BareResult(len(samples) / elapsed, statistics.median(samples) * 1e3, (cpu_seconds() - c0) / elapsed)


# -- OSC load -------------------------------------------------------------------------------------

def load_messages(z_dim: int, count: int) -> list[bytes]:
    """A cycle of encoded messages; consecutive messages for one address always change its value."""
    out = []
    for n in range(count):
        if n % 2 == 0:
            i = (n // 2) % z_dim
            value = ((n * 7919) % 2000) / 1000 - 1.0  # -1..1, different on each visit of element i
            out.append(encode_message(f"/oscgan/latent/z/{i}", [value]))
        else:
            out.append(encode_message("/oscgan/truncation/psi", [0.5 + ((n // 2) % 97) / 250]))
    return out


def send_load(port: int, rate: float, z_dim: int, ready: Any, stop: Any, sent: Any) -> None:
    """Send ``rate`` messages per second to HOST:port until ``stop`` is set (anchor-paced, no drift)."""
    messages = load_messages(z_dim, 4000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n = 0
    ready.set()
    t0 = time.perf_counter()
    try:
        while not stop.is_set():
            due = int((time.perf_counter() - t0) * rate)  # messages whose deadline t0 + n / rate passed
            while n < due:
                sock.sendto(messages[n % len(messages)], (HOST, port))
                n += 1
            time.sleep(max(0.0, t0 + (n + 1) / rate - time.perf_counter()))
    finally:
        sock.close()
        sent.value = n


class LoadSender:
    """Runs ``send_load`` in a spawned process or in a thread of this one."""

    def __init__(self, mode: str, port: int, rate: float, z_dim: int) -> None:
        self._ready: Any
        self._stop: Any
        self.sent: Any
        if mode == "process":
            ctx = multiprocessing.get_context("spawn")  # no fork of a process running torch threads
            self._ready, self._stop, self.sent = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
            self._worker: Any = ctx.Process(target=send_load, name="osc-load", daemon=True,
                                            args=(port, rate, z_dim, self._ready, self._stop, self.sent))
        else:
            self._ready, self._stop = threading.Event(), threading.Event()
            self.sent = multiprocessing.Value("q", 0, lock=False)
            self._worker = threading.Thread(target=send_load, name="osc-load", daemon=True,
                                            args=(port, rate, z_dim, self._ready, self._stop, self.sent))

    def start(self) -> None:
        self._worker.start()
        if not self._ready.wait(60):
            raise RuntimeError("the OSC load sender did not start within 60 s")

    def stop(self) -> int:
        """Stop sending; returns how many messages were sent."""
        self._stop.set()
        self._worker.join(10)
        return int(self.sent.value)


# -- frames and latency probes ----------------------------------------------------------------------

@dataclass(frozen=True)
class FrameRecord:
    index: int
    timestamp: float
    params_version: int
    render_ms: float


class FrameRecorder:
    """Stands in front of the render loop's fan-out and records every frame as it is published.

    Recording on the render thread misses nothing; a consumer thread reading a latest-wins slot
    misses frames whenever it waits for the GIL longer than a frame period (it did, here).
    """

    def __init__(self, fanout: FrameFanout) -> None:
        self._fanout = fanout
        self.frames: list[FrameRecord] = []
        self._cond = threading.Condition()

    def publish(self, frame: Frame) -> None:
        with self._cond:
            self.frames.append(FrameRecord(frame.index, frame.timestamp, frame.params_version, frame.render_ms))
            self._cond.notify_all()
        self._fanout.publish(frame)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fanout, name)

    def between(self, t0: float, t1: float) -> list[FrameRecord]:
        with self._cond:
            return [f for f in self.frames if t0 <= f.timestamp < t1]

    def first_with_version(self, version: int, timeout: float) -> FrameRecord | None:
        """The first frame whose parameter snapshot is at least ``version`` (versions never go back)."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self.frames) and self.frames[-1].params_version >= version, timeout):
                return None
            i = len(self.frames) - 1
            while i > 0 and self.frames[i - 1].params_version >= version:
                i -= 1
            return self.frames[i]


@dataclass
class Probe:
    sent: float  # perf_counter at send
    applied: float  # perf_counter when the registry had the new seed
    frame: FrameRecord

    @property
    def latency_ms(self) -> float:
        return (self.frame.timestamp - self.sent) * 1e3


def run_probes(daemon: Daemon, recorder: FrameRecorder, count: int, period: float, seed0: int) -> list[Probe]:
    """Send ``count`` new seeds at random moments; for each, find the first frame that shows it."""
    registry = daemon.registry
    assert registry is not None and daemon.osc is not None
    port = daemon.osc.address[1]
    applied: dict[int, tuple[int, float]] = {}  # seed -> (registry version, perf_counter)
    seen = threading.Condition()

    def on_change(path: str, value: object, source: str) -> None:
        # Runs on the OSC thread right after the set; it is the only setter, so the version is exact.
        if path == "latent.seed":
            with seen:
                applied[int(value)] = (registry.version, time.perf_counter())  # type: ignore[call-overload]
                seen.notify_all()

    unsubscribe = registry.subscribe(on_change)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rng = random.Random(1)
    probes: list[Probe] = []
    try:
        for k in range(count):
            time.sleep(rng.uniform(0.0, 2.0 * period))  # a random phase of the render cycle
            seed = seed0 + k
            t_send = time.perf_counter()
            sock.sendto(encode_message("/oscgan/latent/seed", [seed]), (HOST, port))
            with seen:
                if not seen.wait_for(lambda: seed in applied, 5.0):
                    raise RuntimeError(f"OSC probe seed {seed} was not applied within 5 s")
                version, t_applied = applied[seed]
            frame = recorder.first_with_version(version, timeout=max(10.0, 20 * period))
            if frame is None:
                raise RuntimeError(f"no frame showed parameter version {version} (seed {seed})")
            probes.append(Probe(t_send, t_applied, frame))
    finally:
        unsubscribe()
        sock.close()
    return probes


# -- main -----------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Window:
    fps: float  # published frames per second
    render_fps: float  # of which rendered (the rest re-sent unchanged)
    render_ms: float  # median render time of the rendered frames
    msg_rate: float  # OSC messages received per second
    applied_rate: float  # OSC messages that set a parameter, per second
    cpu: float  # CPU time of this process / wall time (1.0 = one core busy)


def measure(daemon: Daemon, recorder: FrameRecorder, seconds: float) -> Window:
    """Published frames per second (and friends) over the next ``seconds``."""
    assert daemon.osc is not None
    osc0, c0, t0 = daemon.osc.stats, cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    t1, c1, osc1 = time.perf_counter(), cpu_seconds(), daemon.osc.stats
    dt = t1 - t0
    frames = recorder.between(t0, t1)
    rendered = [f.render_ms for f in frames if f.render_ms > 0]
    # Frame intervals over the span of the window's frames: exact even with a few slow frames.
    span = frames[-1].timestamp - frames[0].timestamp if len(frames) > 1 else 0.0
    fps = (len(frames) - 1) / span if span > 0 else len(frames) / dt
    return Window(fps, fps * len(rendered) / max(1, len(frames)),
                  statistics.median(rendered) if rendered else float("nan"),
                  (osc1.messages - osc0.messages) / dt, (osc1.applied - osc0.applied) / dt, (c1 - c0) / dt)


def mean_window(windows: list[Window]) -> Window:
    """Windows of equal length taken as one."""
    return Window(*(statistics.fmean(getattr(w, f.name) for w in windows) for f in fields(Window)))


def set_drain(daemon: Daemon, on: bool) -> None:
    """Put the loop's OSC drain hook in or take it out (the daemon has it in)."""
    assert daemon.loop is not None and daemon.osc is not None
    hooks = daemon.loop.pre_frame
    if on and daemon.osc.drain not in hooks:
        hooks.insert(0, daemon.osc.drain)
    elif not on and daemon.osc.drain in hooks:
        hooks.remove(daemon.osc.drain)
        # The receive thread defers to a loop that drained within the last second; make it stop now.
        daemon.osc._last_drain = -math.inf  # noqa: SLF001 - a benchmark switch, not an API


def drain_vs_thread(daemon: Daemon, recorder: FrameRecorder, seconds: float,
                    rounds: int = 4) -> tuple[Window, Window]:
    """Loaded fps with the drain hook and without it, in alternating windows (a drifting machine
    then affects both alike); returns (drained, on the OSC thread)."""
    drained, threaded = [], []
    for _ in range(rounds):
        for on, out in ((True, drained), (False, threaded)):
            set_drain(daemon, on)
            time.sleep(0.2)
            out.append(measure(daemon, recorder, seconds / rounds))
    set_drain(daemon, True)
    return mean_window(drained), mean_window(threaded)


def in_loop_changes(daemon: Daemon) -> Callable[[float, float], None]:
    """A pre-frame hook that changes one z element every frame: re-renders without any OSC."""
    registry = daemon.registry
    assert registry is not None
    count = [0]

    def hook(now: float, dt: float) -> None:
        count[0] += 1
        registry.set("latent.z.0", ((count[0] * 7919) % 2000) / 1000 - 1.0, source="benchmark")

    return hook


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:sg2-256",
                    help="builtin:NAME or a model file (tests/fixtures/stylegan/sg2_64.pkl for a quick run)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: best available)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each fps measurement")
    ap.add_argument("--rate", type=float, default=1000.0, help="OSC messages per second during the run")
    ap.add_argument("--probes", type=int, default=20, help="latency probes (single seed messages)")
    ap.add_argument("--fps", type=float, default=240.0, help="daemon frame-rate cap (240 is the most it accepts)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU render threads for both loops (default: the daemon's, all cores but one)")
    ap.add_argument("--sender", choices=("process", "thread"), default="process",
                    help="where the OSC load runs: another process (like a real controller) or a thread here")
    args = ap.parse_args()
    # What the daemon and the CLI do at start, so every loop here runs on the same allocator settings.
    kept = keep_freed_memory()

    device = resolve_device(args.device)
    threads = None
    if device.type == "cpu":
        # The daemon sets torch's (process-wide) thread count on the CPU; the bare loop must run
        # with the same one. This mirrors the daemon's default: all cores but one.
        threads = args.threads or max(1, (os.cpu_count() or 2) - 1)
        torch.set_num_threads(threads)
    G = load_generator(args.model, device=device)
    bare_before = bare_loop(G, device, args.seconds)

    daemon = Daemon(DaemonConfig(model=args.model, device=str(device), fps=args.fps, threads=threads,
                                 osc=OscConfig(host=HOST, port=0), http=HttpConfig(host=HOST, port=0)))
    sender: LoadSender | None = None
    try:
        daemon.start()
        assert daemon.loop is not None and daemon.osc is not None
        recorder = FrameRecorder(daemon.fanout)
        daemon.loop.fanout = recorder  # type: ignore[assignment]
        wait_for(lambda: daemon.loop.stats.frames >= 3, 120, "the daemon's first frames")  # type: ignore[union-attr]

        # Control run: the daemon re-rendering every frame with no OSC traffic at all.
        hook = in_loop_changes(daemon)
        daemon.loop.pre_frame.append(hook)
        time.sleep(WARMUP_S)
        quiet = measure(daemon, recorder, args.seconds)
        daemon.loop.pre_frame.remove(hook)

        osc_start = daemon.osc.stats
        z_dim = daemon.registry.spec("latent.z").length  # type: ignore[union-attr]
        sender = LoadSender(args.sender, daemon.osc.address[1], args.rate, z_dim)
        sender.start()
        time.sleep(WARMUP_S)
        loaded, threaded = drain_vs_thread(daemon, recorder, args.seconds)
        period = 1.0 / loaded.fps if loaded.fps > 0 else 1.0
        probes = run_probes(daemon, recorder, args.probes, period, seed0=1_000_000)
        set_drain(daemon, False)
        threaded_probes = run_probes(daemon, recorder, args.probes, period, seed0=2_000_000)
        set_drain(daemon, True)
        sent = sender.stop()
        sender = None
        time.sleep(0.2)  # let the OSC thread drain its socket before counting
        osc_end = daemon.osc.stats
    finally:
        if sender is not None:
            sender.stop()
        daemon.stop()
    bare_after = bare_loop(G, device, args.seconds)

    bare_fps = (bare_before.fps + bare_after.fps) / 2
    ratio = loaded.fps / bare_fps
    lat = [p.latency_ms for p in probes]
    apply_ms = [(p.applied - p.sent) * 1e3 for p in probes]
    aim_ms = period * 1e3 + loaded.render_ms
    lat_med, lat_p95 = statistics.median(lat), percentile(lat, 95)
    lat_threaded = [p.latency_ms for p in threaded_probes]
    capped = bare_fps > 0.95 * args.fps  # the cap, not the daemon, then limits the ratio

    def fps_row(name: str, w: Window) -> list[object]:
        return [name, f"{w.fps:.2f} / {w.render_fps:.2f}", f"{w.render_ms:.1f}", f"{w.cpu:.0%}",
                f"{w.fps / bare_fps:.3f}"]

    fps_rows: list[list[object]] = [
        ["bare loop (before / after)", f"{bare_before.fps:.2f} / {bare_after.fps:.2f}",
         f"{bare_before.frame_ms:.1f} / {bare_after.frame_ms:.1f}",
         f"{bare_before.cpu:.0%} / {bare_after.cpu:.0%}", "1"],
        fps_row("daemon, in-loop changes, no OSC", quiet),
        fps_row(f"daemon, OSC {loaded.msg_rate:.0f} msg/s ({loaded.applied_rate:.0f} applied)", loaded),
        fps_row(f"  same, applied on the OSC thread ({threaded.applied_rate:.0f}/s)", threaded),
    ]
    result_rows: list[list[object]] = [
        ["fps ratio daemon under load / bare", f"{ratio:.3f}", ">= 0.95",
         ("yes" if ratio >= 0.95 else "no") + (" (--fps cap binds)" if capped else "")],
        [f"OSC -> frame latency, median of {len(lat)}", f"{lat_med:.1f} ms", f"<= {aim_ms:.1f} ms",
         "yes" if lat_med <= aim_ms else "no"],
        ["OSC -> frame latency, p95 / max", f"{lat_p95:.1f} / {max(lat):.1f} ms", f"<= {aim_ms:.1f} ms",
         "yes" if lat_p95 <= aim_ms else "no"],
        ["  of which send -> parameter set, median", f"{statistics.median(apply_ms):.2f} ms", "", ""],
        ["  same, applied on the OSC thread: median / p95", f"{statistics.median(lat_threaded):.1f} / "
         f"{percentile(lat_threaded, 95):.1f} ms", "", ""],
    ]
    print(f"oscgan daemon benchmark: {args.model} ({G.architecture}, {G.img_resolution}px) on {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f}); {args.seconds:g} s per run, OSC sender in a {args.sender}, "
          f"fps cap {args.fps:g}; freed memory kept (oscgan/allocator.py): {'yes' if kept else 'no'}")
    print(format_table(["run", "fps published / rendered", "render ms (median)", "process CPU", "vs bare"],
                       fps_rows))
    print(f"aim for latency = frame period under load ({period * 1e3:.1f} ms) + median render "
          f"({loaded.render_ms:.1f} ms)")
    print(format_table(["measure", "value", "aim", "met"], result_rows))
    lost = sent - (osc_end.received - osc_start.received) - len(probes)
    if osc_end.malformed or osc_end.unknown_address or osc_end.bad_value:
        print(f"warning: OSC errors during the run: {osc_end}", file=sys.stderr)
    if lost > 0.01 * sent:
        print(f"warning: {lost} of {sent} load messages sent were not received", file=sys.stderr)


if __name__ == "__main__":
    main()
