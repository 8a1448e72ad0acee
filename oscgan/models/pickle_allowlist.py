"""The allowlist of the network-pickle reader: inert stand-ins for the globals a snapshot names.

Every name a pickle may reference maps to something written here; nothing from torch, numpy or
the file is called. Stand-ins are frozen (no attribute can be set; ``BUILD`` raises) except for
the one validated state that numpy dtype and array pickles carry. They record, they do not
build: tensors stay recipes over undecoded storage bytes until ``pickle_reader`` converts the
networks the caller asked for.

Allowlist (module, name) -> why it is needed:

* ``torch_utils.persistence._reconstruct_persistent_obj``: every persistent network module.
* ``collections.OrderedDict``: ``nn.Module`` hook dicts (older torch: also ``_parameters``,
  ``_buffers``, ``_modules``) and the backward-hooks argument of every tensor.
* ``torch._utils._rebuild_parameter``: ``nn.Parameter`` (3 arguments; no hooks honoured).
* ``torch._utils._rebuild_tensor_v2``: every tensor (storage, offset, size, stride, ...).
* ``torch.storage._load_from_bytes``: every tensor's storage (a legacy ``torch.save`` stream).
* ``numpy._core.multiarray.scalar`` / ``numpy.core.multiarray.scalar`` (numpy 2 / 1 spelling):
  numpy scalars in constructor arguments (``np.float64`` cutoffs, ``np.bool_`` flags).
* ``numpy.dtype``: the dtype argument of those scalars and arrays (numeric dtypes only).
* ``numpy._core.multiarray._reconstruct`` / ``numpy.core.multiarray._reconstruct`` and
  ``numpy.ndarray``: small numpy arrays in attributes (StyleGAN3 ``in_size``, ``out_size``).
* ``numpy._core.numeric._frombuffer`` / ``numpy.core.numeric._frombuffer``: the same arrays
  pickled with protocol 5 (Python 3.14's default), whose data is an in-band ``bytearray``.
* ``builtins.set`` / ``__builtin__.set``: protocols 0-3 spell ``_non_persistent_buffers_set``
  as ``set([...])`` (protocol 4 has ``EMPTY_SET``).
* ``_codecs.encode``: protocols 0-2 spell a ``bytes`` object as ``encode(text, 'latin1')``.
* ``builtins.bytes`` / ``__builtin__.bytes``: protocols 0-2 spell ``b''`` as ``bytes()``.
* ``dnnlib.util.EasyDict``: NVIDIA's ``train.py`` passes ``mapping_kwargs`` (and in
  stylegan2-ada ``synthesis_kwargs``) as ``EasyDict``, deep-copied into ``_init_kwargs``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oscgan.models.errors import FormatError, describe_name
from oscgan.models.pickle_scan import DEFAULT_LIMITS, HINT_CORRUPT, HINT_LIMIT, HINT_REFUSED, ReadLimits

HINT_NOT_SNAPSHOT = "expected an NVIDIA StyleGAN2/StyleGAN3 network snapshot (.pkl)"
MAX_TENSOR_DIMS = 16


# ---------------------------------------------------------------------------------------------
# Stand-ins. Each is frozen (no attribute can be set, BUILD raises) unless stated otherwise.
# ---------------------------------------------------------------------------------------------


class Inert:
    """Base of the stand-ins: no instance dict, no attribute assignment, no BUILD."""

    __slots__ = ()
    kind = "object"

    def __setattr__(self, key: str, value: Any) -> None:
        raise FormatError(f"pickle tried to set an attribute on a {self.kind}", HINT_REFUSED)

    def __delattr__(self, key: str) -> None:
        raise FormatError(f"pickle tried to delete an attribute of a {self.kind}", HINT_REFUSED)

    def __setstate__(self, state: Any) -> None:
        raise FormatError(f"pickle tried to modify a {self.kind} (BUILD)", HINT_REFUSED)

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be pickled")

    def _init(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)


class PersistentObj(Inert):
    """What ``_reconstruct_persistent_obj(meta)`` returns: the class name and the module state."""

    __slots__ = ("class_name", "version", "state")
    class_name: str
    version: Any
    state: Any
    kind = "network module"

    def __init__(self, class_name: str, version: Any, state: Any) -> None:
        self._init(class_name=class_name, version=version, state=state)


class LazyStorage(Inert):
    """What ``_load_from_bytes(b)`` returns: the bytes, parsed only if a requested tensor uses them."""

    __slots__ = ("payload",)
    payload: bytes
    kind = "tensor storage"

    def __init__(self, payload: bytes) -> None:
        self._init(payload=payload)


class TensorStandIn(Inert):
    """What ``_rebuild_tensor_v2`` / ``_rebuild_parameter`` return: a validated tensor recipe."""

    __slots__ = ("storage", "offset", "size", "stride")
    storage: LazyStorage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    kind = "tensor"

    def __init__(self, storage: LazyStorage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self._init(storage=storage, offset=offset, size=size, stride=stride)


class _NdarrayType(Inert):
    """Token for ``numpy.ndarray``; only meaningful as ``_reconstruct``'s first argument."""

    __slots__ = ()
    kind = "numpy array type"


