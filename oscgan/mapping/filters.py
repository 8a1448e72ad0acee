"""Mapping filters: parameters declared as pydantic models, processing vectorised over many mappings.

A filter kind is a pair: ``XParams`` (what the mapping file says, validated) and ``XFilter`` (the
runtime). A runtime filter is built once for a *bank* of N mappings that share the chain shape
(each row with its own parameters) and then processes ``x`` of shape ``[N, W]`` (W values per
mapping: 1 for a fader, more for a vector source). NaN means "no value" (a source that has
not sent anything yet, a pickup control that has not caught the parameter): stateless filters
pass it through, stateful ones leave that row's state alone. Time-based filters use the ``dt``
they are given (seconds); ``dt == 0`` means "another event within the same frame", which
updates inputs but lets no time pass.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oscgan.mapping.targets import Target

log = logging.getLogger(__name__)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


Pair = tuple[float, float]


def _finite_pair(name: str, pair: Pair | None, distinct: bool = True) -> None:
    if pair is None:
        return
    if not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name} must be two finite numbers")
    if distinct and pair[0] == pair[1]:
        raise ValueError(f"{name} needs two different numbers, got [{pair[0]}, {pair[1]}]")


# ------------------------------------------------------------------------------------- params

class RemapParams(_Params):
    """Linear map from the ``in`` range to the ``out`` range (either may run backwards)."""

    type: Literal["remap"]
    in_: Pair = Field(alias="in", description="input range [from, to], e.g. [0, 127] for a CC")
    out: Pair = Field(description="output range [from, to], e.g. [0.2, 1.2]")
    clamp: bool = Field(True, description="keep the output inside the out range")

    @model_validator(mode="after")
    def _check(self) -> RemapParams:
        _finite_pair("in", self.in_)
        _finite_pair("out", self.out, distinct=False)
        return self


class _RangeParams(_Params):
    min: float = Field(description="lower bound")
    max: float = Field(description="upper bound")

    @model_validator(mode="after")
    def _check(self) -> _RangeParams:
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min >= self.max:
            raise ValueError(f"min must be below max, got min {self.min}, max {self.max}")
        return self


class ClipParams(_RangeParams):
    """Limit values to [min, max]."""

    type: Literal["clip"]


class WrapParams(_RangeParams):
    """Wrap values around into [min, max) (an angle past 360 starts again at 0)."""

    type: Literal["wrap"]


class FoldParams(_RangeParams):
    """Reflect values back into [min, max] (a ping-pong at the edges)."""

    type: Literal["fold"]


class CurveParams(_Params):
    """Response curve over ``range``: slow start (exponential), fast start (logarithmic), S-shape, gamma."""

    type: Literal["curve"]
    shape: Literal["linear", "exponential", "logarithmic", "smoothstep", "gamma"] = "linear"
    gamma: float = Field(2.2, gt=0, le=100, description="gamma shape: output = input ** gamma (on 0..1)")
    steepness: float = Field(4.0, gt=0, le=50, description="exponential / logarithmic: how strong the curve is")
    range: Pair = Field((0.0, 1.0), description="the values the curve works on; inputs are clipped to it")

    @model_validator(mode="after")
    def _check(self) -> CurveParams:
        _finite_pair("range", self.range)
        return self


class InvertParams(_Params):
    """Flip values within ``range`` (0 -> 1, 1 -> 0 for the default range)."""

    type: Literal["invert"]
    range: Pair = Field((0.0, 1.0), description="[low, high]: low becomes high and back")


class DeadzoneParams(_Params):
    """Ignore small movements around ``center`` (joystick rest position, a fader's middle detent)."""

    type: Literal["deadzone"]
    center: float = 0.0
    width: float = Field(0.05, gt=0, description="half-width of the zone: |x - center| <= width gives center")
    range: Pair | None = Field(None, description="[low, high] of the input: when given, the outside "
                               "parts are stretched so low and high are still reached")

    @model_validator(mode="after")
    def _check(self) -> DeadzoneParams:
        if self.range is not None:
            _finite_pair("range", self.range)
            lo, hi = min(self.range), max(self.range)
            if not (lo < self.center - self.width or self.center + self.width < hi):
                raise ValueError("the dead zone covers the whole range")
        return self


class QuantizeParams(_Params):
    """Round to multiples of ``step`` (plus ``offset``): stepped rotation, integer seeds."""

    type: Literal["quantize"]
    step: float = Field(gt=0, description="size of one step")
    offset: float = Field(0.0, description="steps are offset + k * step")


class SmoothParams(_Params):
    """Smoothing over time.

    ``one_euro`` (Casiez et al. 2012): steady when the control rests, quick when it moves;
    ``exponential``: reaches 63 % of a jump after ``time_constant`` seconds; ``slew``: moves at
    most ``rate`` units per second (``rate_down`` for falling values when given).
    """

    type: Literal["smooth"]
    method: Literal["one_euro", "exponential", "slew"] = "one_euro"
    min_cutoff: float | None = Field(None, gt=0, description="one_euro: cutoff in Hz at rest (default 1.0; "
                                     "lower = smoother)")
    beta: float | None = Field(None, ge=0, description="one_euro: how much speed raises the cutoff "
                               "(default 0; higher = less lag when moving fast)")
    d_cutoff: float | None = Field(None, gt=0, description="one_euro: cutoff in Hz of the speed estimate "
                                   "(default 1.0)")
    time_constant: float | None = Field(None, gt=0, description="exponential: seconds (default 0.2)")
    rate: float | None = Field(None, gt=0, description="slew: units per second (required)")
    rate_down: float | None = Field(None, gt=0, description="slew: units per second downwards (default: rate)")

    _FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "one_euro": ("min_cutoff", "beta", "d_cutoff"),
        "exponential": ("time_constant",),
        "slew": ("rate", "rate_down"),
    }

    @model_validator(mode="after")
    def _check(self) -> SmoothParams:
        allowed = self._FIELDS[self.method]
        for method, fields in self._FIELDS.items():
            for name in fields:
                if name not in allowed and getattr(self, name) is not None:
                    raise ValueError(f"{name} is a setting of method {method}, not of {self.method} "
                                     f"(which takes {', '.join(allowed)})")
        if self.method == "slew" and self.rate is None:
            raise ValueError("method slew needs rate (units per second)")
        return self


