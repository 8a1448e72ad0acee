"""Parse the tensor storages embedded in network pickles, and build tensors from them safely.

When a tensor is pickled, its storage becomes ``torch.storage._load_from_bytes(b)`` where ``b``
is a legacy (non-zip) ``torch.save`` stream of the storage alone. Its layout, which
``parse_storage_bytes`` reads without ``torch.load``:

1. pickle: the magic number ``0x1950a86a20f9469cfc6c``;
2. pickle: the protocol version ``1001``;
3. pickle: a dict describing the writer (``protocol_version``, ``little_endian``, ``type_sizes``);
4. pickle: the storage itself, as a persistent id
   ``('storage', torch.<Type>Storage, key, location, numel, view_metadata)`` where
   ``view_metadata`` is None or ``(view_key, offset, size)`` in elements;
5. pickle: the list of storage keys whose data follows;
6. for each key: ``numel`` as 8 bytes little-endian, then ``numel * itemsize`` bytes of data,
   always little-endian (torch byte-swaps on big-endian writers).

Every pickle is pre-scanned (``scan_pickle``) and unpickled with a class that resolves only
the storage types below. A zip-format payload (never written by torch's own pickling, accepted
for robustness) is handed to ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import sys
import warnings
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import torch

from oscgan.models.errors import FormatError, describe_name
from oscgan.models.pickle_scan import HINT_CORRUPT, HINT_LIMIT, HINT_REFUSED, ReadLimits, scan_pickle

log = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"

# torch.<Name>Storage classes a legacy stream may name, and the dtype each stands for. Complex
# and quantized storages are left out: no StyleGAN network has them.
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
ALLOWED_DTYPES = frozenset(STORAGE_DTYPES.values())


def itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class StorageData:
    """A storage's raw little-endian bytes: ``numel`` elements of ``dtype``."""

    dtype: torch.dtype
    numel: int
    data: bytes | memoryview


class _StorageType:
    """Inert token standing for ``torch.<name>`` (a storage class) inside a legacy stream."""

    __slots__ = ("name", "dtype")
    name: str
    dtype: torch.dtype

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __setattr__(self, key: str, value: Any) -> None:
        raise FormatError("storage stream tried to modify a storage type", HINT_REFUSED)

    def __setstate__(self, state: Any) -> None:
        raise FormatError("storage stream tried to modify a storage type (BUILD)", HINT_REFUSED)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise FormatError("storage stream tried to call a storage type", HINT_REFUSED)


_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()}


@dataclass(frozen=True)
class _StorageRef:
    root_key: str
    dtype: torch.dtype
    offset: int  # elements into the root storage
    numel: int


class _StorageUnpickler(pickle.Unpickler):
    """Unpickler for the small pickles of a legacy stream: storage types only, no other globals."""

    def __init__(self, stream: io.BytesIO, limits: ReadLimits, payload_len: int,
                 roots: dict[str, tuple[torch.dtype, int]] | None) -> None:
        super().__init__(stream, fix_imports=False, encoding="ASCII")
        self._limits = limits
        self._roots = roots  # None: persistent ids are not expected in this pickle
        self._payload_len = payload_len

    def find_class(self, module: str, name: str) -> Any:
        if self._roots is not None and module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise FormatError(f"global '{describe_name(module)}.{describe_name(name)}' is not allowed "
                          "in an embedded tensor storage", HINT_REFUSED)

    def persistent_load(self, pid: Any) -> _StorageRef:
        if self._roots is None:
            raise FormatError("unexpected persistent id in an embedded tensor storage", HINT_REFUSED)
        if not (isinstance(pid, tuple) and len(pid) == 6 and _text(pid[0]) == "storage"):
            raise FormatError("embedded tensor storage has a malformed storage record", HINT_CORRUPT)
        _, stype, key, location, numel, view = pid
        if not isinstance(stype, _StorageType):
            raise FormatError("embedded tensor storage has no storage type", HINT_CORRUPT)
        key = _text(key)
        loc = _text(location)
        if key is None or not 0 < len(key) <= 256 or loc is None or len(loc) > 64:
            raise FormatError("embedded tensor storage has a malformed key or location", HINT_CORRUPT)
        nbytes = _checked_count(numel, "storage size") * itemsize(stype.dtype)
        if nbytes > min(self._limits.max_tensor_bytes, self._payload_len):
            raise FormatError(f"embedded tensor storage declares {_fmt(numel)} elements but holds at most "
                              f"{self._payload_len} bytes", HINT_CORRUPT)
        known = self._roots.setdefault(key, (stype.dtype, numel))
        if known != (stype.dtype, numel):
            raise FormatError("embedded tensor storage declares one key with two layouts", HINT_CORRUPT)
        if view is None:
            return _StorageRef(key, stype.dtype, 0, numel)
        if not (isinstance(view, tuple) and len(view) == 3):
            raise FormatError("embedded tensor storage has malformed view metadata", HINT_CORRUPT)
        _view_key, offset, size = view
        offset = _checked_count(offset, "view offset")
        size = _checked_count(size, "view size")
        if offset + size > numel:
            raise FormatError(f"storage view [{offset}, {offset + size}) lies outside its storage of "
                              f"{numel} elements", HINT_CORRUPT)
        return _StorageRef(key, stype.dtype, offset, size)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _checked_count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise FormatError(f"embedded tensor storage has an invalid {what}", HINT_CORRUPT)
    return value


