"""Latent vectors from seeds, and interpolation between them (numpy only, no torch)."""

from __future__ import annotations

import numpy as np


def z_from_seed(seed: int, z_dim: int) -> np.ndarray:
    """The z [z_dim] float32 for ``seed``, as NVIDIA's tools draw it (so seed N here = seed N there)."""
    return np.random.RandomState(int(seed) % 2**32).randn(1, z_dim)[0].astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two latents, keeping their norm profile (t in 0..1)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    cos = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    omega = np.arccos(cos)
    if omega < 1e-6:
        return (1 - t) * a + t * b
    so = np.sin(omega)
    return ((np.sin((1 - t) * omega) / so) * a + (np.sin(t * omega) / so) * b).astype(a.dtype)
