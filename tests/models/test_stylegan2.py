"""Our StyleGAN2 against NVIDIA's outputs, and the architecture variants the fixtures do not cover."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oscgan.models.loader import load_generator
from oscgan.models.stylegan2 import Generator

from .conftest import FIXTURES, reference, rel_err

CASES = [(1.0, None), (0.5, None), (0.7, 4)]


@pytest.fixture(scope="module")
def sg2():
    return load_generator(FIXTURES / "sg2_64.pkl", device="cpu"), reference("sg2_64")


@pytest.mark.parametrize("psi,cutoff", CASES)
def test_mapping_and_synthesis_match_nvidia(sg2, psi, cutoff):
    G, ref = sg2
    key = f"psi{psi}_cut{cutoff}"
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"]),
                       truncation_psi=psi, truncation_cutoff=cutoff)
        img = G.synthesis(ws, noise_mode="const")
    assert rel_err(ws.numpy(), ref["ws_" + key]) < 1e-4
    assert rel_err(img.numpy(), ref["img_" + key]) < 1e-3


def test_style_mixing_matches_nvidia(sg2):
    G, ref = sg2
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref["z"]), None)
        ws[:, 4:] = ws.flip(0)[:, 4:]
        img = G.synthesis(ws)
    assert rel_err(ws.numpy(), ref["ws_mix"]) < 1e-4
    assert rel_err(img.numpy(), ref["img_mix"]) < 1e-3


def test_noise_modes(sg2):
    G, ref = sg2
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref["z"]), None)
        none = G.synthesis(ws, noise_mode="none")
        rand1 = G.synthesis(ws, noise_mode="random")
        rand2 = G.synthesis(ws, noise_mode="random")
    assert rel_err(none.numpy(), ref["img_noise_none"]) < 1e-3
    assert tuple(rand1.shape) == tuple(ref["img_noise_random_shape"])
    assert not torch.equal(rand1, rand2)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="loud")


def test_state_dict_names_equal_the_file(sg2):
    from oscgan.models.pickle_reader import read_network_pickle

    G, _ = sg2
    record = read_network_pickle(FIXTURES / "sg2_64.pkl")["G_ema"]
    assert set(G.state_dict()) == set(record.state_dict())


def test_generator_call_equals_mapping_then_synthesis(sg2):
    G, ref = sg2
    z = torch.from_numpy(ref["z"])
    with torch.no_grad():
        a = G(z, None, truncation_psi=0.5)
    assert rel_err(a.numpy(), ref["img_psi0.5_cutNone"]) < 1e-3


def small(**kw):
    base = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                channel_base=256, channel_max=16, num_fp16_res=0)
    base.update(kw)
    torch.manual_seed(0)
    return Generator(**base).eval()


@pytest.mark.parametrize("arch,num_ws", [("skip", 8), ("orig", 8), ("resnet", 8)])
def test_architectures_build_and_render(arch, num_ws):
    G = small(architecture=arch)
    assert G.num_ws == num_ws
    with torch.no_grad():
        img = G(torch.randn(2, 16), None)
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    names = set(G.state_dict())
    assert ("synthesis.b8.skip.weight" in names) == (arch == "resnet")
    assert ("synthesis.b8.torgb.weight" in names) == (arch == "skip")
    assert "synthesis.b32.torgb.weight" in names


def test_resnet_block_is_scaled_sum_of_skip_and_convs():
    """resnet: x = sqrt(.5) * skip(x) + conv1(conv0(x)) with conv1 also scaled by sqrt(.5)."""
    G = small(architecture="resnet")
    block = G.synthesis.b8
    x = torch.randn(1, block.in_channels, 4, 4)
    ws = torch.randn(1, 2, 16)
    with torch.no_grad():
        out, _ = block(x, None, ws)
        skip = block.skip(x, gain=np.sqrt(0.5))
        y = block.conv1(block.conv0(x, ws[:, 0]), ws[:, 1], gain=np.sqrt(0.5))
    torch.testing.assert_close(out, skip + y)


def test_conditional_model_uses_the_label():
    G = small(c_dim=5)
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn(1, 16)
    c0, c1 = torch.eye(5)[:1], torch.eye(5)[1:2]
    with torch.no_grad():
        assert not torch.allclose(G.mapping(z, c0), G.mapping(z, c1))
    with pytest.raises(ValueError, match="c must be"):
        G.mapping(z, None)


def test_ada_nested_synthesis_kwargs_equal_flat_kwargs():
    flat = small(architecture="orig")
    nested = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                       synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0,
                                             architecture="orig"))
    nested.load_state_dict(flat.state_dict())
    z = torch.randn(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(flat(z, None), nested(z, None))


def test_fp16_layers_run_in_float32_on_cpu():
    G = small(num_fp16_res=2)
    assert [b.use_fp16 for b in G.synthesis.blocks()] == [False, False, True, True]
    ref = small(num_fp16_res=0)
    ref.load_state_dict(G.state_dict())
    z = torch.randn(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(G(z, None), ref(z, None))


def test_layers_cover_every_w_with_resolution():
    G = small()
    layers = G.layers()
    assert [l.index for l in layers] == list(range(G.num_ws))
    assert [l.resolution for l in layers] == [4, 8, 8, 16, 16, 32, 32, 32]
    assert layers[-1].name == "b32.torgb"


def test_bad_shapes_are_rejected():
    G = small()
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="power of two"):
        small(img_resolution=48)
