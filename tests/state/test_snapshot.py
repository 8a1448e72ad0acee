"""Tests for RenderArgs resolution: travel along keyframes, smoothstep blending, mix amounts."""

from __future__ import annotations

import dataclasses

import pytest

from oscgan.state.params import ModelInfo, build_registry
from oscgan.state.snapshot import mix_amounts, render_args, resolve_seeds, travel_position

# 10 w's: coarse 0-2 (4, 8, 8 px), middle 3-6 (16, 32 px), fine 7-9 (64 px).
SG2_64 = ModelInfo("stylegan2", 16, 16, 10, 64, (4, 8, 8, 16, 16, 32, 32, 64, 64, 64))


def params(**changes: object) -> dict[str, object]:
    """Default parameter values of SG2_64, with ``changes`` applied (use '__' for '.')."""
    reg = build_registry(SG2_64)
    reg.set_many([(k.replace("__", "."), v) for k, v in changes.items()])
    return dict(reg.snapshot())


KEYS = (10, 20, 30, 40, 50, 60, 70, 80)


# -- travel off ------------------------------------------------------------------------------------


def test_one_keyframe_means_travel_off_and_the_seed_is_used() -> None:
    p = params(latent__seed=1234, latent__keyframes=KEYS, latent__travel=0.6)
    for position in (0.0, 0.5, 3.7):
        assert resolve_seeds(p, position) == ((1234,), (1.0,))
    args = render_args(p, SG2_64, travel_phase=2.5)
    assert args.seeds == (1234,) and args.seed_weights == (1.0,)


def test_latent_seed_is_ignored_while_travelling() -> None:
    p = params(latent__seed=1234, latent__keyframes=KEYS, latent__keyframes__count=3)
    assert render_args(p, SG2_64).seeds == (10,)


# -- travel position -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 5, 8])
def test_travel_zero_to_one_spans_first_to_last_keyframe(count: int) -> None:
    p0 = params(latent__keyframes=KEYS, latent__keyframes__count=count, latent__travel=0.0)
    p1 = params(latent__keyframes=KEYS, latent__keyframes__count=count, latent__travel=1.0)
    assert travel_position(p0, 0.0) == 0.0
    assert travel_position(p1, 0.0) == pytest.approx(count - 1)
    assert render_args(p0, SG2_64).seeds == (KEYS[0],)
    assert render_args(p1, SG2_64).seeds == (KEYS[count - 1],)


def test_travel_half_way_over_three_keyframes_is_the_middle_keyframe() -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=3, latent__travel=0.5)
    assert render_args(p, SG2_64).seeds == (20,)


def test_elapsed_phase_adds_to_the_manual_position() -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=4, latent__travel=0.5)
    assert travel_position(p, 0.25) == pytest.approx(0.5 * 3 + 0.25)


def test_only_the_first_count_keyframes_are_visited() -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=3)
    visited = set()
    for i in range(60):
        visited.update(resolve_seeds(p, i * 0.1)[0])
    assert visited == {10, 20, 30}


def test_phase_wraps_from_the_last_keyframe_back_to_the_first() -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=3)
    # Segment 2 runs from the last keyframe (30) back to keyframe 0 (10).
    seeds, weights = resolve_seeds(p, 2.5)
    assert seeds == (30, 10)
    assert weights == pytest.approx((0.5, 0.5))
    assert resolve_seeds(p, 3.0) == ((10,), (1.0,))
    # Whole loops later the path is where it was.
    later_seeds, later_weights = resolve_seeds(p, 1.25 + 3 * 7)
    assert later_seeds == resolve_seeds(p, 1.25)[0] == (20, 30)
    assert later_weights == pytest.approx(resolve_seeds(p, 1.25)[1])
    args = render_args(p, SG2_64, travel_phase=3 * 4 + 1.0)
    assert args.seeds == (20,)


def test_negative_position_wraps_too() -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=4)
    assert resolve_seeds(p, -1.0) == ((40,), (1.0,))


def test_equal_neighbouring_keyframes_collapse_to_one_seed() -> None:
    p = params(latent__keyframes=(7, 7, 9), latent__keyframes__count=3)
    assert resolve_seeds(p, 0.4) == ((7,), (1.0,))


