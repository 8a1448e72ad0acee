"""Hostile, broken and oversized pickles: each is refused with ModelLoadError and nothing runs."""

from __future__ import annotations

import builtins
import importlib
import io
import os
import pickle
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from oscgan.models.errors import ModelLoadError
from oscgan.models.pickle_reader import read_network_pickle
from oscgan.models.pickle_scan import ReadLimits
from tests.models.pickle_builders import (  # noqa: F401  (persistence is a fixture)
    FIXTURES,
    FakeTensor,
    float_payload,
    global_op,
    legacy_storage_bytes,
    module_state,
    persistence,
    persistent,
    snapshot,
    str_op,
    tiny_network,
)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A file that only a successful attack would create."""
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload from a hostile pickle was executed"


class Call:
    """Pickles as ``fn(*args)``: the classic pickle attack."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> Any:
        return (self.fn, self.args)


class CallBuild:
    """Pickles as ``fn(*args)`` followed by ``BUILD state``."""

    def __init__(self, fn: Any, args: tuple, state: Any) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self) -> Any:
        return (self.fn, self.args, self.state)


def _refused(path: Path, pattern: str = "", limits: ReadLimits | None = None, which=("G_ema",)) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        read_network_pickle(path, which=which, **({"limits": limits} if limits else {}))
    message = str(info.value)
    assert message.startswith(f"{path.name}: "), message
    assert message.endswith(")"), message
    if pattern:
        assert pattern in message, message
    return info.value