_NDARRAY = _NdarrayType()

# dtype names numpy writes in pickles, for the numeric kinds plain attributes may hold.
_NUMPY_DTYPES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})


class _DtypeStandIn(Inert):
    """What ``numpy.dtype(name, align, copy)`` returns. Accepts one BUILD: numpy's dtype state."""

    __slots__ = ("name", "byteorder")
    name: str
    byteorder: str | None
    kind = "numpy dtype"

    def __init__(self, name: str) -> None:
        self._init(name=name, byteorder=None)

    def __setstate__(self, state: Any) -> None:
        if self.byteorder is not None:
            raise FormatError("pickle tried to modify a numpy dtype twice (BUILD)", HINT_REFUSED)
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and state[1] in ("<", ">", "|", "=") and state[2] is None and state[3] is None
                and state[4] is None and all(type(v) is int for v in state[5:])):
            raise FormatError("pickle gave a numpy dtype an unexpected state", HINT_REFUSED)
        self._init(byteorder=state[1])

    def numpy(self) -> np.dtype:
        """The real numpy dtype (built by us from a validated name and byte order)."""
        base = np.dtype(self.name)
        if self.name[1:] == "1" or self.byteorder not in ("<", ">"):
            return base  # single bytes have no order; no BUILD or '=' means native
        return base.newbyteorder(">") if self.byteorder == ">" else base.newbyteorder("<")


class PendingArray(Inert):
    """What ``_reconstruct(ndarray, ...)`` returns. Accepts one BUILD: numpy's array state."""

    __slots__ = ("value", "max_items")
    value: Any
    max_items: int
    kind = "numpy array"

    def __init__(self, max_items: int) -> None:
        self._init(value=None, max_items=max_items)

    def __setstate__(self, state: Any) -> None:
        if self.value is not None:
            raise FormatError("pickle tried to modify a numpy array twice (BUILD)", HINT_REFUSED)
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise FormatError("pickle gave a numpy array an unexpected state", HINT_REFUSED)
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= MAX_TENSOR_DIMS
                and all(type(s) is int and s >= 0 for s in shape)):
            raise FormatError("pickle gave a numpy array an invalid shape", HINT_CORRUPT)
        if not isinstance(dtype, _DtypeStandIn) or type(fortran) is not bool or not isinstance(raw, bytes):
            raise FormatError("pickle gave a numpy array an unexpected state", HINT_REFUSED)
        count = math.prod(shape)
        if count > self.max_items:
            raise FormatError(f"a numpy array has {count} elements (limit {self.max_items})", HINT_LIMIT)
        np_dtype = dtype.numpy()
        if len(raw) != count * np_dtype.itemsize:
            raise FormatError("a numpy array's data does not match its shape", HINT_CORRUPT)
        array = np.frombuffer(raw, dtype=np_dtype).reshape(shape, order="F" if fortran else "C")
        self._init(value=array.tolist())