class TakeoverParams(_Params):
    """What happens when a physical control and the parameter disagree (after a preset, or OSC).

    ``jump``: the parameter jumps to the control at once. ``pickup``: the control does nothing
    until it passes the parameter's value, then takes over. ``scale``: the parameter moves in the
    direction of the control, proportionally, so both meet at the end of the range (Ableton's
    "value scaling"). Must be the last filter before the target; for ``set`` targets only.
    """

    type: Literal["takeover"]
    mode: Literal["jump", "pickup", "scale"] = "pickup"
    range: Pair | None = Field(None, description="scale: the value range (default: the target's range)")
    tolerance: float = Field(0.01, ge=0, le=0.5, description="pickup: how close counts as caught, "
                             "as a fraction of the range")


TriggerActionName = Literal["next_seed", "prev_seed", "random_seed", "next_keyframe", "prev_keyframe", "preset"]


class TriggerParams(_Params):
    """Fire an action on an edge (button press, note hit, a signal crossing ``threshold``).

    Actions: ``next_seed`` / ``prev_seed`` (target default ``latent.seed``, ``step`` apart),
    ``random_seed``, ``next_keyframe`` / ``prev_keyframe`` (move ``latent.travel`` to the next
    keyframe), ``preset`` (recall ``preset`` over ``fade`` seconds). Must be the last filter.
    """

    type: Literal["trigger"]
    action: TriggerActionName | None = Field(None, description="what to do (default: preset when preset is given)")
    preset: str | None = Field(None, min_length=1, max_length=100, description="action preset: its name")
    fade: float = Field(0.0, ge=0, le=600, description="action preset: fade time in seconds")
    step: int = Field(1, ge=1, le=1_000_000, description="next_seed / prev_seed: how far to move")
    threshold: float = Field(0.5, description="values >= threshold are 'on'")
    edge: Literal["rising", "falling", "both"] = Field("rising", description="which change fires")

    @model_validator(mode="after")
    def _check(self) -> TriggerParams:
        action = self.action or ("preset" if self.preset is not None else None)
        if action is None:
            raise ValueError("trigger needs an action: next_seed, prev_seed, random_seed, next_keyframe, "
                             "prev_keyframe or preset (with preset: NAME)")
        if action == "preset" and self.preset is None:
            raise ValueError("action preset needs preset: NAME")
        if action != "preset" and (self.preset is not None or self.fade):
            raise ValueError(f"preset and fade are for action preset, not {action}")
        object.__setattr__(self, "action", action)
        return self

    @property
    def default_target(self) -> str | None:
        """The target used when the mapping names none (None: the action needs no target)."""
        return {"next_seed": "latent.seed", "prev_seed": "latent.seed", "random_seed": "latent.seed",
                "next_keyframe": "latent.travel", "prev_keyframe": "latent.travel"}.get(str(self.action))


