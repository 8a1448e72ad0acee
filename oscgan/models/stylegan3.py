"""StyleGAN3 ("alias-free") generator, configs T and R, in pure PyTorch with NVIDIA's parameter names."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F
from torch import nn

from oscgan.models.common import FullyConnectedLayer, LayerInfo, checked_ws
from oscgan.models.filtered_lrelu import filtered_lrelu
from oscgan.models.ops import normalize_2nd_moment

logger = logging.getLogger(__name__)

# Overview. A small mapping MLP turns z into w. The synthesis network starts from Fourier
# features (SynthesisInput) whose frequencies and phases are rotated/translated by the first w,
# then runs num_layers + 1 SynthesisLayers: a modulated convolution followed by the alias-free
# nonlinearity (upsample to a higher temporary sampling rate, leaky ReLU there, low-pass filter
# and downsample back: filtered_lrelu). Every design constant (sizes, sampling rates, cutoffs,
# transition bands, channel counts, FIR filters) is derived here from the constructor arguments
# by the paper's rules, so the derived filter buffers can be checked against a file's.
#
# State-dict keys equal NVIDIA's: mapping.fc{i}.{weight,bias}, mapping.w_avg,
# synthesis.input.{weight,transform,freqs,phases,affine.*} and
# synthesis.L{i}_{size}_{channels}.{weight,bias,magnitude_ema,up_filter,down_filter,affine.*}.

__all__ = [
    "Generator",
    "MappingNetwork",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisNetwork",
    "design_lowpass_filter",
    "make_input_transform",
]

NOISE_MODES = ("const", "random", "none")


# ----------------------------------------------------------------------------------------------
# Helpers.


def _check_shape(x: torch.Tensor, shape: Sequence[int | None], what: str) -> None:
    """Raise ValueError unless ``x`` has ``shape`` (None = any size on that axis)."""
    if x.ndim != len(shape) or any(s is not None and int(d) != s for d, s in zip(x.shape, shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{what} must be {want}, got {list(x.shape)}")


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    """An int or [width, height] as (width, height)."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    w, h = (int(v) for v in size)
    return w, h


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and tuples -> plain Python values (JSON-able kwargs)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _half_device(device: torch.device) -> bool:
    """Whether layers marked ``use_fp16`` run in float16 on ``device``: CUDA only; CPUs have
    slow float16 kernels and the reference outputs are float32 anyway."""
    return device.type == "cuda"


def _stamp(t: torch.Tensor) -> tuple[Any, ...]:
    # _version counts in-place writes (load_state_dict, mul_, copy_), data_ptr catches
    # replaced storage (.to(), assignment), so together they say "this tensor is unchanged".
    return (t.data_ptr(), t._version, t.device, t.dtype)


