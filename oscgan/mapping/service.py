"""The mapping service: loads and hot-reloads mapping files, runs the engine per frame, presets and learn.

Threads: the render thread calls ``pre_frame`` (engine, fades, engine swaps); the OSC thread
calls ``on_osc``; one ``oscgan-mapping-io`` thread polls the files, parses and builds new
engines (never on the render thread) and does every file write (learn, preset save).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oscgan.config import ConfigError
from oscgan.mapping.engine import FiredAction, MappingEngine
from oscgan.mapping.learn import Learner, learned_entry, write_learned
from oscgan.mapping.mapping import Mapping
from oscgan.mapping.presets import (
    PRESETS_FILE,
    PresetError,
    PresetFade,
    PresetStore,
    check_name,
    fade_seconds,
    resolve_values,
    snapshot_values,
)
from oscgan.mapping.schema import build_mappings, parse_mapping_file
from oscgan.mapping.sources import FrameClock
from oscgan.mapping.targets import TargetError, coerce_array, param_vector, registry_value, resolve_target
from oscgan.signals import names
from oscgan.state.params import OSC_PREFIX, ParamRegistry

log = logging.getLogger(__name__)

PRESET_SAVE = OSC_PREFIX + "/preset/save"
PRESET_LOAD = OSC_PREFIX + "/preset/load"
LEARN = OSC_PREFIX + "/learn"
LEARN_CANCEL = OSC_PREFIX + "/learn/cancel"
LEARN_TIMEOUT = 60.0  # seconds an armed learn waits for a control


@dataclass
class _FileState:
    path: Path
    stat: tuple[int, int, int] | None = None
    mappings: list[Mapping] | None = None  # last good parse of this file
    error: ConfigError | None = None


class MappingService:
    """Everything mappings need at run time, for the daemon (or a test) to wire in.

    Args:
        registry: the parameter registry.
        bus: the SignalBus that MIDI and analyzers write to (OSC sources are written there too).
        files: mapping files, applied together in order.
        presets_dir: folder for ``presets.yaml``; default: beside the first mapping file.
        tempo_bpm: tempo for ``rate_beats`` LFOs until MIDI clock says otherwise.
        poll_interval: seconds between checks of the mapping files for changes.
        on_error: called with the error text (or None when it is fixed) whenever that changes.
        learn_file: where learned mappings go (default: the first mapping file, else
            ``<presets dir>/learned.yaml``, else ``./learned.yaml``).
    """

    def __init__(self, registry: ParamRegistry, bus: Any, files: Sequence[str | Path] = (), *,
                 presets_dir: str | Path | None = None, tempo_bpm: float = 120.0, poll_interval: float = 0.25,
                 on_error: Callable[[str | None], None] | None = None, learn_file: str | Path | None = None,
                 rng_seed: int | None = None) -> None:
        self.registry = registry
        self.bus = bus
        self.files = [_FileState(Path(f)) for f in files]
        self.tempo_bpm = float(tempo_bpm)
        self.poll_interval = poll_interval
        self.on_error = on_error
        self._rng_seed = rng_seed
        first_dir = Path(files[0]).resolve().parent if files else None
        pdir = Path(presets_dir) if presets_dir is not None else first_dir
        self.presets: PresetStore | None = PresetStore(pdir / PRESETS_FILE) if pdir is not None else None
        if learn_file is not None:
            self.learn_file = Path(learn_file)
        elif files:
            self.learn_file = Path(files[0])
        else:
            self.learn_file = (Path(presets_dir) if presets_dir is not None else Path.cwd()) / "learned.yaml"
        self.engine = MappingEngine([], registry)
        self.engine.attach(None)
        self._pending: MappingEngine | None = None
        self._pending_lock = threading.Lock()
        self._osc_addresses: frozenset[str] = frozenset()
        self.error: str | None = None
        self.learner = Learner()
        self.last_learned: str | None = None
        self.reloads = 0
        # Render-thread state.
        self._seq = bus.seq
        self._t0: float | None = None
        self._beats = 0.0
        self._fade: PresetFade | None = None
        self._fade_requests: collections.deque[PresetFade] = collections.deque()
        self._lost_warned = -1e9
        self._step_failed = -1e9
        # Base tracking: every change not made by the mappings, queued for the render thread.
        self._base_q: collections.deque[tuple[str, np.ndarray | None, np.ndarray]] = collections.deque()
        self._seen: dict[str, object] = {}
        self._unsubscribe: Callable[[], None] | None = None
        # I/O thread.
        self._io: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> MappingService:
        """Load the files (a bad file raises ConfigError here: fix it before the show) and start watching."""
        self._unsubscribe = self.registry.subscribe(self._on_param_change)
        self._seen = dict(self.registry.snapshot())
        try:
            engine = self._build(initial=True)
        except BaseException:
            self.stop()
            raise
        if engine is not None:
            engine.attach(self.engine)
            self.engine = engine
            self._osc_addresses = engine.osc_addresses
        self._thread = threading.Thread(target=self._io_run, name="oscgan-mapping-io", daemon=True)
        self._thread.start()
        if self.files:
            log.info("mappings: %d from %s (hot reload on save)", len(self.engine),
                     ", ".join(str(f.path) for f in self.files))
        return self

    def stop(self) -> None:
        self._stop.set()
        self._io.put(lambda: None)  # wake the I/O thread from its wait
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- loading (I/O thread) -------------------------------------------------------------------
    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _build(self, initial: bool = False) -> MappingEngine | None:
        """Parse changed files and build a new engine; None (error reported) if any file is bad."""
        for fs in self.files:
            stat = self._stat(fs.path)
            if fs.mappings is not None and stat == fs.stat:
                continue
            fs.stat = stat
            try:
                if stat is None:
                    raise ConfigError(fs.path, None, "file not found (the previous mappings keep running)"
                                      if not initial else "file not found")
                cfg, node = parse_mapping_file(fs.path)
                fs.mappings = build_mappings(fs.path, cfg, node, self.registry)
                fs.error = None
            except ConfigError as e:
                fs.error = e
            except Exception as e:  # noqa: BLE001 - a bug must not kill the watcher
                log.exception("loading %s failed", fs.path)
                fs.error = ConfigError(fs.path, None, f"internal error: {e}")
        bad = [fs.error for fs in self.files if fs.error is not None]
        if bad:
            if initial:
                raise bad[0]
            self._set_error(str(bad[0]))
            return None
        mappings = [m for fs in self.files for m in (fs.mappings or [])]
        # Sources are stateful: a fresh build needs fresh source objects even for unchanged files.
        fresh = [Mapping(m.config, type(m.source)(m.source.config), m.target, m.width, m.where, m.key)
                 for m in mappings]
        return MappingEngine(fresh, self.registry, rng_seed=self._rng_seed)

    def reload(self) -> bool:
        """Check the files now (normally done by the watcher); True when a new engine is queued."""
        changed = any(self._stat(fs.path) != fs.stat for fs in self.files)
        if not changed:
            return False
        time.sleep(0.02)  # an editor may still be writing: settle before parsing
        engine = self._build()
        if engine is None:
            return False
        with self._pending_lock:
            self._pending = engine
            self._osc_addresses = self._osc_addresses | engine.osc_addresses
        self.reloads += 1
        self._set_error(None)
        log.info("mappings reloaded: %d mappings from %d file(s); applied at the next frame",
                 len(engine), len(self.files))
        return True

    def _set_error(self, error: str | None) -> None:
        if error == self.error:
            return
        self.error = error
        if error:
            log.error("mapping error (the previous mappings keep running): %s", error)
        else:
            log.info("mapping error cleared")
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # noqa: BLE001
                log.exception("mapping error callback failed")

    def _io_run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            timeout = max(0.0, next_poll - time.monotonic())
            try:
                task = self._io.get(timeout=timeout)
            except queue.Empty:
                task = None
            if task is not None:
                try:
                    task()
                except Exception:  # noqa: BLE001
                    log.exception("mapping I/O task failed")
                continue
            next_poll = time.monotonic() + self.poll_interval
            try:
                self.reload()
                if self.presets is not None:
                    self.presets.reload_if_changed()
            except Exception:  # noqa: BLE001
                log.exception("mapping reload failed")

    # -- render thread --------------------------------------------------------------------------
    def pre_frame(self, now: float, dt: float) -> None:
        """The RenderLoop hook: swap in a reloaded engine, run fades and mappings, write once."""
        if self._t0 is None:
            self._t0 = now
        with self._pending_lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                self._osc_addresses = pending.osc_addresses
        if pending is not None:
            pending.attach(self.engine)
            self.engine = pending
        changes = self.bus.changes_since(self._seq)
        self._seq = changes.seq
        signals = changes.signals
        if not changes.complete and now - self._lost_warned > 5.0:
            self._lost_warned = now
            log.warning("mapping inputs arrive faster than the signal log holds between two frames; "
                        "some intermediate events were skipped")
        bpm = names.tempo_from(self.bus, self.tempo_bpm)
        for s in signals:
            if s.name == names.MIDI_TRANSPORT and s.value == "start":
                self._beats = 0.0
        self._beats += dt * bpm / 60.0
        clock = FrameClock(now - self._t0, dt, self._beats, bpm)
        self._run_fade(dt)
        engine = self.engine
        while self._base_q:
            path, idx, values = self._base_q.popleft()
            engine.apply_base(path, idx, values)
        try:
            items, fired = engine.step(signals, clock)
        except Exception:  # noqa: BLE001 - a bug in one mapping must not stop the show or flood the log
            if now - self._step_failed > 10.0:
                self._step_failed = now
                log.exception("mapping engine step failed (this is a bug; mappings are paused for this frame)")
            return
        if self.learner.armed:
            self._learn_step(signals)
        for action in fired:
            self._fire_preset(action)
        if items:
            try:
                self.registry.set_many(items, source="mapping")
            except Exception:  # noqa: BLE001 - never stop the frame for a mapping write
                log.exception("mapping write failed")

    def _run_fade(self, dt: float) -> None:
        while self._fade_requests:
            self._fade = self._fade_requests.popleft()
            dt = 0.0  # a fade starts from where things are now
        fade = self._fade
        if fade is None:
            return
        items = fade.step(dt)
        if fade.done:
            self._fade = None
            log.info("preset %r reached", fade.name)
        if items:
            try:
                self.registry.set_many(items, source="preset")
            except Exception:  # noqa: BLE001
                log.exception("preset fade write failed")

    def _on_param_change(self, path: str, value: object, source: str) -> None:
        # Runs on the thread that changed the parameter; keep it short.
        prev = self._seen.get(path)
        self._seen[path] = value
        if source == "mapping":
            return
        spec = self.registry.spec(path)
        if spec.is_vector and isinstance(prev, tuple) and isinstance(value, tuple) and len(prev) == len(value):
            changed = [i for i, (a, b) in enumerate(zip(value, prev)) if a != b]
            if not changed:
                return
            if len(changed) < len(value):
                idx = np.asarray(changed, dtype=np.intp)
                self._base_q.append((path, idx, np.asarray([value[i] for i in changed], dtype=np.float64)))
                return
        self._base_q.append((path, None, param_vector(spec, value)))

    # -- presets --------------------------------------------------------------------------------
    def _store(self) -> PresetStore:
        if self.presets is None:
            raise PresetError("no presets file: start oscgan serve with --presets DIR or --mapping FILE")
        return self.presets

    def save_preset(self, name: str) -> None:
        """Snapshot the parameters (their hand-set values where mappings modulate them) and save."""
        check_name(name)
        store = self._store()
        engine = self.engine
        overrides: dict[str, object] = {}
        for path, slot in engine.slots.items():
            if slot.modulated:
                overrides[path] = registry_value(slot.spec, coerce_array(slot.spec, engine.base[slot.sl].copy()))
        values = snapshot_values(self.registry, overrides=overrides)
        store.save(name, values)

    def load_preset(self, name: str, fade: float = 0.0) -> None:
        """Recall a preset over ``fade`` seconds; the render thread applies it from the next frame."""
        store = self._store()
        values = resolve_values(self.registry, store.get(name), f"preset {name!r}")
        current: dict[str, object] = {}
        for path, slot in self.engine.slots.items():
            if slot.modulated and path in values:
                current[path] = self.engine.base[slot.sl].copy()
        self._fade_requests.append(PresetFade(name, self.registry, values, fade, current))
        log.info("preset %r: %d parameters over %.2f s", name, len(values), fade)

    def _fire_preset(self, action: FiredAction) -> None:
        p = action.params
        try:
            self.load_preset(str(p.preset), p.fade)
        except PresetError as e:
            log.warning("%s: %s", action.mapping.where, e)

    # -- learn ----------------------------------------------------------------------------------
    def arm_learn(self, target: str) -> dict[str, Any]:
        """Arm learn for ``target`` (validated now); the next moving control is bound to it."""
        try:
            resolved = resolve_target(target, self.registry)
        except TargetError as e:
            raise ValueError(str(e)) from None
        self.learner.arm(resolved.text)
        log.info("learn armed for %s: move a control (MIDI CC, note, pitch bend, NRPN or an OSC address)",
                 resolved.text)
        return {"armed": resolved.text, "file": str(self.learn_file)}

    def cancel_learn(self) -> None:
        self.learner.cancel()

    def _learn_step(self, signals: Sequence[Any]) -> None:
        learner = self.learner
        if time.monotonic() - learner.armed_at > LEARN_TIMEOUT:
            log.info("learn for %s timed out after %.0f s without a moving control", learner.target, LEARN_TIMEOUT)
            learner.cancel()
            return
        binding = learner.observe(signals)
        if binding is None:
            return
        target_text = learner.target
        learner.cancel()
        try:
            target = resolve_target(str(target_text), self.registry)
            entry = learned_entry(binding, target)
        except Exception as e:  # noqa: BLE001
            log.error("learn: cannot bind %s to %s: %s", binding.describe(), target_text, e)
            return
        self.last_learned = f"{binding.describe()} -> {target.text}"
        log.info("learned %s; writing %s", self.last_learned, self.learn_file)
        self._io.put(lambda: self._write_learned(entry))

    def _write_learned(self, entry: dict[str, Any]) -> None:
        schema = Path(__file__).resolve().parents[2] / "mappings" / "schema.json"
        write_learned(self.learn_file, entry, schema_ref=str(schema) if schema.exists() else "schema.json")
        if not any(fs.path.resolve() == self.learn_file.resolve() for fs in self.files):
            self.files.append(_FileState(self.learn_file))
        self.reload()

    # -- OSC ------------------------------------------------------------------------------------
    def on_osc(self, msg: Any) -> bool:
        """OscServer's on_unhandled hook: preset and learn commands, and OSC mapping sources."""
        address: str = msg.address
        if address.startswith(OSC_PREFIX + "/"):
            return self._osc_command(address, tuple(msg.args))
        if address in self._osc_addresses or self.learner.armed:
            self.bus.write(names.OSC_PREFIX + address[1:], tuple(msg.args))
            return True
        return False

    def _osc_command(self, address: str, args: tuple) -> bool:
        try:
            if address == PRESET_SAVE:
                name = check_name(args[0] if args else None)
                self._io.put(lambda: self._save_logged(name))
            elif address == PRESET_LOAD:
                name = check_name(args[0] if args else None)
                fade = fade_seconds(args[1]) if len(args) > 1 else 0.0
                self.load_preset(name, fade)
            elif address == LEARN:
                if not args or not isinstance(args[0], str):
                    raise ValueError("/oscgan/learn takes the target path, e.g. /oscgan/learn truncation.psi")
                self.arm_learn(args[0])
            elif address == LEARN_CANCEL:
                self.cancel_learn()
            else:
                return False
        except (PresetError, ValueError) as e:
            log.warning("OSC %s %s: %s", address, args, e)
        return True

    def _save_logged(self, name: str) -> None:
        try:
            self.save_preset(name)
        except (PresetError, OSError, ValueError) as e:
            log.error("saving preset %r failed: %s", name, e)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "files": [str(f.path) for f in self.files],
            "count": len(self.engine),
            "reloads": self.reloads,
            "error": self.error,
            "learn": self.learner.target,
            "last_learned": self.last_learned,
            "presets": self.presets.names() if self.presets is not None else None,
        }
