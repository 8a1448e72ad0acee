"""Model file -> validated Generator: NVIDIA pickles, oscgan safetensors, rosinality checkpoints, built-ins.

Nothing in a file is executed: pickles go through our allowlisted reader (``pickle_reader``),
which only yields class names, constructor kwargs and tensors. This module decides the
architecture from the module tree, builds *our* generator from the kwargs, cross-checks
every derived constant and tensor shape against the file, and loads the weights strictly.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oscgan.devices import resolve_device
from oscgan.models.builtin import build_builtin, is_builtin
from oscgan.models.errors import ModelLoadError
from oscgan.models.records import ModuleRecord

log = logging.getLogger(__name__)

ARCHITECTURES = ("stylegan2", "stylegan3")


def generator_class(architecture: str) -> type[nn.Module]:
    if architecture == "stylegan2":
        from oscgan.models.stylegan2 import Generator
    elif architecture == "stylegan3":
        from oscgan.models.stylegan3 import Generator
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    return Generator


def load_generator(path: str | Path, which: str = "G_ema", device: str | torch.device | None = None) -> nn.Module:
    """Load a generator for inference (eval mode, no grads) on ``device`` (default: best available).

    ``path``: ``builtin:NAME``, a ``.pkl`` network pickle (NVIDIA snapshot, StyleGAN2/2-ADA/3),
    an oscgan ``.safetensors`` file, or a rosinality ``.pt`` checkpoint. ``which`` picks the
    network inside a pickle ('G_ema' or 'G').
    Raises ModelLoadError with the file name and what is wrong.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    name = str(path)
    if is_builtin(name):
        try:
            G = build_builtin(name)
        except KeyError as e:
            raise ModelLoadError(name, str(e.args[0])) from None
    else:
        p = Path(path)
        if not p.is_file():
            raise ModelLoadError(p, "file not found" if not p.exists() else "not a regular file",
                                 "check the path")
        suffix = p.suffix.lower()
        if suffix == ".safetensors":
            G = _load_safetensors(p)
        elif suffix in (".pt", ".pth", ".ckpt"):
            G = _load_rosinality(p)
        else:
            G = _load_pickle(p, which)
    G = G.eval().requires_grad_(False)
    return G.to(dev)


def _load_pickle(path: Path, which: str) -> nn.Module:
    from oscgan.models.pickle_reader import read_network_pickle

    if which not in ("G_ema", "G"):
        raise ModelLoadError(path, f"which={which!r} is not a generator", "use G_ema or G")
    net = read_network_pickle(path, which=(which,))
    record = net.networks.get(which)
    if record is None:
        raise ModelLoadError(path, f"the file holds no {which!r} network",
                             "is this a network snapshot (network-snapshot-*.pkl)?")
    return build_from_record(record, path)


def detect_architecture(record: ModuleRecord, path: Path | str) -> str:
    """'stylegan2' or 'stylegan3' from the module tree (class names alone are both 'Generator')."""
    if record.class_name != "Generator":
        raise ModelLoadError(path, f"top-level network is a {record.class_name!r}, not a Generator")
    synthesis = record.children.get("synthesis")
    if synthesis is None:
        raise ModelLoadError(path, "generator has no synthesis network")
    names = set(synthesis.children)
    if "input" in names and any(n.startswith("L0_") for n in names):
        return "stylegan3"
    if "b4" in names:
        return "stylegan2"
    raise ModelLoadError(path, f"unknown generator architecture (synthesis layers {sorted(names)[:6]}...)",
                         "oscgan reads StyleGAN2, StyleGAN2-ADA and StyleGAN3 generators")


def build_from_record(record: ModuleRecord, path: Path | str) -> nn.Module:
    """Construct our generator from a file's module record and load its weights strictly."""
    arch = detect_architecture(record, path)
    if record.init_args:
        raise ModelLoadError(path, f"generator has positional init args {record.init_args!r}; expected keywords only")
    kwargs = dict(record.init_kwargs)
    G = build_generator(arch, kwargs, path)
    file_state = record.state_dict()
    _check_structure(G, record, file_state, path)
    _load_state(G, file_state, path)
    return G


