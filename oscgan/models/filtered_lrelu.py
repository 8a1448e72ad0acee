"""Filtered leaky ReLU (FIR upsample, bias + leaky ReLU + clamp, FIR downsample) in pure PyTorch."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from oscgan.models.ops import filter_size, parse_padding

logger = logging.getLogger(__name__)

__all__ = ["filtered_lrelu", "fir_upsample", "fir_downsample"]


def _check_filter(f: torch.Tensor | None, what: str) -> None:
    if f is not None and (f.ndim not in (1, 2) or f.numel() == 0):
        raise ValueError(f"{what} must be None, [k] (separable) or [kh, kw], got {tuple(f.shape)}")


def fir_upsample(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
    flip_filter: bool = False,
) -> torch.Tensor:
    """``upfirdn2d(x, f, up=up, padding=padding, gain=gain)`` without multiplying inserted zeros.

    The reference definition inserts ``up - 1`` zeros after every sample, pads by ``padding``
    (negative = crop) and convolves with ``f``. Convolving a zero-stuffed signal with ``f`` is
    exactly a stride-``up`` transposed convolution with ``f``, which only touches the real
    samples (``up`` times fewer multiplies per axis), so that is what runs here; the padding
    then becomes a shift/crop of the transposed-convolution output.

    Args:
        x: [N, C, H, W].
        f: [k] (separable: the same taps along W and H), [kh, kw] (2D) or None (no filtering, just zero
            insertion and padding).
        up: integer upsampling factor >= 1 (same on both axes).
        padding: int, (x, y) or (x0, x1, y0, y1), in samples of the upsampled signal.
        gain: overall signal gain (``up**2`` keeps the DC level of an upsampled image).
        flip_filter: False = true convolution with ``f``, True = correlation.
    Returns:
        [N, C, H * up + py0 + py1 - kh + 1, W * up + px0 + px1 - kw + 1].
    """
    _check_filter(f, "f")
    if up < 1:
        raise ValueError(f"up must be >= 1, got {up}")
    x, extra_w, extra_h = _upsample_loose(x, f, up, parse_padding(padding), gain, flip_filter)
    if extra_w or extra_h:
        x = x[:, :, : x.shape[2] - extra_h, : x.shape[3] - extra_w]
    return x


def _upsample_loose(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int,
    padding: tuple[int, int, int, int],
    gain: float,
    flip_filter: bool,
) -> tuple[torch.Tensor, int, int]:
    """``fir_upsample`` that may leave extra samples at the high end of each axis.

    Returns (y, extra_w, extra_h): ``y[:, :, :H' , :W']`` is the exact result and the last
    ``extra_h`` rows / ``extra_w`` columns are surplus. Cropping them would copy the whole
    (large) upsampled tensor; callers that downsample next simply never read them.
    """
    px0, px1, py0, py1 = padding
    c = x.shape[1]
    if f is None and up == 1 and gain == 1:
        # Nothing to filter: only the padding is left.
        return _pad_or_crop(x, [px0, px1, py0, py1]), 0, 0
    if f is None:
        f = torch.ones([1], dtype=x.dtype, device=x.device)
    # A transposed convolution scatters x[i] * g[k] to output i * up + k: that is a true
    # convolution with g, so g is the filter itself unless a correlation is asked for.
    g = f.to(device=x.device, dtype=x.dtype)
    if flip_filter:
        g = g.flip(list(range(g.ndim)))
    kh, kw = (g.shape[0], g.shape[0]) if g.ndim == 1 else (g.shape[0], g.shape[1])

    # The full transposed output has (n - 1) * up + k samples per axis and starts k - 1 samples
    # before the reference's padded, zero-stuffed signal, so the reference output is that with
    # (k - 1 - p0) samples cropped at the low end and (k - up - p1) at the high end. The
    # transposed convolution's own `padding` crops symmetrically without a copy; negative
    # crops (real padding) become zero input samples, each worth `up` output samples.
    def plan(k: int, p0: int, p1: int) -> tuple[int, int, int, int, int]:
        lo, hi = k - 1 - p0, k - up - p1
        zeros_lo = -(lo // up) if lo < 0 else 0  # ceil(-lo / up)
        zeros_hi = -(hi // up) if hi < 0 else 0
        lo, hi = lo + zeros_lo * up, hi + zeros_hi * up
        crop = min(lo, hi)
        return zeros_lo, zeros_hi, crop, lo - crop, hi - crop

    zw0, zw1, crop_w, rest_w, extra_w = plan(kw, px0, px1)
    zh0, zh1, crop_h, rest_h, extra_h = plan(kh, py0, py1)
    if any((zw0, zw1, zh0, zh1)):
        x = F.pad(x, [zw0, zw1, zh0, zh1])

    if g.ndim == 1:
        # H first: the second pass then runs on the tensor that is already `up` times taller,
        # which measured slightly faster than the reverse order for the conv kernels PyTorch
        # picks on the CPU.
        k = kw
        g = g * math.sqrt(gain)  # The gain is split evenly over the two passes.
        x = F.conv_transpose2d(x, g.reshape(1, 1, k, 1).expand(c, 1, k, 1), stride=(up, 1),
                               padding=(crop_h, 0), groups=c)
        if rest_h:
            x = x[:, :, rest_h:, :]
        x = F.conv_transpose2d(x, g.reshape(1, 1, 1, k).expand(c, 1, 1, k), stride=(1, up),
                               padding=(0, crop_w), groups=c)
    else:
        g = g * gain
        x = F.conv_transpose2d(x, g.reshape(1, 1, kh, kw).expand(c, 1, kh, kw), stride=up,
                               padding=(crop_h, crop_w), groups=c)
        if rest_h:
            x = x[:, :, rest_h:, :]
    if rest_w:
        x = x[:, :, :, rest_w:]
    return x, extra_w, extra_h


def _pad_or_crop(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) the last two axes by [x0, x1, y0, y1]."""
    if not any(pads):
        return x
    return F.pad(x, pads)


