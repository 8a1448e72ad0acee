"""oscgan's own generator file: weights in safetensors, architecture and constructor in its header.

Header metadata (all values are strings, as safetensors requires)::

    oscgan_format  "1"
    architecture   "stylegan2" | "stylegan3"
    init_kwargs    JSON object: the generator's constructor keyword arguments
    extra          JSON object (optional): anything else the writer wants to keep

JSON has no tuples: tuples in ``init_kwargs`` come back as lists.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from oscgan.models.errors import ModelLoadError
from oscgan.models.records import to_plain

log = logging.getLogger(__name__)

FORMAT_KEY = "oscgan_format"
FORMAT_VERSION = "1"
ARCHITECTURES = ("stylegan2", "stylegan3")

HINT_NOT_OURS = "expected a generator saved by oscgan (save_generator_safetensors)"
HINT_CORRUPT = "the file is truncated or damaged; save or fetch it again"


def save_generator_safetensors(
    state_dict: dict[str, torch.Tensor],
    architecture: str,
    init_kwargs: dict[str, Any],
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` and the metadata above to ``path`` (atomically); return the path.

    Tensors are saved as contiguous CPU copies with their dtype. ``init_kwargs`` and ``extra``
    must be JSON-able after numpy scalars/arrays are converted (``to_plain``).
    Raises ``ValueError``/``TypeError`` for bad arguments.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    metadata = {
        FORMAT_KEY: FORMAT_VERSION,
        "architecture": architecture,
        "init_kwargs": _to_json(init_kwargs, "init_kwargs"),
    }
    if extra is not None:
        metadata["extra"] = _to_json(extra, "extra")
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict entries must be str -> Tensor, got {name!r} -> {type(tensor).__name__}")
        # clone(): safetensors refuses tensors that share memory (tied weights, views).
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("saved %s (%s, %d tensors)", path.name, architecture, len(tensors))
    return path


def _to_json(value: dict[str, Any], what: str) -> str:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(to_plain(value), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-able: {exc}") from None


def _read_header(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ModelLoadError(path, "file not found", "check the path")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata()
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(path, f"not a valid safetensors file ({_short(exc)})", HINT_CORRUPT) from None
    if not metadata or FORMAT_KEY not in metadata:
        raise ModelLoadError(path, "safetensors file has no oscgan metadata", HINT_NOT_OURS)
    if metadata[FORMAT_KEY] != FORMAT_VERSION:
        raise ModelLoadError(path, f"unsupported oscgan format version {metadata[FORMAT_KEY][:20]!r}",
                             f"this oscgan reads version {FORMAT_VERSION}; the file may come from a newer oscgan")
    return metadata


def _json_object(path: Path, metadata: dict[str, str], key: str, required: bool) -> dict[str, Any]:
    text = metadata.get(key)
    if text is None:
        if required:
            raise ModelLoadError(path, f"oscgan metadata has no {key}", HINT_CORRUPT)
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ModelLoadError(path, f"oscgan metadata {key} is not valid JSON", HINT_CORRUPT) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ModelLoadError(path, f"oscgan metadata {key} is not a JSON object", HINT_CORRUPT)
    return value


def read_generator_safetensors(
    path: str | os.PathLike[str],
) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Read a file written by ``save_generator_safetensors``.

    Returns ``(architecture, init_kwargs, state_dict)``. Raises ``ModelLoadError`` for a missing
    file, a corrupt file, missing or invalid metadata, or an unknown format version.
    """
    path = Path(path)
    metadata = _read_header(path)
    architecture = metadata.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ModelLoadError(path, f"unknown architecture {str(architecture)[:40]!r} in oscgan metadata",
                             f"expected one of {', '.join(ARCHITECTURES)}")
    init_kwargs = _json_object(path, metadata, "init_kwargs", required=True)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            state_dict = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(path, f"cannot read tensors ({_short(exc)})", HINT_CORRUPT) from None
    log.info("read %s (%s, %d tensors)", path.name, architecture, len(state_dict))
    return architecture, init_kwargs, state_dict


def read_generator_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``extra`` dict saved with the generator ({} if none). Raises ``ModelLoadError``."""
    path = Path(path)
    return _json_object(path, _read_header(path), "extra", required=False)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