FilterParams = Annotated[
    Union[RemapParams, ClipParams, WrapParams, FoldParams, CurveParams, InvertParams, DeadzoneParams,
          QuantizeParams, SmoothParams, TakeoverParams, TriggerParams],
    Field(discriminator="type")]


# ------------------------------------------------------------------------------------- runtime

@dataclass
class ChainContext:
    """What a chain needs from the engine for one pass.

    Attributes:
        dt: seconds since the previous frame; 0 for extra events within one frame.
        current: [N] the targets' current values (for takeover), or None when no filter needs them.
        fired: (row, TriggerParams) appended by trigger filters.
    """

    dt: float
    current: np.ndarray | None = None
    fired: list[tuple[int, TriggerParams]] = field(default_factory=list)


def _col(values: Sequence[float]) -> np.ndarray:
    """Per-row parameters as an [N, 1] column that broadcasts over the width."""
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


class Filter:
    """Runtime filter for a bank of rows; subclasses set ``Params`` and implement ``process``."""

    Params: ClassVar[type[_Params]]
    stateful: ClassVar[bool] = False
    needs_current: ClassVar[bool] = False
    state_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Sequence[Any], targets: Sequence[Target | None], width: int) -> None:
        self.params = list(params)
        self.targets = list(targets)
        self.rows = len(self.params)
        self.width = width

    @staticmethod
    def key(params: Any) -> str:
        """Rows whose filters have equal keys can share one bank (same code path)."""
        return params.type

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        raise NotImplementedError

    def copy_row_state(self, row: int, other: Filter, other_row: int) -> None:
        """Carry one row's state over from another bank (hot reload of an unchanged mapping)."""
        for name in self.state_names:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape[1:] == theirs.shape[1:]:
                mine[row] = theirs[other_row]


