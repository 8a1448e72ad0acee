"""Mapping targets: a registry parameter, one vector element or a slice, and how values combine there."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from oscgan.state.params import ParamRegistry, ParamSpec, UnknownParameter

log = logging.getLogger(__name__)

Combine = Literal["set", "add", "multiply"]
COMBINE_MODES: tuple[str, ...] = ("set", "add", "multiply")

# 'truncation.psi', 'latent.z.5' (element), 'latent.z[0:128]', 'latent.z[:4]', 'latent.z[5]'
_TARGET_RE = re.compile(
    r"^(?P<path>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)"
    r"(?:\.(?P<index>\d+)|\[(?P<item>\d+)\]|\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")


class TargetError(ValueError):
    """A target names no parameter, or an element or slice the parameter does not have."""


@dataclass(frozen=True)
class TargetRef:
    """A parsed target string (no registry needed): parameter path plus optional element or slice."""

    text: str
    path: str
    index: int | None = None
    start: int | None = None
    stop: int | None = None
    sliced: bool = False


def parse_target(text: str) -> TargetRef:
    """'latent.z[0:128]' -> TargetRef(path='latent.z', start=0, stop=128, sliced=True); TargetError if malformed."""
    m = _TARGET_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise TargetError(f"target {text!r} is not a parameter path: use e.g. 'truncation.psi', "
                          "'latent.z.5' (one element) or 'latent.z[0:128]' (a slice)")
    index = m["index"] if m["index"] is not None else m["item"]
    if index is not None:
        return TargetRef(text, m["path"], index=int(index))
    if m["start"] is not None:
        start = int(m["start"]) if m["start"] not in ("", "-") else None
        stop = int(m["stop"]) if m["stop"] not in ("", "-") else None
        return TargetRef(text, m["path"], start=start, stop=stop, sliced=True)
    return TargetRef(text, m["path"])


@dataclass(frozen=True)
class Target:
    """A resolved target: which elements of which parameter a mapping writes.

    Attributes:
        text: the target as written in the mapping file.
        spec: the parameter's spec.
        indices: element indices written (``[0]`` for a scalar parameter), int array.
        minimum, maximum: the parameter's range (None = unbounded), shared by vector elements.
        kind: ``'float'``, ``'int'``, ``'bool'`` or ``'enum'`` (the element kind for vectors).
    """

    text: str
    spec: ParamSpec
    indices: np.ndarray

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def length(self) -> int:
        return int(self.indices.size)

    @property
    def minimum(self) -> float | None:
        if self.spec.kind == "bool":
            return 0.0
        if self.spec.kind == "enum":
            return 0.0
        return self.spec.minimum

    @property
    def maximum(self) -> float | None:
        if self.spec.kind == "bool":
            return 1.0
        if self.spec.kind == "enum":
            return float(len(self.spec.choices) - 1)
        return self.spec.maximum

    @property
    def kind(self) -> str:
        return self.spec.element_kind if self.spec.is_vector else self.spec.kind

    @property
    def is_scalar(self) -> bool:
        return self.length == 1

    def value_range(self, fallback: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
        """(minimum, maximum), with ``fallback`` for unbounded sides."""
        lo, hi = self.minimum, self.maximum
        return (fallback[0] if lo is None else float(lo), fallback[1] if hi is None else float(hi))


def resolve_target(ref: TargetRef | str, registry: ParamRegistry) -> Target:
    """Resolve a target against the registry; TargetError (with a did-you-mean hint) if it does not fit.

    Slices follow Python's rules (negative indices count from the end) but an end beyond the
    vector is cut with a log line rather than refused, so one mapping file works for models of
    different latent sizes; a slice that selects nothing is an error.
    """
    if isinstance(ref, str):
        ref = parse_target(ref)
    try:
        spec = registry.spec(ref.path)
    except UnknownParameter as e:
        raise TargetError(str(e)) from None
    if spec.path != ref.path:
        # 'latent.z.5' parses as path 'latent.z' index 5 already; a registry element path here
        # means the numeric part was written as a path segment, which the regex never allows.
        raise TargetError(f"target {ref.text!r}: unexpected element path")
    if ref.index is not None or ref.sliced:
        if not spec.is_vector:
            raise TargetError(f"target {ref.text!r}: {spec.path!r} is a single {spec.kind}, not a vector; "
                              f"write just {spec.path!r}")
    if ref.index is not None:
        if ref.index >= spec.length:
            raise TargetError(f"target {ref.text!r}: {spec.path!r} has {spec.length} elements "
                              f"(0 to {spec.length - 1})")
        return Target(ref.text, spec, np.array([ref.index], dtype=np.intp))
    if ref.sliced:
        indices = np.arange(spec.length, dtype=np.intp)[slice(ref.start, ref.stop)]
        if indices.size == 0:
            raise TargetError(f"target {ref.text!r} selects no element of {spec.path!r} "
                              f"({spec.length} elements)")
        if ref.stop is not None and ref.stop > spec.length:
            log.warning("target %s: %s has only %d elements; using %s[%d:%d]", ref.text, spec.path,
                        spec.length, spec.path, int(indices[0]), int(indices[-1]) + 1)
        return Target(ref.text, spec, indices)
    return Target(ref.text, spec, np.arange(spec.length if spec.is_vector else 1, dtype=np.intp))


def to_number(spec: ParamSpec, value: object) -> float:
    """A registry value as the float a mapping works with (enum -> index of the choice, bool -> 0/1)."""
    if spec.kind == "enum" and isinstance(value, str):
        return float(spec.choices.index(value))
    return float(value)  # type: ignore[arg-type]


def param_vector(spec: ParamSpec, value: object) -> np.ndarray:
    """A registry value as a float64 array (length 1 for scalars)."""
    if spec.is_vector:
        return np.asarray(value, dtype=np.float64).reshape(spec.length)
    return np.array([to_number(spec, value)], dtype=np.float64)


def coerce_array(spec: ParamSpec, values: np.ndarray) -> np.ndarray:
    """Clamp and round a float array the way the registry would store it (bools 0/1, enums an index)."""
    kind = spec.element_kind if spec.is_vector else spec.kind
    if kind == "bool":
        return (values >= 0.5).astype(np.float64)
    if kind == "enum":
        return np.clip(np.floor(values + 0.5), 0, len(spec.choices) - 1)
    out = values
    if kind == "int":
        out = np.floor(out + 0.5)
        lo = None if spec.minimum is None else np.ceil(spec.minimum)
        hi = None if spec.maximum is None else np.floor(spec.maximum)
    else:
        lo, hi = spec.minimum, spec.maximum
    if lo is not None or hi is not None:
        out = np.clip(out, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    return out


def registry_value(spec: ParamSpec, values: np.ndarray) -> object:
    """The value to hand to ``registry.set`` for a coerced float array of a whole parameter."""
    if spec.is_vector:
        if spec.element_kind == "int":
            return tuple(int(v) for v in values.tolist())
        return tuple(values.tolist())
    x = float(values[0])
    if spec.kind == "bool":
        return x >= 0.5
    if spec.kind == "enum":
        return spec.choices[int(x)]
    if spec.kind == "int":
        return int(x)
    return x
