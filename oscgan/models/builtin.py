"""Built-in models: untrained generators created deterministically in code, so oscgan runs with no file.

They are random networks, not trained ones: they draw abstract, colourful, soft-edged imagery,
never faces or objects. After seeded initialisation each network is calibrated (deterministically)
so that every layer group contributes visibly: coarse layers set large colour fields, middle
layers shapes, fine layers texture. ``w_avg`` is the mean of 4096 mapped latents, as training
would have tracked it, so the truncation trick pulls towards a real average picture.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

PREFIX = "builtin:"
CALIBRATION_SEED = 20261122
# Bump when initialisation or calibration changes, so cached weights are rebuilt.
BUILD_VERSION = 3


@dataclass(frozen=True)
class BuiltinSpec:
    """How to make one built-in model."""

    name: str
    architecture: str  # 'stylegan2' | 'stylegan3'
    init_kwargs: dict[str, Any]
    seed: int
    description: str


def _sg2(res: int) -> dict[str, Any]:
    return dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                mapping_kwargs=dict(num_layers=8), channel_base=16384, channel_max=512,
                num_fp16_res=4, conv_clamp=256, architecture="skip")


def _sg3(res: int, radial: bool) -> dict[str, Any]:
    kw: dict[str, Any] = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                              mapping_kwargs=dict(num_layers=2), channel_base=16384, channel_max=512,
                              num_fp16_res=4, conv_clamp=256, magnitude_ema_beta=0.999)
    if radial:
        kw.update(conv_kernel=1, use_radial_filters=True, channel_base=32768, channel_max=1024)
    return kw


BUILTINS: dict[str, BuiltinSpec] = {
    s.name: s
    for s in [
        BuiltinSpec("sg2-256", "stylegan2", _sg2(256), 1, "StyleGAN2, 256 px, untrained abstract imagery"),
        BuiltinSpec("sg2-512", "stylegan2", _sg2(512), 2, "StyleGAN2, 512 px, untrained abstract imagery"),
        BuiltinSpec("sg3t-256", "stylegan3", _sg3(256, False), 3, "StyleGAN3-T, 256 px, untrained abstract imagery"),
        BuiltinSpec("sg3t-512", "stylegan3", _sg3(512, False), 4, "StyleGAN3-T, 512 px, untrained abstract imagery"),
        BuiltinSpec("sg3r-256", "stylegan3", _sg3(256, True), 5, "StyleGAN3-R, 256 px, untrained abstract imagery"),
    ]
}
DEFAULT_BUILTIN = "sg2-256"


def is_builtin(model: str) -> bool:
    return model.startswith(PREFIX)


def builtin_spec(model: str) -> BuiltinSpec:
    """Spec for 'builtin:NAME' (or bare NAME); 'builtin:' alone means the default."""
    name = model[len(PREFIX):] if model.startswith(PREFIX) else model
    name = name or DEFAULT_BUILTIN
    try:
        return BUILTINS[name]
    except KeyError:
        raise KeyError(
            f"unknown built-in model {model!r}; choose one of "
            + ", ".join(PREFIX + n for n in BUILTINS)
        ) from None


def _generator_class(architecture: str) -> type[nn.Module]:
    if architecture == "stylegan2":
        from oscgan.models.stylegan2 import Generator
    else:
        from oscgan.models.stylegan3 import Generator
    return Generator


def cache_dir() -> Path | None:
    """Where calibrated built-ins are kept (``OSCGAN_CACHE_DIR``, else ~/.cache/oscgan); None = off."""
    env = os.environ.get("OSCGAN_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "oscgan"


def _cache_path(spec: BuiltinSpec) -> Path | None:
    root = cache_dir()
    if root is None:
        return None
    key = json.dumps([spec.name, spec.architecture, spec.init_kwargs, spec.seed, BUILD_VERSION,
                      CALIBRATION_SEED], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return root / f"builtin-{spec.name}-{digest}.safetensors"


@torch.no_grad()
def build_builtin(model: str = PREFIX + DEFAULT_BUILTIN, use_cache: bool = True) -> nn.Module:
    """Built-in model ``model``: identical on every machine.

    Creating and calibrating takes seconds, so the result is cached in oscgan's safetensors
    format (weights only, nothing executable) and reused when its key matches.
    """
    spec = builtin_spec(model)
    cls = _generator_class(spec.architecture)
    path = _cache_path(spec) if use_cache else None
    G = None
    if path is not None and path.is_file():
        G = _load_cached(cls, spec, path)
    if G is None:
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(spec.seed)
            G = cls(**spec.init_kwargs).eval()
        finally:
            torch.random.set_rng_state(state)
        _calibrate(G, spec)
        if path is not None:
            _save_cached(G, path)
    G.requires_grad_(False)
    G.builtin_name = PREFIX + spec.name
    return G


def _load_cached(cls: type[nn.Module], spec: BuiltinSpec, path: Path) -> nn.Module | None:
    from oscgan.models.errors import ModelLoadError
    from oscgan.models.safetensors_io import read_generator_safetensors

    try:
        arch, kwargs, state = read_generator_safetensors(path)
        G = cls(**kwargs).eval()
        G.load_state_dict(state, strict=True)
        if arch != spec.architecture:
            raise ValueError("architecture mismatch")
        return G
    except (ModelLoadError, ValueError, RuntimeError, TypeError, KeyError) as e:
        log.warning("ignoring cached built-in %s (%s); rebuilding", path, e)
        return None


def _save_cached(G: nn.Module, path: Path) -> None:
    from oscgan.models.safetensors_io import save_generator_safetensors

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_generator_safetensors(G.state_dict(), G.architecture, G.init_kwargs, path)
    except OSError as e:  # a read-only home only costs start-up time
        log.info("could not cache built-in model at %s: %s", path, e)


def _calibration_inputs(G: nn.Module, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(CALIBRATION_SEED)
    return torch.randn([n, G.z_dim], generator=gen)


def _set_w_avg(G: nn.Module) -> None:
    ws = G.mapping(_calibration_inputs(G, 4096), None)  # [4096, num_ws, w_dim]
    G.mapping.w_avg.copy_(ws[:, 0].mean(dim=0))


# Target standard deviation of each toRGB's contribution, by block resolution: large soft
# colour fields from the coarse blocks, visible shapes from the middle, a little texture on top.
_SG2_TORGB_STD = {4: 0.45, 8: 0.4, 16: 0.35, 32: 0.3, 64: 0.22, 128: 0.15, 256: 0.1, 512: 0.07}
_SG2_NOISE = {4: 0.0, 8: 0.05, 16: 0.1, 32: 0.15, 64: 0.15, 128: 0.1, 256: 0.05, 512: 0.03}
_OUTPUT_STD = 0.55


def _calibrate(G: nn.Module, spec: BuiltinSpec) -> None:
    _set_w_avg(G)
    if spec.architecture == "stylegan2":
        _calibrate_sg2(G, G.mapping(_calibration_inputs(G, 2), None))
    else:
        _calibrate_sg3(G)


def _calibrate_sg2(G: nn.Module, ws: torch.Tensor) -> None:
    """Noise strengths and per-block toRGB contributions following the profiles above."""
    from oscgan.models.stylegan2 import ToRGBLayer

    blocks = G.synthesis.blocks()
    for block in blocks:
        for name in ("conv0", "conv1"):
            layer = getattr(block, name, None)
            if layer is not None and layer.use_noise:
                layer.noise_strength.fill_(_SG2_NOISE.get(block.resolution, 0.1))
    stds: dict[ToRGBLayer, float] = {}

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        stds[module] = float((output - module.bias.reshape(1, -1, 1, 1)).std())

    handles = [b.torgb.register_forward_hook(hook) for b in blocks if hasattr(b, "torgb")]
    try:
        G.synthesis(ws)
    finally:
        for h in handles:
            h.remove()
    for block in blocks:
        if hasattr(block, "torgb") and stds.get(block.torgb, 0) > 0:
            target = _SG2_TORGB_STD.get(block.resolution, 0.05)
            block.torgb.weight.mul_(target / stds[block.torgb])
            block.torgb.bias.zero_()
    _normalise_output(G, ws, G.synthesis.blocks()[-1].torgb)


def _calibrate_sg3(G: nn.Module) -> None:
    """Whiten the colour channels, then centre them on grey with a lively contrast.

    R, G and B of a random network are strongly correlated (every picture one hue). toRGB is
    linear per pixel, so left-multiplying its weight by Sigma^-1/2 (Sigma = colour covariance
    over several seeds at the default truncation) decorrelates the channels: hues vary freely.
    One full forward captures the last layer's inputs; the rest only re-runs that 1x1 layer.
    """
    last = getattr(G.synthesis, G.synthesis.layer_names[-1])
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = last.register_forward_pre_hook(lambda m, args: captured.append((args[0], args[1])))
    try:
        G.synthesis(G.mapping(_calibration_inputs(G, 4), None, truncation_psi=0.7))
    finally:
        handle.remove()
    x, w_last = captured[0]
    scale = float(G.synthesis.output_scale)

    def colours(bias: float | None = None) -> torch.Tensor:  # [3, P] as the picture will show them
        last.bias.zero_() if bias is None else last.bias.fill_(bias)
        out = last(x, w_last) * scale  # [N, 3, H, W]
        return out.permute(1, 0, 2, 3).reshape(out.shape[1], -1).double()

    pix = colours(0.0)
    cov = torch.cov(pix) + 1e-8 * torch.eye(pix.shape[0], dtype=pix.dtype)
    evals, evecs = torch.linalg.eigh(cov)
    whiten = evecs @ torch.diag(evals.clamp_min(1e-12).rsqrt()) @ evecs.T * _OUTPUT_STD  # [3, 3]
    w = last.weight.double()
    last.weight.copy_((whiten @ w.reshape(w.shape[0], -1)).reshape(w.shape).to(last.weight.dtype))
    mean = colours(0.0).mean(dim=1)
    per_unit_bias = colours(1.0).mean(dim=1) - mean  # effect of +1 bias on each channel
    last.bias.copy_((-mean / per_unit_bias.clamp_min(1e-6)).to(last.bias.dtype))


def _normalise_output(G: nn.Module, ws: torch.Tensor, last: nn.Module) -> None:
    """Scale so the picture has a lively contrast (std ~0.55) without saturating everything."""
    img = G.synthesis(ws)
    std = float(img.std())
    if std > 0:
        scale = _OUTPUT_STD / std
        if G.architecture == "stylegan2":
            for block in G.synthesis.blocks():
                if hasattr(block, "torgb"):
                    block.torgb.weight.mul_(scale)
        else:
            last.weight.mul_(scale)
