"""Test helpers: synthetic NVIDIA-style network pickles, legacy storage streams, raw opcodes."""

from __future__ import annotations

import importlib
import io
import pickle
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from oscgan.models.records import ModuleRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stylegan"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# A stand-in for NVIDIA's torch_utils.persistence, written to a temporary directory so that
# pickle can reference it by name. Pickling only needs the names; nothing here is NVIDIA code.
FAKE_PERSISTENCE = '''
def _reconstruct_persistent_obj(meta):
    raise RuntimeError("test stand-in: oscgan must never call this")


class Persistent:
    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))
'''

_FAKE_MODULES = ("torch_utils", "torch_utils.persistence")


@pytest.fixture
def persistence(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fake ``torch_utils.persistence`` module, importable for the duration of one test."""
    root = tmp_path_factory.mktemp("fake_persistence")
    (root / "torch_utils").mkdir()
    (root / "torch_utils" / "__init__.py").write_text("")
    (root / "torch_utils" / "persistence.py").write_text(FAKE_PERSISTENCE)
    monkeypatch.syspath_prepend(str(root))
    for name in _FAKE_MODULES:
        sys.modules.pop(name, None)
    module = importlib.import_module("torch_utils.persistence")
    yield module
    for name in _FAKE_MODULES:
        sys.modules.pop(name, None)


def module_state(
    *,
    params: dict[str, torch.Tensor] | None = None,
    buffers: dict[str, torch.Tensor | None] | None = None,
    modules: dict[str, Any] | None = None,
    init_args: tuple = (),
    init_kwargs: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    non_persistent: set[str] | None = None,
) -> dict[str, Any]:
    """A module ``__dict__`` shaped like torch 2.x's, for the fake persistent objects."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": {k: (None if v is None else torch.nn.Parameter(v, requires_grad=False))
                        for k, v in (params or {}).items()},
        "_buffers": dict(buffers or {}),
        "_non_persistent_buffers_set": set(non_persistent or ()),
        "_backward_pre_hooks": OrderedDict(),
        "_backward_hooks": OrderedDict(),
        "_is_full_backward_hook": None,
        "_forward_hooks": OrderedDict(),
        "_forward_pre_hooks": OrderedDict(),
        "_state_dict_hooks": OrderedDict(),
        "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": dict(modules or {}),
        "_init_args": tuple(init_args),
        "_init_kwargs": dict(init_kwargs or {}),
    }
    state.update(attrs or {})
    return state


def persistent(persistence: Any, class_name: str, state: dict[str, Any], module_src: str = "# no source\n") -> Any:
    return persistence.Persistent(
        dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state))


def _numpyfy(value: Any, key: str = "") -> Any:
    """Turn plain values back into the numpy types NVIDIA's code leaves in its modules."""
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, list) and "size" in key and all(isinstance(v, int) for v in value):
        return np.array(value, dtype=np.int64)
    if isinstance(value, dict):
        return {k: _numpyfy(v, k) for k, v in value.items()}
    return value


def record_to_persistent(persistence: Any, record: ModuleRecord, numpy_values: bool = True) -> Any:
    """Re-create a persistent object tree (fake persistence) from a ``ModuleRecord``."""
    conv = _numpyfy if numpy_values else (lambda v, k="": v)
    modules = {name: None if child is None else record_to_persistent(persistence, child, numpy_values)
               for name, child in record.children.items()}
    state = module_state(
        params={k: v.clone() for k, v in record.params.items()},
        buffers={k: None if v is None else v.clone() for k, v in record.buffers.items()},
        modules=modules,
        init_args=record.init_args,
        init_kwargs=conv(dict(record.init_kwargs)),
        attrs=conv(dict(record.attrs)),
        non_persistent=set(record.non_persistent),
    )
    return persistent(persistence, record.class_name, state)


def snapshot(g_ema: Any, **more: Any) -> dict[str, Any]:
    top = {"G": None, "D": None, "G_ema": g_ema, "augment_pipe": None,
           "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": 8}}
    top.update(more)
    return top


