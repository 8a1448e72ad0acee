"""Convert rosinality/stylegan2-pytorch checkpoints into NVIDIA-style StyleGAN2 weights.

A checkpoint (``.pt``) is a dict with ``g_ema`` (the generator's state dict) and usually
``latent_avg``; training checkpoints also hold ``g``, ``d``, optimiser states and ``args`` (an
``argparse.Namespace``). It is read with ``torch.load(weights_only=True)`` after the same
opcode pre-scan the pickle reader uses, with ``argparse.Namespace`` as the only extra global.

Name mapping (rosinality -> NVIDIA ``networks_stylegan2.Generator``), ``res = 8 * 2**k``:

==========================================  ==========================================
``style.{i}.weight / .bias``  (i = 1..n)    ``mapping.fc{i-1}.weight / .bias``
``latent_avg`` [D] or [1, D]                ``mapping.w_avg`` [D]
``input.input`` [1, C, 4, 4]                ``synthesis.b4.const`` [C, 4, 4]
``conv1.*``                                 ``synthesis.b4.conv1.*``
``convs.{2k}.*`` (upsampling conv)          ``synthesis.b{res}.conv0.*``
``convs.{2k+1}.*``                          ``synthesis.b{res}.conv1.*``
``to_rgb1.*`` / ``to_rgbs.{k}.*``           ``synthesis.b4.torgb.*`` / ``synthesis.b{res}.torgb.*``
``*.conv.weight`` [1, O, I, k, k]           ``*.weight`` [O, I, k, k]
``*.conv.modulation.weight / .bias``        ``*.affine.weight / .bias``
``*.noise.weight`` [1]                      ``*.noise_strength`` []
``*.activate.bias`` [O]                     ``*.bias`` [O]
``to_rgb*.bias`` [1, 3, 1, 1]               ``*.torgb.bias`` [3]
``noises.noise_0`` / ``noise_{2k+1}`` /     ``b4.conv1`` / ``b{res}.conv0`` /
``noise_{2k+2}`` [1, 1, r, r]               ``b{res}.conv1`` ``.noise_const`` [r, r]
``*.blur.kernel``, ``*.upsample.kernel``    checked to be the [1, 3, 3, 1] filter, replaced by
                                            ``synthesis.b{res}.resample_filter`` and
                                            ``*.conv0/conv1.resample_filter`` [4, 4] (the same
                                            filter normalised to sum 1, as NVIDIA stores it)
==========================================  ==========================================

The result has exactly the keys of NVIDIA's (and oscgan's) ``Generator.state_dict()``, except
``mapping.w_avg`` when the checkpoint has no ``latent_avg``.

The parametrisations agree: ``EqualLinear(lr_mul)`` stores ``randn / lr_mul`` and multiplies
by ``lr_mul / sqrt(in)`` (bias by ``lr_mul``), exactly as NVIDIA's ``FullyConnectedLayer``
with ``lr_multiplier``; ``FusedLeakyReLU`` is ``bias_act(..., act='lrelu')`` (gain sqrt 2);
rosinality's weight scale ``1/sqrt(fan_in)`` cancels in demodulated convs and equals NVIDIA's
``ToRGBLayer.weight_gain`` for toRGB. Channel counts match NVIDIA's
``min(channel_base // res, channel_max)`` with ``channel_base = 16384 * channel_multiplier``
and ``channel_max = 512``.

Up-conv weight orientation -- no flip is needed. rosinality's upsampling ``ModulatedConv2d``
runs ``conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=0)`` and then ``Blur`` with
the [1, 3, 3, 1] filter times 4, padding (1, 1). NVIDIA's ``SynthesisLayer`` (up=2) calls
``conv2d_resample(up=2, padding=1, flip_weight=False)``, whose transposed path computes the
padding as px0 = 1 + 2 - 2 = 1 and px1 = 1 + 1 - 1 = 1 (so the transposed conv itself has
padding 0), swaps the weight's first two axes and calls its conv wrapper with
``flip_weight = not False = True``: the kernel is *not* flipped, i.e. the same
``conv_transpose2d(x, w.transpose(0, 1), stride=2)``, followed by ``upfirdn2d`` with the same
filter, padding 1 and gain 4. Both ports flip TensorFlow's ``Conv0_up`` kernel the same way
when converting from the original release (rosinality ``convert_weight.py`` ``flip=True``,
NVIDIA ``legacy.py`` ``[::-1, ::-1]``), which confirms they share one orientation.

Assumed (not stored in checkpoints): mapping ``lr_mul = 0.01`` and blur kernel [1, 3, 3, 1]
(the blur kernel *is* stored and checked). Without ``latent_avg`` the state dict has no
``mapping.w_avg``; ``RosinalityModel.has_w_avg`` says so and the caller estimates it.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from oscgan.models.errors import FormatError, ModelLoadError, describe_name
from oscgan.models.pickle_scan import DEFAULT_LIMITS, HINT_LIMIT, ReadLimits
from oscgan.models.torch_storage import check_torch_file

log = logging.getLogger(__name__)

HINT_NOT_ROSINALITY = "expected a rosinality/stylegan2-pytorch checkpoint with a g_ema state dict"
HINT_REFUSED = ("the file is damaged or holds objects torch's safe loader refuses; "
                "nothing in it was run")

ROSINALITY_CHANNEL_BASE = 16384  # channels(res) = 16384 * channel_multiplier / res, for res >= 64
CHANNEL_MAX = 512


def resample_filter() -> torch.Tensor:
    """NVIDIA's ``resample_filter`` buffer: outer([1, 3, 3, 1]) normalised to sum 1. [4, 4]."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


