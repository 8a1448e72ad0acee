"""Filters alone: each kind, one-euro against the paper, takeover modes, triggers, banks of many rows."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from oscgan.mapping.filters import ChainContext, FilterChain, FilterParams, chain_key

PARAMS = TypeAdapter(FilterParams)


def p(**kw):
    return PARAMS.validate_python(kw)


def chain(*filters: dict, targets=None) -> FilterChain:
    return FilterChain([[p(**f) for f in filters]], targets or [None])


def run(c: FilterChain, values, dt: float = 1 / 30):
    return [c.step(v, dt) for v in values]


# ---------------------------------------------------------------------------------------- plain


def test_remap_is_linear_clamps_and_runs_backwards() -> None:
    c = chain({"type": "remap", "in": [0, 127], "out": [0, 1]})
    assert run(c, [0, 63.5, 127, 200, -5]) == pytest.approx([0, 0.5, 1, 1, 0])
    c = chain({"type": "remap", "in": [0, 1], "out": [1, -1], "clamp": False})
    assert run(c, [0, 0.25, 1, 2]) == pytest.approx([1, 0.5, -1, -3])


def test_clip_wrap_fold() -> None:
    assert run(chain({"type": "clip", "min": -1, "max": 1}), [-3, 0.5, 9]) == [-1, 0.5, 1]
    assert run(chain({"type": "wrap", "min": 0, "max": 360}), [370, -10, 720, 359]) == pytest.approx([10, 350, 0, 359])
    assert run(chain({"type": "fold", "min": 0, "max": 1}), [0.25, 1.25, 2.25, -0.25, 3.0]) == \
        pytest.approx([0.25, 0.75, 0.25, 0.25, 1.0])


def test_curves() -> None:
    lin = chain({"type": "curve", "shape": "linear"})
    assert run(lin, [0, 0.3, 1, 1.5]) == pytest.approx([0, 0.3, 1, 1])  # clipped to the range
    ss = chain({"type": "curve", "shape": "smoothstep"})
    assert run(ss, [0, 0.25, 0.5, 1]) == pytest.approx([0, 0.15625, 0.5, 1])
    g = chain({"type": "curve", "shape": "gamma", "gamma": 2})
    assert run(g, [0.5, 0.9]) == pytest.approx([0.25, 0.81])
    exp = chain({"type": "curve", "shape": "exponential", "steepness": 4})
    log = chain({"type": "curve", "shape": "logarithmic", "steepness": 4})
    xs = [0.0, 0.1, 0.5, 0.9, 1.0]
    ys = run(exp, xs)
    assert ys[0] == 0 and ys[-1] == pytest.approx(1) and ys[2] < 0.5  # slow start
    assert run(log, ys) == pytest.approx(xs)  # logarithmic is its exact inverse
    ranged = chain({"type": "curve", "shape": "gamma", "gamma": 2, "range": [-30, 30]})
    assert run(ranged, [0]) == pytest.approx([-30 + 0.25 * 60])


def test_invert_deadzone_quantize() -> None:
    assert run(chain({"type": "invert"}), [0, 0.25, 1]) == pytest.approx([1, 0.75, 0])
    assert run(chain({"type": "invert", "range": [-10, 30]}), [-10, 0]) == pytest.approx([30, 20])
    dz = chain({"type": "deadzone", "center": 0.5, "width": 0.1})
    assert run(dz, [0.45, 0.55, 0.7, 0.2]) == pytest.approx([0.5, 0.5, 0.6, 0.3])
    dzr = chain({"type": "deadzone", "center": 0.5, "width": 0.1, "range": [0, 1]})
    assert run(dzr, [0.0, 1.0, 0.55, 0.75]) == pytest.approx([0.0, 1.0, 0.5, 0.5 + 0.15 * 0.5 / 0.4])
    q = chain({"type": "quantize", "step": 0.25})
    assert run(q, [0.1, 0.125, 0.37, -0.13]) == pytest.approx([0, 0.25, 0.25, -0.25])
    q = chain({"type": "quantize", "step": 15, "offset": 5})
    assert run(q, [12, 13, 50]) == pytest.approx([5, 20, 50])


def test_no_value_passes_through_as_none() -> None:
    c = chain({"type": "remap", "in": [0, 1], "out": [0, 2]}, {"type": "smooth", "method": "exponential"})
    assert c.step(None, 0.1) is None
    assert c.step(0.5, 0.1) == pytest.approx(1.0)  # first value passes through smoothing
    assert c.step(None, 0.1) is None


# ------------------------------------------------------------------------------------ smoothing


class PaperOneEuro:
    """The 1 € filter exactly as in Casiez, Roussel & Vogel, CHI 2012 (Algorithm 1), one value at a time.

    alpha(Te, fc) = 1 / (1 + tau / Te), tau = 1 / (2 pi fc); the derivative is estimated against
    the previous *filtered* value, smoothed with cutoff d_cutoff; the adaptive cutoff is
    fc = min_cutoff + beta * |dx_hat|. The first sample is returned as is (dx_hat starts at 0).
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x_hat: float | None = None
        self.dx_hat = 0.0

    @staticmethod
    def alpha(te: float, cutoff: float) -> float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, x: float, te: float) -> float:
        if self.x_hat is None:
            self.x_hat = x
            return x
        dx = (x - self.x_hat) / te
        a_d = self.alpha(te, self.d_cutoff)
        self.dx_hat = a_d * dx + (1.0 - a_d) * self.dx_hat
        fc = self.min_cutoff + self.beta * abs(self.dx_hat)
        a = self.alpha(te, fc)
        self.x_hat = a * x + (1.0 - a) * self.x_hat
        return self.x_hat


