"""Typed, ranged, described parameters and the thread-safe registry that every control surface reads."""

from __future__ import annotations

import collections
import difflib
import logging
import math
import numbers
import re
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

logger = logging.getLogger(__name__)

ParamKind = Literal["float", "int", "bool", "enum", "vector"]
ParamValue = float | int | bool | str | tuple[float, ...] | tuple[int, ...]
Listener = Callable[[str, object, str], None]

OSC_PREFIX = "/oscgan"
SEED_MAX = 2**31 - 1
KEYFRAME_SLOTS = 8

# Segments are lowercase identifiers and never numeric: a numeric last segment is always a vector
# element ('latent.z.5'), so no parameter can collide with an element path.
_PATH_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_KINDS = ("float", "int", "bool", "enum", "vector")


class UnknownParameter(KeyError):
    """A path (or OSC address) names no parameter of the registry."""

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the message, quotes and escapes included.
        return str(self.args[0]) if self.args else "unknown parameter"


class ParamValueError(ValueError):
    """A value has the wrong type or shape for its parameter (out-of-range values are clamped instead)."""


@dataclass(frozen=True)
class ParamSpec:
    """One controllable parameter: its type, range, default and the words a VJ sees for it.

    Attributes:
        path: dotted name, e.g. ``'truncation.psi'``; lowercase identifier segments, never numeric.
        kind: ``'float'``, ``'int'``, ``'bool'``, ``'enum'`` or ``'vector'``.
        default: value at start-up and after ``reset``; vectors give a tuple of ``length`` elements.
        minimum, maximum: inclusive range (elements of a vector share it); ``None`` = unbounded.
            Out-of-range values are clamped, never rejected, so a fader overshoot is harmless.
        length: vectors: number of elements (addressable alone as ``'<path>.<i>'``).
        choices: enums: the allowed strings; an enum also accepts the index of a choice.
        element_kind: vectors: ``'float'`` or ``'int'`` elements (seed lists are int vectors).
        description: one or two sentences for the person at the controller.
        unit: display unit (``'deg'``, ``'fps'``, ...); empty when unitless.
        group: UI grouping (``'latent'``, ``'mix'``, ...).
    """

    path: str
    kind: ParamKind
    default: ParamValue
    minimum: float | None = None
    maximum: float | None = None
    length: int = 1
    choices: tuple[str, ...] = ()
    description: str = ""
    unit: str = ""
    group: str = ""
    element_kind: Literal["float", "int"] = "float"

    def __post_init__(self) -> None:
        where = f"parameter {self.path!r}"
        if not _PATH_RE.match(self.path):
            raise ValueError(f'{where}: a path is dot-separated lowercase identifiers, e.g. "truncation.psi"')
        if self.kind not in _KINDS:
            raise ValueError(f"{where}: kind must be one of {_KINDS}, got {self.kind!r}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"{where}: minimum {self.minimum} is above maximum {self.maximum}")
        if self.kind == "vector":
            if self.length < 1:
                raise ValueError(f"{where}: a vector needs length >= 1, got {self.length}")
            if self.element_kind not in ("float", "int"):
                raise ValueError(f'{where}: element_kind must be "float" or "int"')
            if not isinstance(self.default, tuple) or len(self.default) != self.length:
                raise ValueError(f"{where}: default must be a tuple of {self.length} numbers")
        elif self.length != 1:
            raise ValueError(f"{where}: only vectors have a length")
        if self.kind == "enum":
            if not self.choices or len(set(self.choices)) != len(self.choices):
                raise ValueError(f"{where}: an enum needs distinct choices")
            if self.default not in self.choices:
                raise ValueError(f"{where}: default {self.default!r} is not one of {self.choices}")
        elif self.choices:
            raise ValueError(f"{where}: only enums have choices")
        # The default must survive its own coercion unchanged: a default outside the range is a typo.
        try:
            coerced, clamped = _coerce(self, None, self.default)
        except ParamValueError as e:
            raise ValueError(f"{where}: bad default: {e}") from None
        if clamped or coerced != self.default:
            raise ValueError(f"{where}: default {self.default!r} is outside its range or of the wrong type")
        # Store the coerced form so that get() of an untouched parameter has the same type as after set().
        object.__setattr__(self, "default", coerced)

    @property
    def osc_address(self) -> str:
        """OSC address of the parameter, e.g. ``'/oscgan/truncation/psi'``."""
        return OSC_PREFIX + "/" + self.path.replace(".", "/")

    @property
    def is_vector(self) -> bool:
        return self.kind == "vector"

    def element_path(self, index: int) -> str:
        """Path of one vector element, e.g. ``'latent.z.5'``."""
        if not self.is_vector or not 0 <= index < self.length:
            raise IndexError(f"parameter {self.path!r} has no element {index}")
        return f"{self.path}.{index}"

    def element_address(self, index: int) -> str:
        """OSC address of one vector element, e.g. ``'/oscgan/latent/z/5'``."""
        return f'{self.osc_address}/{self.element_path(index).rsplit(".", 1)[1]}'

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (for OSCQuery, the web page and the JSON Schema)."""
        d: dict[str, object] = {
            "path": self.path,
            "address": self.osc_address,
            "kind": self.kind,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "description": self.description,
            "group": self.group,
        }
        if self.minimum is not None:
            d["minimum"] = self.minimum
        if self.maximum is not None:
            d["maximum"] = self.maximum
        if self.unit:
            d["unit"] = self.unit
        if self.kind == "enum":
            d["choices"] = list(self.choices)
        if self.kind == "vector":
            d["length"] = self.length
            d["element_kind"] = self.element_kind
        return d


class SetResult(NamedTuple):
    """Outcome of one assignment: the stored value (after coercion and clamping) and whether it was clamped."""

    path: str
    value: ParamValue
    clamped: bool


class ParamSnapshot(Mapping[str, ParamValue]):
    """Immutable, consistent copy of every parameter value (keys are parameter paths) at one version."""

    __slots__ = ("_values", "_version")

    def __init__(self, values: Mapping[str, ParamValue], version: int) -> None:
        self._values = types.MappingProxyType(dict(values))
        self._version = version

    @property
    def version(self) -> int:
        """Registry version this copy was taken at; equal versions mean equal values."""
        return self._version

    def __getitem__(self, path: str) -> ParamValue:
        return self._values[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ParamSnapshot(version={self._version}, {len(self._values)} parameters)"


def _number(spec: ParamSpec, value: object, what: str) -> float:
    # bool is a Real, so T/F from TouchOSC toggles become 1.0 / 0.0; strings and None are refused.
    if not isinstance(value, numbers.Real):
        raise ParamValueError(f"{what} expects a number, got {type(value).__name__} {value!r}")
    try:
        x = float(value)
    except (OverflowError, ValueError, TypeError):
        raise ParamValueError(f"{what} expects a finite number, got {value!r}") from None
    if not math.isfinite(x):
        raise ParamValueError(f"{what} expects a finite number, got {x}")
    return x


def _clamp(spec: ParamSpec, x: float) -> tuple[float, bool]:
    if spec.minimum is not None and x < spec.minimum:
        return spec.minimum, True
    if spec.maximum is not None and x > spec.maximum:
        return spec.maximum, True
    return x, False


def _coerce_number(spec: ParamSpec, kind: str, value: object, what: str) -> tuple[float | int, bool]:
    if kind == "float":
        x, clamped = _clamp(spec, _number(spec, value, what))
        return float(x), clamped
    if kind == "int":
        if isinstance(value, numbers.Integral):
            x = int(value)
        else:
            # TouchDesigner and TouchOSC send every number as a float: round to the nearest integer.
            x = round(_number(spec, value, what))
        if spec.minimum is not None and x < spec.minimum:
            return int(math.ceil(spec.minimum)), True
        if spec.maximum is not None and x > spec.maximum:
            return int(math.floor(spec.maximum)), True
        return x, False
    raise AssertionError(kind)


def _coerce_scalar(spec: ParamSpec, kind: str, value: object, what: str) -> tuple[ParamValue, bool]:
    if kind in ("float", "int"):
        return _coerce_number(spec, kind, value, what)
    if kind == "bool":
        if isinstance(value, bool):
            return value, False
        # >= 0.5 rather than != 0 so that a fader mapped onto a toggle flips at its middle.
        return _number(spec, value, what) >= 0.5, False
    if kind == "enum":
        if isinstance(value, str):
            if value not in spec.choices:
                raise ParamValueError(f'{what} expects one of {", ".join(spec.choices)}; got {value!r}')
            return value, False
        # A number picks a choice by index (TouchOSC radio buttons send the index).
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParamValueError(
                f'{what} expects one of {", ".join(spec.choices)} or its index; got {value!r}')
        i = round(_number(spec, value, what))
        j = min(max(i, 0), len(spec.choices) - 1)
        return spec.choices[j], i != j
    raise AssertionError(kind)


def _coerce(spec: ParamSpec, index: int | None, value: object) -> tuple[ParamValue, bool]:
    """Validate and convert ``value`` for ``spec`` (element ``index`` of a vector when given).

    Vectors take a sequence of at most ``length`` numbers: a shorter one is a prefix (the rest keep
    their values). Returns the converted value and whether anything was clamped.
    """
    what = f"{spec.path}.{index}" if index is not None else spec.path
    if spec.kind != "vector":
        return _coerce_scalar(spec, spec.kind, value, what)
    if index is not None:
        return _coerce_number(spec, spec.element_kind, value, what)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ParamValueError(f"{what} expects a list of up to {spec.length} numbers, got {value!r}")
    items = list(value)
    if not 1 <= len(items) <= spec.length:
        raise ParamValueError(f"{what} expects 1 to {spec.length} numbers, got {len(items)}")
    if spec.element_kind == "float" and all(type(x) is float for x in items) and math.isfinite(sum(items)):
        # Fast path for plain finite floats (what mappings and OSC send): the same result as the
        # loop below in a fraction of the time, which matters for a 512-wide latent every frame.
        # A NaN, an infinity or an overflowing sum takes the loop, which reports it exactly.
        lo = -math.inf if spec.minimum is None else float(spec.minimum)
        hi = math.inf if spec.maximum is None else float(spec.maximum)
        fast = tuple([lo if x < lo else hi if x > hi else x for x in items])
        return cast(ParamValue, fast), min(items) < lo or max(items) > hi
    out: list[float | int] = []
    any_clamped = False
    for i, item in enumerate(items):
        x, clamped = _coerce_number(spec, spec.element_kind, item, f"{spec.path}.{i}")
        out.append(x)
        any_clamped |= clamped
    return cast(ParamValue, tuple(out)), any_clamped


class ParamRegistry:
    """Current values of a fixed set of parameters; safe to read and write from any thread.

    One lock guards the values, so ``set_many`` (an OSC bundle) is atomic and ``snapshot`` is
    consistent. Listeners are called after the lock is released, in the order changes were made,
    once per changed parameter with its full new value (a whole tuple for vectors, even when one
    element was set). Changes that leave a value as it was notify nobody and keep the version.
    """

    def __init__(self, specs: Iterable[ParamSpec]) -> None:
        self._specs: dict[str, ParamSpec] = {}
        for spec in specs:
            if spec.path in self._specs:
                raise ValueError(f"parameter {spec.path!r} is defined twice")
            self._specs[spec.path] = spec
        self._values: dict[str, ParamValue] = {p: s.default for p, s in self._specs.items()}
        self._lock = threading.Lock()
        self._version = 0
        self._clamp_count = 0
        self._snapshot: ParamSnapshot | None = None
        self._listeners: list[Listener] = []
        # Changes waiting for delivery, appended under _lock, delivered by whichever thread holds
        # _dispatching: setters never wait on listeners that another thread is running.
        self._pending: collections.deque[tuple[str, ParamValue, str]] = collections.deque()
        self._dispatching = threading.Lock()

    # -- description ----------------------------------------------------------------------------

    def specs(self) -> list[ParamSpec]:
        return list(self._specs.values())

    def spec(self, path: str) -> ParamSpec:
        """Spec of a parameter; an element path (``'latent.z.5'``) gives the vector's spec."""
        return self._resolve(path)[0]

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        try:
            self._resolve(path)
        except UnknownParameter:
            return False
        return True

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def version(self) -> int:
        """Increases by one with every set/set_many that changed at least one value."""
        return self._version

    @property
    def clamp_count(self) -> int:
        """Number of assignments so far whose value was clamped into range."""
        return self._clamp_count

    def _resolve(self, path: str) -> tuple[ParamSpec, int | None]:
        spec = self._specs.get(path)
        if spec is not None:
            return spec, None
        head, _, tail = path.rpartition(".")
        spec = self._specs.get(head)
        if spec is not None and spec.is_vector and tail.isdigit() and str(int(tail)) == tail:
            index = int(tail)
            if index < spec.length:
                return spec, index
            raise UnknownParameter(f"{head!r} has {spec.length} elements (0 to {spec.length - 1}); "
                                   f"there is no element {index}")
        hint = difflib.get_close_matches(path, list(self._specs), n=1)
        raise UnknownParameter(f"unknown parameter {path!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))

    # -- values ---------------------------------------------------------------------------------

    def get(self, path: str) -> ParamValue:
        """Current value; vectors as a tuple, element paths (``'latent.z.5'``) as one number."""
        spec, index = self._resolve(path)
        value = self._values[spec.path]  # one dict read: atomic, no lock needed
        return value[index] if index is not None else value  # type: ignore[index]

    def coerce(self, path: str, value: object) -> tuple[ParamValue, bool]:
        """What ``set(path, value)`` would store (a vector prefix stays a prefix) and whether it clamps.

        Raises UnknownParameter or ParamValueError exactly where ``set`` would; changes nothing.
        """
        spec, index = self._resolve(path)
        return _coerce(spec, index, value)

    def set(self, path: str, value: object, source: str = "") -> SetResult:
        """Assign one parameter or vector element, clamping into range.

        Numbers may be int, float or bool; enums take a choice or its index; vectors take up to
        ``length`` numbers (a prefix). Raises UnknownParameter or ParamValueError.
        """
        return self.set_many([(path, value)], source)[0]

    def set_many(self, items: Iterable[tuple[str, object]], source: str = "") -> list[SetResult]:
        """Assign several parameters at once: all or nothing, under one lock acquisition.

        Every item is validated first, so one bad item raises and changes nothing. Readers and
        listeners see either none or all of the assignments (this is how an OSC bundle lands in
        one frame). A path given twice takes its last value.
        """
        prepared = []
        for path, value in items:
            spec, index = self._resolve(path)
            coerced, clamped = _coerce(spec, index, value)
            prepared.append((path, spec, index, coerced, clamped))
        results: list[SetResult] = []
        with self._lock:
            before: dict[str, ParamValue] = {}
            for path, spec, index, coerced, clamped in prepared:
                old = self._values[spec.path]
                before.setdefault(spec.path, old)
                new: Any
                if index is not None:
                    vector = list(cast(tuple, old))
                    vector[index] = coerced
                    new = tuple(vector)
                elif spec.is_vector:
                    prefix = cast(tuple, coerced)  # a prefix: the other elements keep their values
                    new = coerced = prefix + cast(tuple, old)[len(prefix):]
                else:
                    new = coerced
                self._values[spec.path] = new
                self._clamp_count += clamped
                results.append(SetResult(path, coerced, clamped))
            changed = [(p, self._values[p]) for p, old in before.items() if self._values[p] != old]
            if changed:
                self._version += 1
                self._snapshot = None
                self._pending.extend((p, v, source) for p, v in changed)
        if changed:
            self._dispatch()
        return results

    def reset(self, paths: Iterable[str] | None = None, source: str = "") -> None:
        """Put parameters (all when ``paths`` is None) back to their defaults, atomically."""
        chosen = list(self._specs) if paths is None else [self._resolve(p)[0].path for p in paths]
        self.set_many([(p, self._specs[p].default) for p in chosen], source)

    def snapshot(self) -> ParamSnapshot:
        """Consistent copy of all values; the same object is returned until something changes."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = ParamSnapshot(self._values, self._version)
            return self._snapshot

    # -- listeners ------------------------------------------------------------------------------

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(path, new_value, source)`` after every change; returns an unsubscribe function.

        Callbacks run on the thread that made the change (or on another setter's thread when two
        change at once, order preserved); keep them quick and hand heavy work to your own thread.
        Exceptions in callbacks are logged and swallowed. A callback may set parameters itself:
        those changes are delivered after the current ones.
        """
        with self._lock:
            self._listeners = [*self._listeners, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [cb for cb in self._listeners if cb is not callback]

        return unsubscribe

    def _dispatch(self) -> None:
        while True:
            if not self._dispatching.acquire(blocking=False):
                # Another thread is delivering; it re-checks the queue before it stops, so our
                # changes are delivered by it, in order.
                return
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            break
                        path, value, source = self._pending.popleft()
                        listeners = self._listeners
                    for callback in listeners:
                        try:
                            callback(path, value, source)
                        except Exception:
                            logger.exception("parameter listener %r failed on %s", callback, path)
            finally:
                self._dispatching.release()
            with self._lock:
                if not self._pending:
                    return


@dataclass(frozen=True)
class ModelInfo:
    """What the parameter set needs to know about the loaded generator.

    Attributes:
        architecture: ``'stylegan2'`` or ``'stylegan3'``.
        z_dim: length of the input latent z.
        w_dim: length of one intermediate latent w.
        num_ws: number of w vectors the synthesis network takes (one per style input).
        img_resolution: output width and height in pixels.
        layer_resolutions: resolution of each w index, ``num_ws`` entries, as ``G.layers()`` gives
            them. For StyleGAN3 that is each layer's band limit in pixels (2 x cutoff: 4, 4, 5, 6,
            ..., img_resolution), so the coarse / middle / fine split means the same as for StyleGAN2.
    """

    architecture: Literal["stylegan2", "stylegan3"]
    z_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    layer_resolutions: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_resolutions", tuple(int(r) for r in self.layer_resolutions))
        if self.architecture not in ("stylegan2", "stylegan3"):
            raise ValueError(f'architecture must be "stylegan2" or "stylegan3", got {self.architecture!r}')
        for name in ("z_dim", "w_dim", "num_ws", "img_resolution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.layer_resolutions) != self.num_ws:
            raise ValueError(f"layer_resolutions has {len(self.layer_resolutions)} entries; "
                             f"num_ws is {self.num_ws}")

    def layer_groups(self, overrides: Mapping[str, Iterable[int]] | None = None) -> dict[str, tuple[int, ...]]:
        """w indices of the coarse (res <= 8), middle (16..32) and fine (above 32) styles.

        The split follows the StyleGAN paper (coarse: pose, face shape; middle: features, hair
        style; fine: colours, micro-structure). ``overrides`` replaces the indices of some groups;
        an index given to an overridden group is taken out of the others, so groups never overlap.
        """
        groups: dict[str, list[int]] = {"coarse": [], "middle": [], "fine": []}
        for i, res in enumerate(self.layer_resolutions):
            groups["coarse" if res <= 8 else "middle" if res <= 32 else "fine"].append(i)
        if overrides:
            unknown = set(overrides) - set(groups)
            if unknown:
                raise ValueError(f"unknown layer group(s) {sorted(unknown)}; use coarse, middle, fine")
            taken: set[int] = set()
            fixed: dict[str, list[int]] = {}
            for name, indices in overrides.items():
                idx = sorted(set(int(i) for i in indices))
                bad = [i for i in idx if not 0 <= i < self.num_ws]
                if bad:
                    raise ValueError(f"layer group {name!r}: indices {bad} are outside 0..{self.num_ws - 1}")
                clash = taken.intersection(idx)
                if clash:
                    raise ValueError(f"layer group {name!r}: indices {sorted(clash)} are in two overrides")
                taken.update(idx)
                fixed[name] = idx
            for name in groups:
                groups[name] = fixed[name] if name in fixed else [i for i in groups[name] if i not in taken]
        return {name: tuple(idx) for name, idx in groups.items()}


def default_specs(model: ModelInfo) -> list[ParamSpec]:
    """The parameter set of oscgan for one model (vector lengths follow the model)."""

    def seed(path: str, default: int, group: str, description: str) -> ParamSpec:
        return ParamSpec(path, "int", default, 0, SEED_MAX, group=group, description=description)

    def amount(path: str, group: str, description: str) -> ParamSpec:  # 0..1, starting at 0
        return ParamSpec(path, "float", 0.0, 0.0, 1.0, group=group, description=description)

    lat, mix, trunc, noise = "latent", "mix", "truncation", "noise"
    const, affine, out = "const", "affine", "output"
    return [
        # latent: which picture
        seed("latent.seed", 0, lat,
             "Seed of the picture. Every seed is a different image; "
             "send a new one to jump to it. (Ignored while travelling: latent.keyframes.count > 1.)"),
        ParamSpec("latent.z", "vector", (0.0,) * model.z_dim, -4.0, 4.0, length=model.z_dim, group=lat,
                  description=f"Offset added to the seed's latent, one value per dimension ({model.z_dim}); "
                              "all 0 = the seed as it is. Address one dimension as /oscgan/latent/z/<i>."),
        amount("latent.travel", lat,
               "Position along the keyframe path: 0 = first keyframe, 1 = last one. "
               "Drive it by hand, or let latent.travel.speed move it."),
        ParamSpec("latent.travel.speed", "float", 0.0, 0.0, 10.0, group=lat, unit="keyframes/s",
                  description="How many keyframes per second the travel position moves on its own; "
                              "0 = stand still (travel only follows latent.travel). Ignored while "
                              "latent.travel.beats is above 0."),
        ParamSpec("latent.travel.beats", "float", 0.0, 0.0, 64.0, group=lat, unit="beats/keyframe",
                  description="Travel in time with the music: move one keyframe every N beats at the "
                              "current tempo (MIDI clock, else the configured tempo_bpm). 0 = off "
                              "(latent.travel.speed applies)."),
        ParamSpec("latent.travel.mode", "enum", "slerp_z", choices=("slerp_z", "lerp_w"), group=lat,
                  description="How to move between keyframes: slerp_z = smooth arc through the input "
                              "latents (classic GAN walk); lerp_w = straight line in style space (more "
                              "even morphs, can pass through blander images)."),
        ParamSpec("latent.keyframes", "vector", tuple(range(KEYFRAME_SLOTS)), 0, SEED_MAX,
                  length=KEYFRAME_SLOTS, element_kind="int", group=lat,
                  description=f"The seeds the travel path visits, in order ({KEYFRAME_SLOTS} slots; "
                              "only the first latent.keyframes.count are used). Set one slot as "
                              "/oscgan/latent/keyframes/<i> <seed>."),
        ParamSpec("latent.keyframes.count", "int", 1, 1, KEYFRAME_SLOTS, group=lat,
                  description="How many keyframe slots the travel path uses. 1 = travel off: the "
                              "picture is latent.seed. 2 or more = the picture travels through "
                              "latent.keyframes (latent.seed is then not used)."),
        # mix: style mixing with a second seed
        seed("mix.seed", 1, mix,
             "Seed of the second picture whose styles are mixed in."),
        amount("mix.coarse", mix,
               "How much of the mix seed's coarse styles (pose, head shape, layout; "
               "4-8 px layers) to take: 0 = none, 1 = all."),
        amount("mix.middle", mix,
               "How much of the mix seed's middle styles (features, hair, eyes; "
               "16-32 px layers) to take: 0 = none, 1 = all."),
        amount("mix.fine", mix,
               "How much of the mix seed's fine styles (colours, texture, light; "
               "64 px and up) to take: 0 = none, 1 = all."),
        ParamSpec("mix.layer", "vector", (0.0,) * model.num_ws, 0.0, 1.0, length=model.num_ws, group=mix,
                  description=f"Mix amount per style layer ({model.num_ws} layers, coarse first); a "
                              "layer takes the larger of this and its group's amount. "
                              "Address one layer as /oscgan/mix/layer/<i>."),
        # truncation
        ParamSpec("truncation.psi", "float", 0.7, -1.0, 2.0, group=trunc,
                  description="Truncation: 1 = full variety, lower = safer and closer to the average "
                              'image, 0 = the average itself, negative = the "opposite" image, '
                              "above 1 = wilder and more broken."),
        ParamSpec("truncation.cutoff", "int", 0, 0, model.num_ws, group=trunc,
                  description=f"Truncate only the first N style layers (of {model.num_ws}); "
                              "0 = all layers. Small values keep pose tame and let detail run wild."),
        # noise
        ParamSpec("noise.mode", "enum", "const", choices=("const", "random", "none"), group=noise,
                  description="Per-pixel noise: const = fixed (stable picture), random = new every "
                              "frame (shimmering hair and skin), none = switched off (smooth, painterly)."),
        ParamSpec("noise.strength", "float", 1.0, 0.0, 4.0, group=noise, unit="x",
                  description="Multiplier on the noise inputs: 0 = none, 1 = as trained, "
                              "above 1 = grain and glitches."),
        # const: the synthesis network's input
        ParamSpec("const.corruption", "float", 0.0, 0.0, 10.0, group=const,
                  description="Random noise added to the network's constant input: 0 = clean, "
                              "higher = the image breaks up into abstract structure."),
        seed("const.seed", 0, const,
             "Seed of the corruption noise; change it for a different break-up pattern."),
        ParamSpec("const.shift.x", "float", 0.0, -1.0, 1.0, group=const,
                  description="Slide the constant input sideways, as a fraction of its width (wraps around)."),
        ParamSpec("const.shift.y", "float", 0.0, -1.0, 1.0, group=const,
                  description="Slide the constant input up or down, as a fraction of its height (wraps around)."),
        ParamSpec("const.scale", "float", 1.0, 0.1, 4.0, group=const, unit="x",
                  description="Zoom the constant input: below 1 repeats structure, above 1 stretches it."),
        # affine: the input transform (native for StyleGAN3)
        ParamSpec("affine.rotate", "float", 0.0, -360.0, 360.0, group=affine, unit="deg",
                  description="Rotate the picture, in degrees."),
        ParamSpec("affine.translate.x", "float", 0.0, -1.0, 1.0, group=affine,
                  description="Move the picture sideways, as a fraction of its width."),
        ParamSpec("affine.translate.y", "float", 0.0, -1.0, 1.0, group=affine,
                  description="Move the picture up or down, as a fraction of its height."),
        ParamSpec("affine.scale", "float", 1.0, 0.1, 4.0, group=affine, unit="x",
                  description="Zoom the picture: above 1 = closer."),
        # output
        ParamSpec("output.fps", "float", 30.0, 1.0, 240.0, group=out, unit="fps",
                  description="Target frame rate; the engine drops to what the GPU can render."),
        ParamSpec("output.paused", "bool", False, group=out,
                  description="Freeze the picture (outputs keep sending the last frame)."),
    ]


def build_registry(model: ModelInfo) -> ParamRegistry:
    """Registry with oscgan's parameter set sized for ``model``."""
    return ParamRegistry(default_specs(model))
