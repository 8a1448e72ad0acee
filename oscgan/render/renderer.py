"""render(RenderArgs) -> RenderResult (frame, timings, error); never raises into the loop."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oscgan.render.convert import images_to_rgba
from oscgan.state.latents import slerp, z_from_seed
from oscgan.state.snapshot import RenderArgs

log = logging.getLogger(__name__)


@dataclass
class RenderResult:
    """Outcome of one render.

    Attributes:
        rgba: [H, W, 4] uint8 picture, or None when rendering failed.
        timings: milliseconds per stage ('latents', 'synthesis', 'convert', 'total').
        error: what went wrong (None on success).
    """

    rgba: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


class _LRU:
    """A small least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[object, object] = OrderedDict()

    def get(self, key: object) -> object | None:
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: object, value: object) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


def image_transform(rotate_deg: float, translate: tuple[float, float], scale: float) -> np.ndarray:
    """[3, 3] image transform: scale, then rotate (degrees, counter-clockwise), then translate."""
    a = math.radians(rotate_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c * scale, -s * scale, translate[0]],
                     [s * scale, c * scale, translate[1]],
                     [0.0, 0.0, 1.0]])


def wrapped_resample(x: torch.Tensor, inverse: np.ndarray) -> torch.Tensor:
    """Resample feature maps x [C, H, W] through an inverse transform, wrapping at the edges.

    ``inverse`` [3, 3] maps output coordinates (-1..1 across the map) to source coordinates.
    Wrapping (torus topology) keeps the constant free of borders however far it is moved.
    """
    c, h, w = x.shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1) @ torch.from_numpy(inverse.T).float()
    sx = torch.remainder(pts[..., 0] + 1, 2) - 1  # wrap to -1..1
    sy = torch.remainder(pts[..., 1] + 1, 2) - 1
    tiled = x.detach().cpu().float().repeat(1, 3, 3)  # [C, 3H, 3W]: neighbours for bilinear wrap
    grid = torch.stack([sx / 3, sy / 3], dim=-1)[None]  # centre tile in tiled coordinates
    out = F.grid_sample(tiled[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].to(device=x.device, dtype=x.dtype)


class Renderer:
    """Turns RenderArgs into frames with one generator on one device.

    Caches (keyed by everything that affects them): mapped w per (seed, z offset), the
    manipulated constant / input transform per control values. A failure is reported in the
    result, never raised.

    Args:
        G: a generator from ``oscgan.models.load_generator`` (eval mode).
        device: where it runs. out_size: (width, height) of frames, None = native.
        fit: 'stretch' or 'letterbox' when out_size differs in aspect.
    """

    def __init__(self, G: nn.Module, device: torch.device, out_size: tuple[int, int] | None = None,
                 fit: str = "stretch") -> None:
        self.G = G
        self.device = device
        self.out_size = out_size
        self.fit = fit
        self._w_cache = _LRU(64)
        self._const_key: object = None
        self._const: torch.Tensor | None = None
        self._sg3 = G.architecture == "stylegan3"
        if self._sg3:
            self._file_transform = G.synthesis.input.transform.detach().cpu().double().numpy().copy()
            self._transform_key: object = None
            self._corruption_key: object = (0.0, None)
            self._corruption = torch.zeros(0)
            self._hook = G.synthesis.input.register_forward_hook(self._corrupt_input)
        else:
            self._base_const = dict(G.named_parameters())[G.const_name()].detach()

    # -- latents -------------------------------------------------------------------------
    def _z(self, seed: int, offset: tuple[float, ...]) -> np.ndarray:
        z = z_from_seed(seed, self.G.z_dim)
        return z + np.asarray(offset, dtype=np.float32) if any(offset) else z

    def _map(self, z: np.ndarray) -> torch.Tensor:
        zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))[None].to(self.device)
        c = torch.zeros([1, self.G.c_dim], device=self.device) if self.G.c_dim else None
        return self.G.mapping(zt, c)  # [1, num_ws, w_dim], untruncated

    def _w_for_seed(self, seed: int, offset: tuple[float, ...]) -> torch.Tensor:
        key = (seed, offset if any(offset) else ())
        ws = self._w_cache.get(key)
        if ws is None:
            ws = self._map(self._z(seed, offset))
            self._w_cache.put(key, ws)
        return ws  # type: ignore[return-value]

    def latents(self, args: RenderArgs) -> torch.Tensor:
        """ws [1, num_ws, w_dim] for args: base (seed or travel blend), mixing, truncation."""
        if len(args.seeds) == 1:
            ws = self._w_for_seed(args.seeds[0], args.z_offset)
        elif args.travel_mode == "lerp_w":
            ws = sum(wt * self._w_for_seed(s, args.z_offset) for s, wt in zip(args.seeds, args.seed_weights))
        else:
            za, zb = (z_from_seed(s, self.G.z_dim) for s in args.seeds[:2])
            z = slerp(za, zb, args.seed_weights[1])
            if any(args.z_offset):
                z = z + np.asarray(args.z_offset, dtype=np.float32)
            ws = self._map(z)
        if any(m > 0 for m in args.mix):
            ws_mix = self._w_for_seed(args.mix_seed, ())
            m = torch.tensor(args.mix, dtype=ws.dtype, device=ws.device).reshape(1, -1, 1)
            ws = ws + (ws_mix - ws) * m
        if args.psi != 1:
            w_avg = self.G.mapping.w_avg
            n = args.cutoff if 0 < args.cutoff < self.G.num_ws else self.G.num_ws
            trunc = w_avg.lerp(ws[:, :n], args.psi)
            ws = torch.cat([trunc, ws[:, n:]], dim=1) if n < self.G.num_ws else trunc
        return ws

    # -- constant / input ------------------------------------------------------------------
    def _noise(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(shape, generator=g)

    def _const_for(self, args: RenderArgs) -> torch.Tensor | None:
        """StyleGAN2: the learned constant after shift/zoom/rotation and corruption (None = as is)."""
        key = (args.const_corruption, args.const_seed, args.const_shift, args.const_scale,
               args.rotate, args.translate, args.scale)
        if key == self._const_key:
            return self._const
        const = self._base_const
        moved = (args.const_shift != (0.0, 0.0) or args.const_scale != 1 or args.rotate != 0
                 or args.translate != (0.0, 0.0) or args.scale != 1)
        if moved:
            # Constant's own shift/zoom, then the image-space affine, both in -1..1 map units.
            t_const = image_transform(0.0, (2 * args.const_shift[0], 2 * args.const_shift[1]), args.const_scale)
            t_img = image_transform(args.rotate, (2 * args.translate[0], 2 * args.translate[1]), args.scale)
            const = wrapped_resample(const, np.linalg.inv(t_img @ t_const))
        if args.const_corruption > 0:
            noise = self._noise(tuple(const.shape), args.const_seed).to(const.device, const.dtype)
            const = const + noise * (args.const_corruption * float(self._base_const.std()))
        self._const_key = key
        self._const = const if (moved or args.const_corruption > 0) else None
        return self._const

    def _set_input_transform(self, args: RenderArgs) -> None:
        """StyleGAN3: file transform composed with the user's affine and constant shift/zoom."""
        key = (args.rotate, args.translate, args.scale, args.const_shift, args.const_scale)
        if key == self._transform_key:
            return
        t_img = image_transform(args.rotate, args.translate, args.scale)
        t_feat = image_transform(0.0, args.const_shift, args.const_scale)
        m = self._file_transform @ np.linalg.inv(t_img @ t_feat)
        self.G.synthesis.input.transform.copy_(torch.from_numpy(m).float())
        self._transform_key = key

    def _corrupt_input(self, module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        if self._corruption.numel() == 0:
            return None
        # Relative to the features' own magnitude, so 1 means "as much noise as signal".
        return output + self._corruption.to(output.device, output.dtype) * output.std()

    def _set_sg3_corruption(self, args: RenderArgs) -> None:
        """StyleGAN3: the noise added to the input features (empty = none), cached by its own key."""
        off = args.const_corruption <= 0
        key = (0.0, None) if off else (args.const_corruption, args.const_seed)
        if key == self._corruption_key:
            return
        if off:
            self._corruption = torch.zeros(0)
        else:
            inp = self.G.synthesis.input
            shape = (1, inp.channels, int(inp.size[1]), int(inp.size[0]))
            self._corruption = self._noise(shape, args.const_seed) * args.const_corruption
        self._corruption_key = key

    # -- render ----------------------------------------------------------------------------
    @torch.inference_mode()
    def render(self, args: RenderArgs) -> RenderResult:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            ws = self.latents(args)
            t1 = time.perf_counter()
            if self._sg3:
                self._set_input_transform(args)
                self._set_sg3_corruption(args)
                img = self.G.synthesis(ws, noise_mode=args.noise_mode)
            else:
                kw: dict[str, torch.Generator] = {}
                if args.noise_seed is not None and args.uses_random_noise:
                    # Seeded per frame so a recorded session replays with the same grain.
                    kw["noise_generator"] = torch.Generator(device=self.device).manual_seed(args.noise_seed)
                img = self.G.synthesis(ws, noise_mode=args.noise_mode, noise_strength=args.noise_strength,
                                       const=self._const_for(args), **kw)
            t2 = time.perf_counter()
            rgba = images_to_rgba(img, self.out_size, self.fit)[0].cpu().numpy()
            t3 = time.perf_counter()
            timings = {"latents": (t1 - t0) * 1e3, "synthesis": (t2 - t1) * 1e3,
                       "convert": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
            return RenderResult(rgba, timings)
        except Exception as e:  # noqa: BLE001 - the loop must survive anything, OOM included
            if isinstance(e, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            msg = f"{type(e).__name__}: {e}"
            log.debug("render failed", exc_info=True)
            return RenderResult(None, {"total": (time.perf_counter() - t0) * 1e3}, msg)
