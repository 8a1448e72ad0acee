"""Tests for the Renderer on real generators: frames, controls, latents, caches, transforms, failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from oscgan.render.convert import images_to_rgba
from oscgan.render.renderer import Renderer, RenderResult, image_transform, wrapped_resample
from oscgan.state.latents import slerp, z_from_seed

from .conftest import Rig, load_fixture


def mapped(G: nn.Module, z: np.ndarray, **kw: object) -> torch.Tensor:
    with torch.inference_mode():
        return G.mapping(torch.from_numpy(np.asarray(z, np.float32))[None], None, **kw)


def count_calls(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda m, i, o: calls.append(1))
    return calls


# -- frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which,res", [("small", 32), ("sg2", 64)])
def test_frame_is_opaque_uint8_rgba(which: str, res: int, small_G: nn.Module, sg2_G: nn.Module) -> None:
    rig = Rig(small_G if which == "small" else sg2_G)
    result = rig.renderer.render(rig.args())
    assert isinstance(result, RenderResult) and result.error is None
    rgba = result.rgba
    assert rgba is not None
    assert rgba.dtype == np.uint8 and rgba.shape == (res, res, 4)
    assert (rgba[..., 3] == 255).all()
    assert rgba[..., :3].std() > 1  # a picture, not a flat colour
    assert set(result.timings) == {"latents", "synthesis", "convert", "total"}
    assert all(v >= 0 for v in result.timings.values())


def test_same_args_give_an_identical_frame(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    args = rig.args({"latent.seed": 3, "const.corruption": 0.5, "affine.rotate": 10.0})
    a = rig.renderer.render(args).rgba
    b = rig.renderer.render(args).rgba
    c = Renderer(sg2_G, torch.device("cpu")).render(args).rgba  # a fresh renderer: caches change nothing
    assert a is not None and np.array_equal(a, b) and np.array_equal(a, c)


CONTROLS = [
    ("latent.seed", 5, 0),
    ("latent.z.0", 2.0, 0.0),
    ("truncation.psi", 0.2, 0.7),
    ("truncation.cutoff", 2, 0),
    ("mix.coarse", 1.0, 0.0),
    ("mix.middle", 0.5, 0.0),
    ("mix.layer.4", 1.0, 0.0),
    ("const.corruption", 1.0, 0.0),
    ("const.shift.x", 0.25, 0.0),
    ("const.shift.y", -0.25, 0.0),
    ("const.scale", 2.0, 1.0),
    ("affine.rotate", 45.0, 0.0),
    ("affine.translate.x", 0.3, 0.0),
    ("affine.translate.y", 0.3, 0.0),
    ("affine.scale", 1.5, 1.0),
]
# The random-weight 32 px generator has no fine layers and zero noise strengths (as NVIDIA
# initialises them), so the fine mix and noise controls are only visible on the fixture.
FIXTURE_ONLY = [
    ("mix.fine", 1.0, 0.0),
    ("noise.mode", "none", "const"),
    ("noise.strength", 2.0, 1.0),
]


@pytest.mark.parametrize("path,value,default", CONTROLS + FIXTURE_ONLY, ids=lambda v: str(v))
def test_each_control_changes_the_picture_and_resetting_restores_it(
        path: str, value: object, default: object, sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    assert rig.registry.get(path) == default
    base = rig.frame()
    changed = rig.frame({path: value})
    assert not np.array_equal(changed, base), f"{path}={value} left the picture as it was"
    restored = rig.frame({path: default})
    assert np.array_equal(restored, base), f"resetting {path} did not restore the picture"


@pytest.mark.parametrize("path,value,default", CONTROLS, ids=lambda v: str(v))
def test_controls_on_a_small_random_generator(path: str, value: object, default: object,
                                              small_G: nn.Module) -> None:
    rig = Rig(small_G)
    base = rig.frame()
    assert not np.array_equal(rig.frame({path: value}), base)
    assert np.array_equal(rig.frame({path: default}), base)


def test_mix_seed_matters_only_while_mixing(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    base = rig.frame()
    assert np.array_equal(rig.frame({"mix.seed": 42}), base)
    mixed = rig.frame({"mix.coarse": 1.0})
    assert not np.array_equal(rig.frame({"mix.seed": 43}), mixed)


def test_const_seed_matters_only_with_corruption(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    base = rig.frame()
    assert np.array_equal(rig.frame({"const.seed": 5}), base)
    corrupted = rig.frame({"const.corruption": 1.0})
    assert not np.array_equal(rig.frame({"const.seed": 6}), corrupted)


def test_random_noise_changes_every_frame(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    args = rig.args({"noise.mode": "random"})
    assert args.uses_random_noise
    a, b = rig.renderer.render(args).rgba, rig.renderer.render(args).rgba
    assert not np.array_equal(a, b)


# -- truncation ------------------------------------------------------------------------------------


def test_psi_zero_gives_the_average_picture_whatever_the_seed(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    assert rig.G.mapping.w_avg.abs().sum() > 0  # the fixture has a real average
    a = rig.frame({"truncation.psi": 0.0, "truncation.cutoff": 0, "latent.seed": 0})
    b = rig.frame({"latent.seed": 12345})
    assert np.array_equal(a, b)
    ws_avg = rig.G.mapping.w_avg.reshape(1, 1, -1).repeat(1, rig.G.num_ws, 1)
    with torch.inference_mode():
        expected = images_to_rgba(rig.G.synthesis(ws_avg, noise_mode="const"))[0].numpy()
    assert np.abs(a.astype(int) - expected).max() <= 1
    # With a cutoff only the first layers are averaged, so seeds show again.
    c = rig.frame({"truncation.cutoff": 2})
    d = rig.frame({"latent.seed": 0})
    assert not np.array_equal(c, d)


def test_truncation_equals_the_mapping_networks_own(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    z = z_from_seed(7, rig.G.z_dim)
    for cutoff in (0, 3):
        ws = rig.renderer.latents(rig.args({"latent.seed": 7, "truncation.psi": 0.5,
                                            "truncation.cutoff": cutoff}))
        ref = mapped(rig.G, z, truncation_psi=0.5, truncation_cutoff=cutoff or None)
        torch.testing.assert_close(ws, ref)
    # A cutoff of num_ws truncates everything, like cutoff 0.
    ws_all = rig.renderer.latents(rig.args({"truncation.cutoff": rig.G.num_ws}))
    torch.testing.assert_close(ws_all, mapped(rig.G, z, truncation_psi=0.5))


# -- latents ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_latents_without_truncation_or_mix_are_the_mapping_of_the_seed(seed: int, small_G: nn.Module,
                                                                       sg2_G: nn.Module) -> None:
    for G in (small_G, sg2_G):
        rig = Rig(G)
        ws = rig.renderer.latents(rig.args({"latent.seed": seed, "truncation.psi": 1.0}))
        assert ws.shape == (1, G.num_ws, G.w_dim)
        assert torch.equal(ws, mapped(G, z_from_seed(seed, G.z_dim)))


def test_z_offset_is_added_before_mapping(small_G: nn.Module) -> None:
    rig = Rig(small_G)
    offset = tuple(0.1 * i - 0.5 for i in range(16))
    ws = rig.renderer.latents(rig.args({"latent.seed": 4, "truncation.psi": 1.0, "latent.z": offset}))
    z = z_from_seed(4, 16) + np.asarray(offset, np.float32)
    torch.testing.assert_close(ws, mapped(small_G, z))


def test_mixing_takes_the_mix_seeds_layers(sg2_G: nn.Module) -> None:
    rig = Rig(sg2_G)
    w_base = mapped(sg2_G, z_from_seed(0, 64))
    w_mix = mapped(sg2_G, z_from_seed(9, 64))
    ws = rig.renderer.latents(rig.args({"truncation.psi": 1.0, "mix.seed": 9, "mix.coarse": 1.0}))
    coarse = list(rig.info.layer_groups()["coarse"])
    rest = [i for i in range(sg2_G.num_ws) if i not in coarse]
    torch.testing.assert_close(ws[:, coarse], w_mix[:, coarse])
    torch.testing.assert_close(ws[:, rest], w_base[:, rest])
    half = rig.renderer.latents(rig.args({"mix.coarse": 0.0, "mix.layer.5": 0.5}))
    torch.testing.assert_close(half[:, 5], (w_base[:, 5] + w_mix[:, 5]) / 2)
    torch.testing.assert_close(half[:, :5], w_base[:, :5])


def test_travel_blends_keyframes_in_z_or_in_w(small_G: nn.Module) -> None:
    rig = Rig(small_G)
    common = {"truncation.psi": 1.0, "latent.keyframes": (3, 9), "latent.keyframes.count": 2,
              "latent.travel": 0.5}
    args = rig.args({**common, "latent.travel.mode": "lerp_w"})
    assert args.seeds == (3, 9) and args.seed_weights == pytest.approx((0.5, 0.5))
    w3, w9 = mapped(small_G, z_from_seed(3, 16)), mapped(small_G, z_from_seed(9, 16))
    lerp_w = rig.renderer.latents(args)
    torch.testing.assert_close(lerp_w, 0.5 * w3 + 0.5 * w9)
    slerp_z = rig.renderer.latents(rig.args({"latent.travel.mode": "slerp_z"}))
    torch.testing.assert_close(slerp_z, mapped(small_G, slerp(z_from_seed(3, 16), z_from_seed(9, 16), 0.5)))
    assert not torch.allclose(lerp_w, slerp_z)
    # At a keyframe both modes are that keyframe's seed.
    at_end = rig.renderer.latents(rig.args({"latent.travel": 1.0}))
    assert torch.equal(at_end, w9)


def test_mapping_output_is_cached_per_seed(small_G: nn.Module) -> None:
    rig = Rig(small_G)
    calls = count_calls(small_G.mapping)
    rig.frame({"latent.seed": 1})
    assert len(calls) == 1
    rig.frame({"truncation.psi": 0.3, "affine.rotate": 20.0, "const.corruption": 1.0})
    assert len(calls) == 1  # nothing that decides w changed
    rig.frame({"latent.seed": 2})
    assert len(calls) == 2
    rig.frame({"latent.seed": 1})
    assert len(calls) == 2  # seed 1 still cached
    rig.frame({"mix.seed": 5, "mix.coarse": 1.0})
    assert len(calls) == 3  # the mix seed's w
    rig.frame({"mix.coarse": 0.5})
    assert len(calls) == 3
    rig.frame({"latent.z.0": 1.0})
    assert len(calls) == 4  # an offset is a different z
    rig.frame({"latent.z.0": 0.0})
    assert len(calls) == 4


# -- transforms ------------------------------------------------------------------------------------


def test_image_transform_composition() -> None:
    np.testing.assert_allclose(image_transform(0.0, (0.0, 0.0), 1.0), np.eye(3), atol=1e-15)
    m = image_transform(90.0, (0.5, -0.25), 2.0)
    np.testing.assert_allclose(m @ [1.0, 0.0, 1.0], [0.5, 1.75, 1.0], atol=1e-12)  # scale, rotate, translate


@pytest.fixture
def fmap() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn([3, 8, 6], generator=g)  # [C, H, W], not square


def test_wrapped_resample_identity_returns_the_input(fmap: torch.Tensor) -> None:
    torch.testing.assert_close(wrapped_resample(fmap, np.eye(3)), fmap, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tx,ty", [(2.0, 0.0), (0.0, 2.0), (-2.0, 2.0), (4.0, -4.0)])
def test_wrapped_resample_shift_by_whole_maps_wraps_around(tx: float, ty: float, fmap: torch.Tensor) -> None:
    inverse = np.linalg.inv(image_transform(0.0, (tx, ty), 1.0))  # -1..1 spans the map: 2 = one width
    torch.testing.assert_close(wrapped_resample(fmap, inverse), fmap, atol=1e-5, rtol=0)


def test_wrapped_resample_half_shift_is_a_roll(fmap: torch.Tensor) -> None:
    _, h, w = fmap.shape
    right = wrapped_resample(fmap, np.linalg.inv(image_transform(0.0, (1.0, 0.0), 1.0)))
    torch.testing.assert_close(right, torch.roll(fmap, w // 2, dims=2), atol=1e-5, rtol=0)
    down = wrapped_resample(fmap, np.linalg.inv(image_transform(0.0, (0.0, 1.0), 1.0)))
    torch.testing.assert_close(down, torch.roll(fmap, h // 2, dims=1), atol=1e-5, rtol=0)
    # A quarter shift on a map 8 high moves by exactly 2 rows.
    quarter = wrapped_resample(fmap, np.linalg.inv(image_transform(0.0, (0.0, 0.5), 1.0)))
    torch.testing.assert_close(quarter, torch.roll(fmap, 2, dims=1), atol=1e-5, rtol=0)


def test_wrapped_resample_rotation_by_90_degrees_is_rot90() -> None:
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 4, 4)
    out = wrapped_resample(x, np.linalg.inv(image_transform(90.0, (0.0, 0.0), 1.0)))
    # Rows grow downwards, so +90 degrees (counter-clockwise with y up) turns the map clockwise on screen.
    torch.testing.assert_close(out, torch.rot90(x, -1, dims=(1, 2)), atol=1e-4, rtol=0)


def test_wrapped_resample_keeps_dtype_and_shape() -> None:
    x = torch.randn([2, 4, 4], dtype=torch.float64)
    out = wrapped_resample(x, np.linalg.inv(image_transform(30.0, (0.1, 0.2), 1.3)))
    assert out.dtype == torch.float64 and out.shape == x.shape


def test_const_shift_by_half_rolls_the_learned_constant(small_G: nn.Module) -> None:
    rig = Rig(small_G)
    base = rig.renderer._base_const  # [C, 4, 4]
    const = rig.renderer._const_for(rig.args({"const.shift.x": 0.5}))
    assert const is not None
    torch.testing.assert_close(const, torch.roll(base, 2, dims=2), atol=1e-5, rtol=0)
    assert rig.renderer._const_for(rig.args({"const.shift.x": 0.0})) is None  # untouched: the model's own


# -- output size -----------------------------------------------------------------------------------


def test_out_size_stretch(small_G: nn.Module) -> None:
    frame = Rig(small_G, out_size=(48, 40)).frame()
    assert frame.shape == (40, 48, 4) and frame.dtype == np.uint8
    assert (frame[..., 3] == 255).all()


def test_out_size_letterbox_has_black_bars(small_G: nn.Module) -> None:
    native = Rig(small_G).frame()
    wide = Rig(small_G, out_size=(64, 32), fit="letterbox").frame()
    assert wide.shape == (32, 64, 4)
    assert (wide[:, :16, :3] == 0).all() and (wide[:, 48:, :3] == 0).all()
    assert (wide[..., 3] == 255).all()
    assert np.abs(wide[:, 16:48].astype(int) - native).max() <= 1  # the picture itself unscaled
    tall = Rig(small_G, out_size=(16, 40), fit="letterbox").frame()
    assert tall.shape == (40, 16, 4)
    assert (tall[:12, :, :3] == 0).all() and (tall[28:, :, :3] == 0).all()
    assert tall[12:28, :, :3].std() > 1


# -- failures --------------------------------------------------------------------------------------


def _raise(exc: BaseException):
    def fail(*args: object, **kwargs: object) -> torch.Tensor:
        raise exc
    return fail


@pytest.mark.parametrize("exc,name", [
    (RuntimeError("boom"), "RuntimeError: boom"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "OutOfMemoryError"),
    (ValueError("bad shape"), "ValueError: bad shape"),
])
def test_a_failing_synthesis_is_reported_not_raised(exc: BaseException, name: str, small_G: nn.Module,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(small_G)
    good = rig.frame()
    monkeypatch.setattr(small_G.synthesis, "forward", _raise(exc))
    result = rig.renderer.render(rig.args())
    assert result.rgba is None
    assert result.error is not None and name in result.error
    assert "total" in result.timings
    monkeypatch.undo()
    assert np.array_equal(rig.frame(), good)  # the renderer is fine afterwards


def test_a_failing_mapping_is_reported_not_raised(small_G: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(small_G)
    monkeypatch.setattr(small_G.mapping, "forward", _raise(RuntimeError("mapping broke")))
    result = rig.renderer.render(rig.args({"latent.seed": 99}))
    assert result.rgba is None and result.error == "RuntimeError: mapping broke"
    monkeypatch.undo()
    # The failure was not cached as a w: the seed renders once the network works again.
    assert rig.renderer.render(rig.args()).error is None


# -- StyleGAN3 -------------------------------------------------------------------------------------


@pytest.fixture
def sg3_G() -> nn.Module:
    from oscgan.models.errors import ModelLoadError

    try:
        return load_fixture("sg3t_64.pkl")
    except (ImportError, ModelLoadError) as e:
        pytest.skip(f"StyleGAN3 fixture does not load yet: {e}")


def _file_transform() -> torch.Tensor:
    # As if the file came with a rotated and shifted input (NVIDIA's tools save such transforms).
    a = math.radians(10.0)
    return torch.tensor([[math.cos(a), math.sin(a), 0.1],
                         [-math.sin(a), math.cos(a), -0.05],
                         [0.0, 0.0, 1.0]], dtype=torch.float32)


def test_sg3_rotate_composes_with_the_files_transform(sg3_G: nn.Module) -> None:
    buf = sg3_G.synthesis.input.transform
    buf.copy_(_file_transform())
    original = buf.clone()
    rig = Rig(sg3_G)
    base = rig.frame()
    assert torch.equal(buf, original)
    rotated = rig.frame({"affine.rotate": 30.0})
    expected = original.double().numpy() @ np.linalg.inv(image_transform(30.0, (0.0, 0.0), 1.0))
    np.testing.assert_allclose(buf.numpy(), expected, atol=1e-6)
    assert not np.array_equal(rotated, base)
    moved = rig.frame({"affine.rotate": 0.0, "affine.translate.x": 0.25})
    expected = original.double().numpy() @ np.linalg.inv(image_transform(0.0, (0.25, 0.0), 1.0))
    np.testing.assert_allclose(buf.numpy(), expected, atol=1e-6)
    assert not np.array_equal(moved, base)
    restored = rig.frame({"affine.translate.x": 0.0})
    assert torch.equal(buf, original)  # exactly the file's buffer again
    assert np.array_equal(restored, base)


def test_sg3_const_corruption_changes_the_picture(sg3_G: nn.Module) -> None:
    rig = Rig(sg3_G)
    base = rig.frame()
    corrupted = rig.frame({"const.corruption": 2.0})
    assert not np.array_equal(corrupted, base)
    assert np.array_equal(rig.frame({"const.corruption": 0.0}), base)
    # Turning the same corruption on again gives the same picture again (it once stayed clean).
    assert np.array_equal(rig.frame({"const.corruption": 2.0}), corrupted)
    assert not np.array_equal(rig.frame({"const.seed": 3}), corrupted)
    assert np.array_equal(rig.frame({"const.corruption": 0.0, "const.seed": 0}), base)
