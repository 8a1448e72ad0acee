"""Read NVIDIA StyleGAN2/StyleGAN3 snapshot pickles without running anything from the file.

A snapshot (``network-snapshot-*.pkl``, stylegan2-ada-pytorch or stylegan3) is a dict with
``G``, ``D``, ``G_ema``, ``augment_pipe`` and ``training_set_kwargs``. Each network is stored
by NVIDIA's ``torch_utils.persistence`` as ``_reconstruct_persistent_obj(meta)``: its source
code (``module_src``, never executed or needed here) and the module's ``__dict__``.

How reading stays safe:

1. ``scan_pickle`` checks every opcode first (see ``pickle_scan``): no persistent ids, no
   extension or old-style instantiation opcodes, bounded memo indices, tuple and MARK depth.
2. ``_NetworkUnpickler.find_class`` maps the short allowlist ``ALLOWED_GLOBALS`` to inert
   stand-ins (``pickle_allowlist``); any other name is refused. No real class or function from torch,
   numpy or the file is ever called. The stand-ins are frozen: ``BUILD`` on one raises, except
   for the one validated state numpy's dtype and array pickles carry.
3. Stand-ins record, they do not build: ``_reconstruct_persistent_obj`` keeps ``meta``, tensor
   functions keep their arguments, ``_load_from_bytes`` keeps the bytes. Only the networks the
   caller asks for (default ``G_ema``) are then converted: their storages parsed, tensors bounds-
   checked and copied, plain data converted with depth and size limits. ``D`` and
   ``augment_pipe`` are walked by the unpickler (so a refused global anywhere still rejects the
   file) but none of their tensors are decoded.

The allowlist, with the reason for each entry, is in ``pickle_allowlist``.
"""

from __future__ import annotations

import logging
import mmap
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from oscgan.models.errors import FormatError, ModelLoadError, describe_name
from oscgan.models.pickle_allowlist import (
    ALLOWED_GLOBALS,
    HINT_NOT_SNAPSHOT,
    Inert,
    EasyDictStandIn,
    LazyStorage,
    PendingArray,
    PersistentObj,
    TensorStandIn,
    allowed_globals,
)
from oscgan.models.pickle_scan import DEFAULT_LIMITS, HINT_CORRUPT, HINT_LIMIT, HINT_REFUSED, ReadLimits, scan_pickle
from oscgan.models.records import ModuleRecord
from oscgan.models.torch_storage import StorageData, TensorBudget, make_tensor, parse_storage_bytes

__all__ = ["ALLOWED_GLOBALS", "NetworkPickle", "read_network_pickle"]

log = logging.getLogger(__name__)

# nn.Module bookkeeping in a module's __dict__ that is not an attribute of the network.
_MODULE_INTERNALS = ("training",)


class _NotPlain(FormatError):
    """A value that is not plain data (a tensor, a module, bytes) where plain data was expected."""


class _NetworkUnpickler(pickle.Unpickler):
    """``find_class`` resolves only the allowlist; persistent ids are refused."""

    def __init__(self, stream: Any, limits: ReadLimits) -> None:
        super().__init__(stream, fix_imports=False, encoding="ASCII")
        self._globals = allowed_globals(limits)

    def find_class(self, module: str, name: str) -> Any:
        found = self._globals.get((module, name))
        if found is None:
            raise FormatError(f"global '{describe_name(module)}.{describe_name(name)}' is not allowed "
                              "in a network pickle", HINT_REFUSED)
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise FormatError("network pickle contains a persistent id", HINT_REFUSED)


# ---------------------------------------------------------------------------------------------
# Conversion of the requested networks into ModuleRecords.
# ---------------------------------------------------------------------------------------------