def _dump(tmp_path: Path, obj: Any, protocol: int = 4, name: str = "evil.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _raw(tmp_path: Path, data: bytes, name: str = "evil.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- refused globals ----------------------------------------------------------------------------


def _attacks(marker: Path) -> list[tuple[Any, str]]:
    touch = f"touch {marker}"  # protocols 0-2 spell builtins as __builtin__
    code = f"open({str(marker)!r}, 'w').write('x')"
    return [
        (Call(os.system, touch), "global 'posix.system' is not allowed in a network pickle"),
        (Call(builtins.eval, code), "eval' is not allowed"),
        (Call(builtins.exec, code), "exec' is not allowed"),
        (Call(subprocess.Popen, ["touch", str(marker)]), "Popen' is not allowed"),
        (Call(importlib.import_module, "os"), "global 'importlib.import_module'"),
        (Call(builtins.getattr, Call(importlib.import_module, "os"), "system"), "getattr' is not allowed"),
        (Call(builtins.__import__, "os"), "__import__' is not allowed"),
        (Call(torch.load, str(marker)), "global 'torch.serialization.load'"),
        (Call(np.load, str(marker)), "global 'numpy.load'"),
    ]


@pytest.mark.parametrize("index", range(9))
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_reduce_attacks_at_top_level(tmp_path, marker, index, protocol):
    attack, pattern = _attacks(marker)[index]
    _refused(_dump(tmp_path, {"G_ema": attack}, protocol), pattern)


@pytest.mark.parametrize("where", ["init_kwargs", "attribute", "parameter", "D", "augment_pipe", "training"])
def test_attack_hidden_inside_the_snapshot(tmp_path, marker, persistence, where):
    """A refused global anywhere rejects the file, even in D, which is never converted."""
    attack = Call(os.system, f"touch {marker}")
    state = module_state(params={"w": torch.zeros(2)}, init_kwargs={"z_dim": 4})
    if where == "init_kwargs":
        state["_init_kwargs"]["evil"] = attack
    elif where == "attribute":
        state["evil"] = attack
    elif where == "parameter":
        state["_parameters"]["w"] = attack
    g_ema = persistent(persistence, "Generator", state)
    extra = {}
    if where == "D":
        extra["D"] = persistent(persistence, "Discriminator", module_state(init_kwargs={"x": attack}))
    elif where == "augment_pipe":
        extra["augment_pipe"] = attack
    elif where == "training":
        extra["training_set_kwargs"] = {"path": attack}
    _refused(_dump(tmp_path, snapshot(g_ema, **extra)), "global 'posix.system'")


NAMES = [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("__builtin__", "eval"), ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"),
    ("subprocess", "Popen"), ("importlib", "import_module"), ("operator", "attrgetter"),
    ("functools", "partial"), ("pickle", "loads"), ("copyreg", "_reconstructor"), ("torch", "load"),
    ("torch", "FloatStorage"), ("torch._utils", "_rebuild_tensor"), ("torch.nn.modules.conv", "Conv2d"),
    ("numpy.testing._private.utils", "runstring"), ("numpy", "load"),
    # attribute-path tricks on allowed names (protocol 4 resolves dotted names by default)
    ("torch._utils", "_rebuild_parameter.__globals__"), ("collections", "OrderedDict.__init__"),
    ("torch_utils.persistence", "_reconstruct_persistent_obj.__globals__"), ("numpy", "dtype.__class__"),
    ("numpy._core.multiarray", "scalar.__self__"), ("dnnlib.util", "EasyDict.__subclasses__"),
    ("torch_utils.persistence", "persistent_class"), ("dnnlib.util", "call_func_by_name"),
]


@pytest.mark.parametrize(("module", "name"), NAMES)
def test_raw_global_refused(tmp_path, marker, module, name):
    call = str_op(f"touch {marker}") + b"\x85R"  # (arg,) REDUCE
    _refused(_raw(tmp_path, b"\x80\x02" + global_op(module, name) + call + b"."),
             f"global '{module}.{name}' is not allowed")


@pytest.mark.parametrize(("module", "name"), NAMES[:3] + NAMES[20:24])
def test_raw_stack_global_refused(tmp_path, marker, module, name):
    def short(text: str) -> bytes:
        raw = text.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    data = b"\x80\x04" + short(module) + short(name) + b"\x93" + short(f"touch {marker}") + b"\x85R."
    _refused(_raw(tmp_path, data), f"global '{module}.{name}' is not allowed")


def test_module_src_is_never_executed(tmp_path, marker, persistence):
    """module_src is code NVIDIA's loader would exec; this reader only checks it is text."""
    src = f"open({str(marker)!r}, 'w').write('x')\n"
    g = persistent(persistence, "Generator", module_state(params={"w": torch.ones(2)}), module_src=src)
    rec = read_network_pickle(_dump(tmp_path, snapshot(g)))["G_ema"]
    assert torch.equal(rec.params["w"], torch.ones(2))


# -- BUILD and call-argument abuse on allowed stand-ins --------------------------------------------


def test_build_on_persistent_object(tmp_path, marker, persistence):
    meta = dict(type="class", version=6, module_src="", class_name="G", state=module_state())
    state = {"__dict__": {}, "class_name": "Evil", "state": {}}
    attack = CallBuild(persistence._reconstruct_persistent_obj, (meta,), state)
    _refused(_dump(tmp_path, {"G_ema": attack}), "pickle tried to modify a network module (BUILD)")


def test_build_with_slot_state_on_persistent_object(tmp_path, persistence):
    meta = dict(type="class", version=6, module_src="", class_name="G", state=module_state())
    attack = CallBuild(persistence._reconstruct_persistent_obj, (meta,), (None, {"class_name": "X"}))
    _refused(_dump(tmp_path, {"G_ema": attack}), "(BUILD)")


def test_build_on_storage_and_tensor(tmp_path):
    payload = float_payload([1, 2])
    storage = CallBuild(torch.storage._load_from_bytes, (payload,), {"payload": b"x"})
    _refused(_dump(tmp_path, {"G_ema": storage}), "pickle tried to modify a tensor storage (BUILD)")
    tensor = CallBuild(torch._utils._rebuild_tensor_v2, (Call(torch.storage._load_from_bytes, payload), 0, (2,),
                                                           (1,), False, {}), {"size": (10**9,)})
    _refused(_dump(tmp_path, {"G_ema": tensor}, name="t.pkl"), "pickle tried to modify a tensor (BUILD)")


def test_build_on_dtype_with_foreign_state(tmp_path):
    dtype = CallBuild(np.dtype, ("f8", False, True), (3, "<", None, ("names",), {"f": 1}, -1, -1, 0))
    _refused(_dump(tmp_path, {"G_ema": dtype}), "unexpected state")


def test_build_on_allowed_function(tmp_path):
    data = b"\x80\x02" + global_op("collections", "OrderedDict") + b"}b."  # OrderedDict BUILD {}
    _refused(_raw(tmp_path, data), "(BUILD)")


def test_easydict_with_attribute_state(tmp_path):
    data = b"\x80\x02" + global_op("dnnlib.util", "EasyDict") + b")\x81}" + str_op("x") + b"K\x01s" + b"b."
    _refused(_raw(tmp_path, data), "pickle tried to set attributes on an EasyDict (BUILD)")


def test_newobj_on_a_function_stand_in(tmp_path):
    data = b"\x80\x02" + global_op("torch._utils", "_rebuild_parameter") + b")\x81."
    _refused(_raw(tmp_path, data), "corrupt or truncated pickle")


@pytest.mark.parametrize(("call", "pattern"), [
    (global_op("_codecs", "encode") + str_op("x") + str_op("rot13") + b"\x86R", "_codecs.encode"),
    (global_op("numpy", "dtype") + str_op("O") + b"\x89\x88\x87R", "numpy dtype 'O' is not allowed"),
    (global_op("numpy", "dtype") + str_op("V8") + b"\x89\x88\x87R", "numpy dtype 'V8' is not allowed"),
    (global_op("collections", "OrderedDict") + str_op("ab") + b"\x85R", "OrderedDict"),
    (global_op("builtins", "set") + str_op("abc") + b"\x85R", "set()"),
    (global_op("builtins", "bytes") + b"K\x05\x85R", "bytes() with arguments"),
    (global_op("torch._utils", "_rebuild_tensor_v2") + b"(NK\x00)" + b")\x89}t" + b"R", "tensor record"),
    (global_op("torch._utils", "_rebuild_parameter") + b"K\x01\x89}\x87R", "parameter record"),
    (global_op("torch.storage", "_load_from_bytes") + str_op("text") + b"\x85R", "not a byte string"),
    (global_op("numpy.core.multiarray", "_reconstruct") + global_op("builtins", "list"), "builtins.list"),
    (global_op("numpy", "ndarray") + b")R", "corrupt or truncated pickle"),
    (global_op("torch_utils.persistence", "_reconstruct_persistent_obj") + b"}\x85R", "not a module class"),
])
def test_allowed_callables_validate_arguments(tmp_path, call, pattern):
    _refused(_raw(tmp_path, b"\x80\x02}" + str_op("G_ema") + call + b"s."), pattern)


def test_numpy_object_array_refused(tmp_path):
    arr = np.array([1, "x"], dtype=object)
    _refused(_dump(tmp_path, {"G_ema": arr}, protocol=2), "numpy dtype 'O8' is not allowed")


# -- hostile or broken embedded storages ----------------------------------------------------------


def _with_tensor(persistence: Any, tensor: Any, in_d: bool = False) -> dict[str, Any]:
    state = module_state(params={"w": torch.zeros(1)})
    state["_parameters"]["w"] = tensor
    net = persistent(persistence, "Generator", state)
    if in_d:
        return snapshot(tiny_network(persistence), D=net)
    return snapshot(net)


def test_nested_legacy_payload_with_global(tmp_path, marker, persistence):
    payload = legacy_storage_bytes(b"\0" * 8, 2, main_object=Call(os.system, f"touch {marker}"))
    path = _dump(tmp_path, _with_tensor(persistence, FakeTensor(payload, 0, (2,), (1,))))
    _refused(path, "global 'posix.system' is not allowed in an embedded tensor storage")


def test_nested_payload_calling_storage_type(tmp_path, persistence):
    payload = legacy_storage_bytes(b"\0" * 8, 2, main_object=Call(torch.FloatStorage, 2))
    _refused(_dump(tmp_path, _with_tensor(persistence, FakeTensor(payload, 0, (2,), (1,)))),
             "storage stream tried to call a storage type")


def test_nested_zip_payload_with_global(tmp_path, marker, persistence):
    buffer = io.BytesIO()
    torch.save(Call(os.system, f"touch {marker}"), buffer)
    path = _dump(tmp_path, _with_tensor(persistence, FakeTensor(buffer.getvalue(), 0, (2,), (1,))))
    _refused(path, "refused by torch's safe loader")


def test_nested_zip_payload_that_is_valid(tmp_path, persistence):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated, and what torch pickles
        torch.save(torch.tensor([1.0, 2.0, 3.0]).storage(), buffer)
    path = _dump(tmp_path, _with_tensor(persistence, FakeTensor(buffer.getvalue(), 1, (2,), (1,))))
    assert torch.equal(read_network_pickle(path)["G_ema"].params["w"], torch.tensor([2.0, 3.0]))


def test_hostile_storage_in_d_is_never_decoded(tmp_path, marker, persistence):
    """Storages of networks not asked for are not parsed: nothing in them can act."""
    payload = legacy_storage_bytes(b"\0" * 8, 2, main_object=Call(os.system, f"touch {marker}"))
    path = _dump(tmp_path, _with_tensor(persistence, FakeTensor(payload, 0, (2,), (1,)), in_d=True))
    assert read_network_pickle(path)["G_ema"].class_name == "Generator"
    _refused(path, "embedded tensor storage", which=("G_ema", "D"))


@pytest.mark.parametrize(("payload", "pattern"), [
    (legacy_storage_bytes(b"", 2**60), "elements but holds"),
    (legacy_storage_bytes(b"\0" * 8, 1000), "declares 1000 elements"),
    (legacy_storage_bytes(b"\0" * 400, 100, declared_numel=2**62), "does not match its declared size"),
    (legacy_storage_bytes(b"\0" * 8, 2, trailing=b"junk"), "4 unexpected trailing bytes"),
    (legacy_storage_bytes(b"\0" * 8, 2, view=("v", 1, 5)), "storage view [1, 6) lies outside"),
    (legacy_storage_bytes(b"\0" * 8, 2, storage_type=torch.ComplexFloatStorage), "torch.ComplexFloatStorage"),
    (legacy_storage_bytes(b"\0" * 8, 2)[:-3], "truncated"),
    (legacy_storage_bytes(b"\0" * 8, 2).replace(b"\x8a\x0al\xfc", b"\x8a\x0am\xfc", 1), "wrong magic number"),
    (b"not a storage at all", "embedded"),
])
def test_broken_nested_storages(tmp_path, persistence, payload, pattern):
    _refused(_dump(tmp_path, _with_tensor(persistence, FakeTensor(payload, 0, (2,), (1,)))), pattern)


@pytest.mark.parametrize(("offset", "size", "stride", "pattern"), [
    (2, (3,), (1,), "reaches outside its storage of 4 elements"),
    (0, (2, 2), (3, 1), "reaches outside"),
    (4, (1,), (1,), "reaches outside"),
    (0, (5,), (0,), None),  # broadcasting inside the storage is fine
    (0, (2**40,), (0,), "exceeds"),
    (0, (10**6, 10**6), (0, 0), "exceeds"),
    (-1, (2,), (1,), "invalid storage offset"),
    (0, (2,), (-1,), "invalid shape or stride"),
    (0, (2, 2), (1,), "invalid shape or stride"),
    (0, [2], [1], "invalid shape or stride"),
])
def test_tensor_views_are_bounds_checked(tmp_path, persistence, offset, size, stride, pattern):
    tensor = FakeTensor(float_payload([1, 2, 3, 4]), offset, size, stride)
    path = _dump(tmp_path, _with_tensor(persistence, tensor))
    if pattern is None:
        assert torch.equal(read_network_pickle(path)["G_ema"].params["w"], torch.ones(5))
    else:
        _refused(path, pattern)


def test_tensor_metadata_refused(tmp_path, persistence):
    tensor = FakeTensor(float_payload([1, 2]), 0, (2,), (1,), {"conj": True})
    _refused(_dump(tmp_path, _with_tensor(persistence, tensor)), "metadata")


def test_total_tensor_budget(tmp_path, persistence):
    tensor = FakeTensor(float_payload([1, 2, 3, 4]), 0, (100,), (0,))
    path = _dump(tmp_path, _with_tensor(persistence, tensor))
    _refused(path, "need more than 200 bytes", limits=ReadLimits(max_total_tensor_bytes=200))


# -- truncated, corrupt, oversized files ------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 100, 5000, 0.5, -1])
def test_truncated_fixture(tmp_path, cut):
    data = (FIXTURES / "sg2_64.pkl").read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else cut if cut > 0 else len(data) + cut
    _refused(_raw(tmp_path, data[:end], "truncated.pkl"))


def test_empty_garbage_and_trailing(tmp_path):
    _refused(_raw(tmp_path, b"", "empty.pkl"), "the file is empty")
    rng = np.random.default_rng(1)
    _refused(_raw(tmp_path, rng.bytes(4096), "garbage.pkl"))
    _refused(_raw(tmp_path, b"PK\x03\x04" + rng.bytes(100), "zip.pkl"))
    data = (FIXTURES / "sg3t_64.pkl").read_bytes()
    _refused(_raw(tmp_path, data + b"\0\0", "trailing.pkl"), "2 unexpected bytes after the end of the pickle")


def test_corrupted_bytes_fail_cleanly(tmp_path):
    data = bytearray((FIXTURES / "sg2_64.pkl").read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(6):
        broken = bytearray(data)
        for pos in rng.integers(2, 30000, size=3):
            broken[pos] ^= 0xFF
        try:
            read_network_pickle(_raw(tmp_path, bytes(broken), f"flip{trial}.pkl"))
        except ModelLoadError:
            pass


def test_file_size_cap(tmp_path):
    _refused(FIXTURES / "sg2_64.pkl", "limit 1000", limits=ReadLimits(max_file_bytes=1000))


def test_not_a_snapshot(tmp_path):
    _refused(_dump(tmp_path, [1, 2, 3]), "the pickle holds a list, not a snapshot dict")
    _refused(_dump(tmp_path, {"G_ema": {"a": 1}}, name="d.pkl"), "no network 'G_ema'")
    _refused(_dump(tmp_path, {"G_ema": None}, name="n.pkl"), "no network 'G_ema'")


# -- opcode-level bombs and refused opcodes -------------------------------------------------------


def _spliced(persistence: Any, ops: bytes) -> bytes:
    """A protocol-2 network pickle whose init_kwargs['x'] is produced by the raw ``ops``."""
    data = pickle.dumps(snapshot(tiny_network(persistence, x="SPLICE_HERE")), protocol=2)
    placeholder = b"X" + len(b"SPLICE_HERE").to_bytes(4, "little") + b"SPLICE_HERE"
    assert data.count(placeholder) == 1
    return data.replace(placeholder, ops)


def test_splice_helper_roundtrip(tmp_path, persistence):
    path = _raw(tmp_path, _spliced(persistence, b"]K\x07a"))
    assert read_network_pickle(path)["G_ema"].init_kwargs["x"] == [7]


def test_deep_list_bomb(tmp_path, persistence):
    n = 200_000
    _refused(_raw(tmp_path, _spliced(persistence, b"]" * n + b"a" * (n - 1))), "nested deeper than 100")


def test_deep_tuple_hash_bomb(tmp_path, persistence):
    """Hashing a 200k-deep tuple (here: as a dict key) would crash CPython's C unpickler."""
    ops = b"}N" + b"\x85" * 200_000 + b"Ns"
    _refused(_raw(tmp_path, _spliced(persistence, ops)), "nests tuples deeper than 100")


def test_mark_and_tuple_bombs(tmp_path):
    _refused(_raw(tmp_path, b"\x80\x04" + b"(" * 100_000 + b".", "marks.pkl"), "MARK groups deeper")
    _refused(_raw(tmp_path, b"\x80\x02N" + b"\x85" * 150 + b".", "tuple.pkl"), "nests tuples deeper")
    _refused(_raw(tmp_path, b"\x80\x02(N" + b"\x85" * 99 + b"\x91" + b"\x85" * 5 + b".", "fs.pkl"),
             "nests tuples deeper")


def test_billion_laughs(tmp_path, persistence):
    base = 5000
    ops = b"N0" * 6000 + b"](" + b"N" * 10 + b"e" + b"r" + base.to_bytes(4, "little") + b"0"
    for level in range(1, 30):
        get = b"j" + (base + level - 1).to_bytes(4, "little")
        ops += b"](" + get * 10 + b"e" + b"r" + (base + level).to_bytes(4, "little") + b"0"
    ops += b"j" + (base + 29).to_bytes(4, "little")
    path = _raw(tmp_path, _spliced(persistence, ops))
    _refused(path, "more than 10000 values", limits=ReadLimits(max_nodes=10_000))


def test_self_referencing_list(tmp_path, persistence):
    ops = b"]r" + (9000).to_bytes(4, "little") + b"j" + (9000).to_bytes(4, "little") + b"a"
    _refused(_raw(tmp_path, _spliced(persistence, b"N0" * 9500 + ops)), "refers to itself")


def test_memo_index_bomb(tmp_path):
    _refused(_raw(tmp_path, b"\x80\x02Nr\xf0\xff\xff\xff0}."), "memo slot 4294967280")
    _refused(_raw(tmp_path, b"p99999999999\n.", "put.pkl"))


@pytest.mark.parametrize(("data", "pattern"), [
    (b"\x80\x02" + str_op("0") + b"Q.", "persistent id (BINPERSID)"),
    (b"P0\n.", "persistent id (PERSID)"),
    (b"\x80\x02\x82\x01.", "extension-registry reference (EXT1)"),
    (b"\x80\x02\x83\x01\x00.", "(EXT2)"),
    (b"(ios\nsystem\nS'x'\n.", "old-style class instantiation (INST)"),
    (b"(" + global_op("os", "system") + b"o.", "(OBJ)"),
    (b"\x80\x04" + global_op("dnnlib.util", "EasyDict") + b")}\x92.", "(NEWOBJ_EX)"),
    (b"\x80\x05\x97.", "out-of-band buffer (NEXT_BUFFER)"),
    (b"\x80\x09}.", "unknown pickle protocol 9"),
    (b"\x80\x02}", "truncated or malformed"),
    (b"\x80\x02\xff.", "truncated or malformed"),
    (b"\x80\x02t.", "no MARK"),
    (b"\x80\x02s.", "stack underflow"),
    (b"\x80\x02h\x05.", "never written"),
])
def test_refused_opcodes(tmp_path, data, pattern):
    _refused(_raw(tmp_path, data), pattern)
