"""The plain-float fast path of vector coercion gives exactly what the general path gives."""

from __future__ import annotations

import math

import pytest

from oscgan.state.params import ParamSpec, ParamValueError, _coerce

SPEC = ParamSpec("latent.z", "vector", (0.0,) * 8, -4.0, 4.0, length=8)
OPEN = ParamSpec("open.v", "vector", (0.0,) * 4, None, None, length=4)


@pytest.mark.parametrize("values", [
    (0.5, -1.0, 3.99, 4.0, -4.0, 0.0, 1e-9, -0.0),
    (9.0, -9.0, 0.5),          # clamped, prefix
    (1.0,),
])
def test_fast_path_matches_the_general_path(values) -> None:
    fast = _coerce(SPEC, None, values)
    slow = _coerce(SPEC, None, [v if i else int(v) if v.is_integer() else v for i, v in enumerate(values)])
    assert fast == slow
    assert all(type(x) is float for x in fast[0])


def test_fast_path_clamp_flag_and_unbounded() -> None:
    assert _coerce(SPEC, None, (5.0, 0.0))[1] is True
    assert _coerce(SPEC, None, (4.0, -4.0))[1] is False
    assert _coerce(OPEN, None, (1e300, -1e300)) == ((1e300, -1e300), False)


@pytest.mark.parametrize("bad", [(math.nan, 0.0), (math.inf,), (1e308, 1e308)])
def test_non_finite_values_take_the_checked_path(bad) -> None:
    if all(math.isfinite(b) for b in bad):
        assert _coerce(SPEC, None, bad) == ((4.0, 4.0), True)  # an overflowing sum is still fine
    else:
        with pytest.raises(ParamValueError, match="finite"):
            _coerce(SPEC, None, bad)
