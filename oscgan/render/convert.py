"""Generator output (float, about -1..1) -> uint8 RGBA frames, optionally resized or letterboxed."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def images_to_rgba(img: torch.Tensor, size: tuple[int, int] | None = None,
                   fit: str = "stretch") -> torch.Tensor:
    """img [N, C, H, W] float -> [N, H', W', 4] uint8 on the same device.

    C = 1 is grey, C = 2 grey + alpha, C = 3 RGB (opaque alpha), C = 4 RGBA; more channels
    use the first three as RGB.
    Values map as ``x * 127.5 + 128`` clamped to 0..255, as NVIDIA's tools save images.
    ``size`` = (width, height); ``fit`` = 'stretch' (fill) or 'letterbox' (keep aspect, black bars).
    """
    if img.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {tuple(img.shape)}")
    n, c, h, w = img.shape
    img = img.float()
    if size is not None and (size[0] != w or size[1] != h):
        img = _resize(img, size, fit)
    x = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if c <= 2:
        rgb = x[:, :1].expand(-1, 3, -1, -1)
        alpha = x[:, 1:2] if c == 2 else None
    elif c == 4:
        rgb, alpha = x[:, :3], x[:, 3:4]
    else:
        rgb, alpha = x[:, :3], None
    if alpha is None:
        alpha = torch.full_like(rgb[:, :1], 255)
    return torch.cat([rgb, alpha], dim=1).permute(0, 2, 3, 1).contiguous()


def _resize(img: torch.Tensor, size: tuple[int, int], fit: str) -> torch.Tensor:
    tw, th = size
    n, c, h, w = img.shape
    if fit == "stretch":
        return F.interpolate(img, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    if fit != "letterbox":
        raise ValueError(f"fit must be 'stretch' or 'letterbox', got {fit!r}")
    scale = min(tw / w, th / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    inner = F.interpolate(img, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    out = torch.full((n, c, th, tw), -1.0 - 1 / 127.5, device=img.device)  # black after mapping
    if c == 4:
        out[:, 3] = -1.0 - 1 / 127.5  # transparent bars
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    out[:, :, y0:y0 + nh, x0:x0 + nw] = inner
    return out
