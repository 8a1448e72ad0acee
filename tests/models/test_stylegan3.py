"""Our StyleGAN3 (T and R) against NVIDIA's outputs, its design against the files, and its ops."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from oscgan.models.filtered_lrelu import filtered_lrelu, fir_downsample, fir_upsample
from oscgan.models.loader import load_generator
from oscgan.models.ops import bias_act, upfirdn2d
from oscgan.models.stylegan3 import (
    Generator,
    SynthesisLayer,
    design_lowpass_filter,
    make_input_transform,
)

from .conftest import FIXTURES, reference, rel_err

NAMES = ["sg3t_64", "sg3r_64"]
CASES = [(1.0, None), (0.5, None), (0.7, 4)]
ROTATIONS = [(30.0, 0.1, -0.2), (-90.0, 0.0, 0.0)]


@pytest.fixture(scope="module", params=NAMES)
def sg3(request):
    G = load_generator(FIXTURES / f"{request.param}.pkl", device="cpu")
    return request.param, G, reference(request.param)


def _file_record(name: str):
    from oscgan.models.pickle_reader import read_network_pickle

    return read_network_pickle(FIXTURES / f"{name}.pkl")["G_ema"]


# ---------------------------------------------------------------------------------------------
# Exactness against NVIDIA's outputs.


@pytest.mark.parametrize("psi,cutoff", CASES)
def test_mapping_and_synthesis_match_nvidia(sg3, psi, cutoff):
    _, G, ref = sg3
    key = f"psi{psi}_cut{cutoff}"
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"]),
                       truncation_psi=psi, truncation_cutoff=cutoff)
        img = G.synthesis(ws, noise_mode="const")
    assert rel_err(ws.numpy(), ref["ws_" + key]) < 1e-4
    assert rel_err(img.numpy(), ref["img_" + key]) < 1e-3


def test_style_mixing_matches_nvidia(sg3):
    _, G, ref = sg3
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref["z"]), None)
        ws[:, 4:] = ws.flip(0)[:, 4:]
        img = G.synthesis(ws)
    assert rel_err(ws.numpy(), ref["ws_mix"]) < 1e-4
    assert rel_err(img.numpy(), ref["img_mix"]) < 1e-3


@pytest.mark.parametrize("angle,tx,ty", ROTATIONS)
def test_input_transform_matches_nvidia(sg3, angle, tx, ty):
    _, G, ref = sg3
    suffix = f"{angle}_{tx}_{ty}"
    matrix = ref[f"transform_{suffix}"]
    np.testing.assert_allclose(make_input_transform(angle, (tx, ty)).numpy(), matrix, atol=1e-6)
    transform = G.synthesis.input.transform
    saved = transform.clone()
    try:
        with torch.no_grad():
            transform.copy_(torch.from_numpy(matrix))
            img = G.synthesis(G.mapping(torch.from_numpy(ref["z"]), None))
    finally:
        with torch.no_grad():
            transform.copy_(saved)
    assert rel_err(img.numpy(), ref[f"img_rot{suffix}"]) < 1e-3


def test_generator_call_equals_reference(sg3):
    _, G, ref = sg3
    with torch.no_grad():
        img = G(torch.from_numpy(ref["z"]), None, truncation_psi=0.7, truncation_cutoff=4)
    assert rel_err(img.numpy(), ref["img_psi0.7_cut4"]) < 1e-3


def test_batch_of_one_path_matches_reference(sg3):
    """N = 1 folds the styles into the weight; N > 1 scales activations: both must agree."""
    _, G, ref = sg3
    ws = torch.from_numpy(ref["ws_psi1.0_cutNone"])
    with torch.no_grad():
        singles = torch.cat([G.synthesis(ws[i : i + 1]) for i in range(ws.shape[0])])
    assert rel_err(singles.numpy(), ref["img_psi1.0_cutNone"]) < 1e-3


def test_memory_layouts_agree(sg3):
    _, G, ref = sg3
    ws = torch.from_numpy(ref["ws_psi0.5_cutNone"])
    try:
        with torch.no_grad():
            G.synthesis.channels_last = True
            a = G.synthesis(ws)
            G.synthesis.channels_last = False
            b = G.synthesis(ws)
    finally:
        G.synthesis.channels_last = None
    assert a.is_contiguous() and b.is_contiguous()
    assert rel_err(a.numpy(), ref["img_psi0.5_cutNone"]) < 1e-3
    assert rel_err(b.numpy(), ref["img_psi0.5_cutNone"]) < 1e-3


def test_inference_leaves_emas_alone(sg3):
    _, G, ref = sg3
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad():
        G(torch.from_numpy(ref["z"]), None)
    for key, value in G.state_dict().items():
        assert torch.equal(value, before[key]), key


# ---------------------------------------------------------------------------------------------
# Design against the files.


def test_state_dict_names_equal_the_file(sg3):
    name, G, _ = sg3
    record = _file_record(name)
    assert list(G.state_dict()) == list(record.state_dict())


def test_layer_names_and_design_match_the_file(sg3):
    name, G, _ = sg3
    syn = _file_record(name).children["synthesis"]
    assert G.synthesis.layer_names == syn.attrs["layer_names"]
    assert G.synthesis.input.design_kwargs() == pytest.approx(syn.children["input"].init_kwargs)
    for layer_name in G.synthesis.layer_names:
        layer: SynthesisLayer = getattr(G.synthesis, layer_name)
        file_layer = syn.children[layer_name]
        mine = layer.design_kwargs()
        for key, value in file_layer.init_kwargs.items():
            assert mine[key] == pytest.approx(value), (layer_name, key)
        for attr in ("padding", "up_factor", "up_taps", "down_factor", "down_taps", "down_radial",
                     "tmp_sampling_rate", "conv_kernel"):
            assert getattr(layer, attr) == file_layer.attrs[attr], (layer_name, attr)


def test_filter_design_matches_the_file(sg3):
    """Filters designed from the constructor kwargs equal the buffers the file holds."""
    name, G, _ = sg3
    file_state = _file_record(name).state_dict()
    fresh = Generator(**G.init_kwargs)
    names = fresh.derived_buffer_names()
    assert len(names) == 28  # up and down filter of 14 layers; ToRGB has none
    assert all(n.endswith(("up_filter", "down_filter")) for n in names)
    ours = fresh.state_dict()
    for key in names:
        assert ours[key].shape == file_state[key].shape, key
        torch.testing.assert_close(ours[key], file_state[key], rtol=0, atol=1e-6)


def test_radial_filters_of_config_r(sg3):
    name, G, _ = sg3
    radial = [getattr(G.synthesis, n).down_radial for n in G.synthesis.layer_names]
    if name == "sg3t_64":
        assert not any(radial)
        return
    # Every layer but the two critically sampled ones and ToRGB uses the 2D jinc filter.
    assert radial == [True] * 12 + [False] * 3
    for layer_name in G.synthesis.layer_names[:12]:
        f = getattr(G.synthesis, layer_name).down_filter
        assert f.shape == (12, 12)
        torch.testing.assert_close(f, f.t())
        torch.testing.assert_close(f, f.flip([0, 1]))


def test_layers_report_effective_resolution(sg3):
    _, G, _ = sg3
    layers = G.layers()
    assert [l.index for l in layers] == list(range(G.num_ws)) and G.num_ws == 16
    assert layers[0].name == "input"
    assert [l.name for l in layers[1:]] == G.synthesis.layer_names
    assert [l.resolution for l in layers] == [4, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 51, 64, 64, 64]


def test_init_kwargs_are_json_and_rebuild(sg3):
    _, G, _ = sg3
    kwargs = json.loads(json.dumps(G.init_kwargs))
    assert kwargs == G.init_kwargs
    again = Generator(**kwargs)
    assert list(again.state_dict()) == list(G.state_dict())
    assert G.architecture == "stylegan3"
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (64, 0, 64, 64, 3)


# ---------------------------------------------------------------------------------------------
# Fresh networks (no file).


def small(**kw):
    base = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                channel_base=512, channel_max=16, num_fp16_res=0)
    base.update(kw)
    torch.manual_seed(0)
    return Generator(**base).eval()


@pytest.mark.parametrize("radial", [False, True])
def test_fresh_256_generator_builds_and_runs(radial):
    extra = dict(conv_kernel=1, use_radial_filters=True) if radial else {}
    torch.manual_seed(0)
    G = Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=256, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=2048, channel_max=32, **extra).eval()
    names = G.synthesis.layer_names
    assert len(names) == 15 and G.num_ws == 16
    assert [int(n.split("_")[1]) for n in names] == [36, 36, 36, 52, 52, 84, 84, 148, 148, 148,
                                                     276, 276, 276, 256, 256]
    # num_fp16_res=4 marks the layers sampled at 32 px and above (of 256).
    assert [getattr(G.synthesis, n).use_fp16 for n in names] == [False] * 3 + [True] * 12
    with torch.no_grad():
        img = G(torch.randn(2, 64), None)
    assert img.shape == (2, 3, 256, 256) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and img.std() > 0


def test_layer_names_at_256_px():
    """channel_base 32768 at 256 px: sizes s + 20 (last two 256), channels min(16384 / f_c, 512)."""
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=256, img_channels=3,
                  channel_base=32768, channel_max=512)
    assert G.synthesis.layer_names == [
        "L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512", "L4_52_512", "L5_84_512",
        "L6_84_512", "L7_148_512", "L8_148_512", "L9_148_362", "L10_276_256", "L11_276_181",
        "L12_276_128", "L13_256_128", "L14_256_3"]


def test_conditional_mapping_uses_the_label():
    G = small(c_dim=5)
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn(1, 16)
    with torch.no_grad():
        assert not torch.allclose(G.mapping(z, torch.eye(5)[:1]), G.mapping(z, torch.eye(5)[1:2]))
    with pytest.raises(ValueError, match="c must be"):
        G.mapping(z, None)


def test_truncation_cutoff_and_update_emas():
    G = small()
    z = torch.randn(3, 16)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        plain = G.mapping(z, None)
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
        torch.testing.assert_close(cut[:, :3], G.mapping.w_avg.lerp(plain[:, :3], 0.5))
        torch.testing.assert_close(cut[:, 3:], plain[:, 3:])
        first = G.synthesis.synthesis_layers()[0]
        ema = first.magnitude_ema.clone()
        G.synthesis(plain, update_emas=True)
        assert not torch.equal(ema, first.magnitude_ema)


def test_bad_inputs_are_rejected():
    G = small()
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(torch.randn(1, G.num_ws, 16), noise_mode="loud")
    with pytest.raises(ValueError, match="z must be"):
        G.mapping(torch.randn(1, 15), None)
    with torch.no_grad():
        for mode in ("const", "random", "none"):  # accepted and ignored: StyleGAN3 has no noise
            G.synthesis(torch.randn(1, G.num_ws, 16), noise_mode=mode)


def test_cached_weight_statistics_follow_in_place_edits():
    G = small().requires_grad_(False)
    ws = torch.randn(1, G.num_ws, 16)
    with torch.no_grad():
        G.synthesis(ws)  # fills the caches
        layer = G.synthesis.synthesis_layers()[1]
        layer.weight[:, :4] *= 3.0
        layer.magnitude_ema.fill_(2.0)
        cached = G.synthesis(ws)
    fresh = small()
    fresh.load_state_dict(G.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(cached, fresh.synthesis(ws))


def test_fp16_layers_run_in_float32_on_cpu():
    G = small(num_fp16_res=2)
    assert any(l.use_fp16 for l in G.synthesis.synthesis_layers())
    ref = small(num_fp16_res=0)
    ref.load_state_dict(G.state_dict())
    z = torch.randn(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(G(z, None), ref(z, None))


def test_float16_arithmetic_stays_close(monkeypatch):
    """The float16 path (CUDA only in production) run on the CPU against float32."""
    G = small(num_fp16_res=2)
    ws = G.mapping(torch.randn(2, 16), None).detach()
    with torch.no_grad():
        ref = G.synthesis(ws)
        monkeypatch.setattr("oscgan.models.stylegan3._half_device", lambda device: True)
        half = G.synthesis(ws)
        single = G.synthesis(ws[:1])
        forced = G.synthesis(ws, force_fp32=True)
    assert half.dtype == torch.float32
    assert rel_err(half.numpy(), ref.numpy()) < 1e-2
    assert rel_err(single.numpy(), ref[:1].numpy()) < 1e-2
    torch.testing.assert_close(forced, ref)


def test_autograd_flows_to_the_latents():
    G = small()
    ws = torch.randn(1, G.num_ws, 16, requires_grad=True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    assert G.synthesis.synthesis_layers()[3].weight.grad is not None


# ---------------------------------------------------------------------------------------------
# Filter design and filtered_lrelu.


def test_radial_filter_design():
    f = design_lowpass_filter(numtaps=12, cutoff=8.0, width=8.0, fs=64, radial=True)
    assert f.shape == (12, 12)
    assert f.sum().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(f, f.t())
    odd = design_lowpass_filter(numtaps=11, cutoff=8.0, width=8.0, fs=64, radial=True)
    assert torch.isfinite(odd).all() and odd.argmax().item() == 5 * 11 + 5
    assert design_lowpass_filter(numtaps=1, cutoff=1.0, width=1.0, fs=4) is None
    sep = design_lowpass_filter(numtaps=12, cutoff=8.0, width=8.0, fs=64)
    assert sep.shape == (12,) and sep.sum().item() == pytest.approx(1.0, abs=1e-6)


def _reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip):
    """The definition: bias, zero-insertion upfirdn2d, lrelu * gain + clamp, upfirdn2d down."""
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2, flip_filter=flip)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip)


def test_filtered_lrelu_matches_its_definition():
    rng = random.Random(1)
    torch.manual_seed(1)
    checked = 0
    for _ in range(400):
        up, down = rng.choice([1, 2, 4]), rng.choice([1, 2, 3])

        def filt(factor: int) -> torch.Tensor | None:
            r = rng.random()
            if r < 0.2:
                return None
            k = rng.choice([1, 3, 6, 8]) * factor
            return torch.rand(k) if r < 0.7 else torch.rand(k, k)

        fu, fd = filt(up), filt(down)
        x = torch.randn(2, 3, rng.randint(4, 12), rng.randint(4, 12))
        if rng.random() < 0.5:
            x = x.contiguous(memory_format=torch.channels_last)
        padding = [rng.randint(-4, 12) for _ in range(4)]
        b = torch.randn(3) if rng.random() < 0.5 else None
        gain, slope = rng.choice([1.0, math.sqrt(2)]), rng.choice([0.2, 1.0])
        clamp, flip = rng.choice([None, 0.5, 256.0]), rng.random() < 0.3
        try:
            ref = _reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip)
        except RuntimeError:  # filter larger than the (cropped) signal
            continue
        if min(ref.shape) <= 0:
            continue
        before = x.clone()
        out = filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip)
        assert torch.equal(x, before), "input modified"
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * (ref.abs().max().item() + 1))
        checked += 1
    assert checked > 200


def test_fir_resampling_matches_upfirdn2d():
    rng = random.Random(2)
    torch.manual_seed(2)
    for _ in range(200):
        up, down = rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 3])
        f = rng.choice([None, torch.randn(rng.choice([1, 4, 12])), torch.randn(5, 3)])
        x = torch.randn(2, 3, rng.randint(5, 12), rng.randint(5, 12))
        padding = [rng.randint(-2, 8) for _ in range(4)]
        gain = rng.choice([1.0, float(up * up)])
        try:
            ref = upfirdn2d(x, f, up=up, padding=padding, gain=gain)
        except RuntimeError:
            continue
        torch.testing.assert_close(fir_upsample(x, f, up, padding, gain=gain), ref, rtol=1e-5, atol=1e-4)
        try:
            ref = upfirdn2d(x, f, down=down, flip_filter=True)
        except RuntimeError:
            continue
        torch.testing.assert_close(fir_downsample(x, f, down, flip_filter=True), ref, rtol=1e-5, atol=1e-4)


def test_filtered_lrelu_keeps_gradients():
    x = torch.randn(1, 4, 10, 10, requires_grad=True)
    f = torch.rand(12)
    y = filtered_lrelu(x, f, f, b=torch.zeros(4), up=2, down=2, padding=[9, 8, 9, 8], clamp=1.0)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