def blur_kernel_2d() -> torch.Tensor:
    """rosinality's stored upsampling filter: ``resample_filter()`` times 4 (the up gain). [4, 4]."""
    return resample_filter() * 4


@dataclass(frozen=True)
class RosinalityModel:
    """A converted checkpoint.

    Attributes:
        init_kwargs: keyword arguments of NVIDIA's / oscgan's StyleGAN2 ``Generator``.
        state_dict: NVIDIA-style weights and buffers.
        has_w_avg: False when the checkpoint had no ``latent_avg`` (``mapping.w_avg`` missing).
        notes: human-readable remarks about the conversion.
    """

    init_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    has_w_avg: bool
    notes: tuple[str, ...]


def read_rosinality_checkpoint(
    path: str | os.PathLike[str], *, limits: ReadLimits = DEFAULT_LIMITS
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Load ``(g_ema state dict, latent_avg or None)`` from a rosinality ``.pt`` file, safely.

    Raises ``ModelLoadError``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file ({exc.strerror or type(exc).__name__})",
                             "check the path and permissions") from None
    if size > limits.max_file_bytes:
        raise ModelLoadError(path, f"the file has {size} bytes (limit {limits.max_file_bytes})", HINT_LIMIT)
    try:
        is_zip = check_torch_file(path, limits)
    except FormatError as exc:
        raise exc.at(path) from None
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file ({exc.strerror or type(exc).__name__})",
                             "check the path and permissions") from None
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as exc:  # torch reports refusals and damage with many exception types
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ModelLoadError(path, f"torch could not load the checkpoint safely ({type(exc).__name__}"
                             f"{': ' + text if text else ''})", HINT_REFUSED) from None
    if isinstance(ckpt, dict) and "input.input" in ckpt:  # a bare generator state dict
        ckpt = {"g_ema": ckpt}
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("g_ema"), dict):
        raise ModelLoadError(path, "checkpoint has no g_ema state dict", HINT_NOT_ROSINALITY)
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise ModelLoadError(path, "checkpoint's latent_avg is not a tensor", HINT_NOT_ROSINALITY)
    return ckpt["g_ema"], latent_avg


def read_rosinality(path: str | os.PathLike[str], *, limits: ReadLimits = DEFAULT_LIMITS) -> RosinalityModel:
    """Read and convert a rosinality checkpoint. Raises ``ModelLoadError``."""
    path = Path(path)
    state, latent_avg = read_rosinality_checkpoint(path, limits=limits)
    init_kwargs, state_dict = convert_rosinality(state, latent_avg, source=path)
    notes = [f"rosinality StyleGAN2, {init_kwargs['img_resolution']} px, "
             f"{init_kwargs['mapping_kwargs']['num_layers']}-layer mapping, w_dim {init_kwargs['w_dim']}"]
    has_w_avg = "mapping.w_avg" in state_dict
    if not has_w_avg:
        notes.append("checkpoint has no latent_avg: w_avg must be estimated before truncation")
    return RosinalityModel(init_kwargs, state_dict, has_w_avg, tuple(notes))


