"""Layers and the generator interface shared by StyleGAN2 and StyleGAN3."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from oscgan.models.ops import bias_act


class FullyConnectedLayer(nn.Module):
    """Equalized-learning-rate linear layer with fused bias and activation.

    The stored weight is scaled at run time by ``lr_multiplier / sqrt(in_features)`` and the
    bias by ``lr_multiplier``; these are the gains the file's weights were trained with.

    Args:
        in_features, out_features: sizes of the [N, in] -> [N, out] map.
        bias: whether the layer has a bias parameter.
        activation: 'linear', 'lrelu', ... (see ``ops.ACTIVATION_GAINS``).
        lr_multiplier: learning-rate multiplier (0.01 in the mapping network).
        bias_init: initial bias, scalar or per-output list (only used for fresh weights).
        weight_init: initial weight scale (0 gives an all-zero weight, as StyleGAN3's input affine).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float | Sequence[float] = 0.0,
        weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.weight = nn.Parameter(
            torch.randn([self.out_features, self.in_features]) * (weight_init / lr_multiplier)
        )
        if bias:
            init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [self.out_features])
            self.bias = nn.Parameter(torch.from_numpy(init / lr_multiplier))
        else:
            self.bias = None
        self.weight_gain = lr_multiplier / np.sqrt(self.in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, in_features] -> [N, out_features]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"activation={self.activation}"
        )


@dataclass(frozen=True)
class LayerInfo:
    """One w index of a generator: which layer consumes it and at what resolution (pixels)."""

    index: int
    name: str
    resolution: int


def layer_group(resolution: int) -> str:
    """Coarse (<= 8 px), middle (16-32 px) or fine (above), as in the StyleGAN paper."""
    if resolution <= 8:
        return "coarse"
    if resolution <= 32:
        return "middle"
    return "fine"


def checked_ws(ws: torch.Tensor, num_ws: int, w_dim: int) -> torch.Tensor:
    """Assert ws is [N, num_ws, w_dim] and return it as float32."""
    if ws.ndim != 3 or ws.shape[1] != num_ws or ws.shape[2] != w_dim:
        raise ValueError(f"ws must be [N, {num_ws}, {w_dim}], got {tuple(ws.shape)}")
    return ws.to(torch.float32)