class EasyDictStandIn(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict; BUILD may only carry empty state."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> EasyDictStandIn:
        if args or kwargs:
            raise FormatError("pickle constructed an EasyDict with arguments", HINT_REFUSED)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        if state is not None and state != {}:
            raise FormatError("pickle tried to set attributes on an EasyDict (BUILD)", HINT_REFUSED)

    def __reduce__(self) -> Any:
        raise TypeError("EasyDict stand-in cannot be pickled")


# ---------------------------------------------------------------------------------------------
# Allowlisted callables. Arguments come from the file: validate everything.
# ---------------------------------------------------------------------------------------------


def _reconstruct_persistent_obj(meta: Any) -> PersistentObj:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise FormatError("a persistent object is not a module class record", HINT_NOT_SNAPSHOT)
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not 0 < len(class_name) <= 200 or not isinstance(state, dict):
        raise FormatError("a persistent object record is malformed", HINT_CORRUPT)
    if not isinstance(meta.get("module_src"), str):  # kept as text, never executed nor needed
        raise FormatError("a persistent object record has no module source text", HINT_CORRUPT)
    return PersistentObj(class_name, meta.get("version"), state)


def _ordered_dict(*args: Any) -> dict:
    if not args:
        return {}
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        pairs = args[0]
        if all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            return {k: v for k, v in pairs}
    raise FormatError("pickle called OrderedDict with unexpected arguments", HINT_REFUSED)


def _load_from_bytes(payload: Any) -> LazyStorage:
    if not isinstance(payload, bytes):
        raise FormatError("a tensor storage is not a byte string", HINT_CORRUPT)
    return LazyStorage(payload)


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None, *extra: Any) -> TensorStandIn:
    if extra or not isinstance(storage, LazyStorage):
        raise FormatError("a tensor record is malformed", HINT_CORRUPT)
    if type(offset) is not int or offset < 0:
        raise FormatError("a tensor has an invalid storage offset", HINT_CORRUPT)
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= MAX_TENSOR_DIMS
            and all(type(v) is int and v >= 0 for v in size + stride)):
        raise FormatError("a tensor has an invalid shape or stride", HINT_CORRUPT)
    if type(requires_grad) is not bool or not (backward_hooks is None or isinstance(backward_hooks, dict)):
        raise FormatError("a tensor record is malformed", HINT_CORRUPT)
    if metadata is not None and metadata != {}:
        raise FormatError("a tensor carries metadata this reader does not support", HINT_NOT_SNAPSHOT)
    return TensorStandIn(storage, offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any, *extra: Any) -> TensorStandIn:
    if extra or not isinstance(data, TensorStandIn) or type(requires_grad) is not bool:
        raise FormatError("a parameter record is malformed", HINT_CORRUPT)
    if not isinstance(backward_hooks, dict):
        raise FormatError("a parameter record is malformed", HINT_CORRUPT)
    return data


def _numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> _DtypeStandIn:
    if not isinstance(name, str) or name not in _NUMPY_DTYPES or type(align) is not bool or type(copy) is not bool:
        raise FormatError(f"numpy dtype {describe_name(name)!r} is not allowed in a network pickle", HINT_REFUSED)
    return _DtypeStandIn(name)


def _numpy_scalar(dtype: Any, raw: Any = None) -> bool | int | float:
    if not isinstance(dtype, _DtypeStandIn) or not isinstance(raw, bytes):
        raise FormatError("a numpy scalar record is malformed", HINT_REFUSED)
    np_dtype = dtype.numpy()
    if len(raw) != np_dtype.itemsize:
        raise FormatError("a numpy scalar's data does not match its dtype", HINT_CORRUPT)
    return np.frombuffer(raw, dtype=np_dtype)[0].item()


