"""Control-stream recording (``--record-control session.jsonl``) and reading it back for replay.

The file is JSON Lines, one object per line, in the order things happened:

``{"type": "header", "format": "oscgan-session", "version": 1, ...}``
    first line: oscgan version, model (name, architecture, resolution, num_ws, z_dim), fps,
    output size and fit, device, the noise seed base, and ``params``: every parameter value
    when recording started.
``{"type": "set", "t": 1.234, "path": "truncation.psi", "value": 0.5, "source": "osc"}``
    every parameter change with its source (osc, midi, mapping, web, ...), ``t`` in seconds
    on the render loop's clock since recording started. When only a few elements of a vector
    changed (one z dimension from a fader), the line carries ``"elements": {"5": 0.3}``
    (index -> new value, applied to the previous value) instead of ``"value"``, so moving one
    of 512 z dimensions does not write 512 numbers.
``{"type": "frame", "i": 42, "t": 1.4, "v": 17, "phase": 0.0, "changes": {...}}``
    every published frame: index, loop time, parameter version, the travel phase the loop had
    accumulated, and ``changes`` = the parameter values that differ from the previous frame
    line (from the header for the first); vectors with few changed elements go under
    ``"elements": {path: {index: value}}`` instead. ``"error": true`` marks frames that repeated
    the last good picture because rendering failed.

Why both: ``set`` lines are the performance as it came in (with timestamps, for re-timing at
another fps), ``frame`` lines are exactly what each frame saw. Changes arrive on other
threads, so a ``set`` can be logged just before or after the frame that first used it; the
per-frame ``changes`` come from the frame's own snapshot and make a same-fps replay
frame-exact regardless of that race.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oscgan.render.loop import FrameTick, RenderLoop
    from oscgan.state.params import ModelInfo, ParamRegistry

log = logging.getLogger(__name__)

SESSION_FORMAT = "oscgan-session"
SESSION_VERSION = 1


class SessionError(ValueError):
    """A session file that cannot be read, as ``file:line: what is wrong``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _from_json(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _element_diff(old: Any, new: Any) -> dict[str, Any] | None:
    """{index: value} when ``new`` is ``old`` with at most a quarter of its elements changed."""
    if not (isinstance(old, tuple) and isinstance(new, tuple)) or len(old) != len(new) or len(new) < 8:
        return None
    changed = {str(i): b for i, (a, b) in enumerate(zip(old, new)) if a != b}
    return changed if len(changed) * 4 <= len(new) else None


def _apply_elements(value: tuple[Any, ...], elements: Mapping[str, Any]) -> tuple[Any, ...]:
    v = list(value)
    for i, x in elements.items():
        v[int(i)] = x
    return tuple(v)


# -- writing -----------------------------------------------------------------------------------

class ControlRecorder:
    """Writes a session file while the daemon runs.

    ``attach(loop)`` writes the header and starts listening: a registry subscription for ``set``
    lines and a post-frame hook for ``frame`` lines. Both only enqueue small tuples; a writer
    thread encodes and writes, so neither the render thread nor the OSC thread waits on disk.
    ``close()`` detaches, writes what is queued and closes the file.

    Args:
        path: the .jsonl file (created or overwritten).
        registry: the live parameter registry.
        header: extra header fields (model, fps, size, fit, device, noise_seed, ...).
    """

    def __init__(self, path: str | Path, registry: ParamRegistry, header: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.registry = registry
        self.header_extra = dict(header or {})
        self.events = 0
        self.frames = 0
        self._clock: Callable[[], float] = time.perf_counter
        self._t0 = 0.0
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._loop: RenderLoop | None = None
        self._prev: dict[str, Any] = {}
        self._prev_version = -1
        # Writer-thread mirrors of what the reader will have reconstructed, for element diffs.
        self._set_mirror: dict[str, Any] = {}
        self._frame_mirror: dict[str, Any] = {}
        self._file: Any = None
        self.error: str | None = None

    def attach(self, loop: RenderLoop) -> None:
        """Write the header and start recording ``loop``'s frames and the registry's changes."""
        if self._thread is not None:
            raise RuntimeError("control recorder already attached")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        self._clock = loop.clock
        self._t0 = self._clock()
        # Subscribe before the snapshot: a change racing the header is then logged (harmless to
        # apply twice) rather than lost.
        self._unsubscribe = self.registry.subscribe(self._on_set)
        snap = self.registry.snapshot()
        self._prev, self._prev_version = dict(snap), snap.version
        self._set_mirror, self._frame_mirror = dict(snap), dict(snap)
        from oscgan import __version__

        header = {"type": "header", "format": SESSION_FORMAT, "version": SESSION_VERSION,
                  "oscgan": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  **self.header_extra,
                  "params_version": snap.version,
                  "params": {p: _jsonable(v) for p, v in snap.items()}}
        self._file.write(json.dumps(header, allow_nan=False) + "\n")
        self._file.flush()
        self._loop = loop
        loop.post_frame.append(self._on_frame)
        self._thread = threading.Thread(target=self._write_run, name="oscgan-control-record", daemon=True)
        self._thread.start()
        log.info("recording the control stream to %s", self.path)

    def _on_set(self, path: str, value: Any, source: str) -> None:
        self._queue.put(("set", self._clock() - self._t0, path, value, source))

    def _on_frame(self, tick: FrameTick) -> None:
        snap = tick.snapshot
        changes: dict[str, Any] = {}
        if snap.version != self._prev_version:
            prev = self._prev
            changes = {p: v for p, v in snap.items() if prev.get(p) != v}
            self._prev, self._prev_version = dict(snap), snap.version
        f = tick.frame
        self._queue.put(("frame", f.index, tick.now - self._t0, snap.version, tick.travel_phase, changes, f.error))

    def _write_run(self) -> None:
        f = self._file
        pending = 0
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if pending:
                    f.flush()
                    pending = 0
                continue
            if item is None:
                break
            try:
                f.write(self._encode(item))
            except Exception as e:  # noqa: BLE001 - keep recording the rest
                if self.error is None:
                    log.exception("control recording to %s: cannot write a line", self.path)
                self.error = f"{type(e).__name__}: {e}"
                continue
            pending += 1
            if pending >= 256:
                f.flush()
                pending = 0
        f.flush()

    def _encode(self, item: tuple[Any, ...]) -> str:
        if item[0] == "set":
            _, t, path, value, source = item
            self.events += 1
            rec: dict[str, Any] = {"type": "set", "t": round(t, 6), "path": path}
            elements = _element_diff(self._set_mirror.get(path), value)
            if elements is not None:
                rec["elements"] = elements
            else:
                rec["value"] = _jsonable(value)
            rec["source"] = source
            self._set_mirror[path] = value
        else:
            _, i, t, v, phase, changes, error = item
            self.frames += 1
            full: dict[str, Any] = {}
            by_element: dict[str, Any] = {}
            for p, x in changes.items():
                elements = _element_diff(self._frame_mirror.get(p), x)
                if elements is not None:
                    by_element[p] = elements
                else:
                    full[p] = _jsonable(x)
                self._frame_mirror[p] = x
            rec = {"type": "frame", "i": i, "t": round(t, 6), "v": v, "phase": phase, "changes": full}
            if by_element:
                rec["elements"] = by_element
            if error:
                rec["error"] = True
        return json.dumps(rec, allow_nan=False) + "\n"

    def close(self) -> None:
        """Stop listening, write everything queued and close the file (idempotent)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None:
            try:
                self._loop.post_frame.remove(self._on_frame)
            except ValueError:
                pass
            self._loop = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None
            log.info("control recording %s closed: %d frames, %d parameter changes",
                     self.path, self.frames, self.events)

    stop = close  # the daemon stops its parts uniformly

    def status(self) -> dict[str, Any]:
        return {"path": str(self.path), "frames": self.frames, "events": self.events, "error": self.error}


# -- reading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SetEvent:
    """One parameter change: a full ``value``, or ``elements`` {index: value} of a vector."""

    t: float
    path: str
    value: Any
    source: str
    elements: dict[str, Any] | None = None

    def apply(self, state: dict[str, Any]) -> None:
        state[self.path] = self.value if self.elements is None else _apply_elements(state[self.path], self.elements)


@dataclass(frozen=True)
class FrameRecord:
    index: int
    t: float
    version: int
    phase: float
    changes: dict[str, Any]
    error: bool = False
    elements: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, state: dict[str, Any]) -> None:
        state.update(self.changes)
        for path, elements in self.elements.items():
            state[path] = _apply_elements(state[path], elements)


@dataclass
class Session:
    """A parsed session file."""

    path: Path
    header: dict[str, Any]
    events: list[SetEvent] = field(default_factory=list)
    frames: list[FrameRecord] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return float(self.header["fps"])

    @property
    def params(self) -> dict[str, Any]:
        """Parameter values when recording started (vectors as tuples)."""
        return {p: _from_json(v) for p, v in self.header["params"].items()}

    @property
    def noise_seed(self) -> int | None:
        v = self.header.get("noise_seed")
        return None if v is None else int(v)

    @property
    def duration(self) -> float:
        return self.frames[-1].t - self.frames[0].t if self.frames else 0.0

    @classmethod
    def load(cls, path: str | Path) -> Session:
        """Read and check a session file (a truncated last line, from a crash, is skipped)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SessionError(path, None, f"cannot read: {e}") from None
        lines = text.splitlines()
        if not lines:
            raise SessionError(path, None, "empty file (expected a header line from --record-control)")
        session: Session | None = None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                if n == len(lines) and session is not None:
                    log.warning("%s:%d: incomplete last line skipped (recording was cut off)", path, n)
                    break
                raise SessionError(path, n, f"not JSON: {e.msg}") from None
            kind = rec.get("type") if isinstance(rec, dict) else None
            try:
                if session is None:
                    if kind != "header" or rec.get("format") != SESSION_FORMAT:
                        raise SessionError(path, n, "not an oscgan session file (the first line must be "
                                                    f"a {SESSION_FORMAT!r} header)")
                    if int(rec.get("version", 0)) > SESSION_VERSION:
                        raise SessionError(path, n, f"session format version {rec['version']} is newer than "
                                                    f"this oscgan reads ({SESSION_VERSION}); upgrade oscgan")
                    for key in ("fps", "params"):
                        if key not in rec:
                            raise SessionError(path, n, f"header has no {key!r}")
                    session = cls(path, rec)
                elif kind == "set":
                    elements = rec.get("elements")
                    value = _from_json(rec["value"]) if elements is None else None
                    session.events.append(SetEvent(float(rec["t"]), str(rec["path"]), value,
                                                   str(rec.get("source", "")),
                                                   None if elements is None else dict(elements)))
                elif kind == "frame":
                    changes = {p: _from_json(v) for p, v in rec.get("changes", {}).items()}
                    session.frames.append(FrameRecord(int(rec["i"]), float(rec["t"]), int(rec.get("v", -1)),
                                                      float(rec.get("phase", 0.0)), changes,
                                                      bool(rec.get("error", False)),
                                                      {p: dict(e) for p, e in rec.get("elements", {}).items()}))
                # Unknown line types are skipped: newer writers may add some.
            except (KeyError, TypeError, ValueError) as e:
                if isinstance(e, SessionError):
                    raise
                raise SessionError(path, n, f"bad {kind} line: {type(e).__name__}: {e}") from None
        assert session is not None
        return session

    # -- timelines ---------------------------------------------------------------------------
    def frame_states(self, fps: float | None = None) -> Iterator[FrameState]:
        """Parameter state for every frame to render.

        At the recorded fps (``fps`` None or equal): one state per recorded frame, with its
        recorded index and travel phase and the recorded per-frame changes — exactly what the
        live frame used. At another fps: frames at ``t = t_first + n / fps``, each with the
        ``set`` events up to ``t`` applied and the travel phase interpolated from the recording.
        """
        state = self.params
        if not self.frames:
            return
        if fps is None or math.isclose(fps, self.fps, rel_tol=1e-9):
            for rec in self.frames:
                rec.apply(state)
                yield FrameState(rec.index, rec.t, dict(state), rec.phase, rec.error)
            return
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        t_first, t_last = self.frames[0].t, self.frames[-1].t
        count = int(math.floor((t_last - t_first) * fps + 1e-6)) + 1
        # File order is delivery order (the registry delivers changes one at a time), and element
        # events are relative to the value before them: never reorder.
        events = self.events
        ts = [r.t for r in self.frames]
        phases = [r.phase for r in self.frames]
        k = 0
        for n in range(count):
            t = t_first + n / fps
            while k < len(events) and events[k].t <= t:
                events[k].apply(state)
                k += 1
            yield FrameState(n, t, dict(state), _interp(t, ts, phases), False)

    def frame_count(self, fps: float | None = None) -> int:
        if not self.frames:
            return 0
        if fps is None or math.isclose(fps, self.fps, rel_tol=1e-9):
            return len(self.frames)
        return int(math.floor(self.duration * fps + 1e-6)) + 1


@dataclass(frozen=True)
class FrameState:
    """One frame to re-render: its index (seeds the random noise), time, parameters, travel phase."""

    index: int
    t: float
    params: dict[str, Any]
    phase: float
    error: bool = False


def _interp(t: float, ts: list[float], ys: list[float]) -> float:
    """Piecewise-linear y(t) through (ts, ys), constant outside (ts sorted)."""
    import bisect

    if t <= ts[0]:
        return ys[0]
    if t >= ts[-1]:
        return ys[-1]
    j = bisect.bisect_right(ts, t)
    t0, t1, y0, y1 = ts[j - 1], ts[j], ys[j - 1], ys[j]
    return y0 if t1 == t0 else y0 + (y1 - y0) * (t - t0) / (t1 - t0)


def session_header(model: str, info: ModelInfo, fps: float, size: tuple[int, int] | None, fit: str,
                   device: str, noise_seed: int | None) -> dict[str, Any]:
    """The header fields the daemon records (besides version, time and parameters)."""
    return {"model": model, "architecture": info.architecture, "img_resolution": info.img_resolution,
            "num_ws": info.num_ws, "z_dim": info.z_dim, "w_dim": info.w_dim, "fps": fps,
            "size": list(size) if size else None, "fit": fit, "device": device, "noise_seed": noise_seed}