@pytest.mark.parametrize("min_cutoff,beta,d_cutoff", [(1.0, 0.0, 1.0), (0.5, 0.7, 1.0), (2.0, 0.05, 3.0)])
def test_one_euro_matches_the_paper(min_cutoff: float, beta: float, d_cutoff: float) -> None:
    rng = random.Random(4)
    c = chain({"type": "smooth", "method": "one_euro", "min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff})
    ref = PaperOneEuro(min_cutoff, beta, d_cutoff)
    t = 0.0
    for i in range(600):
        te = rng.choice([1 / 60, 1 / 30, 1 / 24, 0.05])  # uneven frame times
        t += te
        x = math.sin(t * 2.0) + (3.0 if i > 300 else 0.0) + rng.gauss(0, 0.05)  # noise and a jump
        assert c.step(x, te) == pytest.approx(ref(x, te), rel=1e-12, abs=1e-12)


def test_one_euro_defaults_and_behaviour() -> None:
    c = chain({"type": "smooth", "method": "one_euro"})  # min_cutoff 1, beta 0
    ys = run(c, [0.0] + [1.0] * 30)  # a step, one second at 30 fps
    assert ys[1] < 0.25 and 0.9 < ys[-1] < 1.0
    fast = chain({"type": "smooth", "method": "one_euro", "beta": 5.0})
    ys_fast = run(fast, [0.0] + [1.0] * 30)
    assert ys_fast[3] > ys[3]  # speed raises the cutoff: less lag


def test_exponential_time_constant_and_dt() -> None:
    c = chain({"type": "smooth", "method": "exponential", "time_constant": 0.5})
    c.step(0.0, 0.1)
    for _ in range(25):  # 0.5 s in 20 ms steps
        y = c.step(1.0, 0.02)
    assert y == pytest.approx(1 - math.exp(-1))
    c2 = chain({"type": "smooth", "method": "exponential", "time_constant": 0.5})
    c2.step(0.0, 0.1)
    assert c2.step(1.0, 0.5) == pytest.approx(1 - math.exp(-1))  # frame rate does not matter


def test_slew_limits_speed_up_and_down() -> None:
    c = chain({"type": "smooth", "method": "slew", "rate": 2.0, "rate_down": 0.5})
    c.step(0.0, 0.1)
    assert c.step(1.0, 0.1) == pytest.approx(0.2)
    assert c.step(1.0, 0.2) == pytest.approx(0.6)
    assert c.step(1.0, 1.0) == pytest.approx(1.0)
    assert c.step(0.0, 0.4) == pytest.approx(0.8)


def test_zero_dt_lets_no_time_pass() -> None:
    c = chain({"type": "smooth", "method": "slew", "rate": 1.0})
    c.step(0.0, 0.1)
    assert c.step(1.0, 0.0) == 0.0  # an extra event within the same frame
    assert c.step(1.0, 0.5) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------- takeover


def test_takeover_jump_passes_through() -> None:
    c = chain({"type": "takeover", "mode": "jump"})
    assert [c.step(v, 0.03, current=0.9) for v in (0.1, 0.2)] == [0.1, 0.2]


def test_takeover_pickup_waits_for_the_crossing_and_lets_go_when_others_move() -> None:
    c = chain({"type": "takeover", "mode": "pickup"})
    cur = 0.5
    assert c.step(0.1, 0.03, cur) is None
    assert c.step(0.3, 0.03, cur) is None  # still below: nothing happens
    y = c.step(0.6, 0.03, cur)  # crossed 0.5: takes over
    assert y == 0.6
    cur = y
    assert c.step(0.7, 0.03, cur) == 0.7
    cur = 0.2  # a preset (or OSC) moved the parameter
    assert c.step(0.75, 0.03, cur) is None  # the control lets go
    assert c.step(0.4, 0.03, cur) is None
    assert c.step(0.15, 0.03, cur) == 0.15  # crossed downwards: caught again


def test_takeover_pickup_catches_when_close() -> None:
    c = chain({"type": "takeover", "mode": "pickup", "tolerance": 0.05})
    assert c.step(0.48, 0.03, 0.5) == 0.48  # within 5 % of the range: engaged at once


def test_takeover_pickup_uses_the_target_range_for_tolerance() -> None:
    from oscgan.mapping.targets import resolve_target
    from oscgan.state.params import build_registry

    from .conftest import INFO

    target = resolve_target("affine.rotate", build_registry(INFO))  # -360..360: 1 % = 7.2 deg
    c = chain({"type": "takeover", "mode": "pickup"}, targets=[target])
    assert c.step(5.0, 0.03, 0.0) == 5.0


def test_takeover_scale_converges_to_the_control() -> None:
    c = chain({"type": "takeover", "mode": "scale"})
    cur = 0.8
    assert c.step(0.2, 0.03, cur) is None  # first message: only where the control is
    y = c.step(0.3, 0.03, cur)
    assert y == pytest.approx(0.8 + (0.1 / 0.8) * 0.2)  # same direction, proportional
    cur = y
    for v in (0.5, 0.7, 0.9):
        y = c.step(v, 0.03, cur)
        assert y > cur
        cur = y
    assert c.step(1.0, 0.03, cur) == pytest.approx(1.0)  # both reach the top together
    y = c.step(0.5, 0.03, 1.0)
    assert y == pytest.approx(0.5)  # once they met, the control drives directly
    c2 = chain({"type": "takeover", "mode": "scale"})
    c2.step(0.6, 0.03, 0.3)
    assert c2.step(0.0, 0.03, 0.3) == pytest.approx(0.0)  # down to the bottom together


# -------------------------------------------------------------------------------------- trigger


def fire(c: FilterChain, values, dt=0.03) -> int:
    n = 0
    for v in values:
        assert c.step(v, dt) is None  # a trigger passes no value on
        n += len(c.last_fired)
    return n


def test_trigger_edges_and_threshold() -> None:
    assert fire(chain({"type": "trigger", "action": "next_seed"}), [0, 1, 1, 0, 1, 0]) == 2
    assert fire(chain({"type": "trigger", "action": "next_seed", "edge": "falling"}), [0, 1, 1, 0, 1, 0]) == 2
    assert fire(chain({"type": "trigger", "action": "next_seed", "edge": "both"}), [0, 1, 0, 1]) == 3
    assert fire(chain({"type": "trigger", "action": "next_seed", "threshold": 100}), [0, 64, 127, 0, 127]) == 2
    assert fire(chain({"type": "trigger", "action": "next_seed"}), [1]) == 1  # first press counts


# ----------------------------------------------------------------------------------------- banks


def test_a_bank_of_rows_equals_each_row_alone() -> None:
    rows = [[p(type="remap", **{"in": [0, 127]}, out=[lo, hi]),
             p(type="smooth", method="one_euro", min_cutoff=mc, beta=b)]
            for lo, hi, mc, b in [(0, 1, 1.0, 0.0), (-1, 1, 0.3, 0.5), (2, 5, 4.0, 0.01)]]
    bank = FilterChain(rows, [None] * 3)
    singles = [FilterChain([r], [None]) for r in rows]
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.uniform(0, 127, size=(3, 1))
        x[rng.random(3) < 0.3] = np.nan  # rows without a value this frame
        out = bank.process(x, ChainContext(1 / 30))
        for i, s in enumerate(singles):
            expect = s.process(x[i:i + 1], ChainContext(1 / 30))
            np.testing.assert_allclose(out[i:i + 1], expect, rtol=1e-12, equal_nan=True)


def test_chain_shape_groups_rows() -> None:
    a = [p(type="smooth", method="one_euro"), p(type="curve", shape="gamma")]
    b = [p(type="smooth", method="one_euro", beta=1.0), p(type="curve", shape="gamma", gamma=3)]
    c = [p(type="smooth", method="slew", rate=1), p(type="curve", shape="gamma")]
    assert chain_key(a) == chain_key(b) != chain_key(c)
    with pytest.raises(ValueError, match="same chain shape"):
        FilterChain([a, c], [None, None])


def test_vector_rows_are_filtered_elementwise() -> None:
    bank = FilterChain([[p(type="remap", **{"in": [0, 1]}, out=[0, 10])]], [None], width=4)
    out = bank.process(np.array([[0.0, 0.1, 0.5, 1.0]]), ChainContext(0.03))
    np.testing.assert_allclose(out, [[0, 1, 5, 10]])


# ---------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("params,message", [
    ({"type": "remap", "in": [1, 1], "out": [0, 1]}, "two different numbers"),
    ({"type": "clip", "min": 2, "max": 1}, "min must be below max"),
    ({"type": "smooth", "method": "one_euro", "time_constant": 0.2}, "time_constant is a setting of method exponential"),
    ({"type": "smooth", "method": "slew"}, "needs rate"),
    ({"type": "trigger"}, "trigger needs an action"),
    ({"type": "trigger", "action": "preset"}, "needs preset: NAME"),
    ({"type": "trigger", "action": "next_seed", "fade": 2}, "for action preset"),
    ({"type": "deadzone", "center": 0.5, "width": 0.6, "range": [0, 1]}, "covers the whole range"),
    ({"type": "quantize", "step": 0}, "greater than 0"),
])
def test_bad_parameters_are_rejected(params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        p(**params)


def test_trigger_preset_shorthand() -> None:
    t = p(type="trigger", preset="intro", fade=2)
    assert t.action == "preset" and t.default_target is None
    assert p(type="trigger", action="next_keyframe").default_target == "latent.travel"
