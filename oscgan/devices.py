"""Choosing the torch device: CUDA, then Apple MPS, then CPU, unless the user names one."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(name: str | None = None) -> torch.device:
    """'cuda', 'cuda:1', 'mps', 'cpu' or None/'auto' (best available)."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"unknown device {name!r} (use cpu, cuda, cuda:N or mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} requested but CUDA is not available on this machine "
                          "(torch was built without CUDA or no GPU is visible); use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {name!r} requested but Apple MPS is not available here")
    return dev
