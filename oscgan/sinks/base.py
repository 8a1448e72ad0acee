"""The sink framework: FrameSink ABC, one supervised worker thread per sink, and the manager.

Shaped like aiortc's media tracks: a sink is a tiny object with ``open`` / ``send`` / ``close``;
everything hard lives in :class:`SinkWorker`, which gives each sink its own thread and mailbox,
converts frames to what the sink asked for (size, fit, pixel format, alpha), and keeps a broken
sink from ever touching the render loop or the other sinks:

* an exception in ``open`` / ``send`` is logged (rate-limited), the sink is closed and retried
  with exponential back-off (0.5 s doubling to 30 s);
* a ``send`` (or ``open`` / ``close``) that does not return within the sink's timeout is
  reported by a watchdog; the worker abandons that thread and, after back-off, starts a fresh
  one. Python cannot kill a thread, so the stuck call keeps its thread (and whatever it holds)
  until it returns by itself. The fresh thread first calls ``close()`` on the sink — for
  socket/driver backends that usually unblocks the stuck call — and the stale thread, once it
  wakes, sees it has been superseded and exits without touching the sink again. So a sink's
  ``close`` must tolerate a concurrent, stuck ``send``. After ``MAX_ABANDONED`` stuck threads
  are still alive at once the worker stops retrying (state ``failed``) rather than leak threads;
* a slow sink simply misses frames: its one-frame slot keeps only the newest (counted as
  ``dropped``). Sinks that need every frame (recording) set ``lossless = True`` and get a
  bounded :class:`FrameQueue` instead; when that overflows, frames are dropped, counted and
  logged loudly — the render thread never blocks.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

from oscgan.render.frames import Frame, LatestFrameSlot

log = logging.getLogger(__name__)

# Frames are read-only by contract and the resampler only reads them; torch's one-time warning
# about wrapping a read-only array would otherwise appear on the first scaled frame.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)

Fit = Literal["stretch", "letterbox"]
PixelFormat = Literal["RGBA", "BGRA"]
AlphaMode = Literal["none", "opaque", "luma", "channel"]
AlphaChannel = Literal["r", "g", "b", "a"]

FITS: tuple[str, ...] = ("stretch", "letterbox")
PIXEL_FORMATS: tuple[str, ...] = ("RGBA", "BGRA")
ALPHA_MODES: tuple[str, ...] = ("none", "opaque", "luma", "channel")
ALPHA_CHANNELS: tuple[str, ...] = ("r", "g", "b", "a")

BACKOFF_INITIAL = 0.5    # seconds before the first retry
BACKOFF_MAX = 30.0       # retry interval cap, seconds
STABLE_AFTER = 5.0       # seconds a sink must stay open and sending before back-off resets
MAX_ABANDONED = 4        # stuck threads still alive at once before the worker gives up
ERROR_LOG_INTERVAL = 30.0  # the same error is logged at most this often per sink


class SinkUnavailable(RuntimeError):
    """A backend that cannot work here (library, driver or OS missing); retrying will not help."""


class FrameSink(ABC):
    """One output. Subclasses implement ``open`` / ``send`` / ``close`` and set the attributes.

    Attributes:
        name: unique label in logs, /health and the fan-out (e.g. ``"ndi"``, ``"record"``).
        size: output (width, height) in pixels, or None for the render's native size.
        fit: how a different aspect ratio is handled: ``"stretch"`` (fill) or ``"letterbox"``
            (keep aspect, transparent black bars).
        pixel_format: byte order ``send`` receives: ``"RGBA"`` or ``"BGRA"`` (NDI, Spout, Syphon).
        alpha: where the alpha channel comes from: ``"none"`` = as rendered (opaque for RGB
            models), ``"opaque"`` = 255 everywhere, ``"luma"`` = the picture's brightness
            (ITU-R 601 luma; black is transparent — for keying in Resolume), ``"channel"`` = a
            copy of ``alpha_channel``.
        alpha_channel: the source channel for ``alpha="channel"``: ``"r"``, ``"g"``, ``"b"``, ``"a"``.
        lossless: True = this sink needs every published frame (recording): it gets a bounded
            queue instead of a latest-frame slot.
        queue_seconds: for lossless sinks, how many seconds of frames the queue holds (None =
            the manager's default, 2 s).
        open_timeout / send_timeout / close_timeout: seconds before the watchdog declares the
            call hung.

    ``send`` runs on the sink's own worker thread and receives a :class:`Frame` already scaled to
    ``size`` and in ``pixel_format`` (``frame.rgba`` is then [H, W, 4] uint8 in that byte order,
    read-only). ``frame.error`` is True while the renderer is failing and the last good picture
    is being repeated. ``open`` / ``send`` report failure by raising; raise
    :class:`SinkUnavailable` for problems that retrying cannot fix.
    """

    name: str = "sink"
    size: tuple[int, int] | None = None
    fit: Fit = "stretch"
    pixel_format: PixelFormat = "RGBA"
    alpha: AlphaMode = "none"
    alpha_channel: AlphaChannel = "a"
    lossless: bool = False
    queue_seconds: float | None = None
    open_timeout: float = 15.0
    send_timeout: float = 5.0
    close_timeout: float = 10.0

    def __init__(self, name: str | None = None, *, size: tuple[int, int] | None = None,
                 fit: Fit = "stretch", pixel_format: PixelFormat = "RGBA", alpha: AlphaMode = "none",
                 alpha_channel: AlphaChannel = "a") -> None:
        if name is not None:
            self.name = name
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.fit, self.pixel_format, self.alpha, self.alpha_channel = fit, pixel_format, alpha, alpha_channel
        validate_output_options(self.size, fit, pixel_format, alpha, alpha_channel)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(True, "") when the backend can run here, else (False, why + how to fix it).

        Must be cheap and import optional libraries lazily; the manager calls it once per class.
        """
        return True, ""

    @abstractmethod
    def open(self) -> None:
        """Acquire the output (socket, encoder, shared texture). Raise on failure."""

    @abstractmethod
    def send(self, frame: Frame) -> None:
        """Deliver one converted frame. Raise on failure; return quickly."""

    @abstractmethod
    def close(self) -> None:
        """Release everything ``open`` acquired. Idempotent; must not raise if never opened."""

    def describe(self) -> dict[str, Any]:
        """Extra JSON-able fields for the sink's /health entry (override to add backend details)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, size={self.size}, fit={self.fit!r}, " \
               f"pixel_format={self.pixel_format!r}, alpha={self.alpha!r})"


def validate_output_options(size: tuple[int, int] | None, fit: str, pixel_format: str, alpha: str,
                            alpha_channel: str) -> None:
    """ValueError naming the bad option (constructor-time check, so a typo fails at startup)."""
    if size is not None and (size[0] < 1 or size[1] < 1):
        raise ValueError(f"sink size must be positive, got {size[0]}x{size[1]}")
    for label, value, allowed in (("fit", fit, FITS), ("pixel_format", pixel_format, PIXEL_FORMATS),
                                  ("alpha", alpha, ALPHA_MODES), ("alpha_channel", alpha_channel, ALPHA_CHANNELS)):
        if value not in allowed:
            raise ValueError(f"sink {label} must be one of {', '.join(allowed)}; got {value!r}")


_availability_logged: set[type] = set()
_availability_lock = threading.Lock()


def check_available(cls: type[FrameSink]) -> tuple[bool, str]:
    """``cls.is_available()``, logging the reason once per process when it is missing."""
    try:
        ok, why = cls.is_available()
    except Exception as e:  # noqa: BLE001 - a broken probe means unavailable, not a crash
        ok, why = False, f"availability check failed: {type(e).__name__}: {e}"
    if not ok:
        with _availability_lock:
            first = cls not in _availability_logged
            _availability_logged.add(cls)
        if first:
            log.warning("%s output unavailable: %s", cls.__name__, why)
    return ok, why


# -- frame conversion --------------------------------------------------------------------------

class FrameConverter:
    """Frame (RGBA, native size) -> Frame in a sink's size, fit, alpha and byte order.

    Runs on the sink's worker thread, on the CPU: torch's single-threaded uint8 resampler,
    Pillow for luma and numpy for channels — all release the GIL and use one core, so they do
    not fight the renderer's thread pool.
    Frames that need no change pass through without a copy, and a repeated picture (the loop
    re-sends the same array when nothing changed) reuses the previous result.
    """

    def __init__(self, size: tuple[int, int] | None = None, fit: str = "stretch",
                 pixel_format: str = "RGBA", alpha: str = "none", alpha_channel: str = "a") -> None:
        validate_output_options(size, fit, pixel_format, alpha, alpha_channel)
        self.size, self.fit, self.pixel_format = size, fit, pixel_format
        self.alpha, self.alpha_channel = alpha, alpha_channel
        self._src: np.ndarray | None = None
        self._out: np.ndarray | None = None

    @classmethod
    def for_sink(cls, sink: FrameSink) -> FrameConverter:
        return cls(sink.size, sink.fit, sink.pixel_format, sink.alpha, sink.alpha_channel)

    def __call__(self, frame: Frame) -> Frame:
        src = frame.rgba
        if src is self._src and self._out is not None:
            out = self._out
        else:
            out = self.convert(src)
            self._src, self._out = src, out
        return frame if out is src else dataclasses.replace(frame, rgba=out)

    def convert(self, rgba: np.ndarray) -> np.ndarray:
        """[H, W, 4] uint8 RGBA -> [h, w, 4] uint8 in the target layout (read-only; may be ``rgba``)."""
        out = rgba
        if self.size is not None and (self.size[0], self.size[1]) != (rgba.shape[1], rgba.shape[0]):
            out = resize_rgba(out, self.size, self.fit)
        if self.alpha != "none":
            out = out.copy() if out is rgba else out
            out[..., 3] = alpha_plane(out, self.alpha, self.alpha_channel)
        if self.pixel_format == "BGRA":
            out = rgba_to_bgra(out)
        if out is not rgba:
            out = np.ascontiguousarray(out)
            out.flags.writeable = False
        return out


def resize_rgba(rgba: np.ndarray, size: tuple[int, int], fit: str = "stretch") -> np.ndarray:
    """Resample [H, W, 4] uint8 to ``size`` = (width, height): bilinear, antialiased when shrinking.

    Uses torch's uint8 path (a single-threaded SIMD kernel, so it does not compete with the
    renderer's thread pool; about 4x faster than Pillow on RGBA). All four channels are
    interpolated independently, as ``render.convert`` does. ``letterbox`` keeps the aspect ratio
    (same rounding as ``render.convert``) and fills the bars with transparent black.
    Returns a new writable C-contiguous array.
    """
    import torch
    import torch.nn.functional as F

    tw, th = size
    h, w = rgba.shape[:2]
    if fit == "stretch":
        nw, nh = tw, th
    elif fit == "letterbox":
        scale = min(tw / w, th / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    else:
        raise ValueError(f"fit must be 'stretch' or 'letterbox', got {fit!r}")
    src = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1)[None]  # [1, 4, H, W] channels-last view
    if (nw, nh) == (w, h):
        inner = src
    else:
        inner = F.interpolate(src, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    # interpolate returns planar [1, 4, nh, nw]; numpy's transpose copy is ~5x faster than
    # torch's for uint8.
    inner_hwc = inner[0].numpy().transpose(1, 2, 0)  # [nh, nw, 4] view
    if (nw, nh) == (tw, th):
        return np.ascontiguousarray(inner_hwc)
    out = np.zeros((th, tw, 4), np.uint8)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = inner_hwc
    return out


def rgba_to_bgra(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] RGBA -> a new read-only BGRA array (Pillow's packer: ~4x numpy fancy indexing)."""
    from PIL import Image

    h, w = rgba.shape[:2]
    img = Image.frombuffer("RGBA", (w, h), np.ascontiguousarray(rgba), "raw", "RGBA", 0, 1)
    return np.frombuffer(img.tobytes("raw", "BGRA"), np.uint8).reshape(h, w, 4)


def alpha_plane(rgba: np.ndarray, mode: str, channel: str = "a") -> np.ndarray:
    """The [H, W] uint8 alpha for ``mode`` ('opaque', 'luma', 'channel') of an RGBA array.

    ``luma`` is ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, as Pillow, FFmpeg and most keyers
    compute "brightness"): black -> transparent, white -> opaque.
    """
    if mode == "opaque":
        return np.full(rgba.shape[:2], 255, np.uint8)
    if mode == "luma":
        from PIL import Image

        img = Image.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), np.ascontiguousarray(rgba),
                               "raw", "RGBA", 0, 1)
        return np.asarray(img.convert("L"))
    if mode == "channel":
        return rgba[..., "rgba".index(channel)]
    raise ValueError(f"alpha mode must be one of {', '.join(ALPHA_MODES)}, got {mode!r}")