class RemapFilter(Filter):
    Params = RemapParams

    def __init__(self, params: Sequence[RemapParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._a = _col([p.in_[0] for p in params])
        self._c = _col([p.out[0] for p in params])
        self._scale = _col([(p.out[1] - p.out[0]) / (p.in_[1] - p.in_[0]) for p in params])
        self._lo = _col([min(p.out) if p.clamp else -np.inf for p in params])
        self._hi = _col([max(p.out) if p.clamp else np.inf for p in params])

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        return np.clip(self._c + (x - self._a) * self._scale, self._lo, self._hi)


class ClipFilter(Filter):
    Params = ClipParams

    def __init__(self, params: Sequence[ClipParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._lo, self._hi = _col([p.min for p in params]), _col([p.max for p in params])

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        return np.clip(x, self._lo, self._hi)


class WrapFilter(ClipFilter):
    Params = WrapParams

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        return self._lo + np.mod(x - self._lo, self._hi - self._lo)


class FoldFilter(ClipFilter):
    Params = FoldParams

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        span = self._hi - self._lo
        t = np.mod(x - self._lo, 2.0 * span)
        return self._lo + np.where(t > span, 2.0 * span - t, t)


class CurveFilter(Filter):
    Params = CurveParams

    def __init__(self, params: Sequence[CurveParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._shape = params[0].shape
        self._lo = _col([p.range[0] for p in params])
        self._span = _col([p.range[1] - p.range[0] for p in params])
        self._gamma = _col([p.gamma for p in params])
        self._k = _col([p.steepness for p in params])
        self._expk1 = np.expm1(self._k)  # e^k - 1

    @staticmethod
    def key(params: Any) -> str:
        return f"curve:{params.shape}"

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        t = np.clip((x - self._lo) / self._span, 0.0, 1.0)
        shape = self._shape
        if shape == "exponential":
            t = np.expm1(self._k * t) / self._expk1
        elif shape == "logarithmic":  # the exact inverse of exponential with the same steepness
            t = np.log1p(t * self._expk1) / self._k
        elif shape == "smoothstep":
            t = t * t * (3.0 - 2.0 * t)
        elif shape == "gamma":
            t = np.power(t, self._gamma)
        return self._lo + t * self._span


class InvertFilter(Filter):
    Params = InvertParams

    def __init__(self, params: Sequence[InvertParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._sum = _col([p.range[0] + p.range[1] for p in params])

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        return self._sum - x


class DeadzoneFilter(Filter):
    Params = DeadzoneParams

    def __init__(self, params: Sequence[DeadzoneParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._c = _col([p.center for p in params])
        self._w = _col([p.width for p in params])
        # Stretch factors that bring the range ends back (1 = plain shift without a range).
        up, down = [], []
        for p in params:
            if p.range is None:
                up.append(1.0)
                down.append(1.0)
            else:
                lo, hi = min(p.range), max(p.range)
                up.append((hi - p.center) / (hi - p.center - p.width) if hi - p.center > p.width else 1.0)
                down.append((p.center - lo) / (p.center - lo - p.width) if p.center - lo > p.width else 1.0)
        self._up, self._down = _col(up), _col(down)

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        d = x - self._c
        mag = np.maximum(np.abs(d) - self._w, 0.0)
        return self._c + np.sign(d) * mag * np.where(d > 0, self._up, self._down)


class QuantizeFilter(Filter):
    Params = QuantizeParams

    def __init__(self, params: Sequence[QuantizeParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._step, self._off = _col([p.step for p in params]), _col([p.offset for p in params])

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        # floor(v + 0.5), not np.round: numpy rounds halves to even, a fader would stick at 2.5 -> 2.
        return self._off + np.floor((x - self._off) / self._step + 0.5) * self._step


class SmoothFilter(Filter):
    """Exponential, slew-rate or one-euro smoothing; the first value passes through unchanged."""

    Params = SmoothParams
    stateful = True
    state_names = ("_y", "_dx", "_has")

    def __init__(self, params: Sequence[SmoothParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._method = params[0].method
        n = len(params)
        self._y = np.full((n, width), np.nan)      # last output (x-hat)
        self._dx = np.zeros((n, width))            # one-euro: smoothed speed (dx-hat)
        self._has = np.zeros((n, width), bool)     # seen a value yet
        self._min_cutoff = _col([p.min_cutoff if p.min_cutoff is not None else 1.0 for p in params])
        self._beta = _col([p.beta if p.beta is not None else 0.0 for p in params])
        self._d_cutoff = _col([p.d_cutoff if p.d_cutoff is not None else 1.0 for p in params])
        self._tau = _col([p.time_constant if p.time_constant is not None else 0.2 for p in params])
        self._rate_up = _col([p.rate or 0.0 for p in params])
        self._rate_down = _col([(p.rate_down or p.rate or 0.0) for p in params])

    @staticmethod
    def key(params: Any) -> str:
        return f"smooth:{params.method}"

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        valid = ~np.isnan(x)
        first = valid & ~self._has
        dt = ctx.dt
        if dt > 0:
            y_prev = self._y
            if self._method == "one_euro":
                y_new, dx_new = self._one_euro(x, y_prev, dt)
            elif self._method == "exponential":
                a = -np.expm1(-dt / self._tau)  # 1 - e^(-dt/tau), accurate for small dt
                y_new, dx_new = y_prev + a * (x - y_prev), self._dx
            else:
                d = np.clip(x - y_prev, -self._rate_down * dt, self._rate_up * dt)
                y_new, dx_new = y_prev + d, self._dx
            update = valid & self._has
            self._y = np.where(first, x, np.where(update, y_new, self._y))
            self._dx = np.where(update, dx_new, self._dx)
        else:
            # No time passes between events of one frame: only a first value is taken as is.
            self._y = np.where(first, x, self._y)
        self._has |= valid
        return np.where(valid, self._y, np.nan)

    def _one_euro(self, x: np.ndarray, y_prev: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        # Casiez, Roussel, Vogel: "1 € Filter", CHI 2012. alpha(fc) = 1 / (1 + tau / Te),
        # tau = 1 / (2 pi fc); the speed is taken against the previous *filtered* value.
        dx = (x - y_prev) / dt
        a_d = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * self._d_cutoff * dt))
        dx_hat = self._dx + a_d * (dx - self._dx)
        cutoff = self._min_cutoff + self._beta * np.abs(dx_hat)
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
        return y_prev + a * (x - y_prev), dx_hat


class TakeoverFilter(Filter):
    """Jump, pickup or scale takeover against the target's current value (``ctx.current``)."""

    Params = TakeoverParams
    stateful = True
    needs_current = True
    state_names = ("_prev_in", "_engaged", "_last_out")

    def __init__(self, params: Sequence[TakeoverParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        if width != 1:
            raise ValueError("takeover works on single values, not vectors")
        self._mode = params[0].mode
        ranges = []
        for p, t in zip(params, targets):
            if p.range is not None:
                ranges.append((min(p.range), max(p.range)))
            elif t is not None:
                ranges.append(t.value_range())
            else:
                ranges.append((0.0, 1.0))
        self._lo = np.array([r[0] for r in ranges])
        self._hi = np.array([r[1] for r in ranges])
        self._tol = np.array([p.tolerance for p in params]) * (self._hi - self._lo)
        # Integer, bool and enum targets store a rounded value: allow for that before deciding
        # that someone else moved the parameter.
        rounding = np.array([0.5 if t is not None and t.kind != "float" else 0.0 for t in targets])
        self._other_tol = self._tol + rounding + 1e-9
        n = len(params)
        self._prev_in = np.full(n, np.nan)    # control value at the previous event
        self._engaged = np.zeros(n, bool)      # pickup: the control has caught the parameter
        self._last_out = np.full(n, np.nan)   # what we last sent (to notice changes made by others)

    @staticmethod
    def key(params: Any) -> str:
        return f"takeover:{params.mode}"

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        xin = x[:, 0]
        valid = ~np.isnan(xin)
        moved = valid & (xin != self._prev_in)
        if self._mode == "jump":
            out = np.where(valid, xin, np.nan)
        else:
            if ctx.current is None:
                raise ValueError("takeover needs the targets' current values")
            cur = ctx.current
            # Someone else moved the parameter (a preset, OSC, the web page): let go of it.
            other = ~np.isnan(self._last_out) & (np.abs(cur - self._last_out) > self._other_tol)
            self._engaged &= ~other
            if self._mode == "pickup":
                out = self._pickup(xin, cur, valid, moved)
            else:
                out = self._scale(xin, cur, valid, moved)
        self._prev_in = np.where(valid, xin, self._prev_in)
        self._last_out = np.where(np.isnan(out), self._last_out, out)
        return out.reshape(-1, 1)

    def _pickup(self, xin: np.ndarray, cur: np.ndarray, valid: np.ndarray, moved: np.ndarray) -> np.ndarray:
        near = np.abs(xin - cur) <= self._tol
        prev = self._prev_in
        crossed = ~np.isnan(prev) & (np.sign(prev - cur) != np.sign(xin - cur))
        self._engaged |= moved & (near | crossed)
        return np.where(valid & self._engaged, xin, np.nan)

    def _scale(self, xin: np.ndarray, cur: np.ndarray, valid: np.ndarray, moved: np.ndarray) -> np.ndarray:
        prev = self._prev_in
        self._engaged |= moved & (np.abs(xin - cur) <= self._tol)
        first = moved & np.isnan(prev)
        up = xin > prev
        with np.errstate(divide="ignore", invalid="ignore"):
            # Move the parameter by the same fraction of *its* remaining way as the control moved
            # of its own: both reach the end of the range together.
            f_up = (xin - prev) / (self._hi - prev)
            f_down = (prev - xin) / (prev - self._lo)
            scaled = np.where(up, cur + np.nan_to_num(f_up) * (self._hi - cur),
                              cur - np.nan_to_num(f_down) * (cur - self._lo))
        out = np.where(self._engaged, xin, scaled)
        out = np.where(first & ~self._engaged, np.nan, out)  # the first message only tells where the control is
        return np.where(moved, out, np.nan)


class TriggerFilter(Filter):
    """Edge detector that reports fired actions in ``ctx.fired``; passes no value on."""

    Params = TriggerParams
    stateful = True
    state_names = ("_high",)

    def __init__(self, params: Sequence[TriggerParams], targets: Sequence[Target | None], width: int) -> None:
        super().__init__(params, targets, width)
        self._threshold = _col([p.threshold for p in params])
        self._rising = np.array([p.edge in ("rising", "both") for p in params])
        self._falling = np.array([p.edge in ("falling", "both") for p in params])
        self._high = np.zeros(len(params), bool)

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        valid = ~np.isnan(x).any(axis=1)
        high = (x >= self._threshold).any(axis=1)
        fire = valid & ((self._rising & high & ~self._high) | (self._falling & ~high & self._high))
        self._high = np.where(valid, high, self._high)
        for row in np.flatnonzero(fire):
            ctx.fired.append((int(row), self.params[row]))
        return np.full_like(x, np.nan)


FILTERS: dict[type[_Params], type[Filter]] = {
    cls.Params: cls
    for cls in (RemapFilter, ClipFilter, WrapFilter, FoldFilter, CurveFilter, InvertFilter, DeadzoneFilter,
                QuantizeFilter, SmoothFilter, TakeoverFilter, TriggerFilter)
}


def filter_key(params: Any) -> str:
    """Grouping key of one filter's parameters (same key = same code path)."""
    return FILTERS[type(params)].key(params)


class FilterChain:
    """Filters applied in order to a bank of N rows (N = 1 for a single mapping).

    Built once from each row's filter parameters (rows must have the same chain shape, see
    ``chain_key``); then ``process(x, ctx)`` runs ``x`` ([N, W], NaN = no value) through it.
    """

    def __init__(self, rows: Sequence[Sequence[Any]], targets: Sequence[Target | None], width: int = 1) -> None:
        if not rows:
            raise ValueError("a filter chain needs at least one row")
        keys = {chain_key(r) for r in rows}
        if len(keys) != 1:
            raise ValueError(f"rows of one bank need the same chain shape, got {sorted(keys)}")
        self.width = width
        self.rows = len(rows)
        self.filters: list[Filter] = []
        for i in range(len(rows[0])):
            params = [r[i] for r in rows]
            self.filters.append(FILTERS[type(params[0])](params, targets, width))
        self.needs_current = any(f.needs_current for f in self.filters)
        self.last_fired: list[tuple[int, TriggerParams]] = []

    def process(self, x: np.ndarray, ctx: ChainContext) -> np.ndarray:
        for f in self.filters:
            x = f.process(x, ctx)
        return x

    def copy_row_state(self, row: int, other: FilterChain, other_row: int) -> None:
        for mine, theirs in zip(self.filters, other.filters):
            mine.copy_row_state(row, theirs, other_row)

    # Convenience for one mapping and one value at a time (tests, tools).
    def step(self, value: float | None, dt: float, current: float | None = None) -> float | None:
        """Run one scalar through a one-row chain; None in or out means 'no value'."""
        x = np.array([[np.nan if value is None else float(value)]])
        ctx = ChainContext(dt, None if current is None else np.array([float(current)]))
        y = float(self.process(x, ctx)[0, 0])
        self.last_fired = ctx.fired
        return None if math.isnan(y) else y


def chain_key(filters: Sequence[Any]) -> tuple[str, ...]:
    """The shape of a chain: its filters' grouping keys in order."""
    return tuple(filter_key(p) for p in filters)