def _fmt(value: int) -> str:
    return str(value) if value.bit_length() <= 64 else "<huge>"


def _load_one(stream: io.BytesIO, limits: ReadLimits, payload_len: int, what: str,
              roots: dict[str, tuple[torch.dtype, int]] | None = None) -> Any:
    start = stream.tell()
    end = scan_pickle(stream, limits, allow_persistent_ids=roots is not None, what=f"embedded {what}")
    stream.seek(start)
    value = _StorageUnpickler(stream, limits, payload_len, roots).load()
    if stream.tell() != end:
        raise FormatError(f"embedded {what} is malformed", HINT_CORRUPT)
    return value


def parse_storage_bytes(payload: bytes, limits: ReadLimits) -> StorageData:
    """Decode the argument of ``torch.storage._load_from_bytes`` into raw storage bytes.

    Raises ``FormatError`` for anything but a well-formed single-storage stream.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise FormatError("embedded tensor storage is not a byte string", HINT_CORRUPT)
    if payload[:4] == ZIP_MAGIC:
        return _parse_zip_storage(bytes(payload), limits)
    stream = io.BytesIO(payload)
    total = len(payload)
    try:
        magic = _load_one(stream, limits, total, "storage magic number")
        if type(magic) is not int or magic != LEGACY_MAGIC:
            raise FormatError("embedded tensor storage has a wrong magic number", HINT_CORRUPT)
        protocol = _load_one(stream, limits, total, "storage protocol version")
        if type(protocol) is not int or protocol != LEGACY_PROTOCOL:
            raise FormatError("embedded tensor storage has an unsupported protocol version", HINT_CORRUPT)
        sys_info = _load_one(stream, limits, total, "storage header")
        if not isinstance(sys_info, dict):
            raise FormatError("embedded tensor storage has a malformed header", HINT_CORRUPT)
        roots: dict[str, tuple[torch.dtype, int]] = {}
        ref = _load_one(stream, limits, total, "storage record", roots)
        if not isinstance(ref, _StorageRef):
            raise FormatError("embedded tensor storage does not hold a storage", HINT_CORRUPT)
        keys = _load_one(stream, limits, total, "storage key list")
        if (not isinstance(keys, list) or len(set(map(_text, keys))) != len(keys)
                or {_text(k) for k in keys} != set(roots)):
            raise FormatError("embedded tensor storage has a malformed key list", HINT_CORRUPT)
        blobs: dict[str, memoryview] = {}
        view = memoryview(payload)  # no copy; the slices below stay views of the payload
        pos = stream.tell()
        for raw_key in keys:
            key = _text(raw_key)
            dtype, numel = roots[key]  # type: ignore[index]
            header = bytes(view[pos:pos + 8])
            if len(header) != 8 or int.from_bytes(header, "little", signed=True) != numel:
                raise FormatError("embedded tensor storage data does not match its declared size", HINT_CORRUPT)
            nbytes = numel * itemsize(dtype)
            pos += 8
            if pos + nbytes > len(view):
                raise FormatError("embedded tensor storage data is truncated", HINT_CORRUPT)
            blobs[key] = view[pos:pos + nbytes]  # type: ignore[index]
            pos += nbytes
        if pos != len(view):
            raise FormatError(f"embedded tensor storage has {len(view) - pos} unexpected trailing bytes",
                              HINT_CORRUPT)
    except FormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise FormatError(f"embedded tensor storage is corrupt ({type(exc).__name__})", HINT_CORRUPT) from None
    size = itemsize(ref.dtype)
    data = blobs[ref.root_key][ref.offset * size:(ref.offset + ref.numel) * size]
    return StorageData(ref.dtype, ref.numel, data)


def check_torch_file(source: str | os.PathLike[str] | IO[bytes], limits: ReadLimits) -> bool:
    """Pre-scan the pickles of a ``torch.save`` file before ``torch.load`` sees it.

    ``torch.load(weights_only=True)`` restricts globals but still runs CPython's unpickler,
    which a few hundred kB of nested tuples crash (see ``pickle_scan``). Zip files: the one
    ``data.pkl`` member is scanned; legacy files: the five leading pickles. Returns True for a
    zip file. Raises ``FormatError``.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            return check_torch_file(handle, limits)
    start = source.tell()
    is_zip = source.read(4) == ZIP_MAGIC
    source.seek(start)
    try:
        if is_zip:
            with zipfile.ZipFile(source) as archive:
                members = [i for i in archive.infolist()
                           if i.filename == "data.pkl" or i.filename.endswith("/data.pkl")]
                if len(members) != 1:
                    raise FormatError("torch zip file has no single data.pkl", HINT_CORRUPT)
                if members[0].compress_type != zipfile.ZIP_STORED:  # torch never compresses
                    raise FormatError("torch zip file has a compressed data.pkl", HINT_REFUSED)
                if members[0].file_size > limits.max_file_bytes:
                    raise FormatError("torch zip file has an oversized data.pkl", HINT_LIMIT)
                with archive.open(members[0]) as member:
                    scan_pickle(member, limits, allow_persistent_ids=True, what="checkpoint pickle")
        else:
            for index, what in enumerate(("magic number", "protocol version", "header", "main pickle",
                                          "storage key list")):
                end = scan_pickle(source, limits, allow_persistent_ids=index == 3, what=f"checkpoint {what}")
                source.seek(end)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise FormatError(f"damaged zip archive ({type(exc).__name__})", HINT_CORRUPT) from None
    finally:
        source.seek(start)
    return is_zip