class _Resolver:
    """Turns stand-ins into ``ModuleRecord``s, tensors and plain data, within ``limits``."""

    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits
        self.budget = TensorBudget(limits.max_total_tensor_bytes)
        self.nodes = 0
        self._storages: dict[int, StorageData] = {}
        self._tensors: dict[int, torch.Tensor] = {}
        self._modules: dict[int, ModuleRecord] = {}
        self._active: set[int] = set()

    # -- plain data -------------------------------------------------------------------------
    def plain(self, value: Any, where: str, depth: int = 0) -> Any:
        """Copy ``value`` as plain Python data (dicts, lists, tuples, str, numbers, None)."""
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise FormatError(f"{where}: more than {self.limits.max_nodes} values in the network's "
                              "arguments and attributes", HINT_LIMIT)
        if depth > self.limits.max_depth:
            raise FormatError(f"{where}: data nested deeper than {self.limits.max_depth}", HINT_LIMIT)
        if value is None or type(value) in (bool, int, float, str):
            return value
        if isinstance(value, PendingArray):
            if value.value is None:
                raise FormatError(f"{where}: numpy array without data", HINT_CORRUPT)
            return value.value
        if type(value) in (list, tuple, dict, set, frozenset, EasyDictStandIn):
            if len(value) > self.limits.max_container_items:
                raise FormatError(f"{where}: a container of {len(value)} items "
                                  f"(limit {self.limits.max_container_items})", HINT_LIMIT)
            key = id(value)
            if key in self._active:
                raise FormatError(f"{where}: data refers to itself", HINT_CORRUPT)
            self._active.add(key)
            try:
                if isinstance(value, dict):
                    out: dict[Any, Any] = {}
                    for k, v in value.items():
                        plain_key, plain_value = self.plain(k, where, depth + 1), self.plain(v, where, depth + 1)
                        try:
                            out[plain_key] = plain_value
                        except TypeError:  # e.g. a frozenset key, which became a list
                            raise _NotPlain(f"{where}: unhashable dict key in plain data", HINT_CORRUPT) from None
                    return out
                items = [self.plain(v, where, depth + 1) for v in value]
                if type(value) is tuple:
                    return tuple(items)
                if type(value) in (set, frozenset):
                    return sorted(items, key=repr)
                return items
            finally:
                self._active.discard(key)
        raise _NotPlain(f"{where}: unexpected {_kind(value)} in plain data", HINT_NOT_SNAPSHOT)

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, value: TensorStandIn) -> torch.Tensor:
        key = id(value)
        if key not in self._tensors:
            storage = self.storage(value.storage)
            self._tensors[key] = make_tensor(storage, value.offset, value.size, value.stride,
                                             self.limits, self.budget)
        return self._tensors[key]

    def storage(self, value: LazyStorage) -> StorageData:
        key = id(value)
        if key not in self._storages:
            self._storages[key] = parse_storage_bytes(value.payload, self.limits)
        return self._storages[key]

    # -- modules ----------------------------------------------------------------------------
    def module(self, obj: PersistentObj, where: str, depth: int = 0) -> ModuleRecord:
        key = id(obj)
        if key in self._modules:
            return self._modules[key]
        if key in self._active:
            raise FormatError(f"{where}: module contains itself", HINT_CORRUPT)
        if depth > self.limits.max_depth:
            raise FormatError(f"{where}: modules nested deeper than {self.limits.max_depth}", HINT_LIMIT)
        self._active.add(key)
        try:
            record = self._build_module(obj, where, depth)
        finally:
            self._active.discard(key)
        self._modules[key] = record
        return record

    def _build_module(self, obj: PersistentObj, where: str, depth: int) -> ModuleRecord:
        state = obj.state
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise FormatError(f"{where}: module state is not a dict of attributes", HINT_CORRUPT)
        for required in ("_parameters", "_buffers", "_modules"):
            if type(state.get(required)) is not dict:
                raise FormatError(f"{where}: module state has no {required} dict", HINT_NOT_SNAPSHOT)
        params: dict[str, torch.Tensor] = {}
        for name, value in self._named(state["_parameters"], where, "parameter"):
            if value is None:
                continue
            if not isinstance(value, TensorStandIn):
                raise FormatError(f"{where}.{name}: parameter is a {_kind(value)}, not a tensor", HINT_CORRUPT)
            params[name] = self.tensor(value)
        buffers: dict[str, torch.Tensor | None] = {}
        for name, value in self._named(state["_buffers"], where, "buffer"):
            if value is not None and not isinstance(value, TensorStandIn):
                raise FormatError(f"{where}.{name}: buffer is a {_kind(value)}, not a tensor", HINT_CORRUPT)
            buffers[name] = None if value is None else self.tensor(value)
        non_persistent = self.plain(state.get("_non_persistent_buffers_set", set()), f"{where}: buffer set", depth)
        if not isinstance(non_persistent, list) or not all(isinstance(n, str) for n in non_persistent):
            raise FormatError(f"{where}: malformed set of non-persistent buffers", HINT_CORRUPT)
        children: dict[str, ModuleRecord | None] = {}
        for name, value in self._named(state["_modules"], where, "submodule"):
            if value is None:
                children[name] = None
            elif isinstance(value, PersistentObj):
                children[name] = self.module(value, f"{where}.{name}", depth + 1)
            else:
                raise FormatError(f"{where}.{name}: submodule is a {_kind(value)}, not a persistent module",
                                  HINT_NOT_SNAPSHOT)
        init_args = self.plain(state.get("_init_args", ()), f"{where}: constructor arguments", depth)
        init_kwargs = self.plain(state.get("_init_kwargs", {}), f"{where}: constructor arguments", depth)
        if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict) \
                or not all(isinstance(k, str) for k in init_kwargs):
            raise FormatError(f"{where}: malformed constructor arguments", HINT_CORRUPT)
        attrs: dict[str, Any] = {}
        for name, value in state.items():
            if name.startswith("_") or name in _MODULE_INTERNALS:
                continue
            try:
                attrs[name] = self.plain(value, f"{where}.{name}", depth)
            except _NotPlain:  # e.g. a tensor kept as a plain attribute: not needed to rebuild
                log.warning("%s.%s: attribute skipped (%s)", where, describe_name(name), _kind(value))
        return ModuleRecord(
            class_name=obj.class_name,
            init_args=tuple(init_args),
            init_kwargs=init_kwargs,
            attrs=attrs,
            params=params,
            buffers=buffers,
            children=children,
            non_persistent=frozenset(non_persistent),
        )

    def _named(self, table: dict, where: str, kind: str) -> list[tuple[str, Any]]:
        if len(table) > self.limits.max_container_items:
            raise FormatError(f"{where}: too many {kind}s", HINT_LIMIT)
        out = []
        for name, value in table.items():
            if not isinstance(name, str) or not 0 < len(name) <= 200 or "." in name:
                raise FormatError(f"{where}: invalid {kind} name {describe_name(name)!r}", HINT_CORRUPT)
            out.append((name, value))
        return out