def load_rosinality_checkpoint(
    path: str | os.PathLike[str], *, limits: ReadLimits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], dict[str, torch.Tensor], bool]:
    """``(init_kwargs, state_dict, has_w_avg)`` of a rosinality checkpoint (see ``read_rosinality``)."""
    model = read_rosinality(path, limits=limits)
    return model.init_kwargs, model.state_dict, model.has_w_avg


class _Source:
    """The checkpoint's tensors, each taken at most once, shape-checked."""

    def __init__(self, state: dict[str, Any], fail: Callable[[str], NoReturn]) -> None:
        self.state = state
        self.fail = fail
        self.used: set[str] = set()

    def take(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        value = self.state.get(key)
        if not isinstance(value, torch.Tensor):
            self.fail(f"missing tensor {key}" if key not in self.state else f"{key} is not a tensor")
        if tuple(value.shape) != shape:
            self.fail(f"{key} has shape {list(value.shape)}, expected {list(shape)}")
        if not value.is_floating_point():
            self.fail(f"{key} has dtype {value.dtype}, expected floating point")
        self.used.add(key)
        return value.detach().to(device="cpu", dtype=torch.float32).clone(memory_format=torch.contiguous_format)

    def check_kernel(self, key: str) -> None:
        kernel = self.take(key, (4, 4))
        if not torch.allclose(kernel, blur_kernel_2d(), rtol=1e-5, atol=1e-6):
            self.fail(f"{key} is not the [1, 3, 3, 1] blur filter this converter assumes")


def convert_rosinality(
    ckpt_state: dict[str, torch.Tensor],
    latent_avg: torch.Tensor | None = None,
    *,
    source: str | os.PathLike[str] = "rosinality checkpoint",
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """rosinality ``g_ema`` state dict (+ ``latent_avg``) -> ``(init_kwargs, state_dict)``.

    ``n_mlp``, size, channel multiplier and ``style_dim`` are inferred from the tensor shapes and
    every tensor is checked against the shapes they imply. ``mapping.w_avg`` is present only if
    ``latent_avg`` is given. Raises ``ModelLoadError`` (named after ``source``) on anything
    unexpected: a missing, extra or wrongly shaped tensor.
    """

    def fail(problem: str) -> NoReturn:
        raise ModelLoadError(source, problem, HINT_NOT_ROSINALITY)

    if not isinstance(ckpt_state, dict) or not all(isinstance(k, str) for k in ckpt_state):
        fail("g_ema is not a state dict")
    src = _Source(ckpt_state, fail)
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in ckpt_state:
        n_mlp += 1
    first = ckpt_state.get("style.1.weight")
    if n_mlp == 0 or not isinstance(first, torch.Tensor) or first.ndim != 2:
        fail("no mapping network (style.1.weight)")
    dim = int(first.shape[1])
    n_rgbs = sum(1 for k in ckpt_state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
    size = 4 * 2**n_rgbs
    channel_multiplier = _channel_multiplier(ckpt_state, size, fail)
    channel_base = ROSINALITY_CHANNEL_BASE * channel_multiplier

    def channels(res: int) -> int:
        return min(channel_base // res, CHANNEL_MAX)

    out: dict[str, torch.Tensor] = {}
    c4 = channels(4)
    out["synthesis.b4.const"] = src.take("input.input", (1, c4, 4, 4))[0]
    out["synthesis.b4.resample_filter"] = resample_filter()
    _styled_conv(src, out, "conv1", "synthesis.b4.conv1", c4, c4, dim, "noises.noise_0", 4)
    _to_rgb(src, out, "to_rgb1", "synthesis.b4.torgb", c4, dim)
    for k in range(n_rgbs):
        res = 8 * 2**k
        cin, cout = channels(res // 2), channels(res)
        block = f"synthesis.b{res}"
        out[f"{block}.resample_filter"] = resample_filter()
        _styled_conv(src, out, f"convs.{2 * k}", f"{block}.conv0", cin, cout, dim, f"noises.noise_{2 * k + 1}", res)
        src.check_kernel(f"convs.{2 * k}.conv.blur.kernel")
        _styled_conv(src, out, f"convs.{2 * k + 1}", f"{block}.conv1", cout, cout, dim,
                     f"noises.noise_{2 * k + 2}", res)
        _to_rgb(src, out, f"to_rgbs.{k}", f"{block}.torgb", cout, dim)
        src.check_kernel(f"to_rgbs.{k}.upsample.kernel")
    for i in range(1, n_mlp + 1):
        out[f"mapping.fc{i - 1}.weight"] = src.take(f"style.{i}.weight", (dim, dim))
        out[f"mapping.fc{i - 1}.bias"] = src.take(f"style.{i}.bias", (dim,))
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.numel() != dim \
                or not latent_avg.is_floating_point():
            fail(f"latent_avg must hold {dim} floats")
        out["mapping.w_avg"] = latent_avg.detach().to("cpu", torch.float32).reshape(dim).clone()
    else:
        log.warning("%s: no latent_avg; mapping.w_avg must be estimated", Path(source).name)
    unused = sorted(set(ckpt_state) - src.used)
    if unused:
        listed = ", ".join(describe_name(k, 40) for k in unused[:5])
        fail(f"{len(unused)} unexpected tensor(s) for a {size} px generator: {listed}")
    init_kwargs: dict[str, Any] = dict(
        z_dim=dim, c_dim=0, w_dim=dim, img_resolution=size, img_channels=3,
        mapping_kwargs={"num_layers": n_mlp}, channel_base=channel_base, channel_max=CHANNEL_MAX,
        num_fp16_res=0, conv_clamp=None, architecture="skip",
    )
    log.info("%s: rosinality generator, %d px, n_mlp %d, style_dim %d, channel multiplier %d",
             Path(source).name, size, n_mlp, dim, channel_multiplier)
    return init_kwargs, out


def _channel_multiplier(state: dict[str, Any], size: int, fail: Callable[[str], NoReturn]) -> int:
    """rosinality has 512 channels up to 32 px and 16384 * m / res above; find m."""
    if size < 64:
        return 2  # every block has 512 channels; any multiplier >= 1 describes that
    k = int(math.log2(64 // 8))  # index of the 64 px block
    weight = state.get(f"convs.{2 * k}.conv.weight")
    if not isinstance(weight, torch.Tensor) or weight.ndim != 5:
        fail(f"missing tensor convs.{2 * k}.conv.weight")
    c64 = int(weight.shape[1])
    if c64 % 256 or not 1 <= c64 // 256 <= 2:
        fail(f"the 64 px block has {c64} channels; only channel multipliers 1 and 2 map onto NVIDIA's layout")
    return c64 // 256


def _styled_conv(src: _Source, out: dict[str, torch.Tensor], name: str, target: str, cin: int, cout: int,
                 dim: int, noise_key: str, res: int) -> None:
    out[f"{target}.weight"] = src.take(f"{name}.conv.weight", (1, cout, cin, 3, 3))[0]
    out[f"{target}.noise_strength"] = src.take(f"{name}.noise.weight", (1,)).reshape(())
    out[f"{target}.bias"] = src.take(f"{name}.activate.bias", (cout,))
    out[f"{target}.resample_filter"] = resample_filter()
    out[f"{target}.noise_const"] = src.take(noise_key, (1, 1, res, res))[0, 0]
    out[f"{target}.affine.weight"] = src.take(f"{name}.conv.modulation.weight", (cin, dim))
    out[f"{target}.affine.bias"] = src.take(f"{name}.conv.modulation.bias", (cin,))


def _to_rgb(src: _Source, out: dict[str, torch.Tensor], name: str, target: str, cin: int, dim: int) -> None:
    out[f"{target}.weight"] = src.take(f"{name}.conv.weight", (1, 3, cin, 1, 1))[0]
    out[f"{target}.bias"] = src.take(f"{name}.bias", (1, 3, 1, 1)).reshape(3)
    out[f"{target}.affine.weight"] = src.take(f"{name}.conv.modulation.weight", (cin, dim))
    out[f"{target}.affine.bias"] = src.take(f"{name}.conv.modulation.bias", (cin,))
