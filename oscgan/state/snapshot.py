"""RenderArgs: the frozen, fully resolved description of one frame, taken once per frame."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from oscgan.state.params import ModelInfo


@dataclass(frozen=True)
class RenderArgs:
    """Everything that decides one picture. Equal args give an equal picture (noise 'random' aside).

    Attributes:
        seeds, seed_weights: the base latent is a blend of these seeds' latents. One seed
            (weight 1) when travel is off; two neighbouring keyframes while travelling.
        travel_mode: 'slerp_z' (blend in z) or 'lerp_w' (blend mapped w).
        z_offset: added to the base z, [z_dim].
        mix_seed: seed of the style-mixing latent. mix: per-layer mix amount, [num_ws] in 0..1.
        psi, cutoff: truncation; cutoff 0 = all layers.
        noise_mode: 'const' | 'random' | 'none'. noise_strength: multiplier.
        const_*: learned-constant controls (corruption amount, its seed, shift as a fraction of
            the width, zoom). rotate (degrees), translate (fraction of the width), scale: the
            input transform (StyleGAN3) or a transform of the constant (StyleGAN2).
        noise_seed: seed of the 'random' noise for this frame (see ``frame_noise_seed``), or
            None = torch's global RNG (not reproducible). Only set while random noise is on,
            so it never defeats the "args unchanged -> re-send the frame" shortcut.
    """

    seeds: tuple[int, ...]
    seed_weights: tuple[float, ...]
    travel_mode: str
    z_offset: tuple[float, ...]
    mix_seed: int
    mix: tuple[float, ...]
    psi: float
    cutoff: int
    noise_mode: str
    noise_strength: float
    const_corruption: float
    const_seed: int
    const_shift: tuple[float, float]
    const_scale: float
    rotate: float
    translate: tuple[float, float]
    scale: float
    noise_seed: int | None = None

    @property
    def uses_random_noise(self) -> bool:
        return self.noise_mode == "random" and self.noise_strength != 0


def frame_noise_seed(base: int, frame_index: int) -> int:
    """A well-mixed 63-bit seed for frame ``frame_index`` of a session seeded with ``base``.

    SplitMix64 of the pair: neighbouring frames get unrelated noise, and a replay that knows the
    frame index draws exactly the same grain as the live show.
    """
    x = (base * 0x9E3779B97F4A7C15 + frame_index + 1) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) >> 1


def travel_position(params: Mapping[str, object], elapsed_phase: float) -> float:
    """Position along the looping keyframe path in keyframe units (0 = keyframe 0).

    ``latent.travel`` places it by hand (0..1 spans first to last keyframe);
    ``elapsed_phase`` is what ``latent.travel.speed`` has added since start.
    """
    count = int(params["latent.keyframes.count"])
    return float(params["latent.travel"]) * (count - 1) + elapsed_phase


def resolve_seeds(params: Mapping[str, object], position: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(seeds, weights) of the base latent: the seed alone, or two keyframes while travelling."""
    count = int(params["latent.keyframes.count"])
    if count <= 1:
        return (int(params["latent.seed"]),), (1.0,)
    keys = [int(k) for k in params["latent.keyframes"]][:count]  # type: ignore[union-attr]
    pos = position % count
    i = int(math.floor(pos))
    t = pos - i
    a, b = keys[i % count], keys[(i + 1) % count]
    if t < 1e-9 or a == b:
        return (a,), (1.0,)
    # Smoothstep inside each segment so a looping walk never jerks at a keyframe.
    t = t * t * (3 - 2 * t)
    return (a, b), (1.0 - t, t)


def mix_amounts(params: Mapping[str, object], model: ModelInfo) -> tuple[float, ...]:
    """Per-layer mix: the larger of the layer's own amount and its group's amount."""
    groups = model.layer_groups()
    per_layer = [float(v) for v in params["mix.layer"]]  # type: ignore[union-attr]
    for name in ("coarse", "middle", "fine"):
        amount = float(params[f"mix.{name}"])
        for i in groups[name]:
            per_layer[i] = max(per_layer[i], amount)
    return tuple(per_layer)


def render_args(params: Mapping[str, object], model: ModelInfo, travel_phase: float = 0.0) -> RenderArgs:
    """Resolve a parameter snapshot (plus the travel phase the loop accumulated) into RenderArgs."""
    seeds, weights = resolve_seeds(params, travel_position(params, travel_phase))
    return RenderArgs(
        seeds=seeds,
        seed_weights=weights,
        travel_mode=str(params["latent.travel.mode"]),
        z_offset=tuple(float(v) for v in params["latent.z"]),  # type: ignore[union-attr]
        mix_seed=int(params["mix.seed"]),
        mix=mix_amounts(params, model),
        psi=float(params["truncation.psi"]),
        cutoff=int(params["truncation.cutoff"]),
        noise_mode=str(params["noise.mode"]),
        noise_strength=float(params["noise.strength"]),
        const_corruption=float(params["const.corruption"]),
        const_seed=int(params["const.seed"]),
        const_shift=(float(params["const.shift.x"]), float(params["const.shift.y"])),
        const_scale=float(params["const.scale"]),
        rotate=float(params["affine.rotate"]),
        translate=(float(params["affine.translate.x"]), float(params["affine.translate.y"])),
        scale=float(params["affine.scale"]),
    )