def tiny_network(persistence: Any, **kwargs_extra: Any) -> Any:
    """A two-level persistent module: Generator -> mapping(fc0) with a few tensors."""
    fc0 = persistent(persistence, "FullyConnectedLayer", module_state(
        params={"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "bias": torch.ones(3)},
        init_args=(4, 3), init_kwargs={"lr_multiplier": 0.01}, attrs={"weight_gain": np.float64(0.005)}))
    mapping = persistent(persistence, "MappingNetwork", module_state(
        buffers={"w_avg": torch.zeros(3)}, modules={"fc0": fc0}, init_kwargs={"num_layers": 1},
        attrs={"w_avg_beta": 0.998}))
    return persistent(persistence, "Generator", module_state(
        modules={"mapping": mapping}, init_kwargs={"z_dim": 4, "w_dim": 3, **kwargs_extra},
        attrs={"z_dim": 4}))


def assert_records_equal(a: ModuleRecord, b: ModuleRecord, where: str = "") -> None:
    assert a.class_name == b.class_name, where
    assert a.init_args == b.init_args, where
    assert a.init_kwargs == b.init_kwargs, where
    assert a.attrs == b.attrs, where
    assert a.non_persistent == b.non_persistent, where
    assert list(a.params) == list(b.params), where
    assert list(a.buffers) == list(b.buffers), where
    for table_a, table_b in ((a.params, b.params), (a.buffers, b.buffers)):
        for name, ta in table_a.items():
            tb = table_b[name]
            if ta is None or tb is None:
                assert ta is None and tb is None, f"{where}.{name}"
                continue
            assert ta.dtype == tb.dtype and ta.shape == tb.shape, f"{where}.{name}"
            assert torch.equal(ta, tb), f"{where}.{name}"
    assert list(a.children) == list(b.children), where
    for name, child in a.children.items():
        other = b.children[name]
        if child is None or other is None:
            assert child is None and other is None
        else:
            assert_records_equal(child, other, f"{where}.{name}")


# -- legacy storage streams -------------------------------------------------------------------


class _StorageMarker:
    pass


def legacy_storage_bytes(
    data: bytes,
    numel: int,
    *,
    storage_type: Any = None,
    declared_numel: int | None = None,
    view: tuple[str, int, int] | None = None,
    main_object: Any = None,
    trailing: bytes = b"",
) -> bytes:
    """A ``torch.save(storage, _use_new_zipfile_serialization=False)``-style stream, with knobs."""
    storage_type = storage_type or torch.FloatStorage
    marker = _StorageMarker()

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if obj is marker:
                return ("storage", storage_type, "0", "cpu", numel, view)
            return None

    out = io.BytesIO()
    for value in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                       "type_sizes": {"short": 2, "int": 4, "long": 8}}):
        pickle.dump(value, out, protocol=2)
    _Pickler(out, protocol=2).dump(marker if main_object is None else main_object)
    pickle.dump(["0"], out, protocol=2)
    out.write((numel if declared_numel is None else declared_numel).to_bytes(8, "little", signed=True))
    out.write(data)
    out.write(trailing)
    return out.getvalue()


class FakeStorage:
    """Pickles as ``torch.storage._load_from_bytes(payload)``."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> Any:
        return (torch.storage._load_from_bytes, (self.payload,))


class FakeTensor:
    """Pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})``."""

    def __init__(self, payload: bytes, offset: int, size: tuple, stride: tuple, *extra: Any) -> None:
        self.args = (FakeStorage(payload), offset, size, stride, False, OrderedDict(), *extra)

    def __reduce__(self) -> Any:
        return (torch._utils._rebuild_tensor_v2, self.args)


def float_payload(values: list[float]) -> bytes:
    return legacy_storage_bytes(np.asarray(values, dtype="<f4").tobytes(), len(values))


# -- raw opcodes ------------------------------------------------------------------------------


def global_op(module: str, name: str) -> bytes:
    """The protocol-0 GLOBAL opcode (valid in every protocol)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def str_op(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw  # BINUNICODE


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