def _kind(value: Any) -> str:
    if isinstance(value, Inert):
        return value.kind
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NetworkPickle:
    """The networks read from one snapshot pickle.

    Attributes:
        path: the file.
        networks: requested top-level key (``'G_ema'``, ...) -> its module tree.
        training_set_kwargs: the dataset settings stored in the snapshot, as plain data, or
            None when absent or not plain data.
        keys: every top-level key present in the file.
    """

    path: Path
    networks: dict[str, ModuleRecord]
    training_set_kwargs: dict[str, Any] | None
    keys: tuple[str, ...]

    def __getitem__(self, key: str) -> ModuleRecord:
        return self.networks[key]


def read_network_pickle(
    path: str | os.PathLike[str],
    which: Sequence[str] = ("G_ema",),
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> NetworkPickle:
    """Read the networks named in ``which`` from an NVIDIA snapshot pickle, running nothing.

    Raises ``ModelLoadError`` ("<file name>: <what is wrong> (<hint>)") for a refused global,
    a truncated or corrupt file, a malformed tensor, a limit exceeded, or a missing network.
    """
    path = Path(path)
    wanted = (which,) if isinstance(which, str) else tuple(which)
    try:
        return _read(path, wanted, limits)
    except FormatError as exc:
        raise exc.at(path) from None
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file ({exc.strerror or type(exc).__name__})",
                             "check the path and permissions") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise ModelLoadError(path, f"corrupt or truncated pickle ({type(exc).__name__})", HINT_CORRUPT) from None


def _read(path: Path, wanted: tuple[str, ...], limits: ReadLimits) -> NetworkPickle:
    size = path.stat().st_size
    if size == 0:
        raise FormatError("the file is empty", HINT_CORRUPT)
    if size > limits.max_file_bytes:
        raise FormatError(f"the file has {size} bytes (limit {limits.max_file_bytes})", HINT_LIMIT)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = scan_pickle(data, limits, what="network pickle")
        if end != size:
            raise FormatError(f"{size - end} unexpected bytes after the end of the pickle", HINT_CORRUPT)
        data.seek(0)
        top = _NetworkUnpickler(data, limits).load()
    if type(top) is not dict or not all(isinstance(k, str) for k in top):
        raise FormatError(f"the pickle holds a {_kind(top)}, not a snapshot dict", HINT_NOT_SNAPSHOT)
    resolver = _Resolver(limits)
    networks: dict[str, ModuleRecord] = {}
    for key in wanted:
        value = top.get(key)
        if not isinstance(value, PersistentObj):
            present = ", ".join(describe_name(k, 30) for k in list(top)[:10]) or "none"
            raise FormatError(f"no network '{describe_name(key)}' in the pickle (top-level keys: {present})",
                              HINT_NOT_SNAPSHOT)
        networks[key] = resolver.module(value, key)
    training_set_kwargs = None
    if top.get("training_set_kwargs") is not None:
        try:
            training_set_kwargs = resolver.plain(top["training_set_kwargs"], "training_set_kwargs")
        except FormatError as exc:
            log.warning("%s: training_set_kwargs ignored (%s)", path.name, exc.problem)
        if not isinstance(training_set_kwargs, dict):
            training_set_kwargs = None
    log.info("%s: read %s (%.1f MB of tensors)", path.name, ", ".join(networks), resolver.budget.used / 1e6)
    return NetworkPickle(path=path, networks=networks, training_set_kwargs=training_set_kwargs,
                         keys=tuple(top))
