"""Resampling ops against direct, slow definitions written independently in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oscgan.models.ops import (
    bias_act,
    conv2d_resample,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


def naive_upfirdn2d(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int],
                    flip_filter: bool, gain: float) -> np.ndarray:
    """Textbook definition: zero-insert, pad/crop, true 2D convolution, decimate."""
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up), x.dtype)
    u[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    u = np.pad(u, [(0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))])
    u = u[:, :, max(-py0, 0): u.shape[2] - max(-py1, 0), max(-px0, 0): u.shape[3] - max(-px1, 0)]
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    k = f if flip_filter else f[::-1, ::-1]
    kh, kw = k.shape
    oh, ow = u.shape[2] - kh + 1, u.shape[3] - kw + 1
    out = np.zeros((n, c, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += k[i, j] * u[:, :, i:i + oh, j:j + ow]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad,flip,sep", [
    (1, 1, (1, 1, 1, 1), False, False),
    (2, 1, (2, 1, 2, 1), False, False),
    (1, 2, (1, 1, 1, 1), True, False),
    (2, 2, (3, -1, 0, 2), False, False),
    (2, 1, (4, 3, 4, 3), False, True),
])
def test_upfirdn2d_matches_definition(up, down, pad, flip, sep):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    taps = rng.standard_normal(8 if sep else 4).astype(np.float32)
    f = setup_filter(taps, normalize=False, separable=sep)
    ours = upfirdn2d(torch.from_numpy(x), f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.7)
    ref = naive_upfirdn2d(x, f.numpy().astype(np.float64), up, down, pad, flip, 1.7)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_setup_filter_short_taps_become_normalised_outer_product():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    assert float(f.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(f.numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)


def test_upsample2d_doubles_size_and_preserves_constant():
    x = torch.full([1, 2, 5, 5], 0.3)
    y = upsample2d(x, setup_filter([1, 3, 3, 1]))
    assert y.shape == (1, 2, 10, 10)
    np.testing.assert_allclose(y[:, :, 2:-2, 2:-2].numpy(), 0.3, rtol=1e-5)


@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_up_equals_upsample_then_conv(flip_weight):
    """The transposed-conv fast path equals 'FIR upsample, then convolve' (the definition)."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(5, 4, 3, 3)
    f = setup_filter([1, 3, 3, 1])
    fast = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=flip_weight)
    u = upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4)
    ref = torch.nn.functional.conv2d(u, w if flip_weight else w.flip([2, 3]))
    assert fast.shape == (2, 5, 12, 12)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_conv2d_resample_grouped_up_matches_per_group():
    torch.manual_seed(1)
    x = torch.randn(1, 6, 4, 4)
    w = torch.randn(4, 3, 3, 3)  # 2 groups: 3 in -> 2 out each
    f = setup_filter([1, 3, 3, 1])
    both = conv2d_resample(x, w, f, up=2, padding=1, groups=2, flip_weight=False)
    a = conv2d_resample(x[:, :3], w[:2], f, up=2, padding=1, flip_weight=False)
    b = conv2d_resample(x[:, 3:], w[2:], f, up=2, padding=1, flip_weight=False)
    torch.testing.assert_close(both, torch.cat([a, b], 1), rtol=1e-4, atol=1e-5)


def test_conv2d_resample_1x1_up_and_down():
    torch.manual_seed(2)
    x = torch.randn(1, 3, 4, 4)
    w = torch.randn(2, 3, 1, 1)
    f = setup_filter([1, 3, 3, 1])
    up = conv2d_resample(x, w, f, up=2)
    ref = torch.nn.functional.conv2d(upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4), w)
    torch.testing.assert_close(up, ref)
    down = conv2d_resample(x, w, f, down=2)
    assert down.shape == (1, 2, 2, 2)


@pytest.mark.parametrize("up,demod", [(1, True), (2, True), (1, False)])
def test_modulated_conv2d_equals_per_sample_weights(up, demod):
    """Modulate-input/demodulate-output equals convolving with each sample's own weights."""
    torch.manual_seed(3)
    n, i, o = 3, 4, 5
    x = torch.randn(n, i, 6, 6)
    weight = torch.randn(o, i, 3, 3)
    styles = torch.randn(n, i)
    noise = torch.randn(6 * up, 6 * up)
    f = setup_filter([1, 3, 3, 1])
    ours = modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f,
                            demodulate=demod, flip_weight=(up == 1))
    outs = []
    for k in range(n):
        wk = weight * styles[k].reshape(1, -1, 1, 1)
        if demod:
            wk = wk * (wk.square().sum([1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        outs.append(conv2d_resample(x[k:k + 1], wk, f, up=up, padding=1, flip_weight=(up == 1)))
    ref = torch.cat(outs) + noise
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_bias_act_lrelu_gain_and_clamp():
    x = torch.tensor([[-2.0, 1.0, 300.0]])
    b = torch.tensor([0.0, 1.0, 0.0])
    y = bias_act(x, b, dim=1, act="lrelu", clamp=256)
    expected = torch.tensor([[-0.4, 2.0, 300.0]]) * np.sqrt(2)
    expected[0, 2] = 256
    torch.testing.assert_close(y, expected)