# -- mailboxes ---------------------------------------------------------------------------------

class FrameConsumer(Protocol):
    """What the fan-out needs from a consumer: a ``put`` that never blocks, and a drop count."""

    dropped: int

    def put(self, frame: Frame) -> None: ...

    def take(self, timeout: float | None = None) -> Frame | None: ...


class FrameQueue:
    """A bounded FIFO of frames for consumers that need every one (recording).

    ``put`` never blocks the render thread: when the queue is full the incoming frame is
    dropped and counted (``dropped``), and ``on_overflow`` (if set) is called so the owner can
    log it loudly.
    """

    def __init__(self, maxsize: int, on_overflow: Callable[[Frame], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("FrameQueue needs room for at least one frame")
        self.maxsize = maxsize
        self.on_overflow = on_overflow
        self._cond = threading.Condition()
        self._items: collections.deque[Frame] = collections.deque()
        self.dropped = 0
        self.high_water = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if len(self._items) >= self.maxsize:
                self.dropped += 1
                overflow = True
            else:
                self._items.append(frame)
                self.high_water = max(self.high_water, len(self._items))
                self._cond.notify()
                overflow = False
        if overflow and self.on_overflow is not None:
            self.on_overflow(frame)

    def take(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            if not self._items:
                self._cond.wait_for(lambda: bool(self._items), timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


# -- back-off and rate-limited logging ---------------------------------------------------------

class Backoff:
    """Exponential retry delays: ``initial``, doubling, capped at ``maximum``; ``reset`` on success."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.failures = 0

    def next_delay(self) -> float:
        """Count one failure and return how long to wait before the next attempt."""
        delay = min(self.maximum, self.initial * self.factor ** min(self.failures, 64))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class _ErrorLog:
    """Logs a sink's errors: the first of a kind with its traceback, repeats at most every interval."""

    def __init__(self, name: str, clock: Callable[[], float], interval: float = ERROR_LOG_INTERVAL) -> None:
        self.name, self.clock, self.interval = name, clock, interval
        self._last_msg: str | None = None
        self._last_at = -math.inf
        self._suppressed = 0

    def error(self, what: str, detail: str = "", exc_info: BaseException | None = None) -> None:
        """Log ``what`` (the error; repeats of the same ``what`` are rate-limited) + ``detail``."""
        now = self.clock()
        if what == self._last_msg and now - self._last_at < self.interval:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} more like it not logged)" if self._suppressed else ""
        first = what != self._last_msg
        self._last_msg, self._last_at, self._suppressed = what, now, 0
        log.error("output %r: %s%s%s", self.name, what, detail, extra, exc_info=exc_info if first else None)


# -- the worker --------------------------------------------------------------------------------

SinkState = Literal["idle", "opening", "open", "retrying", "failed", "closed"]


@dataclasses.dataclass
class _Call:
    op: str            # 'open' | 'send' | 'close'
    started: float     # clock() when it began
    timeout: float


@dataclasses.dataclass
class SinkStats:
    """Counters for one sink (read by /health without locking; ints/floats/str only)."""

    frames_sent: int = 0
    errors: int = 0
    hangs: int = 0
    opens: int = 0
    send_ms: float = 0.0        # smoothed send time
    convert_ms: float = 0.0     # smoothed conversion time
    last_error: str | None = None
    last_frame_index: int = -1


class SinkWorker:
    """Runs one sink on its own thread, converting frames and surviving its failures.

    Args:
        sink: the output.
        fanout: anything with ``add_consumer(name, consumer=None)`` / ``remove_consumer(name)``
            (:class:`oscgan.sinks.fanout.FrameFanout`).
        queue_frames: mailbox size for lossless sinks (e.g. 2 s of frames at the daemon's fps).
        clock: monotonic seconds (tests pass a fake one; back-off and hang detection use it).
        backoff: retry policy (default 0.5 s doubling to 30 s).
        poll: real seconds between checks of stop / retry time while idle (small: cheap wakeups).

    ``check_hung()`` must be called periodically (the :class:`SinkManager` watchdog does it).
    """

    def __init__(self, sink: FrameSink, fanout: Any, *, queue_frames: int = 60,
                 clock: Callable[[], float] = time.monotonic, backoff: Backoff | None = None,
                 poll: float = 0.02, stable_after: float = STABLE_AFTER,
                 max_abandoned: int = MAX_ABANDONED) -> None:
        self.sink, self.fanout, self.clock = sink, fanout, clock
        self.name = sink.name
        self.backoff = backoff or Backoff()
        self.poll, self.stable_after, self.max_abandoned = poll, stable_after, max_abandoned
        self.stats = SinkStats()
        self.state: SinkState = "idle"
        self.next_retry: float | None = None   # clock() time of the next open attempt
        self.convert = FrameConverter.for_sink(sink)
        self._errors = _ErrorLog(sink.name, clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gen = 0                      # the live runner's generation; older ones must exit
        self._thread: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []
        self._call: _Call | None = None    # the blocking call in progress (for the watchdog)
        self._open_since: float | None = None
        if sink.lossless:
            self.mailbox: LatestFrameSlot | FrameQueue = FrameQueue(queue_frames, self._on_overflow)
        else:
            self.mailbox = LatestFrameSlot()
        self._overflow_logged_at = -math.inf

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"sink worker {self.name!r} already started")
        ok, why = check_available(type(self.sink))
        if not ok:
            self.state, self.stats.last_error = "failed", f"unavailable: {why}"
            return
        self.fanout.add_consumer(self.name, self.mailbox)
        self.next_retry = self.clock()
        self._spawn()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking frames; a lossless sink first writes what is queued (up to ``timeout``)."""
        self._stop.set()
        try:
            self.fanout.remove_consumer(self.name)
        except Exception:  # noqa: BLE001
            log.debug("removing consumer %r failed", self.name, exc_info=True)
        t = self._thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                log.warning("output %r did not stop within %.0f s; abandoning its thread", self.name, timeout)
                with self._lock:
                    self._gen += 1
        if self.state != "failed":
            self.state = "closed"
        self.next_retry = None

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    # -- watchdog ----------------------------------------------------------------------------
    def check_hung(self) -> bool:
        """If the current open/send/close has run past its timeout, abandon its thread.

        Returns True when a hang was handled. Called from the watchdog thread.
        """
        with self._lock:
            call = self._call
            if call is None or self._stop.is_set():
                return False
            now = self.clock()
            if now - call.started < call.timeout:
                return False
            stale = self._thread
            self._gen += 1
            self._call = None
            self.stats.hangs += 1
            msg = f"{call.op}() did not return within {call.timeout:g} s; abandoning its thread"
            self.stats.last_error = msg
            if stale is not None:
                self._abandoned.append(stale)
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            if len(self._abandoned) >= self.max_abandoned:
                self.state = "failed"
                self.next_retry = None
                self._errors.error(msg, f"; {len(self._abandoned)} stuck threads — giving up on this output")
                return True
            delay = self.backoff.next_delay()
            self.state, self.next_retry = "retrying", now + delay
            self._open_since = None
            self._errors.error(msg, f"; retrying in {delay:g} s")
            self._spawn_locked(close_first=True)
        return True

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, close_first: bool = False) -> None:
        with self._lock:
            self._spawn_locked(close_first)

    def _spawn_locked(self, close_first: bool) -> None:
        gen = self._gen
        t = threading.Thread(target=self._run, args=(gen, close_first), name=f"oscgan-sink-{self.name}",
                             daemon=True)
        self._thread = t
        t.start()

    def _current(self, gen: int) -> bool:
        return gen == self._gen

    def _blocking(self, gen: int, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        timeout = {"open": self.sink.open_timeout, "send": self.sink.send_timeout,
                   "close": self.sink.close_timeout}[op]
        with self._lock:
            if not self._current(gen):
                raise _Superseded
            self._call = _Call(op, self.clock(), timeout)
        try:
            return fn(*args)
        finally:
            with self._lock:
                if self._current(gen):
                    self._call = None
                superseded = not self._current(gen)
            if superseded:
                raise _Superseded

    def _run(self, gen: int, close_first: bool) -> None:
        try:
            if close_first:
                self._safe_close(gen)
            while not self._stop.is_set() and self._current(gen):
                if self.state == "failed":
                    return
                if not self._wait_retry(gen):
                    break
                if self._open(gen):
                    self._pump(gen)
            if self._current(gen):
                self._drain(gen)
                self._safe_close(gen)
        except _Superseded:
            log.debug("output %r: stale worker thread exits", self.name)

    def _wait_retry(self, gen: int) -> bool:
        """Sleep until ``next_retry`` (polling so a fake clock and stop() are noticed)."""
        while not self._stop.is_set() and self._current(gen):
            nr = self.next_retry
            if nr is None:
                return False
            remaining = nr - self.clock()
            if remaining <= 0:
                return True
            self._stop.wait(min(self.poll, remaining))
        return False

    def _attempt(self, gen: int, what: str, fn: Callable[..., object], *args: object) -> bool:
        """Run a sink call on the watchdog; False (after giving up or scheduling a retry) on failure."""
        try:
            self._blocking(gen, what, fn, *args)
        except _Superseded:
            raise
        except SinkUnavailable as e:
            self._give_up(f"unavailable: {e}")
            return False
        except Exception as e:  # noqa: BLE001
            self._failed(gen, what, e)
            return False
        return True

    def _open(self, gen: int) -> bool:
        self.state = "opening"
        if not self._attempt(gen, "open", self.sink.open):
            return False
        self.stats.opens += 1
        self.state, self.next_retry = "open", None
        self._open_since = self.clock()
        if self.stats.opens > 1:
            log.info("output %r reopened", self.name)
        return True

    def _pump(self, gen: int) -> None:
        """Take frames and send them until stop, failure or supersession."""
        while not self._stop.is_set() and self._current(gen):
            frame = self.mailbox.take(timeout=0.1)
            if frame is None:
                continue
            if not self._deliver(gen, frame):
                return

    def _deliver(self, gen: int, frame: Frame) -> bool:
        t0 = time.perf_counter()
        try:
            out = self.convert(frame)
        except Exception as e:  # noqa: BLE001 - a bad size/format is a sink bug; treat as failure
            self._failed(gen, "convert", e)
            return False
        t1 = time.perf_counter()
        if not self._attempt(gen, "send", self.sink.send, out):
            return False
        t2 = time.perf_counter()
        st = self.stats
        st.frames_sent += 1
        st.last_frame_index = frame.index
        st.convert_ms = _smooth(st.convert_ms, (t1 - t0) * 1000, st.frames_sent)
        st.send_ms = _smooth(st.send_ms, (t2 - t1) * 1000, st.frames_sent)
        if self.backoff.failures and self._open_since is not None \
                and self.clock() - self._open_since >= self.stable_after:
            self.backoff.reset()
        return True

    def _drain(self, gen: int) -> None:
        """On stop: a lossless sink still writes every queued frame (so the file is complete)."""
        if not isinstance(self.mailbox, FrameQueue) or self.state != "open":
            return
        while self._current(gen):
            frame = self.mailbox.take(timeout=0)
            if frame is None or not self._deliver(gen, frame):
                return

    def _failed(self, gen: int, op: str, e: BaseException) -> None:
        msg = f"{op}() failed: {type(e).__name__}: {e}"
        self.stats.errors += 1
        self.stats.last_error = msg
        self._safe_close(gen)
        if self._stop.is_set():
            self.state, self.next_retry = "retrying", None  # stopping: no retry, no drain
            return
        delay = self.backoff.next_delay()
        self.state, self.next_retry = "retrying", self.clock() + delay
        self._open_since = None
        self._errors.error(msg, f"; retrying in {delay:g} s", exc_info=e)

    def _give_up(self, why: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = why
        self.state, self.next_retry = "failed", None
        log.error("output %r: %s — not retrying", self.name, why)
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001
            log.debug("close after give-up failed", exc_info=True)

    def _safe_close(self, gen: int) -> None:
        try:
            self._blocking(gen, "close", self.sink.close)
        except _Superseded:
            raise
        except Exception as e:  # noqa: BLE001
            log.warning("output %r: close() failed: %s: %s", self.name, type(e).__name__, e)

    def _on_overflow(self, frame: Frame) -> None:
        # Called on the render thread: only count and (rarely) log, never block.
        now = self.clock()
        if now - self._overflow_logged_at >= 5.0:
            self._overflow_logged_at = now
            log.error("output %r cannot keep up: its %d-frame queue is full, DROPPING frames "
                      "(%d so far; frame %d). Use a faster preset, a smaller size or a lower fps.",
                      self.name, getattr(self.mailbox, "maxsize", 0), self.mailbox.dropped, frame.index)

    # -- status ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        st = self.stats
        nr = self.next_retry
        with self._lock:
            abandoned = sum(t.is_alive() for t in self._abandoned)
        out: dict[str, Any] = {
            "type": type(self.sink).__name__,
            "state": self.state,
            "frames_sent": st.frames_sent,
            "dropped": self.mailbox.dropped,
            "errors": st.errors,
            "hangs": st.hangs,
            "last_error": st.last_error,
            "next_retry_s": None if nr is None or self.state != "retrying" else round(max(0.0, nr - self.clock()), 2),
            "send_ms": round(st.send_ms, 2),
            "convert_ms": round(st.convert_ms, 2),
            "size": list(self.sink.size) if self.sink.size else None,
            "pixel_format": self.sink.pixel_format,
            "stuck_threads": abandoned,
        }
        if isinstance(self.mailbox, FrameQueue):
            out["queued"] = len(self.mailbox)
            out["queue_size"] = self.mailbox.maxsize
        try:
            out.update(self.sink.describe())
        except Exception:  # noqa: BLE001
            log.debug("describe() of %r failed", self.name, exc_info=True)
        return out


class _Superseded(Exception):
    """Raised inside a stale worker thread: a watchdog replaced it; exit without touching the sink."""


def _smooth(avg: float, value: float, n: int) -> float:
    return value if n <= 1 else 0.9 * avg + 0.1 * value


# -- the manager -------------------------------------------------------------------------------

class SinkManager:
    """Starts, watches and stops every sink worker; ``status()`` feeds /health ``sinks``.

    Args:
        fanout: the render loop's :class:`~oscgan.sinks.fanout.FrameFanout`.
        fps: the daemon's frame rate, to size lossless queues (``queue_seconds`` of frames).
        clock: monotonic seconds for back-off and hang detection (tests pass a fake one).
        watchdog_interval: real seconds between hang checks.
    """

    def __init__(self, fanout: Any, *, fps: float = 30.0, queue_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, watchdog_interval: float = 0.1,
                 **worker_kwargs: Any) -> None:
        self.fanout, self.fps, self.queue_seconds, self.clock = fanout, fps, queue_seconds, clock
        self.watchdog_interval = watchdog_interval
        self._worker_kwargs = worker_kwargs
        self.workers: dict[str, SinkWorker] = {}
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def add(self, sink: FrameSink) -> SinkWorker:
        """Register a sink (before or after ``start``); names must be unique."""
        if sink.name in self.workers:
            raise ValueError(f"two outputs are named {sink.name!r}; give each a distinct name")
        seconds = sink.queue_seconds or self.queue_seconds
        queue_frames = max(2, math.ceil(seconds * self.fps))
        w = SinkWorker(sink, self.fanout, queue_frames=queue_frames, clock=self.clock, **self._worker_kwargs)
        self.workers[sink.name] = w
        if self._watchdog is not None:
            w.start()
        return w

    def start(self) -> None:
        for w in self.workers.values():
            w.start()
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="oscgan-sink-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker (lossless ones flush their queue first), then the watchdog."""
        deadline = time.monotonic() + timeout
        # Signal all first so they wind down in parallel, then wait for each.
        for w in self.workers.values():
            w._stop.set()
        for w in self.workers.values():
            w.stop(timeout=max(0.1, deadline - time.monotonic()))
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(2)
            self._watchdog = None

    def _watch(self) -> None:
        while not self._stop.wait(self.watchdog_interval):
            for w in list(self.workers.values()):
                try:
                    w.check_hung()
                except Exception:  # noqa: BLE001
                    log.exception("sink watchdog check of %r failed", w.name)

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: w.status() for name, w in self.workers.items()}

    def __len__(self) -> int:
        return len(self.workers)