def _numpy_frombuffer_factory(limits: ReadLimits) -> _Factory:
    def frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> PendingArray:
        if not isinstance(buf, (bytes, bytearray)) or order not in ("C", "F"):
            raise FormatError("pickle called numpy's _frombuffer with unexpected arguments", HINT_REFUSED)
        array = PendingArray(limits.max_array_items)
        array.__setstate__((1, shape, dtype, order == "F", bytes(buf)))
        return array

    return _Factory(frombuffer, "numpy._frombuffer")


def _make_set(items: Any = ()) -> set:
    if not isinstance(items, (list, tuple)):
        raise FormatError("pickle called set() with unexpected arguments", HINT_REFUSED)
    return set(items)


def _codecs_encode(text: Any, encoding: Any = None) -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise FormatError("pickle called _codecs.encode with unexpected arguments", HINT_REFUSED)
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    if args:
        raise FormatError("pickle called bytes() with arguments", HINT_REFUSED)
    return b""


class _Factory:
    """Callable wrapper with a fixed name; never a type, so ``NEWOBJ`` on it fails."""

    __slots__ = ("_fn", "_name")

    def __init__(self, fn: Any, name: str) -> None:
        self._fn, self._name = fn, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise FormatError(f"pickle called {self._name} with keyword arguments", HINT_REFUSED)
        return self._fn(*args)

    def __setstate__(self, state: Any) -> None:
        raise FormatError(f"pickle tried to modify {self._name} (BUILD)", HINT_REFUSED)


def _numpy_reconstruct_factory(limits: ReadLimits) -> _Factory:
    def reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> PendingArray:
        if subtype is not _NDARRAY or shape != (0,) or typecode != b"b":
            raise FormatError("pickle called numpy's _reconstruct with unexpected arguments", HINT_REFUSED)
        return PendingArray(limits.max_array_items)

    return _Factory(reconstruct, "numpy._reconstruct")


def allowed_globals(limits: ReadLimits) -> dict[tuple[str, str], Any]:
    """The allowlist (see the module docstring for why each entry exists)."""
    scalar = _Factory(_numpy_scalar, "numpy scalar")
    reconstruct = _numpy_reconstruct_factory(limits)
    frombuffer = _numpy_frombuffer_factory(limits)
    make_set = _Factory(_make_set, "set")
    empty_bytes = _Factory(_empty_bytes, "bytes")
    return {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            _Factory(_reconstruct_persistent_obj, "_reconstruct_persistent_obj"),
        ("collections", "OrderedDict"): _Factory(_ordered_dict, "OrderedDict"),
        ("torch._utils", "_rebuild_parameter"): _Factory(_rebuild_parameter, "_rebuild_parameter"),
        ("torch._utils", "_rebuild_tensor_v2"): _Factory(_rebuild_tensor_v2, "_rebuild_tensor_v2"),
        ("torch.storage", "_load_from_bytes"): _Factory(_load_from_bytes, "_load_from_bytes"),
        ("numpy._core.multiarray", "scalar"): scalar,
        ("numpy.core.multiarray", "scalar"): scalar,
        ("numpy", "dtype"): _Factory(_numpy_dtype, "numpy.dtype"),
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("builtins", "set"): make_set,
        ("__builtin__", "set"): make_set,
        ("_codecs", "encode"): _Factory(_codecs_encode, "_codecs.encode"),
        ("builtins", "bytes"): empty_bytes,
        ("__builtin__", "bytes"): empty_bytes,
        ("dnnlib.util", "EasyDict"): EasyDictStandIn,
    }


ALLOWED_GLOBALS: tuple[str, ...] = tuple(sorted(f"{m}.{n}" for m, n in allowed_globals(DEFAULT_LIMITS)))