class _DerivedCache:
    """Tensors derived from parameters/buffers, recomputed only when one of those changes.

    Caching is skipped (the value is just computed) while tracing for ``torch.compile``, while
    autograd needs a fresh graph through a parameter, and for inference-mode tensors, which
    have no version counter.
    """

    def __init__(self) -> None:
        self._entries: dict[Any, tuple[tuple[Any, ...], Any]] = {}

    def get(self, key: Any, deps: Sequence[torch.Tensor], fn: Callable[[], Any]) -> Any:
        if torch.compiler.is_compiling():
            return fn()
        if torch.is_grad_enabled() and any(t.requires_grad for t in deps):
            return fn()
        try:
            stamp = tuple(_stamp(t) for t in deps)
        except RuntimeError:  # inference tensors do not track versions
            return fn()
        hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = fn()
        self._entries[key] = (stamp, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """Kaiser-window low-pass FIR filter, as StyleGAN3 designs its resampling filters.

    Args:
        numtaps: number of taps per axis (1 = no filter: returns None).
        cutoff: cutoff frequency f_c (same unit as ``fs``, cycles per image).
        width: transition band width, 2 * f_h (the Kaiser window is sized for it).
        fs: sampling rate the filter runs at.
        radial: False = separable 1D filter [numtaps] (applied along W and then H);
            True = radially symmetric 2D filter [numtaps, numtaps]: a jinc (the 2D ideal
            low-pass, J1(2 pi f_c r) / (pi r)) times the separable Kaiser window, normalised to
            unit DC gain (config R's rotation-equivariant downsampling filter).
    Returns:
        float32 tensor, or None for the identity filter.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    if not radial:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.as_tensor(taps, dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(divide="ignore", invalid="ignore"):
        f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    # Odd tap counts put a sample at r = 0, where the jinc's limit is the cutoff itself.
    f = np.where(r == 0, cutoff, f)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    f = f / np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


def make_input_transform(angle: float = 0.0, translate: Sequence[float] = (0.0, 0.0)) -> torch.Tensor:
    """The [3, 3] matrix for ``SynthesisInput.transform`` that rotates the image by ``angle``.

    The buffer holds the *inverse* of the wanted image transform (it maps output coordinates
    back to Fourier-feature coordinates). The image transform is "rotate by ``angle`` degrees,
    then translate by ``translate`` (x, y)", in units of the image size (1 = one full image);
    a positive angle turns the picture clockwise on screen.
    """
    a = math.radians(float(angle))
    s, c = math.sin(a), math.cos(a)
    tx, ty = (float(v) for v in translate)
    m = np.array([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]])
    return torch.as_tensor(np.linalg.inv(m), dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# Mapping network.


class MappingNetwork(nn.Module):
    """z (and optional label c) -> w, broadcast to ``num_ws`` copies, with truncation.

    Args:
        z_dim: latent size.
        c_dim: label size, 0 = unconditional.
        w_dim: intermediate latent (W) size.
        num_ws: how many copies of w the synthesis network reads.
        num_layers: depth of the MLP (StyleGAN3 uses 2).
        lr_multiplier: learning-rate multiplier the weights were trained with (scales them).
        w_avg_beta: decay of the running average of w (only used with ``update_emas``).
        freeze_layers, freeze_embed: training-only options of later NVIDIA versions, accepted
            so such files load; they change nothing at inference.
    """

    w_avg: torch.Tensor
    embed: FullyConnectedLayer | None

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 2,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
        freeze_layers: int = 0,
        freeze_embed: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_ws = int(num_ws)
        self.num_layers = int(num_layers)
        self.lr_multiplier = float(lr_multiplier)
        self.w_avg_beta = float(w_avg_beta)
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        # The label embedding is w_dim wide and concatenated to the normalised z.
        self.embed = FullyConnectedLayer(self.c_dim, self.w_dim) if self.c_dim > 0 else None
        features = [self.z_dim + (self.w_dim if self.c_dim > 0 else 0)] + [self.w_dim] * self.num_layers
        for idx in range(self.num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                        lr_multiplier=self.lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([self.w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] or None -> ws [N, num_ws, w_dim].

        Truncation pulls the first ``truncation_cutoff`` (None = all) ws towards ``w_avg``:
        ``w_avg + psi * (w - w_avg)``.
        """
        _check_shape(z, [None, self.z_dim], "z")
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: c must be [N, {self.c_dim}]")
            assert self.embed is not None
            _check_shape(c, [z.shape[0], self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [N, w_dim]

        if update_emas:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        n = x.shape[0]
        cutoff = self.num_ws
        if truncation_cutoff is not None:
            cutoff = max(0, min(int(truncation_cutoff), self.num_ws))
        if truncation_psi == 1 or cutoff == 0:
            return x.unsqueeze(1).expand(n, self.num_ws, self.w_dim).contiguous()
        truncated = self.w_avg.lerp(x, float(truncation_psi))  # [N, w_dim]
        parts = [truncated.unsqueeze(1).expand(n, cutoff, self.w_dim)]
        if cutoff < self.num_ws:
            parts.append(x.unsqueeze(1).expand(n, self.num_ws - cutoff, self.w_dim))
        return torch.cat(parts, dim=1)  # [N, num_ws, w_dim]

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"num_layers={self.num_layers}")


# ----------------------------------------------------------------------------------------------
# Synthesis input: Fourier features.


class SynthesisInput(nn.Module):
    """Band-limited Fourier features, rotated/translated by the first w and by ``transform``.

    Each of ``channels`` features is ``sin(2 pi (f . p + phase))`` with a fixed frequency ``f``
    (inside a disc of radius ``bandwidth``) sampled on a grid of ``size`` pixels at
    ``sampling_rate`` pixels per unit; a learned [channels, channels] matrix then mixes them.

    Args:
        w_dim: W size.
        channels: number of features (output channels).
        size: output size in pixels, int or [width, height] (sampling rate plus margins).
        sampling_rate: pixels per unit of the feature coordinates (the image is 1 unit wide).
        bandwidth: largest frequency, cycles per unit (the first layer's cutoff).

    Buffers: ``transform`` [3, 3], a user transform applied to the output coordinates
    (see ``make_input_transform``; identity = none); ``freqs`` [channels, 2] and ``phases``
    [channels], drawn randomly at training time and read from the file.
    """

    transform: torch.Tensor
    freqs: torch.Tensor
    phases: torch.Tensor

    def __init__(
        self,
        w_dim: int,
        channels: int,
        size: int | Sequence[int],
        sampling_rate: float,
        bandwidth: float,
    ) -> None:
        super().__init__()
        self.w_dim = int(w_dim)
        self.channels = int(channels)
        self._size_arg = _plain(size)
        self.size = _size2(size)  # (width, height)
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)

        # Fresh networks draw frequencies uniformly from the disc of radius `bandwidth`.
        freqs = torch.randn([self.channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * self.bandwidth
        phases = torch.rand([self.channels]) - 0.5

        self.weight = nn.Parameter(torch.randn([self.channels, self.channels]))
        self.affine = FullyConnectedLayer(self.w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # inverse transform of the image
        self.register_buffer("freqs", freqs)  # [channels, 2], cycles per unit (x, y)
        self.register_buffer("phases", phases)  # [channels], cycles
        self._cache = _DerivedCache()

    def design_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs under NVIDIA's names."""
        return dict(w_dim=self.w_dim, channels=self.channels, size=self._size_arg,
                    sampling_rate=self.sampling_rate, bandwidth=self.bandwidth)

    def _grid(self, device: torch.device) -> torch.Tensor:
        """[2, H * W] pixel-centre coordinates (x; y) in units, centred on the image centre."""

        def make() -> torch.Tensor:
            w, h = self.size
            gx = (torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / self.sampling_rate
            gy = (torch.arange(h, dtype=torch.float64) + 0.5 - h / 2) / self.sampling_rate
            grid = torch.stack([gx.reshape(1, w).expand(h, w), gy.reshape(h, 1).expand(h, w)])
            return grid.reshape(2, h * w).to(device=device, dtype=torch.float32)

        return self._cache.get(("grid", device), [], make)

    def forward(self, w: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """w [N, w_dim] -> x [N, channels, H, W] float32, in channels-last memory if asked."""
        _check_shape(w, [None, self.w_dim], "w")
        n = w.shape[0]
        width, height = self.size

        # The first w sets a rotation (r_c, r_s), normalised to unit length, and a translation.
        t = self.affine(w)  # [N, 4] = (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        zero, one = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        rot = torch.stack([torch.stack([t[:, 0], -t[:, 1], zero], dim=1),
                           torch.stack([t[:, 1], t[:, 0], zero], dim=1),
                           torch.stack([zero, zero, one], dim=1)], dim=1)  # [N, 3, 3]
        shift = torch.stack([torch.stack([one, zero, -t[:, 2]], dim=1),
                             torch.stack([zero, one, -t[:, 3]], dim=1),
                             torch.stack([zero, zero, one], dim=1)], dim=1)  # [N, 3, 3]
        # Rotate the image first, then translate it, then apply the user transform.
        transforms = rot @ shift @ self.transform.unsqueeze(0)  # [N, 3, 3]

        # Moving the coordinates is the same as moving each feature's frequency and phase.
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]

        # A user transform that scales up can push frequencies past the band: fade them out
        # linearly between the bandwidth and the Nyquist frequency.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)  # [N, C]

        # Pixels-major layout [N, H * W, C]: the mixing matmul below then yields channels-last
        # memory directly.
        x = self._grid(w.device).t() @ freqs.transpose(1, 2)  # [N, H * W, C]
        x = torch.sin((x + phases.unsqueeze(1)) * (2 * math.pi))

        # Mix the features with the learned matrix; the amplitudes scale its input columns,
        # which is cheaper than scaling the H * W feature maps.
        weight = self.weight / math.sqrt(self.channels)  # [C_out, C_in]
        mix = weight.unsqueeze(0) * amplitudes.unsqueeze(1)  # [N, C_out, C_in]
        x = x @ mix.transpose(1, 2)  # [N, H * W, C_out]
        x = x.reshape(n, height, width, self.channels).permute(0, 3, 1, 2)  # [N, C, H, W] view
        return x if channels_last else x.contiguous()

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


# ----------------------------------------------------------------------------------------------
# Synthesis layer.


class SynthesisLayer(nn.Module):
    """Modulated convolution + alias-free leaky ReLU (or, for the last layer, the ToRGB conv).

    The signal enters at ``in_sampling_rate`` (pixels per image unit) with band limit
    ``in_cutoff``; the conv runs there, the result is upsampled to ``tmp_sampling_rate``
    (``lrelu_upsampling`` times the larger of the two rates), passed through the leaky ReLU,
    low-pass filtered to ``out_cutoff`` and downsampled to ``out_sampling_rate``.

    Args:
        w_dim: W size.
        is_torgb: the final ToRGB layer (1x1 conv, no demodulation, no nonlinearity/filters).
        is_critically_sampled: cutoff at Nyquist (last layers); disables the radial filter.
        use_fp16: run in float16 (only on CUDA and without ``force_fp32``).
        in_channels, out_channels: channel counts.
        in_size, out_size: spatial sizes in pixels, int or [width, height].
        in_sampling_rate, out_sampling_rate: sampling rates s (pixels per unit), integers.
        in_cutoff, out_cutoff: cutoff frequencies f_c (cycles per unit).
        in_half_width, out_half_width: half widths f_h of the transition bands.
        conv_kernel: conv kernel size (3 = config T, 1 = config R); ToRGB always uses 1.
        filter_size: low-pass filter length per unit of up/down factor (taps = this * factor).
        lrelu_upsampling: how much higher than the signal's rate the nonlinearity runs (2).
        use_radial_filters: radially symmetric downsampling filter (config R).
        conv_clamp: clamp activations to [-conv_clamp, conv_clamp]; None = no clamping.
        magnitude_ema_beta: decay of the running mean square of the input (``magnitude_ema``),
            whose inverse square root normalises the input.
    """

    magnitude_ema: torch.Tensor
    up_filter: torch.Tensor | None
    down_filter: torch.Tensor | None

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: int | Sequence[int],
        out_size: int | Sequence[int],
        in_sampling_rate: int,
        out_sampling_rate: int,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        self._design = _plain(dict(
            w_dim=w_dim, is_torgb=bool(is_torgb), is_critically_sampled=bool(is_critically_sampled),
            use_fp16=bool(use_fp16), in_channels=in_channels, out_channels=out_channels,
            in_size=in_size, out_size=out_size, in_sampling_rate=in_sampling_rate,
            out_sampling_rate=out_sampling_rate, in_cutoff=float(in_cutoff),
            out_cutoff=float(out_cutoff), in_half_width=float(in_half_width),
            out_half_width=float(out_half_width), conv_kernel=conv_kernel, filter_size=filter_size,
            lrelu_upsampling=lrelu_upsampling, use_radial_filters=bool(use_radial_filters),
            conv_clamp=conv_clamp, magnitude_ema_beta=magnitude_ema_beta))
        self.w_dim = int(w_dim)
        self.is_torgb = bool(is_torgb)
        self.is_critically_sampled = bool(is_critically_sampled)
        self.use_fp16 = bool(use_fp16)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.in_size, self.out_size = _size2(in_size), _size2(out_size)  # (width, height)
        self.in_sampling_rate, self.out_sampling_rate = int(in_sampling_rate), int(out_sampling_rate)
        self.tmp_sampling_rate = max(self.in_sampling_rate, self.out_sampling_rate) * (
            1 if self.is_torgb else int(lrelu_upsampling))
        self.in_cutoff, self.out_cutoff = float(in_cutoff), float(out_cutoff)
        self.in_half_width, self.out_half_width = float(in_half_width), float(out_half_width)
        self.conv_kernel = 1 if self.is_torgb else int(conv_kernel)
        if self.conv_kernel < 1:
            raise ValueError(f"conv_kernel must be >= 1, got {conv_kernel}")
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.magnitude_ema_beta = float(magnitude_ema_beta)

        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1)
        k = self.conv_kernel
        self.weight = nn.Parameter(torch.randn([self.out_channels, self.in_channels, k, k]))
        self.bias = nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Upsampling: from the input rate to the temporary rate, filtered to the input cutoff.
        self.up_factor = int(round(self.tmp_sampling_rate / self.in_sampling_rate))
        if self.in_sampling_rate * self.up_factor != self.tmp_sampling_rate:
            raise ValueError(f"temporary sampling rate {self.tmp_sampling_rate} is not a multiple of "
                             f"the input sampling rate {self.in_sampling_rate}")
        self.up_taps = 1
        if self.up_factor > 1 and not self.is_torgb:
            self.up_taps = int(filter_size) * self.up_factor
        self.register_buffer("up_filter", design_lowpass_filter(
            numtaps=self.up_taps, cutoff=self.in_cutoff, width=self.in_half_width * 2,
            fs=self.tmp_sampling_rate))

        # Downsampling: from the temporary rate to the output rate, filtered to the output cutoff.
        self.down_factor = int(round(self.tmp_sampling_rate / self.out_sampling_rate))
        if self.out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError(f"temporary sampling rate {self.tmp_sampling_rate} is not a multiple of "
                             f"the output sampling rate {self.out_sampling_rate}")
        self.down_taps = 1
        if self.down_factor > 1 and not self.is_torgb:
            self.down_taps = int(filter_size) * self.down_factor
        self.down_radial = bool(use_radial_filters) and not self.is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            numtaps=self.down_taps, cutoff=self.out_cutoff, width=self.out_half_width * 2,
            fs=self.tmp_sampling_rate, radial=self.down_radial))

        # Padding of the upsampled signal so that the output has out_size samples and the
        # sample positions stay centred (the "symmetric interpretation" of the paper's
        # appendix C.3: the extra half sample goes to the low side).
        pads = []
        for in_px, out_px in zip(self.in_size, self.out_size):
            total = (out_px - 1) * self.down_factor + 1  # wanted length before downsampling
            total -= (in_px + self.conv_kernel - 1) * self.up_factor  # length after upsampling
            total += self.up_taps + self.down_taps - 2  # lost to the two filters
            lo = (total + self.up_factor) // 2
            pads += [lo, total - lo]
        self.padding = pads  # [x0, x1, y0, y1]

        # Constants of the forward pass.
        self.act_gain = 1.0 if self.is_torgb else math.sqrt(2)
        self.act_slope = 1.0 if self.is_torgb else 0.2
        self.torgb_weight_gain = 1 / math.sqrt(self.in_channels * self.conv_kernel ** 2)
        self._cache = _DerivedCache()

    def design_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs under NVIDIA's names (JSON-able), for cross-checking files."""
        return dict(self._design)

    def _weight_norm(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain [O], sq [O, I]) of the weight as the reference modulates it.

        The reference first scales the weight to unit mean square per output channel:
        ``unit = weight * gain[:, None, None, None]``; ``sq`` = sum over the kernel of unit**2
        feeds the demodulation. ToRGB uses the weight as is (gain 1). Cached: both only
        change when the weight does.
        """

        def make() -> tuple[torch.Tensor, torch.Tensor]:
            sq = self.weight.to(torch.float32).square().sum(dim=[2, 3])  # [O, I]
            if self.is_torgb:
                return torch.ones_like(sq[:, 0]), sq
            gain = (sq.sum(dim=1) / (self.in_channels * self.conv_kernel ** 2)).rsqrt()  # [O]
            return gain, sq * gain.square().unsqueeze(1)

        return self._cache.get("weight_norm", [self.weight], make)

    def _weight_in(self, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
        """(weight for the batched conv in ``dtype``, whether it is already unit-normalised).

        In float32 that is the parameter itself (no copy); other dtypes get a cached unit
        weight, whose per-channel normalisation also keeps float16 sums in range.
        """
        if self.weight.dtype == dtype:
            return self.weight, False

        def make() -> torch.Tensor:
            gain, _ = self._weight_norm()
            return (self.weight.to(torch.float32) * gain.reshape(-1, 1, 1, 1)).to(dtype)

        return self._cache.get(("unit_weight", dtype), [self.weight], make), True

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """"Full" convolution (padding kernel - 1, so the output grows by kernel - 1) + bias."""
        if self.conv_kernel == 1 and x.is_contiguous(memory_format=torch.channels_last):
            # A 1x1 conv on channels-last memory is one matmul over [pixels, channels]; PyTorch's
            # CPU conv falls back to a slow generic kernel for this case.
            n, _, h, w = x.shape
            rows = x.permute(0, 2, 3, 1).reshape(n * h * w, self.in_channels)  # view, no copy
            wt = weight.reshape(self.out_channels, self.in_channels).t()
            y = rows @ wt if bias is None else torch.addmm(bias, rows, wt)
            return y.reshape(n, h, w, self.out_channels).permute(0, 3, 1, 2)
        return F.conv2d(x, weight, bias, padding=self.conv_kernel - 1)

    def _modulation(self, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample input scales s [N, I] and output scales c [N, O] (float32).

        The modulated, demodulated weight of sample n is ``unit[o, i] * s[n, i] * c[n, o]`` with
        ``unit`` the weight normalised as in ``_weight_norm``.
        This reproduces the reference computation -- normalise the weight per output channel
        and the styles to unit mean square, modulate, demodulate with ``rsqrt(sum w**2 + 1e-8)``,
        scale by the input gain 1 / sqrt(magnitude_ema) -- including where the 1e-8 enters,
        without ever building the [N, O, I, k, k] modulated weight.
        """
        input_gain = self.magnitude_ema.to(torch.float32).rsqrt()
        n = styles.shape[0]
        if self.is_torgb:
            s = styles * self.torgb_weight_gain
            return s, input_gain.expand(n, self.out_channels)
        _, unit_sq = self._weight_norm()
        # The reference normalises the styles by one scalar over the whole batch.
        s = styles * styles.square().mean().rsqrt()  # [N, I], unit mean square
        dcoefs = (s.square() @ unit_sq.t() + 1e-8).rsqrt()  # [N, O]
        return s, dcoefs * input_gain

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "const",
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """x [N, in_channels, in_h, in_w], w [N, w_dim] -> [N, out_channels, out_h, out_w].

        ``noise_mode`` is accepted for interface compatibility; StyleGAN3 has no noise inputs.
        """
        _check_shape(x, [None, self.in_channels, self.in_size[1], self.in_size[0]], "x")
        _check_shape(w, [x.shape[0], self.w_dim], "w")
        n = x.shape[0]

        if update_emas:
            with torch.no_grad():
                magnitude = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))

        half = self.use_fp16 and not force_fp32 and _half_device(x.device)
        dtype = torch.float16 if half else torch.float32
        x = x.to(dtype)
        styles = self.affine(w)  # [N, I]
        s, c = self._modulation(styles)
        bias = self.bias.to(dtype)
        gain, _ = self._weight_norm()
        if n == 1:
            # One sample: fold all scales into the weight (O*I*k*k multiplies instead of two
            # passes over the activations) and let the conv add the bias.
            scale = (gain * c[0]).reshape(-1, 1, 1, 1) * s.reshape(1, -1, 1, 1)  # [O, I, 1, 1]
            x = self._conv(x, (self.weight.to(torch.float32) * scale).to(dtype), bias)  # [1, O, H', W']
        else:
            # A batch: scale the input channels, share one weight, scale the output channels.
            weight, is_unit = self._weight_in(dtype)
            out_scale = c if is_unit else c * gain  # [N, O]
            x = self._conv(x * s.to(dtype).reshape(n, -1, 1, 1), weight, None)
            x = torch.addcmul(bias.reshape(1, -1, 1, 1), x, out_scale.to(dtype).reshape(n, -1, 1, 1))

        # The bias is already in; filtered_lrelu adds it before upsampling, the same place.
        x = filtered_lrelu(x, self.up_filter, self.down_filter, b=None, up=self.up_factor,
                           down=self.down_factor, padding=self.padding, gain=self.act_gain,
                           slope=self.act_slope, clamp=self.conv_clamp)
        _check_shape(x, [n, self.out_channels, self.out_size[1], self.out_size[0]], "layer output")
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, "
                f"is_critically_sampled={self.is_critically_sampled}, use_fp16={self.use_fp16},\n"
                f"in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g}, "
                f"tmp_sampling_rate={self.tmp_sampling_rate:g},\n"
                f"in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g}, "
                f"in_half_width={self.in_half_width:g}, out_half_width={self.out_half_width:g},\n"
                f"in_size={list(self.in_size)}, out_size={list(self.out_size)}, "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"conv_kernel={self.conv_kernel}, up={self.up_factor}x{self.up_taps}, "
                f"down={self.down_factor}x{self.down_taps}{' radial' if self.down_radial else ''}")


