"""The mapping engine: per frame, bus events -> sources -> filter banks -> combined targets -> one registry write.

How values combine on a parameter, each frame:

1. **base** = the value set by hand, OSC, the web page, presets (every change whose source is
   not ``'mapping'``, element by element for vectors);
2. ``set`` mappings whose output *changed* write into the base (latest wins, like moving a
   fader: a preset recalled afterwards stays until the control moves again);
3. ``add`` mappings are summed on top, then ``multiply`` mappings scale the result;
4. the result is clamped / rounded like the registry would and written - only when it differs
   from what was written last (or the base changed), so OSC echo is not flooded.

Mappings with the same chain shape, width and combine mode form a *bank* evaluated with numpy
in one go (200 smoothed faders cost about as much as one). Events within one frame are all run
through the chains (edges and encoder steps are never lost); time-based filters see the frame's
``dt`` once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oscgan.mapping.filters import ChainContext, FilterChain, TriggerParams, chain_key
from oscgan.mapping.mapping import Mapping
from oscgan.mapping.sources import FrameClock, Sample, Source
from oscgan.mapping.targets import coerce_array, param_vector, registry_value
from oscgan.state.params import ParamRegistry, ParamSpec

log = logging.getLogger(__name__)

SEED_ACTIONS = ("next_seed", "prev_seed", "random_seed")
KEYFRAME_ACTIONS = ("next_keyframe", "prev_keyframe")


@dataclass
class _Slot:
    """Where one parameter lives in the engine's flat value table."""

    spec: ParamSpec
    offset: int
    length: int
    modulated: bool = False  # has add / multiply mappings: the written value differs from the base

    @property
    def sl(self) -> slice:
        return slice(self.offset, self.offset + self.length)


@dataclass
class FiredAction:
    """A trigger that fired and needs the service (presets)."""

    params: TriggerParams
    mapping: Mapping


class Bank:
    """Mappings evaluated together: same chain shape, source width and combine mode."""

    def __init__(self, mappings: Sequence[Mapping], slots: dict[str, _Slot]) -> None:
        self.mappings = list(mappings)
        first = self.mappings[0]
        self.width = first.width
        self.combine = first.combine
        n = len(self.mappings)
        filters = [list(m.config.filters) for m in self.mappings]
        targets = [m.target for m in self.mappings]
        self.chain = FilterChain(filters, targets, self.width) if filters[0] else None
        self.held = np.full((n, self.width), np.nan)
        self.pending: dict[int, list[Sample]] = {}
        # Scatter plan: output element src[k] (of out.ravel()) goes to flat index dest[k].
        dest: list[np.ndarray] = []
        src: list[np.ndarray] = []
        self.spans: list[tuple[int, int]] = []
        current = np.zeros(n, dtype=np.intp)
        pos = 0
        for row, m in enumerate(self.mappings):
            t = m.target
            if t is None or m.config.trigger is not None:
                self.spans.append((pos, pos))
                continue
            slot = slots[t.path]
            d = slot.offset + t.indices
            s = row * self.width + (np.arange(t.length) if self.width > 1 else np.zeros(t.length, np.intp))
            dest.append(d)
            src.append(s.astype(np.intp))
            self.spans.append((pos, pos + t.length))
            pos += t.length
            current[row] = d[0]
        self.dest = np.concatenate(dest) if dest else np.zeros(0, np.intp)
        self.src = np.concatenate(src) if src else np.zeros(0, np.intp)
        self.current_index = current
        self.last_vals = np.full(self.dest.size, np.nan)  # set: what each element was last set to
        self.unique_dest = np.unique(self.dest).size == self.dest.size

    def run(self, dt: float, base: np.ndarray) -> tuple[np.ndarray, list[tuple[int, TriggerParams]]]:
        """Process this frame's samples; returns the outputs [N, W] and fired triggers."""
        pending = self.pending
        rounds = 1
        if pending:
            held = self.held
            for row, samples in pending.items():
                held[row] = samples[-1]
                if len(samples) > rounds:
                    rounds = len(samples)
        fired: list[tuple[int, TriggerParams]] = []
        if self.chain is None:
            self.pending = {}
            return self.held, fired
        current = base[self.current_index] if self.chain.needs_current else None
        for r in range(rounds - 1):
            # Earlier events of this frame, right-aligned so that every row's last event is
            # the final pass (the one with the frame's dt).
            x = np.full_like(self.held, np.nan)
            for row, samples in pending.items():
                j = r - (rounds - len(samples))
                if 0 <= j < len(samples) - 1:
                    x[row] = samples[j]
            ctx = ChainContext(0.0, current, fired)
            self.chain.process(x, ctx)
        ctx = ChainContext(dt, current, fired)
        out = self.chain.process(self.held, ctx)
        self.pending = {}
        return out, fired

    def adopt_input(self, row: int, old: Bank, old_row: int) -> None:
        """Take over the source state and the last input of a mapping with the same source."""
        self.mappings[row].source.__dict__.update(old.mappings[old_row].source.__dict__)
        if self.held.shape[1] == old.held.shape[1]:
            self.held[row] = old.held[old_row]

    def adopt_row(self, row: int, old: Bank, old_row: int) -> None:
        """Take over an identical mapping's state from the previous engine."""
        self.adopt_input(row, old, old_row)
        a, b = self.spans[row]
        c, d = old.spans[old_row]
        if b - a == d - c:
            self.last_vals[a:b] = old.last_vals[c:d]
        if self.chain is not None and old.chain is not None:
            self.chain.copy_row_state(row, old.chain, old_row)


