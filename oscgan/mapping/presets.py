"""Presets: named parameter snapshots in a YAML file, and fades between them run in the render thread."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oscgan.config import ConfigError, load_yaml
from oscgan.mapping.roundtrip import write_atomic, yaml_rt
from oscgan.state.params import ParamRegistry, ParamSnapshot, ParamSpec, ParamValueError, UnknownParameter

log = logging.getLogger(__name__)

PRESETS_FILE = "presets.yaml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")
SKIPPED_GROUPS = ("output",)  # frame rate and pause are set-up, not looks

_HEADER = """\
# oscgan presets: named parameter snapshots.
# Save the current look:   /oscgan/preset/save NAME
# Recall it:               /oscgan/preset/load NAME [fade seconds]
# Edit values by hand if you like; comments are kept when oscgan saves.
"""


class PresetError(ValueError):
    """A preset name, file or value problem (the message says which)."""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PresetError(f"preset name {name!r}: use 1-64 letters, digits, space, '_', '-' or '.', "
                          "starting with a letter or digit")
    return name


def snapshot_values(registry: ParamRegistry, snapshot: ParamSnapshot | None = None,
                    overrides: Mapping[str, object] | None = None) -> dict[str, object]:
    """Everything a preset stores: all parameters except set-up ones (``output.*``), YAML-ready."""
    snap = snapshot if snapshot is not None else registry.snapshot()
    out: dict[str, object] = {}
    for spec in registry.specs():
        if spec.group in SKIPPED_GROUPS:
            continue
        value = overrides[spec.path] if overrides and spec.path in overrides else snap[spec.path]
        out[spec.path] = list(value) if isinstance(value, tuple) else value
    return out


class PresetStore:
    """``presets.yaml``: read with the safe loader, written with ruamel.yaml so hand-written comments survive.

    Presets are kept in memory (the render thread recalls them without touching the disk);
    ``reload_if_changed`` picks up hand edits, ``save`` writes atomically.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._presets: dict[str, dict[str, Any]] = {}
        self._stat: tuple[int, int, int] | None = None
        self.reload_if_changed()

    def _file_stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload_if_changed(self) -> bool:
        """Re-read the file when it changed on disk; True when it did. Errors are logged, old presets kept."""
        stat = self._file_stat()
        if stat == self._stat:
            return False
        self._stat = stat
        if stat is None:
            with self._lock:
                self._presets = {}
            return True
        try:
            data, _ = load_yaml(self.path)
        except ConfigError as e:
            log.error("presets not reloaded: %s", e)
            return False
        presets = (data or {}).get("presets") if isinstance(data, dict) else None
        if presets is None:
            presets = {}
        if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
            log.error("%s: 'presets:' must map names to {parameter: value} tables; file ignored", self.path)
            return False
        with self._lock:
            self._presets = {str(k): dict(v) for k, v in presets.items()}
        log.info("presets: %d in %s", len(presets), self.path)
        return True

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._presets)

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            preset = self._presets.get(name)
        if preset is None:
            import difflib

            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (f"; saved ones: {', '.join(self.names())}"
                                                                  if self._presets else "; none saved yet")
            raise PresetError(f"no preset {name!r} in {self.path}{hint}")
        return dict(preset)

    def save(self, name: str, values: Mapping[str, object]) -> None:
        """Add or replace a preset in the file, keeping everything else in it (comments included)."""
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        check_name(name)
        yaml = yaml_rt()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc: Any = None
        if self.path.exists():
            doc = yaml.load(self.path.read_text(encoding="utf-8"))
        if doc is None:
            doc = yaml.load(_HEADER + "presets: {}\n")
        if not isinstance(doc, dict):
            raise PresetError(f"{self.path} is not a presets file (expected 'presets:' at the top)")
        presets = doc.get("presets")
        if not isinstance(presets, dict):
            presets = CommentedMap()
            doc["presets"] = presets
        if hasattr(presets, "fa"):
            presets.fa.set_block_style()
        entry = CommentedMap()
        for path, value in values.items():
            if isinstance(value, list):
                seq = CommentedSeq(_plain(v) for v in value)
                seq.fa.set_flow_style()
                entry[path] = seq
            else:
                entry[path] = _plain(value)
        presets[name] = entry
        write_atomic(self.path, yaml, doc)
        with self._lock:
            self._presets[name] = {k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}
        self._stat = self._file_stat()
        log.info("preset %r saved to %s", name, self.path)