# ----------------------------------------------------------------------------------------------
# Synthesis network.


def synthesis_design(
    img_resolution: int,
    img_channels: int,
    channel_base: int = 32768,
    channel_max: int = 512,
    num_layers: int = 14,
    num_critical: int = 2,
    first_cutoff: float = 2,
    first_stopband: float = 2 ** 2.1,
    last_stopband_rel: float = 2 ** 0.3,
    margin_size: int = 10,
    num_fp16_res: int = 4,
) -> dict[str, np.ndarray]:
    """Per-layer design constants, index 0 = the input, index ``num_layers`` = ToRGB.

    Cutoffs f_c and minimum stopbands f_t grow geometrically from the first layer to the last
    non-critical one, then stay; the sampling rate s is the smallest power of two above 2 f_t
    (capped at the image resolution); the transition half width is f_h = max(f_t, s/2) - f_c;
    sizes add ``margin_size`` pixels on each side except for the last two layers; channels are
    ``channel_base / 2 / f_c`` capped at ``channel_max``.

    Returns:
        dict of float64 arrays [num_layers + 1]: cutoffs, stopbands, sampling_rates,
        half_widths, sizes, channels, and bool array use_fp16.
    """
    if num_layers <= num_critical:
        raise ValueError(f"num_layers ({num_layers}) must exceed num_critical ({num_critical})")
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    use_fp16 = sampling_rates * (2 ** num_fp16_res) > img_resolution
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates,
                half_widths=half_widths, sizes=sizes, channels=channels, use_fp16=use_fp16)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image: Fourier-feature input, then ``num_layers + 1`` layers.

    Args:
        w_dim: W size.
        img_resolution: output resolution in pixels (square).
        img_channels: output channels (3 = RGB).
        channel_base: channel count scale; a layer with cutoff f_c gets channel_base / 2 / f_c.
        channel_max: most channels in any layer.
        num_layers: layers excluding the input and ToRGB (num_ws = num_layers + 2).
        num_critical: critically sampled layers at the end.
        first_cutoff: cutoff of the first layer f_c,0 (cycles per image).
        first_stopband: minimum stopband of the first layer f_t,0.
        last_stopband_rel: minimum stopband of the last layer, relative to its cutoff.
        margin_size: extra pixels computed outside the image on each side.
        output_scale: scale of the output image.
        num_fp16_res: layers whose sampling rate is within the top ``num_fp16_res`` octaves of
            ``img_resolution`` are marked ``use_fp16``.
        **layer_kwargs: passed to every ``SynthesisLayer`` (conv_kernel, filter_size,
            lrelu_upsampling, use_radial_filters, conv_clamp, magnitude_ema_beta).
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2 ** 2.1,
        last_stopband_rel: float = 2 ** 0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        self.w_dim = int(w_dim)
        self.num_ws = int(num_layers) + 2
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        self.num_layers = int(num_layers)
        self.num_critical = int(num_critical)
        self.margin_size = int(margin_size)
        self.output_scale = float(output_scale)
        self.num_fp16_res = int(num_fp16_res)

        d = synthesis_design(self.img_resolution, self.img_channels, channel_base=channel_base,
                             channel_max=channel_max, num_layers=self.num_layers,
                             num_critical=self.num_critical, first_cutoff=first_cutoff,
                             first_stopband=first_stopband, last_stopband_rel=last_stopband_rel,
                             margin_size=self.margin_size, num_fp16_res=self.num_fp16_res)
        self.cutoffs: list[float] = d["cutoffs"].tolist()  # f_c per layer, index 0 = input
        self.sampling_rates: list[float] = d["sampling_rates"].tolist()
        # Activation memory layout: None = channels-last on the CPU (its depthwise resampling
        # convolutions and 1x1 convs measured 2-3x faster that way), NCHW elsewhere (the layout
        # a fused CUDA kernel expects); True/False force it.
        self.channels_last: bool | None = None

        self.input = SynthesisInput(w_dim=self.w_dim, channels=int(d["channels"][0]),
                                    size=int(d["sizes"][0]), sampling_rate=d["sampling_rates"][0],
                                    bandwidth=d["cutoffs"][0])
        self.layer_names: list[str] = []
        for idx in range(self.num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=self.w_dim,
                is_torgb=idx == self.num_layers,
                is_critically_sampled=idx >= self.num_layers - self.num_critical,
                use_fp16=bool(d["use_fp16"][idx]),
                in_channels=int(d["channels"][prev]), out_channels=int(d["channels"][idx]),
                in_size=int(d["sizes"][prev]), out_size=int(d["sizes"][idx]),
                in_sampling_rate=int(d["sampling_rates"][prev]),
                out_sampling_rate=int(d["sampling_rates"][idx]),
                in_cutoff=d["cutoffs"][prev], out_cutoff=d["cutoffs"][idx],
                in_half_width=d["half_widths"][prev], out_half_width=d["half_widths"][idx],
                **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
        logger.debug("StyleGAN3 synthesis %d px: layers %s, sampling rates %s", self.img_resolution,
                     self.layer_names, [int(r) for r in self.sampling_rates])

    def synthesis_layers(self) -> list[SynthesisLayer]:
        """The layers in order (ws[1:] feed them one each; ws[0] feeds the input)."""
        return [getattr(self, name) for name in self.layer_names]

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] float32 (about [-1, 1])."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        ws = checked_ws(ws, self.num_ws, self.w_dim)
        channels_last = self.channels_last if self.channels_last is not None else ws.device.type == "cpu"
        x = self.input(ws[:, 0], channels_last=channels_last)  # [N, C0, S0, S0]
        for i, name in enumerate(self.layer_names):
            x = getattr(self, name)(x, ws[:, i + 1], force_fp32=force_fp32, update_emas=update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        x = x.to(torch.float32).contiguous()
        _check_shape(x, [ws.shape[0], self.img_channels, self.img_resolution, self.img_resolution], "image")
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}, "
                f"num_critical={self.num_critical}, margin_size={self.margin_size}, "
                f"num_fp16_res={self.num_fp16_res}")