def _bank_key(m: Mapping) -> tuple[Any, ...]:
    return (m.width, m.combine, chain_key(m.config.filters))


class MappingEngine:
    """A built set of mappings; ``step`` runs one frame. Used only from the render thread once attached.

    Build it anywhere (it reads only specs from the registry); ``attach`` it at a frame boundary
    (reads current values, takes state over from the previous engine); then call ``step`` once
    per frame.
    """

    def __init__(self, mappings: Sequence[Mapping], registry: ParamRegistry, *, rng_seed: int | None = None) -> None:
        self.registry = registry
        self.mappings = list(mappings)
        self.slots: dict[str, _Slot] = {}
        size = 0
        for m in self.mappings:
            if m.target is None or m.target.path in self.slots:
                continue
            spec = m.target.spec
            length = spec.length if spec.is_vector else 1
            self.slots[m.target.path] = _Slot(spec, size, length)
            size += length
        for m in self.mappings:
            if m.target is not None and m.combine in ("add", "multiply"):
                self.slots[m.target.path].modulated = True
        self.size = size
        self.base = np.zeros(size)
        self._add = np.zeros(size)
        self._mul = np.ones(size)
        self._has_add = any(m.combine == "add" for m in self.mappings)
        self._has_mul = any(m.combine == "multiply" for m in self.mappings)
        groups: dict[tuple[Any, ...], list[Mapping]] = {}
        for m in self.mappings:
            groups.setdefault(_bank_key(m), []).append(m)
        self.banks = [Bank(ms, self.slots) for ms in groups.values()]
        # Who wants which bus signal; who needs a tick every frame.
        self.consumers: dict[str, list[tuple[Bank, int, Any]]] = {}
        self.tickers: list[tuple[Bank, int, Any]] = []
        for bank in self.banks:
            for row, m in enumerate(bank.mappings):
                for name in m.source.bus_names:
                    self.consumers.setdefault(name, []).append((bank, row, m.source))
                if type(m.source).tick is not Source.tick:  # event-only sources need no call per frame
                    self.tickers.append((bank, row, m.source))
        self.osc_addresses = frozenset("/" + n[4:] for n in self.consumers if n.startswith("osc/"))
        self.last_written: dict[str, np.ndarray] = {}
        self._dirty: set[str] = set(self.slots)  # write every parameter once after attach
        self._restore: list[tuple[str, object]] = []
        self._rng = np.random.default_rng(rng_seed)
        self.attached = False

    def __len__(self) -> int:
        return len(self.mappings)

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, previous: MappingEngine | None = None) -> None:
        """Take the base values (and unchanged mappings' state) over; call at a frame boundary."""
        for path, slot in self.slots.items():
            old = previous.slots.get(path) if previous is not None else None
            if old is not None and old.length == slot.length:
                self.base[slot.sl] = previous.base[old.sl]  # type: ignore[union-attr]
                if path in previous.last_written:  # type: ignore[union-attr]
                    self.last_written[path] = previous.last_written[path]  # type: ignore[union-attr]
            else:
                self.base[slot.sl] = param_vector(slot.spec, self.registry.get(path))
        if previous is not None:
            # A parameter the old mappings modulated and the new ones leave alone goes back to its base.
            for path, old in previous.slots.items():
                if old.modulated and path not in self.slots:
                    value = coerce_array(old.spec, previous.base[old.sl])
                    self._restore.append((path, registry_value(old.spec, value)))
            self._adopt_state(previous)
        self._dirty = {p for p, s in self.slots.items() if s.modulated or p not in self.last_written}
        self.attached = True

    def _adopt_state(self, previous: MappingEngine) -> None:
        """Unchanged mappings go on exactly where they were (filters included); a mapping whose
        source is unchanged but whose filters or target were edited keeps its input, so the edit
        shows at once instead of when the control next moves."""
        old_rows: dict[str, list[tuple[Bank, int]]] = {}
        for bank in previous.banks:
            for row, m in enumerate(bank.mappings):
                old_rows.setdefault(m.key, []).append((bank, row))
        unmatched: list[tuple[Bank, int]] = []
        for bank in self.banks:
            for row, m in enumerate(bank.mappings):
                candidates = old_rows.get(m.key)
                if candidates:
                    old_bank, old_row = candidates.pop(0)
                    bank.adopt_row(row, old_bank, old_row)
                else:
                    unmatched.append((bank, row))
        by_source: dict[str, list[tuple[Bank, int]]] = {}
        for rows in old_rows.values():
            for old_bank, old_row in rows:
                by_source.setdefault(old_bank.mappings[old_row].source_key, []).append((old_bank, old_row))
        for bank, row in unmatched:
            candidates = by_source.get(bank.mappings[row].source_key)
            if candidates:
                old_bank, old_row = candidates.pop(0)
                bank.adopt_input(row, old_bank, old_row)

    # -- per frame ------------------------------------------------------------------------------
    def apply_base(self, path: str, indices: np.ndarray | None, values: np.ndarray) -> None:
        """Someone other than the mappings changed a parameter (whole, or these elements)."""
        slot = self.slots.get(path)
        if slot is None:
            return
        if indices is None:
            self.base[slot.sl] = values
        else:
            self.base[slot.offset + indices] = values
        if slot.modulated:
            self._dirty.add(path)  # the modulation has to be applied on top of the new value
            return
        # Unmodulated: the registry already holds exactly the base; remember it as written.
        last = self.last_written.get(path)
        if last is not None:
            if indices is None:
                last[:] = values
            else:
                last[indices] = values

    def step(self, events: Iterable[Sequence[Any]], clock: FrameClock) -> tuple[list[tuple[str, object]], list[FiredAction]]:
        """One frame: feed events, run the banks, combine; returns (registry items, fired preset triggers)."""
        for bank, row, source in self.tickers:
            s = source.tick(clock)
            if s is not None:
                bank.pending.setdefault(row, []).append(s)
        consumers = self.consumers
        for event in events:  # (name, value, ...): bus Signals or plain pairs
            name = event[0]
            cons = consumers.get(name)
            if cons is None:
                continue
            for bank, row, source in cons:
                samples = source.feed(name, event[1])
                if samples:
                    bank.pending.setdefault(row, []).extend(samples)
        base = self.base
        if self._has_add:
            self._add.fill(0.0)
        if self._has_mul:
            self._mul.fill(1.0)
        fired_out: list[FiredAction] = []
        for bank in self.banks:
            out, fired = bank.run(clock.dt, base)
            for row, params in fired:
                action = self._fire(bank.mappings[row], params)
                if action is not None:
                    fired_out.append(action)
            if bank.dest.size == 0:
                continue
            vals = out.reshape(-1)[bank.src]
            if bank.combine == "set":
                changed = vals != bank.last_vals  # NaN != anything: filtered below
                changed &= ~np.isnan(vals)
                if changed.any():
                    idx = np.flatnonzero(changed)
                    base[bank.dest[idx]] = vals[idx]
                    bank.last_vals[idx] = vals[idx]
            elif bank.combine == "add":
                v = np.nan_to_num(vals, nan=0.0)
                if bank.unique_dest:
                    self._add[bank.dest] += v
                else:
                    np.add.at(self._add, bank.dest, v)
            else:
                v = np.nan_to_num(vals, nan=1.0)
                if bank.unique_dest:
                    self._mul[bank.dest] *= v
                else:
                    np.multiply.at(self._mul, bank.dest, v)
        items = self._restore
        self._restore = []
        dirty = self._dirty
        for path, slot in self.slots.items():
            sl = slot.sl
            eff = base[sl]
            if slot.modulated:
                if self._has_add:
                    eff = eff + self._add[sl]
                if self._has_mul:
                    eff = eff * self._mul[sl]
            eff = coerce_array(slot.spec, eff)
            last = self.last_written.get(path)
            if path not in dirty and last is not None and np.array_equal(eff, last):
                continue
            self.last_written[path] = eff.copy()
            items.append((path, registry_value(slot.spec, eff)))
        dirty.clear()
        return items, fired_out

    def _fire(self, mapping: Mapping, params: TriggerParams) -> FiredAction | None:
        action = params.action
        target = mapping.target
        if action == "preset" or target is None:
            return FiredAction(params, mapping)
        slot = self.slots[target.path]
        i = slot.offset + int(target.indices[0])
        lo, hi = target.value_range((0.0, float(2**31 - 1)))
        if action in SEED_ACTIONS:
            if action == "random_seed":
                value = float(self._rng.integers(int(lo), int(hi) + 1))
            else:
                step = params.step if action == "next_seed" else -params.step
                value = min(hi, max(lo, float(self.base[i]) + step))
        else:
            count = int(self.registry.get("latent.keyframes.count"))  # type: ignore[arg-type]
            if count < 2:
                log.info("%s: %s does nothing while latent.keyframes.count is 1 (travel is off)",
                         mapping.where, action)
                return None
            k = int(round(float(self.base[i]) * (count - 1)))
            k = (k + (1 if action == "next_keyframe" else -1)) % count
            value = k / (count - 1)
        self.base[i] = value
        self._dirty.add(target.path)
        return None
