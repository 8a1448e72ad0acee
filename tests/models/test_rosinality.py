"""rosinality/stylegan2-pytorch checkpoints: name/shape mapping, safe loading, numeric equivalence."""

from __future__ import annotations

import argparse
import math
import os
import pickle
import zipfile
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from oscgan.models.errors import ModelLoadError
from oscgan.models.rosinality import (
    blur_kernel_2d,
    convert_rosinality,
    load_rosinality_checkpoint,
    read_rosinality,
    read_rosinality_checkpoint,
)


def rosinality_channels(res: int, multiplier: int) -> int:
    """rosinality's Generator.channels table."""
    return 512 if res <= 32 else 16384 * multiplier // res


def make_rosinality_state(
    size: int, dim: int, n_mlp: int, multiplier: int = 2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A random ``g_ema`` state dict with exactly the keys and shapes of rosinality's Generator."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    sd: dict[str, torch.Tensor] = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = randn(dim, dim) * 100  # stored / lr_mul
        sd[f"style.{i}.bias"] = randn(dim)
    c4 = rosinality_channels(4, multiplier)
    sd["input.input"] = randn(1, c4, 4, 4)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        sd[f"{prefix}.conv.weight"] = randn(1, cout, cin, 3, 3)
        sd[f"{prefix}.conv.modulation.weight"] = randn(cin, dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * randn(cin)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = blur_kernel_2d()
        sd[f"{prefix}.noise.weight"] = 0.1 * randn(1)
        sd[f"{prefix}.activate.bias"] = 0.1 * randn(cout)

    def to_rgb(prefix: str, cin: int, up: bool) -> None:
        if up:
            sd[f"{prefix}.upsample.kernel"] = blur_kernel_2d()
        sd[f"{prefix}.conv.weight"] = randn(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = randn(cin, dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * randn(cin)
        sd[f"{prefix}.bias"] = 0.1 * randn(1, 3, 1, 1)

    styled("conv1", c4, c4, False)
    to_rgb("to_rgb1", c4, False)
    log_size = int(math.log2(size))
    for layer in range((log_size - 2) * 2 + 1):
        r = 2 ** ((layer + 5) // 2)
        sd[f"noises.noise_{layer}"] = randn(1, 1, r, r)
    cin = c4
    for k, i in enumerate(range(3, log_size + 1)):
        cout = rosinality_channels(2**i, multiplier)
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        to_rgb(f"to_rgbs.{k}", cout, True)
        cin = cout
    return sd


def nvidia_keys(size: int, n_mlp: int, with_w_avg: bool = True) -> set[str]:
    """Every state-dict key of NVIDIA's StyleGAN2 Generator (skip architecture)."""
    keys = {f"mapping.fc{i}.{p}" for i in range(n_mlp) for p in ("weight", "bias")}
    if with_w_avg:
        keys.add("mapping.w_avg")
    layer = ("weight", "noise_strength", "bias", "resample_filter", "noise_const", "affine.weight", "affine.bias")
    rgb = ("weight", "bias", "affine.weight", "affine.bias")
    res = 4
    while res <= size:
        block = f"synthesis.b{res}"
        keys.add(f"{block}.resample_filter")
        keys |= {f"{block}.torgb.{k}" for k in rgb}
        keys |= {f"{block}.conv1.{k}" for k in layer}
        if res == 4:
            keys.add(f"{block}.const")
        else:
            keys |= {f"{block}.conv0.{k}" for k in layer}
        res *= 2
    return keys


@pytest.mark.parametrize(("size", "dim", "n_mlp", "multiplier", "base"), [
    (8, 32, 2, 2, 32768),
    (16, 16, 3, 2, 32768),
    (64, 16, 1, 1, 16384),
    (64, 16, 2, 2, 32768),
])
def test_mapping_is_complete(size, dim, n_mlp, multiplier, base):
    state = make_rosinality_state(size, dim, n_mlp, multiplier)
    latent_avg = torch.randn(dim)
    kwargs, sd = convert_rosinality(state, latent_avg)
    assert kwargs == dict(z_dim=dim, c_dim=0, w_dim=dim, img_resolution=size, img_channels=3,
                          mapping_kwargs={"num_layers": n_mlp}, channel_base=base, channel_max=512,
                          num_fp16_res=0, conv_clamp=None, architecture="skip")
    assert set(sd) == nvidia_keys(size, n_mlp)
    for key, tensor in sd.items():
        assert tensor.dtype == torch.float32 and tensor.is_contiguous(), key
    # shapes follow NVIDIA's channel formula
    ch = lambda r: min(base // r, 512)  # noqa: E731
    res = size
    assert sd[f"synthesis.b{res}.conv0.weight"].shape == (ch(res), ch(res // 2), 3, 3)
    assert sd[f"synthesis.b{res}.conv0.affine.weight"].shape == (ch(res // 2), dim)
    assert sd[f"synthesis.b{res}.torgb.weight"].shape == (3, ch(res), 1, 1)
    assert sd[f"synthesis.b{res}.conv1.noise_const"].shape == (res, res)
    assert sd["synthesis.b4.const"].shape == (ch(4), 4, 4)
    assert sd["synthesis.b4.conv1.noise_strength"].shape == ()
    # values are carried over, not re-initialised
    assert torch.equal(sd["mapping.w_avg"], latent_avg)
    assert torch.equal(sd[f"mapping.fc{n_mlp - 1}.weight"], state[f"style.{n_mlp}.weight"])
    assert torch.equal(sd["synthesis.b4.const"], state["input.input"][0])
    assert torch.equal(sd["synthesis.b8.conv0.weight"], state["convs.0.conv.weight"][0])
    assert torch.equal(sd["synthesis.b8.conv1.affine.bias"], state["convs.1.conv.modulation.bias"])
    assert torch.equal(sd["synthesis.b8.conv0.noise_const"], state["noises.noise_1"][0, 0])
    assert torch.equal(sd["synthesis.b8.conv1.noise_const"], state["noises.noise_2"][0, 0])
    assert torch.equal(sd["synthesis.b4.conv1.noise_const"], state["noises.noise_0"][0, 0])
    assert sd["synthesis.b8.conv1.noise_strength"].item() == state["convs.1.noise.weight"].item()
    assert torch.equal(sd["synthesis.b8.conv1.bias"], state["convs.1.activate.bias"])
    assert torch.equal(sd["synthesis.b8.torgb.bias"], state["to_rgbs.0.bias"].reshape(3))
    assert torch.equal(sd["synthesis.b4.torgb.affine.weight"], state["to_rgb1.conv.modulation.weight"])
    assert torch.allclose(sd["synthesis.b8.resample_filter"].sum(), torch.tensor(1.0))


def test_without_latent_avg():
    state = make_rosinality_state(8, 16, 2)
    kwargs, sd = convert_rosinality(state, None)
    assert set(sd) == nvidia_keys(8, 2, with_w_avg=False)
    kwargs2, sd2 = convert_rosinality(state, torch.randn(1, 16))  # [1, D] as rosinality's mean_latent
    assert kwargs2 == kwargs and sd2["mapping.w_avg"].shape == (16,)


def test_converted_tensors_are_copies():
    state = make_rosinality_state(8, 16, 1)
    _, sd = convert_rosinality(state)
    state["input.input"].zero_()
    assert sd["synthesis.b4.const"].abs().sum() > 0


@pytest.mark.parametrize(("mutate", "pattern"), [
    (lambda sd: sd.pop("convs.1.noise.weight"), "missing tensor convs.1.noise.weight"),
    (lambda sd: sd.pop("noises.noise_2"), "missing tensor noises.noise_2"),
    (lambda sd: sd.update({"extra.weight": torch.zeros(1)}), "unexpected tensor(s) for a 8 px generator: extra.weight"),
    (lambda sd: sd.update({"to_rgb1.bias": torch.zeros(3)}), "to_rgb1.bias has shape [3], expected [1, 3, 1, 1]"),
    (lambda sd: sd.update({"convs.0.conv.blur.kernel": torch.ones(4, 4)}), "not the [1, 3, 3, 1] blur filter"),
    (lambda sd: sd.update({"input.input": torch.zeros(1, 512, 4, 4, dtype=torch.int64)}), "expected floating point"),
    (lambda sd: sd.update({"conv1.conv.weight": "nope"}), "conv1.conv.weight is not a tensor"),
    (lambda sd: [sd.pop(k) for k in [k for k in sd if k.startswith("style.")]], "no mapping network"),
])
def test_unexpected_checkpoints(mutate, pattern):
    state = make_rosinality_state(8, 16, 2)
    mutate(state)
    with pytest.raises(ModelLoadError) as info:
        convert_rosinality(state, source="ckpt.pt")
    assert str(info.value).startswith("ckpt.pt: ") and pattern in str(info.value), str(info.value)


def test_unsupported_channel_multiplier():
    state = make_rosinality_state(64, 16, 1, multiplier=4)
    with pytest.raises(ModelLoadError, match="only channel multipliers 1 and 2"):
        convert_rosinality(state)


def test_bad_latent_avg():
    with pytest.raises(ModelLoadError, match="latent_avg must hold 16 floats"):
        convert_rosinality(make_rosinality_state(8, 16, 1), torch.zeros(15))


# -- files --------------------------------------------------------------------------------------


def _training_checkpoint(state: dict[str, torch.Tensor], **extra: Any) -> dict[str, Any]:
    args = argparse.Namespace(size=8, latent=16, n_mlp=2, channel_multiplier=2, path="lmdb", lr=0.002)
    ckpt = {"g": state, "d": {"convs.0.0.weight": torch.zeros(2, 3, 1, 1)}, "g_ema": state,
            "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": [0, 1]}]},
            "args": args, "ada_aug_p": 0.1}
    ckpt.update(extra)
    return ckpt


@pytest.mark.parametrize("zip_format", [True, False])
def test_read_training_checkpoint(tmp_path, zip_format):
    state = make_rosinality_state(8, 16, 2)
    latent = torch.randn(16)
    path = tmp_path / "000100.pt"
    torch.save(_training_checkpoint(state, latent_avg=latent), path, _use_new_zipfile_serialization=zip_format)
    model = read_rosinality(path)
    assert model.has_w_avg and torch.equal(model.state_dict["mapping.w_avg"], latent)
    assert model.init_kwargs["img_resolution"] == 8
    assert set(model.state_dict) == nvidia_keys(8, 2)
    assert "8 px" in model.notes[0]
    kwargs, sd, has_w_avg = load_rosinality_checkpoint(path)
    assert kwargs == model.init_kwargs and has_w_avg and set(sd) == set(model.state_dict)


def test_read_converted_and_bare_checkpoints(tmp_path):
    state = make_rosinality_state(8, 16, 2)
    path = tmp_path / "converted.pt"
    torch.save({"g_ema": state}, path)
    model = read_rosinality(path)
    assert not model.has_w_avg and "mapping.w_avg" not in model.state_dict
    assert any("latent_avg" in note for note in model.notes)
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    g_ema, latent = read_rosinality_checkpoint(bare)
    assert latent is None and set(g_ema) == set(state)


class _Call:
    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> Any:
        return (self.fn, self.args)


@pytest.mark.parametrize("zip_format", [True, False])
def test_hostile_checkpoint_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    ckpt = {"g_ema": make_rosinality_state(8, 16, 1), "args": _Call(os.system, f"touch {marker}")}
    torch.save(ckpt, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ModelLoadError, match=r"^evil\.pt: torch could not load the checkpoint safely"):
        read_rosinality(path)
    assert not marker.exists()


def test_tuple_bomb_checkpoint_is_refused_before_torch(tmp_path):
    """torch.load(weights_only=True) would crash on this data.pkl; the pre-scan refuses it."""
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bomb/data.pkl", b"\x80\x02}N" + b"\x85" * 200_000 + b"Ns.")
        archive.writestr("bomb/version", b"3\n")
    with pytest.raises(ModelLoadError, match="nests tuples deeper"):
        read_rosinality(path)


@pytest.mark.parametrize(("content", "pattern"), [
    (b"", "truncated or malformed"),
    (b"garbage" * 10, "truncated or malformed"),
    (pickle.dumps([1, 2, 3], protocol=2) * 5 + b"\0" * 8, "torch could not load the checkpoint safely"),
])
def test_broken_checkpoint_files(tmp_path, content, pattern):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=pattern):
        read_rosinality(path)


def test_checkpoint_without_generator(tmp_path):
    path = tmp_path / "d_only.pt"
    torch.save({"d": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ModelLoadError, match="no g_ema state dict"):
        read_rosinality(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot read the file"):
        read_rosinality(tmp_path / "none.pt")


# -- numeric equivalence with oscgan's StyleGAN2 generator ----------------------------------------


def _upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """rosinality's upfirdn2d (native path): zero-insert, pad, true convolution with ``kernel``."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def _modulated(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, w: torch.Tensor, demodulate: bool,
               upsample: bool) -> torch.Tensor:
    """rosinality's ModulatedConv2d forward, one sample at a time (float32)."""
    weight = sd[f"{prefix}.weight"].float()  # [1, O, I, k, k]
    _, cout, cin, k, _ = weight.shape
    style = F.linear(w, sd[f"{prefix}.modulation.weight"].float() / math.sqrt(w.shape[1]),
                     sd[f"{prefix}.modulation.bias"].float())
    outs = []
    for n in range(x.shape[0]):
        wt = weight[0] / math.sqrt(cin * k * k) * style[n].view(1, cin, 1, 1)
        if demodulate:
            wt = wt * torch.rsqrt(wt.square().sum([1, 2, 3]) + 1e-8).view(cout, 1, 1, 1)
        xi = x[n:n + 1]
        if upsample:
            y = F.conv_transpose2d(xi, wt.transpose(0, 1), stride=2, padding=0)
            y = _upfirdn(y, sd[f"{prefix}.blur.kernel"].float(), 1, (1, 1))
        else:
            y = F.conv2d(xi, wt, padding=k // 2)
        outs.append(y)
    return torch.cat(outs)


def rosinality_forward(sd: dict[str, torch.Tensor], z: torch.Tensor, n_mlp: int) -> torch.Tensor:
    """rosinality's Generator for an 8 px network, const noise, no truncation, written from its paper-
    level definition: mapping, the 4 px block, the 8 px up block, toRGB skips."""
    lrelu = lambda t: F.leaky_relu(t, 0.2) * math.sqrt(2)  # noqa: E731
    x = z.float() * torch.rsqrt(z.float().square().mean(1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        weight = sd[f"style.{i}.weight"].float()
        x = lrelu(F.linear(x, weight * (0.01 / math.sqrt(weight.shape[1]))) + sd[f"style.{i}.bias"].float() * 0.01)
    w = x

    def styled(prefix: str, h: torch.Tensor, noise: str, up: bool) -> torch.Tensor:
        h = _modulated(sd, f"{prefix}.conv", h, w, True, up)
        h = h + sd[f"{prefix}.noise.weight"].float() * sd[noise].float()
        return lrelu(h + sd[f"{prefix}.activate.bias"].float().view(1, -1, 1, 1))

    def to_rgb(prefix: str, h: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = _modulated(sd, f"{prefix}.conv", h, w, False, False) + sd[f"{prefix}.bias"].float()
        if skip is not None:
            out = out + _upfirdn(skip, sd[f"{prefix}.upsample.kernel"].float(), 2, (2, 1))
        return out

    h = sd["input.input"].float().repeat(z.shape[0], 1, 1, 1)
    h = styled("conv1", h, "noises.noise_0", False)
    skip = to_rgb("to_rgb1", h, None)
    h = styled("convs.0", h, "noises.noise_1", True)
    h = styled("convs.1", h, "noises.noise_2", False)
    return to_rgb("to_rgbs.0", h, skip)


def test_matches_oscgan_stylegan2_generator(tmp_path):
    stylegan2 = pytest.importorskip("oscgan.models.stylegan2")
    state = make_rosinality_state(8, 32, 2, seed=1)
    path = tmp_path / "tiny.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(32)}, path)
    model = read_rosinality(path)
    generator = stylegan2.Generator(**model.init_kwargs).eval()
    generator.load_state_dict(model.state_dict, strict=True)
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = generator(z, None, noise_mode="const", force_fp32=True).float()
    ref = rosinality_forward(state, z, 2)
    assert ours.shape == ref.shape == (2, 3, 8, 8)
    assert ((ours - ref).norm() / ref.norm()).item() < 1e-4


def test_up_conv_orientation_matters():
    """Sanity check of the forward above: a flipped up-conv kernel gives a different image."""
    state = make_rosinality_state(8, 16, 1, seed=3)
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(4))
    flipped = dict(state)
    flipped["convs.0.conv.weight"] = state["convs.0.conv.weight"].flip([3, 4])
    a, b = rosinality_forward(state, z, 1), rosinality_forward(flipped, z, 1)
    assert ((a - b).norm() / a.norm()).item() > 1e-2