def fir_downsample(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: int,
    flip_filter: bool = False,
) -> torch.Tensor:
    """``upfirdn2d(x, f, down=down)``: FIR filter (no padding) and keep every ``down``-th sample.

    Runs as strided depthwise convolutions, so only the kept samples are computed.

    Args:
        x: [N, C, H, W].
        f: [k] (separable: the same taps along W and H), [kh, kw] (2D) or None (plain decimation).
        down: integer downsampling factor >= 1.
        flip_filter: False = true convolution with ``f``, True = correlation.
    Returns:
        [N, C, ceil((H - kh + 1) / down), ceil((W - kw + 1) / down)].
    """
    _check_filter(f, "f")
    if down < 1:
        raise ValueError(f"down must be >= 1, got {down}")
    c = x.shape[1]
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    # conv2d is a correlation, so a true convolution needs the flipped filter.
    g = f.to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        g = g.flip(list(range(g.ndim)))
    if g.ndim == 1:
        k = g.shape[0]
        x = F.conv2d(x, g.reshape(1, 1, 1, k).expand(c, 1, 1, k), stride=(1, down), groups=c)
        return F.conv2d(x, g.reshape(1, 1, k, 1).expand(c, 1, k, 1), stride=(down, 1), groups=c)
    kh, kw = g.shape
    return F.conv2d(x, g.reshape(1, 1, kh, kw).expand(c, 1, kh, kw), stride=down, groups=c)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Bias, FIR upsample, leaky ReLU, clamp, FIR downsample: StyleGAN3's alias-free nonlinearity.

    Same result as the reference composition
    ``upfirdn2d(clamp(lrelu(upfirdn2d(x + b, fu, up, padding, gain=up**2), slope) * gain), fd, down)``
    but the resampling skips the inserted zeros and the discarded samples. It is a pure function
    of its arguments (no caches, no state), so a fused kernel can replace it one for one.

    Args:
        x: [N, C, H, W] activations (float32 or float16; the output has the same dtype).
        fu: upsampling filter, [k] separable, [kh, kw] 2D, or None (no filter).
        fd: downsampling filter, same forms as ``fu``.
        b: [C] bias added before upsampling, or None.
        up, down: integer resampling factors >= 1.
        padding: int, (x, y) or (x0, x1, y0, y1), applied to the upsampled signal before ``fu``;
            negative values crop.
        gain: scale after the leaky ReLU (sqrt(2) keeps the variance of a unit Gaussian).
        slope: leaky ReLU slope for negative inputs (1 = linear, as in the ToRGB layer).
        clamp: clamp the activation to [-clamp, clamp] after the gain; None disables it.
        flip_filter: False = true convolution with the filters, True = correlation.
    Returns:
        [N, C, (H * up + py0 + py1 - fu_h - fd_h + 2 + down - 1) // down, (same for W)].
    """
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got {tuple(x.shape)}")
    if b is not None and b.shape != (x.shape[1],):
        raise ValueError(f"b must be [{x.shape[1]}], got {tuple(b.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"up and down must be integers >= 1, got up={up!r} down={down!r}")
    if not gain > 0 or not slope >= 0 or (clamp is not None and not clamp >= 0):
        raise ValueError(f"need gain > 0, slope >= 0, clamp None or >= 0 (got {gain}, {slope}, {clamp})")
    px0, px1, py0, py1 = parse_padding(padding)
    n, c, h, w = x.shape
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    out_w = (w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down

    # `owned` = x is a fresh intermediate of this function, so the activation may run in
    # place: on the CPU, allocating (and first-touching) the large upsampled tensor again for
    # each elementwise step costs several times more than the arithmetic.
    owned = False
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
        owned = True
    act_gain = float(gain)
    if up > 1 or fu is not None or any((px0, px1, py0, py1)):
        # lrelu(g * v) = g * lrelu(v) for g > 0, so the activation gain rides on the filter.
        x, _, _ = _upsample_loose(x, fu, up, (px0, px1, py0, py1), up * up * act_gain, flip_filter)
        act_gain = 1.0
        owned = True
    if act_gain != 1:
        x = x * act_gain
        owned = True
    # In-place steps would break autograd's saved tensors, so they are for inference only.
    inplace = owned and not (torch.is_grad_enabled() and x.requires_grad)
    if slope != 1:
        x = F.leaky_relu_(x, slope) if inplace else F.leaky_relu(x, slope)
        inplace = not (torch.is_grad_enabled() and x.requires_grad)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    if down > 1 or fd is not None:
        x = fir_downsample(x, fd, down, flip_filter=flip_filter)
    # Surplus samples of the upsampling usually fall outside the last downsampling window;
    # any output they did produce is dropped here, at the (small) output resolution.
    if x.shape[2] != out_h or x.shape[3] != out_w:
        x = x[:, :, :out_h, :out_w]

    if x.shape != (n, c, out_h, out_w):
        raise RuntimeError(f"filtered_lrelu produced {tuple(x.shape)}, expected {(n, c, out_h, out_w)}")
    return x
