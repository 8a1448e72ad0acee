"""StyleGAN2 / StyleGAN2-ADA generator: mapping network and synthesis (orig, skip, resnet).

Parameter and buffer names equal NVIDIA's (``mapping.fc0.weight``, ``synthesis.b4.const``,
``synthesis.b8.conv0.affine.weight``, ...), so network pickles load with a strict state dict.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from oscgan.models.common import FullyConnectedLayer, LayerInfo, checked_ws
from oscgan.models.ops import (
    activation_gain,
    bias_act,
    conv2d_resample,
    demod_bias_lrelu_,
    modulated_conv2d,
    modulated_conv2d_raw,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

log = logging.getLogger(__name__)

NOISE_MODES = ("const", "random", "none")
ARCHITECTURES = ("orig", "skip", "resnet")


def _is_half_ok(device: torch.device, force_fp32: bool) -> bool:
    """Run fp16 layers in float16 only on CUDA; CPUs get float32 (fp16 conv is slow there)."""
    return device.type == "cuda" and not force_fp32


def fast_paths_enabled() -> bool:
    """Whether inference may use the fused in-place epilogue and channels-last activations.

    True whenever autograd is off (``torch.no_grad`` / ``inference_mode``). The benchmarks
    patch this to time the plain formulation side by side.
    """
    return not torch.is_grad_enabled()


class MappingNetwork(nn.Module):
    """z (and optional class label c) -> w, broadcast to every layer, with truncation.

    Args:
        z_dim: latent size (0 = unconditional on z).
        c_dim: class-label size (0 = unconditional).
        w_dim: intermediate latent size.
        num_ws: number of w vectors to broadcast to (None = return [N, w_dim]).
        num_layers: depth of the MLP.
        embed_features: label embedding size (default w_dim; 0 when c_dim == 0).
        layer_features: hidden width (default w_dim).
        activation: hidden activation ('lrelu').
        lr_multiplier: learning-rate multiplier of every layer (0.01).
        w_avg_beta: EMA decay of the tracked average w (None = no ``w_avg`` buffer).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_ws = num_ws
        self.num_layers = int(num_layers)
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{i}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim] (or [N, w_dim])."""
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}], got {None if c is None else tuple(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            x = truncate(x, self.w_avg, truncation_psi, truncation_cutoff)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


def truncate(
    ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None
) -> torch.Tensor:
    """Truncation trick: pull ws [N, num_ws, w_dim] towards w_avg for the first ``cutoff`` layers."""
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    ws = ws.clone()
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling x2), noise, bias and leaky ReLU.

    Args:
        in_channels, out_channels: feature maps in and out.
        w_dim: size of w. resolution: output resolution in pixels.
        kernel_size: convolution kernel (3). up: 1 or 2 (upsample before the conv).
        use_noise: add per-pixel noise scaled by ``noise_strength``.
        activation: 'lrelu'. resample_filter: FIR taps for upsampling ([1, 3, 3, 1]).
        conv_clamp: clamp activations to +-this (None = off). channels_last: memory format hint.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: list[int] | None = None,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.w_dim, self.resolution, self.up = int(w_dim), int(resolution), int(up)
        self.use_noise, self.activation, self.conv_clamp = use_noise, activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter or [1, 3, 3, 1]))
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self._weight_sq: tuple[int, torch.Tensor] | None = None

    def weight_sq(self) -> torch.Tensor:
        """sum over the kernel of weight**2, [O, I]; cached until the weight tensor changes."""
        key = self.weight._version, self.weight.data_ptr(), self.weight.device
        if self._weight_sq is None or self._weight_sq[0] != key:
            with torch.no_grad():
                self._weight_sq = (key, self.weight.float().square().sum(dim=[2, 3]))
        return self._weight_sq[1]

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "const",
        gain: float = 1.0,
        noise_strength: float = 1.0,
        noise_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x [N, I, R/up, R/up], w [N, w_dim] -> [N, O, R, R].

        ``noise_strength`` scales the learned noise strength (a live-performance control).
        ``noise_generator`` (on x's device) draws the 'random' noise instead of torch's global
        RNG, so a recorded performance can be re-rendered with the same grain.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        n = x.shape[0]
        styles = self.affine(w)  # [N, I]
        noise = None
        if self.use_noise and noise_mode != "none" and noise_strength != 0:
            if noise_mode == "random":
                noise = torch.randn([n, 1, self.resolution, self.resolution], device=x.device,
                                    generator=noise_generator)
                noise = noise * self.noise_strength
            else:
                noise = self.noise_const * self.noise_strength  # [R, R]
            if noise_strength != 1:
                noise = noise * noise_strength
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        weight_sq = self.weight_sq() if x.dtype == torch.float32 else None
        if self.activation == "lrelu" and fast_paths_enabled():
            y, dcoefs = modulated_conv2d_raw(x, self.weight, styles, up=self.up, padding=self.padding,
                                             resample_filter=self.resample_filter,
                                             flip_weight=(self.up == 1), weight_sq=weight_sq)
            return demod_bias_lrelu_(y, dcoefs, noise, self.bias, self.act_gain * gain, act_clamp)
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=(self.up == 1), weight_sq=weight_sq,
        )
        return bias_act(x, self.bias.to(x.dtype), act=self.activation,
                        gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
            f"resolution={self.resolution}, up={self.up}, activation={self.activation}"
        )


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels (no demodulation), bias, clamp.

    Args:
        in_channels: feature maps in. out_channels: image channels.
        w_dim: size of w. kernel_size: 1. conv_clamp: clamp output to +-this (None = off).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [N, I, R, R], w [N, w_dim] -> [N, out_channels, R, R]."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class Conv2dLayer(nn.Module):
    """Plain (unmodulated) convolution with optional resampling; the resnet skip path.

    Args:
        in_channels, out_channels: feature maps. kernel_size: conv kernel.
        bias: has a bias. activation: 'linear'. up, down: resampling factors.
        resample_filter: FIR taps. conv_clamp: clamp (None = off).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: list[int] | None = None,
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.activation, self.up, self.down, self.conv_clamp = activation, int(up), int(down), conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter or [1, 3, 3, 1]))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = activation_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """x [N, I, H, W] -> [N, O, H*up/down, W*up/down]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"activation={self.activation}, up={self.up}, down={self.down}")


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const or up-conv) + conv + optional toRGB.

    Args:
        in_channels: feature maps in (0 for the first block, which starts from ``const``).
        out_channels: feature maps out. w_dim: size of w. resolution: block resolution (px).
        img_channels: image channels. is_last: the final block (always has toRGB).
        architecture: 'orig' (toRGB only at the end), 'skip' (toRGB at every block, upsampled
            and summed) or 'resnet' (residual feature path, toRGB at the end).
        resample_filter: FIR taps. conv_clamp: activation clamp. use_fp16: run in float16 on CUDA.
        fused_modconv_default: accepted for file compatibility (the maths are identical).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: list[int] | None = None,
        conv_clamp: float | None = 256,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fused_modconv_default: Any = True,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        resample_filter = list(resample_filter or [1, 3, 3, 1])
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.w_dim, self.resolution, self.img_channels = int(w_dim), int(resolution), int(img_channels)
        self.is_last, self.architecture, self.use_fp16 = bool(is_last), architecture, bool(use_fp16)
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                        up=2, resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def layer_names(self) -> list[str]:
        """Names of the layers consuming this block's w vectors, in order."""
        names = (["conv0"] if self.in_channels else []) + ["conv1"]
        return names + (["torgb"] if self.num_torgb else [])

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        noise_mode: str = "const",
        noise_strength: float = 1.0,
        const: torch.Tensor | None = None,
        noise_generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [N, I, R/2, R/2] (None for the first block), img [N, C, R/2, R/2] or None,
        ws [N, num_conv + num_torgb, w_dim] -> (x [N, O, R, R], img [N, C, R, R] or None).

        ``const`` replaces the learned constant of the first block ([O, R, R] or [N, O, R, R]).
        """
        n = ws.shape[0]
        w_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if self.use_fp16 and _is_half_ok(ws.device, force_fp32) else torch.float32
        layer_kw = dict(noise_mode=noise_mode, noise_strength=noise_strength, noise_generator=noise_generator)
        if self.in_channels == 0:
            c = self.const if const is None else const
            x = c.to(dtype)
            x = x.unsqueeze(0).repeat([n, 1, 1, 1]) if x.ndim == 3 else x  # [N, O, R, R]
            if fast_paths_enabled():
                # oneDNN (CPU) and cuDNN (fp16) convolve NHWC faster; later layers keep the format.
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.conv1(x, next(w_iter), **layer_kw)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), **layer_kw)
            x = self.conv1(x, next(w_iter), gain=np.sqrt(0.5), **layer_kw)
            x = y + x
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), **layer_kw)
            x = self.conv1(x, next(w_iter), **layer_kw)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter)).to(torch.float32)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, architecture={self.architecture}, "
                f"use_fp16={self.use_fp16}")


class SynthesisNetwork(nn.Module):
    """ws -> image: one ``SynthesisBlock`` per power-of-two resolution from 4 px up.

    Args:
        w_dim: size of w. img_resolution: output size (power of two >= 4). img_channels: 3 or 4 ...
        channel_base: feature maps at resolution r are min(channel_base // r, channel_max).
        channel_max: cap on feature maps. num_fp16_res: how many of the highest resolutions
            run in float16 on CUDA (never lower than 8 px).
        **block_kwargs: architecture, resample_filter, conv_clamp, ... (see SynthesisBlock).
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = int(w_dim), int(img_resolution), int(img_channels)
        self.img_resolution_log2 = log2
        self.num_fp16_res = int(num_fp16_res)
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                img_channels=img_channels, is_last=(res == img_resolution),
                use_fp16=(res >= fp16_resolution), **block_kwargs,
            )
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    def block_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Split ws [N, num_ws, w_dim] into per-block views; toRGB shares the next block's w."""
        out, idx = [], 0
        for block in self.blocks():
            out.append(ws.narrow(1, idx, block.num_conv + block.num_torgb))
            idx += block.num_conv
        return out

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        force_fp32: bool = False,
        noise_strength: float = 1.0,
        const: torch.Tensor | None = None,
        update_emas: bool = False,
        noise_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] float32, roughly in [-1, 1].

        ``noise_generator``: see ``SynthesisLayer.forward`` (None = torch's global RNG).
        """
        ws = checked_ws(ws, self.num_ws, self.w_dim)
        x = img = None
        for block, cur_ws in zip(self.blocks(), self.block_ws(ws)):
            x, img = block(x, img, cur_ws, force_fp32=force_fp32, noise_mode=noise_mode,
                           noise_strength=noise_strength, const=const if block.in_channels == 0 else None,
                           noise_generator=noise_generator)
        return img

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_fp16_res={self.num_fp16_res}")


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z, c) = synthesis(mapping(z, c))``.

    Accepts both spellings of the constructor found in files: the StyleGAN3 repository's flat
    ``**synthesis_kwargs`` and stylegan2-ada-pytorch's nested ``synthesis_kwargs={...}``.
    """

    architecture = "stylegan2"

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict[str, Any] | None = None,
        synthesis_kwargs: dict[str, Any] | None = None,
        **more_synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        syn_kwargs = {**(synthesis_kwargs or {}), **more_synthesis_kwargs}
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                **syn_kwargs)
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **syn_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        force_fp32: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> img [N, img_channels, R, R]."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32)

    def layers(self) -> list[LayerInfo]:
        """One entry per w index: the layer that reads it and its resolution in pixels."""
        out: list[LayerInfo] = []
        idx = 0
        blocks = self.synthesis.blocks()
        for block in blocks:
            names = (["conv0"] if block.in_channels else []) + ["conv1"]
            for name in names:
                out.append(LayerInfo(idx, f"b{block.resolution}.{name}", block.resolution))
                idx += 1
        last = blocks[-1]
        for _ in range(last.num_torgb):
            out.append(LayerInfo(idx, f"b{last.resolution}.torgb", last.resolution))
            idx += 1
        assert idx == self.num_ws
        return out

    def derived_buffer_names(self) -> list[str]:
        """Buffers our code computes from the constructor arguments (checked against files)."""
        return [k for k in self.state_dict() if k.endswith("resample_filter")]

    def const_name(self) -> str:
        """State-dict name of the learned constant the visual-reactive controls act on."""
        return "synthesis.b4.const"

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}")