def _parse_zip_storage(payload: bytes, limits: ReadLimits) -> StorageData:
    check_torch_file(io.BytesIO(payload), limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports refusals with several exception types
        raise FormatError(f"embedded zip-format tensor storage was refused by torch's safe loader "
                          f"({type(exc).__name__})", HINT_REFUSED) from None
    if not isinstance(obj, torch.storage.TypedStorage) or obj.dtype not in ALLOWED_DTYPES:
        raise FormatError("embedded zip-format payload is not a tensor storage", HINT_REFUSED)
    flat = torch.empty(0, dtype=obj.dtype)
    flat.set_(obj)
    numel = flat.numel()
    raw = flat.contiguous().view(torch.uint8).numpy().tobytes() if numel else b""
    return StorageData(obj.dtype, numel, raw)


@dataclass
class TensorBudget:
    """Running total of tensor bytes created from one file."""

    limit: int
    used: int = 0

    def take(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise FormatError(f"the file's tensors need more than {self.limit} bytes", HINT_LIMIT)


def make_tensor(
    storage: StorageData,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    limits: ReadLimits,
    budget: TensorBudget,
) -> torch.Tensor:
    """A fresh contiguous CPU tensor viewing ``storage`` like ``torch.as_strided``, bounds-checked.

    ``size`` and ``stride`` are tuples of non-negative ints of equal length; every element the
    view reaches must lie inside the storage.
    """
    numel = math.prod(size)
    elem = itemsize(storage.dtype)
    if numel * elem > limits.max_tensor_bytes:
        raise FormatError(f"a tensor of shape {_shape(size)} exceeds {limits.max_tensor_bytes} bytes", HINT_LIMIT)
    if numel == 0:
        budget.take(0)
        return torch.empty(size, dtype=storage.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= storage.numel:
        raise FormatError(f"a tensor view (offset {_fmt(offset)}, shape {_shape(size)}) reaches outside its "
                          f"storage of {storage.numel} elements", HINT_CORRUPT)
    budget.take(numel * elem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only buffer: we only read it, then clone
        raw = torch.frombuffer(storage.data, dtype=torch.uint8)
    if sys.byteorder == "big" and elem > 1:
        raw = raw.view(-1, elem).flip(1).reshape(-1)
    base = (raw != 0) if storage.dtype == torch.bool else raw.view(storage.dtype)
    return torch.as_strided(base, size, stride, offset).clone(memory_format=torch.contiguous_format)


def _shape(size: tuple[int, ...]) -> str:
    return "[" + ", ".join(_fmt(s) for s in size) + "]"