# ----------------------------------------------------------------------------------------------
# Generator.


class Generator(nn.Module):
    """StyleGAN3 generator: ``G(z, c) = synthesis(mapping(z, c))``.

    Args:
        z_dim: latent size.
        c_dim: label size (0 = unconditional).
        w_dim: W size.
        img_resolution: output resolution in pixels.
        img_channels: output channels.
        mapping_kwargs: passed to ``MappingNetwork`` (e.g. num_layers=2).
        **synthesis_kwargs: passed to ``SynthesisNetwork`` (channel_base, channel_max,
            num_fp16_res, conv_kernel=1 and use_radial_filters=True for config R, ...).
    """

    architecture = "stylegan3"

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict[str, Any] | None = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = _plain(dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
            img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}), **synthesis_kwargs))
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.synthesis = SynthesisNetwork(w_dim=self.w_dim, img_resolution=self.img_resolution,
                                          img_channels=self.img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim,
                                      num_ws=self.num_ws, **(mapping_kwargs or {}))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] or None -> img [N, img_channels, R, R]."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, update_emas=update_emas)

    def layers(self) -> list[LayerInfo]:
        """One entry per w index: the module reading it and its effective resolution.

        StyleGAN3 layers have no single pixel resolution (sampling rates start at 16 even for
        the coarsest content), so ``resolution`` is the layer's band limit expressed as the
        resolution that samples it critically: ``round(2 * out_cutoff)`` (4 for the input and
        the first layer, ``img_resolution`` for the last three). That matches what a
        StyleGAN2 block of that resolution can represent, so coarse/middle/fine grouping
        means the same in both architectures.
        """
        syn = self.synthesis
        out = [LayerInfo(0, "input", int(round(2 * syn.input.bandwidth)))]
        for i, name in enumerate(syn.layer_names):
            layer = getattr(syn, name)
            out.append(LayerInfo(i + 1, name, int(round(2 * layer.out_cutoff))))
        return out

    def derived_buffer_names(self) -> list[str]:
        """State-dict keys our code computes itself from the design (the FIR filters).

        ``freqs``/``phases`` are random at initialisation and ``transform`` is user state, so
        those always come from the file.
        """
        names = []
        for name in self.synthesis.layer_names:
            layer = getattr(self.synthesis, name)
            for buf in ("up_filter", "down_filter"):
                if getattr(layer, buf) is not None:
                    names.append(f"synthesis.{name}.{buf}")
        return names

    def clear_caches(self) -> None:
        """Drop the cached weight statistics and grids (they refresh by themselves after
        ``load_state_dict``, in-place edits and ``.to()``; this is for anything more exotic,
        such as swapping ``param.data`` for a tensor of the same storage)."""
        for module in self.modules():
            cache = getattr(module, "_cache", None)
            if isinstance(cache, _DerivedCache):
                cache.clear()

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}")