@pytest.mark.parametrize("t", [0.1, 0.25, 0.5, 0.75, 0.9, 0.999])
def test_blend_weights_are_smoothstep_and_sum_to_one(t: float) -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=2)
    seeds, (wa, wb) = resolve_seeds(p, t)
    assert seeds == (10, 20)
    s = t * t * (3 - 2 * t)
    assert wb == pytest.approx(s)
    assert wa == pytest.approx(1 - s)
    assert wa + wb == pytest.approx(1.0, abs=1e-12)
    assert 0 < wb < 1


def test_smoothstep_is_symmetric_and_eases_in() -> None:
    p = params(latent__keyframes=KEYS, latent__keyframes__count=2)
    _, (_, w_small) = resolve_seeds(p, 0.1)
    _, (_, w_big) = resolve_seeds(p, 0.9)
    assert w_small < 0.1  # eases in: slower than linear near the keyframe
    assert w_small + w_big == pytest.approx(1.0)


def test_travel_mode_is_passed_through() -> None:
    p = params(latent__travel__mode="lerp_w")
    assert render_args(p, SG2_64).travel_mode == "lerp_w"


# -- mix amounts -----------------------------------------------------------------------------------


def test_mix_off_by_default() -> None:
    assert mix_amounts(params(), SG2_64) == (0.0,) * 10


def test_mix_groups_follow_layer_groups() -> None:
    groups = SG2_64.layer_groups()
    p = params(mix__coarse=0.25, mix__middle=0.5, mix__fine=1.0)
    mix = mix_amounts(p, SG2_64)
    assert len(mix) == SG2_64.num_ws
    for name, amount in (("coarse", 0.25), ("middle", 0.5), ("fine", 1.0)):
        assert groups[name]  # every group has layers in this model
        assert all(mix[i] == amount for i in groups[name])


def test_mix_takes_the_larger_of_layer_and_group() -> None:
    layer = (0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3)
    p = params(mix__coarse=0.5, mix__layer=layer)
    mix = mix_amounts(p, SG2_64)
    assert mix[0] == 0.9   # layer above group
    assert mix[1] == 0.5   # group above layer
    assert mix[2] == 0.5
    assert mix[3] == 0.0   # middle group off
    assert mix[9] == 0.3   # fine layer set alone
    assert render_args(p, SG2_64).mix == mix


def test_mix_groups_come_from_the_model() -> None:
    # A StyleGAN2 at 32 px has no fine layers: mix.fine must change nothing.
    small = ModelInfo("stylegan2", 16, 16, 8, 32, (4, 8, 8, 16, 16, 32, 32, 32))
    reg = build_registry(small)
    reg.set("mix.fine", 1.0)
    assert mix_amounts(reg.snapshot(), small) == (0.0,) * 8
    reg.set("mix.middle", 1.0)
    assert mix_amounts(reg.snapshot(), small) == (0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0)


# -- the rest of RenderArgs ------------------------------------------------------------------------


def test_render_args_copies_every_control() -> None:
    p = params(latent__z=(0.5,) * 16, mix__seed=77, truncation__psi=0.3, truncation__cutoff=4,
               noise__mode="none", noise__strength=2.0, const__corruption=1.5, const__seed=9,
               const__shift__x=0.1, const__shift__y=-0.2, const__scale=2.0, affine__rotate=30.0,
               affine__translate__x=0.25, affine__translate__y=-0.5, affine__scale=1.5)
    a = render_args(p, SG2_64)
    assert a.z_offset == (0.5,) * 16
    assert (a.mix_seed, a.psi, a.cutoff) == (77, 0.3, 4)
    assert (a.noise_mode, a.noise_strength) == ("none", 2.0)
    assert (a.const_corruption, a.const_seed, a.const_shift, a.const_scale) == (1.5, 9, (0.1, -0.2), 2.0)
    assert (a.rotate, a.translate, a.scale) == (30.0, (0.25, -0.5), 1.5)
    assert not a.uses_random_noise


def test_equal_params_give_equal_args_and_args_are_frozen() -> None:
    a, b = render_args(params(), SG2_64), render_args(params(), SG2_64)
    assert a == b and hash(a) == hash(b)
    assert render_args(params(latent__seed=3), SG2_64) != a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.psi = 0.1  # type: ignore[misc]


@pytest.mark.parametrize("mode,strength,expected", [
    ("random", 1.0, True), ("random", 0.0, False), ("const", 1.0, False), ("none", 1.0, False),
])
def test_uses_random_noise(mode: str, strength: float, expected: bool) -> None:
    args = render_args(params(noise__mode=mode, noise__strength=strength), SG2_64)
    assert args.uses_random_noise is expected
