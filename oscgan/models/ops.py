"""Pure-PyTorch ops shared by the generators: FIR resampling, bias+activation, modulated convolution.

Semantics follow the published StyleGAN2/StyleGAN3 definitions (upfirdn2d = upsample by zero
insertion, pad, FIR filter, downsample), written so that every op is a short chain of standard
torch calls that ``torch.compile`` and CUDA graphs can fuse later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Default gain and slope of every activation the file format can name. The gain keeps the
# signal variance roughly constant through the layer.
ACTIVATION_GAINS: dict[str, float] = {
    "linear": 1.0,
    "relu": math.sqrt(2),
    "lrelu": math.sqrt(2),
    "tanh": 1.0,
    "sigmoid": 1.0,
    "elu": 1.0,
    "selu": 1.0,
    "softplus": 1.0,
    "swish": math.sqrt(2),
}
LRELU_SLOPE = 0.2


def activation_gain(name: str) -> float:
    """Default output gain of activation ``name`` (sqrt(2) for lrelu)."""
    try:
        return ACTIVATION_GAINS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATION_GAINS)}")


def apply_activation(x: torch.Tensor, name: str, alpha: float | None = None) -> torch.Tensor:
    """Elementwise activation by name (no gain)."""
    if name == "linear":
        return x
    if name == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE if alpha is None else alpha)
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "elu":
        return F.elu(x)
    if name == "selu":
        return F.selu(x)
    if name == "softplus":
        return F.softplus(x)
    if name == "swish":
        return torch.sigmoid(x) * x
    raise ValueError(f"unknown activation {name!r}")


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``.

    Args:
        x: any shape; ``b`` is broadcast along axis ``dim``.
        b: [x.shape[dim]] or None.
        act: activation name (see ``ACTIVATION_GAINS``).
        gain: output scale; None means the activation's default gain.
        clamp: clamp the output to [-clamp, clamp]; None or negative disables it.
    """
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = apply_activation(x, act, alpha)
    g = activation_gain(act) if gain is None else float(gain)
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(
    f: Sequence[float] | torch.Tensor | None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn a 1D tap list into the FIR filter tensor the resampling ops use.

    Short 1D filters (< 8 taps) become their 2D outer product [k, k]; long ones stay separable
    [k]. ``normalize`` makes the taps sum to one; ``gain`` is spread over the filter's axes.
    """
    if f is None:
        f = [1.0]
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"FIR filter must be 1D or 2D and non-empty, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f


def parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Padding as (x0, x1, y0, y1) from an int, (x, y) or (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")


def _parse_scaling(s: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(s, int):
        return s, s
    sx, sy = (int(v) for v in s)
    return sx, sy


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a FIR filter tensor ([k] separable or [kh, kw])."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample a batch of images.

    Args:
        x: [N, C, H, W].
        f: [kh, kw] (2D), [k] (separable: applied along W, then H) or None (identity).
        up, down: integer factors, one or (x, y).
        padding: after upsampling; negative values crop. int, (x, y) or (x0, x1, y0, y1).
        flip_filter: False = true convolution (filter flipped), True = correlation.
        gain: overall signal gain.
    Returns:
        [N, C, (H*up_y + py0 + py1 - kh + 1) // down_y (ceil), ...] like the reference op.
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)

    if upx > 1 or upy > 1:
        # Zero insertion: put each pixel in the top-left of an up x up cell.
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    # Positive padding pads, negative padding crops.
    if px0 > 0 or px1 > 0 or py0 > 0 or py1 > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    if px0 < 0 or px1 < 0 or py0 < 0 or py1 < 0:
        x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    f = f.to(device=x.device, dtype=x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    # Depthwise conv with stride = down; conv2d is a correlation, hence the flip above.
    if f.ndim == 2:
        weight = f[None, None].expand(c, 1, *f.shape)
        x = F.conv2d(x, weight, groups=c, stride=(downy, downx))
    else:
        kw = f[None, None, None, :].expand(c, 1, 1, f.shape[0])
        kh = f[None, None, :, None].expand(c, 1, f.shape[0], 1)
        x = F.conv2d(x, kw, groups=c, stride=(1, downx))
        x = F.conv2d(x, kh, groups=c, stride=(downy, 1))
    return x


def upsample2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int = 0, gain: float = 1.0
) -> torch.Tensor:
    """Upsample by ``up`` with FIR filter ``f``; the output is exactly ``up`` times larger."""
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, gain=gain * upx * upy)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2D convolution combined with FIR up/downsampling, as used by StyleGAN2 layers.

    Args:
        x: [N, groups * I, H, W]; w: [O, I, kh, kw]; f: FIR filter for the resampling.
        up, down: integer factors (the generator uses up=2 or 1).
        padding: of the conceptual (upsampled) input, int / (x, y) / (x0, x1, y0, y1).
        flip_weight: False = true convolution (kernel flipped), True = correlation.
    Returns:
        [N, O, H', W'].
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    # The FIR filter's own support adds to the padding.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    def conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, pad: Sequence[int] = (0, 0),
             transpose: bool = False, flip: bool = flip_weight) -> torch.Tensor:
        if not flip and (w.shape[2] > 1 or w.shape[3] > 1):
            w = w.flip([2, 3])
        if transpose:
            return F.conv_transpose2d(x, w, stride=stride, padding=list(pad), groups=groups)
        return F.conv2d(x, w, stride=stride, padding=list(pad), groups=groups)

    # 1x1 kernel: resample the cheaper side.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv(x, w)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up, flip_filter=flip_filter)
        return conv(x, w)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv(x, w, stride=down)
    if up > 1:
        # Transposed convolution (stride = up) followed by the FIR filter.
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            wt = wt.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = conv(x, wt, stride=up, pad=(pyt, pxt), transpose=True, flip=not flip_weight)
        x = upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up,
            flip_filter=flip_filter,
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return conv(x, w, pad=(py0, px0))
    # General case.
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1],
                  gain=up * up, flip_filter=flip_filter)
    x = conv(x, w)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (the pixel norm of the mapping network)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d_raw(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    weight_sq: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The convolution of a modulated conv, before demodulation: (y [N, O, H', W'], dcoefs [N, O] or None).

    ``y * dcoefs`` is the demodulated result. Returning them apart lets the caller fold the
    demodulation into one in-place epilogue with bias, noise and activation.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles must be [{n}, {in_channels}], got {tuple(styles.shape)}")
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise to keep fp16 in range; demodulation removes the scale again.
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw)
            / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        weight_sq = None
    x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
    y = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding,
                        flip_weight=flip_weight)
    if not demodulate:
        return y, None
    if weight_sq is None:
        weight_sq = weight.float().square().sum(dim=[2, 3])  # [O, I]
    dcoefs = (styles.float().square() @ weight_sq.t() + 1e-8).rsqrt()  # [N, O]
    return y, dcoefs


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    weight_sq: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN2 modulated (and demodulated) convolution.

    Implemented as "scale the input, convolve with the shared weight, scale the output": the
    same result as convolving with per-sample modulated weights, without building an
    [N, O, I, k, k] tensor. Demodulation coefficients come from ``weight_sq`` =
    sum over the kernel of weight**2 ([O, I], cacheable), so they cost O*I, not O*I*k*k.

    Args:
        x: [N, I, H, W]; weight: [O, I, k, k]; styles: [N, I].
        noise: broadcastable to [N, O, H', W'], added after demodulation, or None.
        up: 1 or 2; padding: of the (upsampled) input.
        weight_sq: optional precomputed ``weight.square().sum([2, 3])``.
    Returns:
        [N, O, H', W'].
    """
    n = x.shape[0]
    y, dcoefs = modulated_conv2d_raw(x, weight, styles, up=up, padding=padding,
                                     resample_filter=resample_filter, demodulate=demodulate,
                                     flip_weight=flip_weight, weight_sq=weight_sq)
    if dcoefs is not None:
        y = y * dcoefs.to(y.dtype).reshape(n, -1, 1, 1)
    if noise is not None:
        y = y + noise.to(y.dtype)
    return y


def demod_bias_lrelu_(
    y: torch.Tensor,
    dcoefs: torch.Tensor,
    noise: torch.Tensor | None,
    bias: torch.Tensor,
    gain: float,
    clamp: float | None,
    slope: float = LRELU_SLOPE,
) -> torch.Tensor:
    """In place: ``clamp(lrelu(y * dcoefs + noise + bias) * gain)`` for y [N, O, H, W].

    Leaky ReLU is positively homogeneous (lrelu(g*v) = g*lrelu(v) for g > 0), so the gain is
    folded into the coefficients, noise and bias: four passes over y instead of six, and no
    temporaries. Only for inference (y must be a fresh tensor nobody else holds).
    """
    if gain <= 0:
        raise ValueError(f"gain must be positive, got {gain}")
    n = y.shape[0]
    y.mul_((dcoefs * gain).to(y.dtype).reshape(n, -1, 1, 1))
    shift = (bias * gain).to(y.dtype).reshape(-1, 1, 1)  # [O, 1, 1]
    if noise is not None:
        shift = shift + (noise * gain).to(y.dtype)  # [O, H, W] or [N, O|1, H, W]
    y.add_(shift)
    F.leaky_relu_(y, slope)
    if clamp is not None and clamp >= 0:
        y.clamp_(-clamp, clamp)
    return y


def modulated_conv2d_per_sample(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    weight_sq: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same result as ``modulated_conv2d`` by the textbook route: build each sample's modulated
    weights [N, O, I, k, k] and run one grouped convolution. Kept as the baseline the
    benchmarks compare against, and as an independent check in the tests."""
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])  # [1, N*I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N*O, I, k, k]
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=n,
                        flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
