"""Inert records of network modules read from files: class name, constructor arguments, tensors."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

MAX_PLAIN_DEPTH = 100


def to_plain(value: Any, _depth: int = 0) -> Any:
    """Convert numpy scalars and arrays inside ``value`` to plain Python values.

    ``np.float64(2.0) -> 2.0``, ``np.False_ -> False``, ``array([36, 36]) -> [36, 36]``;
    lists, tuples and dicts are converted item by item (tuples stay tuples, sets become sorted
    lists). Anything else that is not None, bool, int, float or str raises ``TypeError``.
    """
    if _depth > MAX_PLAIN_DEPTH:
        raise TypeError("value is nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic):
        out = value.item()
        if isinstance(out, (bool, int, float)):
            return out
        raise TypeError(f"numpy scalar of dtype {value.dtype} is not plain data")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"numpy array of dtype {value.dtype} is not plain data")
        return value.tolist()
    if isinstance(value, list):
        return [to_plain(v, _depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return {to_plain(k, _depth + 1): to_plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_plain(v, _depth + 1) for v in value), key=repr)
    raise TypeError(f"{type(value).__name__} is not plain data")


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"invalid {kind} name {name!r}")


@dataclass(frozen=True, eq=False)
class ModuleRecord:
    """One ``torch.nn.Module`` of a network as stored in a file, without its code.

    Attributes:
        class_name: the class the file says the module was (e.g. ``'SynthesisLayer'``).
        init_args, init_kwargs: the constructor arguments, as plain Python data.
        attrs: the module's other public attributes (``z_dim``, ``block_resolutions``, ...).
        params: parameter name -> tensor (parameters registered as None are left out).
        buffers: buffer name -> tensor, or None for a buffer registered as None.
        children: submodule name -> record, or None for a submodule registered as None.
        non_persistent: buffer names that ``state_dict()`` leaves out.
    """

    class_name: str
    init_args: tuple
    init_kwargs: dict[str, Any]
    attrs: dict[str, Any]
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor | None]
    children: dict[str, ModuleRecord | None]
    non_persistent: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_args", tuple(to_plain(tuple(self.init_args))))
        object.__setattr__(self, "init_kwargs", to_plain(dict(self.init_kwargs)))
        object.__setattr__(self, "attrs", to_plain(dict(self.attrs)))
        object.__setattr__(self, "non_persistent", frozenset(self.non_persistent))
        for kind, names in (("parameter", self.params), ("buffer", self.buffers), ("module", self.children)):
            for name in names:
                _check_name(kind, name)

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flat ``{'mapping.fc0.weight': tensor, ...}``: the names ``nn.Module.state_dict()`` gives.

        Parameters first, then persistent non-None buffers, then each child in order, as torch
        does. The tensors are the record's own (not copies).
        """
        out: dict[str, torch.Tensor] = {}
        for name, tensor in self.params.items():
            out[prefix + name] = tensor
        for name, buffer in self.buffers.items():
            if buffer is not None and name not in self.non_persistent:
                out[prefix + name] = buffer
        for name, child in self.children.items():
            if child is not None:
                out.update(child.state_dict(prefix + name + "."))
        return out

    def child(self, path: str) -> ModuleRecord:
        """The submodule at a dotted path such as ``'synthesis.b4.conv1'`` (KeyError if absent)."""
        node: ModuleRecord = self
        for part in path.split(".") if path else []:
            nxt = node.children.get(part)
            if nxt is None:
                raise KeyError(f"no submodule {path!r} in {self.class_name}")
            node = nxt
        return node

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, ModuleRecord]]:
        """(dotted path, record) for this module and every descendant, parents first."""
        yield prefix, self
        for name, child in self.children.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def num_elements(self) -> int:
        """Total number of tensor elements in ``state_dict()``."""
        return sum(math.prod(t.shape) for t in self.state_dict().values())