def build_generator(arch: str, init_kwargs: dict[str, Any], path: Path | str) -> nn.Module:
    """Our generator for ``arch`` with the file's constructor kwargs (errors become ModelLoadError)."""
    cls = generator_class(arch)
    try:
        return cls(**init_kwargs)
    except (TypeError, ValueError, KeyError, AssertionError) as e:
        raise ModelLoadError(path, f"cannot build a {arch} generator from the file's arguments: {e}") from None


def _check_structure(G: nn.Module, record: ModuleRecord, file_state: dict[str, torch.Tensor],
                     path: Path | str) -> None:
    """Cross-check our derived constants against the file: attributes, layer kwargs, filters."""
    for attr in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels"):
        if attr in record.attrs and int(record.attrs[attr]) != int(getattr(G, attr)):
            raise ModelLoadError(path, f"{attr} is {record.attrs[attr]} in the file but the architecture "
                                       f"gives {getattr(G, attr)}")
    syn = record.children["synthesis"]
    ours = set(name for name, _ in G.synthesis.named_children())
    theirs = set(name for name, child in syn.children.items() if child is not None)
    if ours != theirs:
        raise ModelLoadError(path, f"synthesis layers differ from the architecture: file has "
                                   f"{sorted(theirs - ours)} extra, {sorted(ours - theirs)} missing")
    if G.architecture == "stylegan3":
        for name in G.synthesis.layer_names:
            file_kwargs = syn.children[name].init_kwargs
            mine = getattr(G.synthesis, name).design_kwargs()
            for key, value in mine.items():
                if key in file_kwargs and not _same(value, file_kwargs[key]):
                    raise ModelLoadError(path, f"layer {name}: {key} is {file_kwargs[key]!r} in the file but "
                                               f"our design gives {value!r}")
    own_state = G.state_dict()
    for key in G.derived_buffer_names():
        if key in file_state:
            a, b = own_state[key].float(), file_state[key].float()
            if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
                raise ModelLoadError(path, f"derived buffer {key} in the file differs from our design "
                                           f"(shapes {tuple(b.shape)} vs {tuple(a.shape)})")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def _load_state(G: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    own = G.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelLoadError(path, f"tensors do not match the architecture: missing {missing[:5]}, "
                                   f"unexpected {unexpected[:5]}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise ModelLoadError(path, f"tensor {key} has shape {tuple(tensor.shape)}, "
                                       f"the architecture needs {tuple(own[key].shape)}")
        if not tensor.dtype.is_floating_point:
            raise ModelLoadError(path, f"tensor {key} has dtype {tensor.dtype}; expected floating point")
        if not torch.isfinite(tensor).all():
            raise ModelLoadError(path, f"tensor {key} contains NaN or infinity")
    G.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _load_safetensors(path: Path) -> nn.Module:
    from oscgan.models.safetensors_io import read_generator_safetensors

    arch, kwargs, state = read_generator_safetensors(path)
    if arch not in ARCHITECTURES:
        raise ModelLoadError(path, f"unknown architecture {arch!r} in the header")
    G = build_generator(arch, kwargs, path)
    _load_state(G, state, path)
    return G


def _load_rosinality(path: Path) -> nn.Module:
    from oscgan.models.rosinality import load_rosinality_checkpoint

    kwargs, state, has_w_avg = load_rosinality_checkpoint(path)
    G = build_generator("stylegan2", kwargs, path)
    if not has_w_avg:
        state = dict(state)
        state["mapping.w_avg"] = torch.zeros(G.w_dim)
    _load_state(G, state, path)
    if not has_w_avg:
        _estimate_w_avg(G)
        log.info("%s: no latent_avg in the checkpoint; estimated w_avg from 4096 seeded latents", path.name)
    return G


@torch.no_grad()
def _estimate_w_avg(G: nn.Module, n: int = 4096) -> None:
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(0))
    G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(dim=0))