def _plain(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float):
        return float(f"{value:.7g}")  # enough for every parameter, and a readable file
    return value


def resolve_values(registry: ParamRegistry, values: Mapping[str, Any], where: str) -> dict[str, object]:
    """Preset values checked against the registry; unknown or bad entries are logged and left out.

    Vectors of another length (a preset saved with another model) are cut or taken as a prefix.
    """
    out: dict[str, object] = {}
    for path, value in values.items():
        try:
            spec = registry.spec(str(path))
            if spec.path != path:
                raise UnknownParameter(f"{path!r} is an element; presets store whole parameters")
            if spec.is_vector:
                if not isinstance(value, list):
                    raise ParamValueError(f"{path} expects a list")
                if len(value) > spec.length:
                    log.warning("%s: %s has %d values, this model uses %d; the rest are ignored",
                                where, path, len(value), spec.length)
                    value = value[: spec.length]
                value = tuple(value)
            registry.coerce(path, value)
        except (UnknownParameter, ParamValueError) as e:
            log.warning("%s: %s skipped: %s", where, path, e)
            continue
        out[spec.path] = value
    return out


@dataclass
class _Lane:
    spec: ParamSpec
    start: np.ndarray
    end: np.ndarray


class PresetFade:
    """Moves parameters from where they are to a preset's values over ``duration`` seconds.

    Floats (and float vectors) are interpolated with a smoothstep ease; ints, bools and enums
    (seeds, modes) switch at the start. ``step(dt)`` returns the registry items of one frame.
    """

    def __init__(self, name: str, registry: ParamRegistry, values: Mapping[str, object], duration: float,
                 current: Mapping[str, object] | None = None) -> None:
        self.name = name
        self.duration = max(0.0, float(duration))
        self.elapsed = 0.0
        self.immediate: list[tuple[str, object]] = []
        self.lanes: list[_Lane] = []
        snap = registry.snapshot()
        for path, value in values.items():
            spec = registry.spec(path)
            floaty = spec.kind == "float" or (spec.is_vector and spec.element_kind == "float")
            if not floaty or self.duration == 0:
                self.immediate.append((path, value))
                continue
            now = current[path] if current is not None and path in current else snap[path]
            start = np.asarray(now, dtype=np.float64).reshape(-1)
            end = np.asarray(value, dtype=np.float64).reshape(-1)
            if spec.is_vector and end.size < start.size:
                end = np.concatenate([end, start[end.size:]])  # a prefix: the rest stay
            self.lanes.append(_Lane(spec, start, end))

    @property
    def done(self) -> bool:
        return not self.immediate and (not self.lanes or self.elapsed >= self.duration)

    def step(self, dt: float) -> list[tuple[str, object]]:
        items, self.immediate = self.immediate, []
        if not self.lanes:
            return items
        self.elapsed += max(0.0, dt)
        t = 1.0 if self.duration == 0 else min(1.0, self.elapsed / self.duration)
        w = t * t * (3.0 - 2.0 * t)
        for lane in self.lanes:
            v = lane.start + (lane.end - lane.start) * w
            items.append((lane.spec.path, tuple(v.tolist()) if lane.spec.is_vector else float(v[0])))
        if t >= 1.0:
            self.lanes = []
        return items


def fade_seconds(value: object) -> float:
    """A fade time from OSC (number of seconds, >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PresetError(f"fade time must be a number of seconds >= 0, got {value!r}")
    return float(value)
