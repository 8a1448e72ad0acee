"""MIDI/OSC learn: bind the next moving control to an armed target and write it into the mapping file."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oscgan.mapping.roundtrip import write_atomic, yaml_rt
from oscgan.mapping.schema import mapping_config_for
from oscgan.mapping.targets import Target
from oscgan.signals import names

log = logging.getLogger(__name__)

MOVES_NEEDED = 3  # messages from one continuous control before it counts as moving (encoders repeat values)

_NEW_FILE = """\
# yaml-language-server: $schema={schema}
# Mappings learned with /oscgan/learn TARGET (or the L buttons on the web page).
# Edit freely: comments are kept when oscgan adds more.
mappings: []
"""


@dataclass(frozen=True)
class Binding:
    """A control that moved while learn was armed: its kind and fields as in ``names.parse``."""

    kind: str
    fields: tuple[Any, ...]
    value: object

    def describe(self) -> str:
        if self.kind == "osc":
            return f"OSC {self.fields[0]}"
        label = {"midi_cc": "CC", "midi_note": "note", "midi_pitchbend": "pitch bend", "midi_nrpn": "NRPN"}
        number = f" {self.fields[1]}" if len(self.fields) > 1 else ""
        return f"MIDI ch {self.fields[0]} {label[self.kind]}{number}"


class Learner:
    """Watches bus events while armed; ``observe`` returns the first control that clearly moved.

    A note-on or an OSC message binds at once; continuous controls (CC, pitch bend, NRPN) bind
    when they change value or send ``MOVES_NEEDED`` messages (an encoder repeats its step), so a
    controller that keeps re-sending one value does not steal the binding.
    """

    def __init__(self) -> None:
        self.target: str | None = None
        self.armed_at = 0.0
        self._first: dict[str, object] = {}
        self._count: dict[str, int] = {}

    @property
    def armed(self) -> bool:
        return self.target is not None

    def arm(self, target: str, now: float | None = None) -> None:
        self.target = target
        self.armed_at = time.monotonic() if now is None else now
        self._first.clear()
        self._count.clear()

    def cancel(self) -> None:
        self.target = None

    def observe(self, events: Iterable[tuple[str, object]]) -> Binding | None:
        if self.target is None:
            return None
        for event in events:
            name, value = event[0], event[1]
            parsed = names.parse(name)
            if parsed is None:
                continue
            kind, fields = parsed
            if kind == "osc":
                args = value if isinstance(value, tuple) else (value,)
                if args and isinstance(args[0], (int, float)):
                    return Binding(kind, fields, args[0])
                continue
            if kind == "midi_note":
                if isinstance(value, (int, float)) and value > 0:
                    return Binding(kind, fields, value)
                continue
            if kind not in ("midi_cc", "midi_pitchbend", "midi_nrpn"):
                continue
            if kind == "midi_cc" and fields[1] >= 32 and fields[1] < 64 and \
                    names.midi_cc(fields[0], fields[1] - 32) in self._first:
                continue  # the LSB of a 14-bit pair already seen: bind the MSB
            first = self._first.setdefault(name, value)
            self._count[name] = self._count.get(name, 0) + 1
            if value != first or self._count[name] >= MOVES_NEEDED:
                return Binding(kind, fields, value)
        return None


def _range(target: Target) -> tuple[float, float]:
    lo, hi = target.value_range((0.0, 1.0))
    if target.kind == "int" and hi - lo > 127:
        hi = lo + 127  # seeds: one CC step = one seed
    return lo, hi


def learned_entry(binding: Binding, target: Target) -> dict[str, Any]:
    """The mapping entry (as written to YAML) that binds this control to the target."""
    lo, hi = _range(target)
    out_range = [_num(lo), _num(hi)]
    kind, f = binding.kind, binding.fields
    entry: dict[str, Any] = {"name": f"learned: {binding.describe()} -> {target.text}"}
    filters: list[dict[str, Any]] = []
    if kind == "osc":
        source: dict[str, Any] = {"type": "osc", "address": f[0]}
        if target.kind not in ("bool",):
            filters.append({"type": "remap", "in": [0, 1], "out": out_range})
    elif kind == "midi_cc":
        source = {"type": "midi_cc", "channel": f[0], "cc": f[1]}
        filters.append({"type": "remap", "in": [0, 127], "out": out_range})
    elif kind == "midi_pitchbend":
        source = {"type": "midi_pitchbend", "channel": f[0]}
        filters.append({"type": "remap", "in": [-8192, 8191], "out": out_range})
    elif kind == "midi_nrpn":
        source = {"type": "midi_nrpn", "channel": f[0], "param": f[1]}
        filters.append({"type": "remap", "in": [0, 16383], "out": out_range})
    elif kind == "midi_note":
        if target.kind == "bool":
            source = {"type": "midi_note", "channel": f[0], "note": f[1], "mode": "toggle"}
        elif target.kind == "int" and (target.maximum is None or target.maximum - (target.minimum or 0) > 127):
            source = {"type": "midi_note", "channel": f[0], "note": f[1], "mode": "trigger"}
            filters.append({"type": "trigger", "action": "next_seed"})
        else:
            source = {"type": "midi_note", "channel": f[0], "note": f[1], "mode": "gate"}
            filters.append({"type": "remap", "in": [0, 1], "out": out_range})
    else:
        raise ValueError(f"cannot learn from {kind}")
    entry["source"] = source
    if filters:
        entry["filters"] = filters
    entry["target"] = target.text
    mapping_config_for(entry)  # the entry must load exactly like a hand-written one
    return entry


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _same_source(a: Any, b: dict[str, Any]) -> bool:
    try:
        return dict(a) == b
    except (TypeError, ValueError):
        return False


def write_learned(path: str | Path, entry: dict[str, Any], schema_ref: str = "schema.json") -> None:
    """Append ``entry`` to the mapping file, keeping the user's comments and layout (ruamel round trip).

    An existing entry with the same source (the control was learned before) is replaced, so
    re-learning a fader moves it to the new target instead of driving both.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    path = Path(path)
    yaml = yaml_rt()
    text = path.read_text(encoding="utf-8") if path.exists() else _NEW_FILE.format(schema=schema_ref)
    doc = yaml.load(text)
    if doc is None:
        doc = yaml.load(_NEW_FILE.format(schema=schema_ref))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a mapping file (expected 'mappings:' at the top)")
    seq = doc.get("mappings")
    if seq is None:
        seq = CommentedSeq()
        doc["mappings"] = seq
    if not isinstance(seq, list):
        raise ValueError(f"{path}: 'mappings' is not a list")
    if hasattr(seq, "fa"):
        seq.fa.set_block_style()
    for i in range(len(seq) - 1, -1, -1):
        item = seq[i]
        if isinstance(item, dict) and _same_source(item.get("source"), entry["source"]):
            log.info("learn: %s was mapped to %s; replaced", entry["source"], item.get("target"))
            del seq[i]
    new = CommentedMap()
    for key, value in entry.items():
        if key == "source":
            m = CommentedMap(value)
            m.fa.set_flow_style()
            new[key] = m
        elif key == "filters":
            fl = CommentedSeq()
            for f in value:
                fm = CommentedMap(f)
                fm.fa.set_flow_style()
                fl.append(fm)
            new[key] = fl
        else:
            new[key] = value
    seq.append(new)
    write_atomic(path, yaml, doc)
