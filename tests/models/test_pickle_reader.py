"""The safe NVIDIA snapshot reader on the reference fixtures and on re-encoded synthetic pickles."""

from __future__ import annotations

import json
import math
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from oscgan.models import pickle_reader
from oscgan.models.errors import ModelLoadError
from oscgan.models.pickle_reader import ALLOWED_GLOBALS, read_network_pickle
from oscgan.models.records import ModuleRecord, to_plain
from tests.models.pickle_builders import (  # noqa: F401  (persistence is a fixture)
    FIXTURES,
    assert_records_equal,
    module_state,
    persistence,
    persistent,
    record_to_persistent,
    snapshot,
    tiny_network,
)

NAMES = ("sg2_64", "sg3t_64", "sg3r_64")

# Cross-checks of the parser computed once from the fixtures (and compared, when written, with
# an independent reader): number of state-dict entries, total elements, float64 sum of all
# values, and the sums of a few named tensors.
CHECKSUMS = {
    "sg2_64": (106, 386664, 336.7498472978732, {
        "mapping.fc0.weight": ((64, 64), 3052.087145090103),
        "mapping.w_avg": ((64,), -0.6526746575254947),
        "synthesis.b4.const": ((64, 4, 4), 30.99678827635944),
        "synthesis.b64.torgb.bias": ((3,), 0.052979134023189545),
    }),
    "sg3t_64": (114, 507157, 22469.224329491655, {
        "mapping.fc0.weight": ((64, 64), 8995.429102182388),
        "mapping.w_avg": ((64,), -0.27168884268030524),
        "synthesis.input.freqs": ((64, 2), -6.013915851712227),
        "synthesis.L14_64_3.weight": ((3, 32, 1, 1), 8.693710826337337),
    }),
    "sg3r_64": (114, 335339, 10216.112281616543, {
        "mapping.fc0.weight": ((64, 64), 3570.394655406475),
        "mapping.w_avg": ((64,), 0.5437545680906624),
        "synthesis.input.freqs": ((128, 2), 27.27579585229978),
        "synthesis.L14_64_3.weight": ((3, 64, 1, 1), -19.50283119827509),
    }),
}


@pytest.fixture(scope="module")
def fixtures() -> dict[str, pickle_reader.NetworkPickle]:
    return {name: read_network_pickle(FIXTURES / f"{name}.pkl", which=("G", "G_ema")) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_fixture_checksums(fixtures, name):
    count, numel, total, named = CHECKSUMS[name]
    sd = fixtures[name]["G_ema"].state_dict()
    assert len(sd) == count
    assert sum(t.numel() for t in sd.values()) == numel
    assert math.isclose(sum(t.double().sum().item() for t in sd.values()), total, rel_tol=1e-9)
    for key, (shape, value) in named.items():
        assert tuple(sd[key].shape) == shape
        assert math.isclose(sd[key].double().sum().item(), value, rel_tol=1e-9, abs_tol=1e-12)
    for tensor in sd.values():
        assert tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.is_contiguous()


@pytest.mark.parametrize("name", NAMES)
def test_mapping_matches_reference_outputs(fixtures, name):
    """A direct mapping-network forward with the parsed weights reproduces NVIDIA's ws."""
    ref = np.load(FIXTURES / f"{name}.npz")
    g = fixtures[name]["G_ema"]
    mapping = g.child("mapping").state_dict()
    z = torch.from_numpy(ref["z"]).double()
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    for i in range(g.init_kwargs["mapping_kwargs"]["num_layers"]):
        w, b = mapping[f"fc{i}.weight"].double(), mapping[f"fc{i}.bias"].double()
        x = torch.nn.functional.leaky_relu(x @ (w * 0.01 / math.sqrt(w.shape[1])).T + b * 0.01, 0.2) * math.sqrt(2)
    ws = x[:, None].repeat(1, g.attrs["num_ws"], 1)
    w_avg = mapping["w_avg"].double()
    for psi, cut in ((1.0, None), (0.5, None), (0.7, 4)):
        out = ws.clone()
        n = out.shape[1] if cut is None else cut
        out[:, :n] = w_avg + psi * (out[:, :n] - w_avg)
        expected = torch.from_numpy(ref[f"ws_psi{psi}_cut{cut}"]).double()
        assert ((out - expected).norm() / expected.norm()).item() < 1e-6


def test_sg2_structure(fixtures):
    net = fixtures["sg2_64"]
    assert net.keys == ("G", "D", "G_ema", "augment_pipe", "training_set_kwargs")
    assert net.training_set_kwargs == {"class_name": "training.dataset.ImageFolderDataset",
                                       "path": "x.zip", "resolution": 64}
    g = net["G_ema"]
    assert g.class_name == "Generator"
    assert g.init_kwargs == {"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_resolution": 64, "img_channels": 3,
                             "mapping_kwargs": {"num_layers": 8}, "channel_base": 2048, "channel_max": 64,
                             "num_fp16_res": 0, "conv_clamp": 256}
    assert list(g.children) == ["synthesis", "mapping"]
    assert g.child("synthesis").attrs["block_resolutions"] == [4, 8, 16, 32, 64]
    layer = g.child("synthesis.b8.conv0")
    assert layer.class_name == "SynthesisLayer"
    assert layer.init_args == (64, 64)
    assert layer.init_kwargs["resample_filter"] == [1, 3, 3, 1]
    assert layer.attrs["act_gain"] == pytest.approx(math.sqrt(2)) and type(layer.attrs["act_gain"]) is float
    sd = g.state_dict()
    assert list(sd)[:3] == ["synthesis.b4.const", "synthesis.b4.resample_filter", "synthesis.b4.conv1.weight"]
    for res in (8, 16, 32, 64):
        for key in ("conv0.weight", "conv0.noise_const", "conv0.noise_strength", "conv0.affine.weight",
                    "conv1.bias", "torgb.weight", "torgb.affine.bias", "resample_filter"):
            assert f"synthesis.b{res}.{key}" in sd
    assert sd["synthesis.b64.conv0.weight"].shape == (32, 64, 3, 3)
    assert sd["synthesis.b64.conv0.noise_const"].shape == (64, 64)
    assert sd["synthesis.b4.conv1.noise_strength"].shape == ()
    assert {f"mapping.fc{i}.bias" for i in range(8)} <= set(sd)
    with pytest.raises(KeyError):
        g.child("synthesis.b128")


def test_sg3_numpy_values_become_plain(fixtures):
    g = fixtures["sg3t_64"]["G_ema"]
    inp = g.child("synthesis.input")
    assert inp.init_kwargs == {"w_dim": 64, "channels": 64, "size": 36, "sampling_rate": 16.0, "bandwidth": 2.0}
    assert inp.attrs["size"] == [36, 36]
    layer = g.child("synthesis.L0_36_64")
    assert layer.init_kwargs["use_fp16"] is False
    assert type(layer.init_kwargs["in_cutoff"]) is float
    assert layer.attrs["out_size"] == [36, 36] and layer.attrs["padding"] == [9, 8, 9, 8]
    assert g.child("synthesis").attrs["layer_names"][-1] == "L14_64_3"
    assert g.child("mapping").attrs["embed"] is None
    for _, module in g.named_modules():  # every argument and attribute is JSON-able
        json.dumps([module.init_args, module.init_kwargs, module.attrs])
    radial = fixtures["sg3r_64"]["G_ema"]
    assert radial.init_kwargs["conv_kernel"] == 1 and radial.init_kwargs["use_radial_filters"] is True


def test_g_and_g_ema_are_distinct(fixtures):
    net = fixtures["sg2_64"]
    assert set(net.networks) == {"G", "G_ema"}
    sd_g, sd_ema = net["G"].state_dict(), net["G_ema"].state_dict()
    assert set(sd_g) == set(sd_ema)
    assert sd_g["mapping.fc0.weight"].data_ptr() != sd_ema["mapping.fc0.weight"].data_ptr()


def test_unrequested_networks_are_not_decoded(monkeypatch):
    """Only G_ema's storages are parsed; G's and D's bytes are never decoded."""
    calls = []
    real = pickle_reader.parse_storage_bytes

    def counting(payload, limits):
        calls.append(len(payload))
        return real(payload, limits)

    monkeypatch.setattr(pickle_reader, "parse_storage_bytes", counting)
    g = read_network_pickle(FIXTURES / "sg2_64.pkl")["G_ema"]
    assert len(calls) == len(g.state_dict())


def test_missing_network_is_reported():
    with pytest.raises(ModelLoadError, match=r"sg3t_64\.pkl: no network 'D' in the pickle"):
        read_network_pickle(FIXTURES / "sg3t_64.pkl", which=("D",))


def test_allowlist_is_explicit():
    assert set(ALLOWED_GLOBALS) == {
        "torch_utils.persistence._reconstruct_persistent_obj", "collections.OrderedDict",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
        "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar", "numpy.dtype",
        "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct", "numpy.ndarray",
        "numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer",
        "builtins.set", "__builtin__.set", "_codecs.encode", "builtins.bytes", "__builtin__.bytes",
        "dnnlib.util.EasyDict",
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_reencoded_fixture_every_protocol(fixtures, persistence, tmp_path, protocol):
    """The sg3t tree re-pickled (numpy scalars and arrays included) reads back identically."""
    original = fixtures["sg3t_64"]["G_ema"]
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(snapshot(record_to_persistent(persistence, original)), protocol=protocol))
    assert_records_equal(original, read_network_pickle(path)["G_ema"])


@pytest.mark.parametrize("protocol", [2, 3])
def test_numpy1_spelling(fixtures, persistence, tmp_path, protocol):
    """Pickles written under numpy 1 name numpy.core.multiarray instead of numpy._core."""
    original = fixtures["sg3t_64"]["G_ema"]
    data = pickle.dumps(snapshot(record_to_persistent(persistence, original)), protocol=protocol)
    assert b"cnumpy._core.multiarray\n" in data
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path = tmp_path / "np1.pkl"
    path.write_bytes(data)
    assert_records_equal(original, read_network_pickle(path)["G_ema"])


def test_stylegan2_ada_nested_kwargs_and_easydict(persistence, tmp_path):
    """stylegan2-ada-pytorch: Generator kwargs nest synthesis/mapping kwargs, as EasyDicts."""
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    dnnlib.util = util
    sys.modules["dnnlib"], sys.modules["dnnlib.util"] = dnnlib, util
    try:
        g = tiny_network(persistence, synthesis_kwargs=EasyDict(channel_base=16384, conv_clamp=256),
                         mapping_kwargs=EasyDict(num_layers=1))
        for protocol in (2, 4, 5):
            path = tmp_path / f"ada{protocol}.pkl"
            path.write_bytes(pickle.dumps(snapshot(g), protocol=protocol))
            assert b"EasyDict" in path.read_bytes()
            rec = read_network_pickle(path)["G_ema"]
            assert rec.init_kwargs == {"z_dim": 4, "w_dim": 3,
                                       "synthesis_kwargs": {"channel_base": 16384, "conv_clamp": 256},
                                       "mapping_kwargs": {"num_layers": 1}}
            assert type(rec.init_kwargs["synthesis_kwargs"]) is dict
    finally:
        del sys.modules["dnnlib"], sys.modules["dnnlib.util"]


def test_tiny_network_state_dict_and_records(persistence, tmp_path):
    path = tmp_path / "tiny.pkl"
    path.write_bytes(pickle.dumps(snapshot(tiny_network(persistence)), protocol=4))
    net = read_network_pickle(path)
    g = net["G_ema"]
    assert net.training_set_kwargs == {"class_name": "training.dataset.ImageFolderDataset", "resolution": 8}
    sd = g.state_dict()
    assert list(sd) == ["mapping.w_avg", "mapping.fc0.weight", "mapping.fc0.bias"]
    assert torch.equal(sd["mapping.fc0.weight"], torch.arange(12, dtype=torch.float32).reshape(3, 4))
    assert g.child("mapping.fc0").attrs == {"weight_gain": 0.005}
    assert [name for name, _ in g.named_modules()] == ["", "mapping", "mapping.fc0"]
    assert g.num_elements() == 18


def test_none_and_non_persistent_buffers(persistence, tmp_path):
    state = module_state(params={"weight": torch.ones(2), "bias": None},
                         buffers={"kept": torch.zeros(1), "scratch": torch.ones(3), "empty": None},
                         modules={"nothing": None}, non_persistent={"scratch"})
    path = tmp_path / "nb.pkl"
    path.write_bytes(pickle.dumps(snapshot(persistent(persistence, "Layer", state)), protocol=4))
    rec = read_network_pickle(path)["G_ema"]
    assert list(rec.params) == ["weight"]
    assert rec.buffers["empty"] is None and rec.children == {"nothing": None}
    assert rec.non_persistent == frozenset({"scratch"})
    assert list(rec.state_dict()) == ["weight", "kept"]


def test_shared_and_strided_tensors(persistence, tmp_path):
    """Views into one storage come back as separate, contiguous tensors with the right values."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = module_state(params={"t": base.t(), "row": base[1]}, buffers={"block": base[1:3, 2:5]})
    path = tmp_path / "views.pkl"
    path.write_bytes(pickle.dumps(snapshot(persistent(persistence, "Views", state)), protocol=4))
    rec = read_network_pickle(path)["G_ema"]
    assert torch.equal(rec.params["t"], base.t()) and rec.params["t"].is_contiguous()
    assert torch.equal(rec.params["row"], base[1])
    assert torch.equal(rec.buffers["block"], base[1:3, 2:5])


def test_half_and_int_tensors(persistence, tmp_path):
    state = module_state(buffers={"h": torch.tensor([1.5, -2.0], dtype=torch.float16),
                                  "i": torch.tensor([3, -4], dtype=torch.int64),
                                  "b": torch.tensor([True, False]),
                                  "bf": torch.tensor([0.5], dtype=torch.bfloat16)})
    path = tmp_path / "dtypes.pkl"
    path.write_bytes(pickle.dumps(snapshot(persistent(persistence, "Dtypes", state)), protocol=4))
    rec = read_network_pickle(path)["G_ema"]
    for name, tensor in state["_buffers"].items():
        assert rec.buffers[name].dtype == tensor.dtype and torch.equal(rec.buffers[name], tensor)


def test_module_record_is_plain_and_frozen():
    rec = ModuleRecord("X", (np.int64(3),), {"a": np.float64(2.0), "b": np.False_}, {"s": np.array([36, 36])},
                       {}, {}, {})
    assert rec.init_args == (3,) and rec.init_kwargs == {"a": 2.0, "b": False} and rec.attrs == {"s": [36, 36]}
    assert type(rec.init_args[0]) is int
    with pytest.raises(Exception):
        rec.class_name = "Y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        to_plain({"t": torch.zeros(1)})


def test_path_in_error_for_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match=r"^nope\.pkl: cannot read the file") as info:
        read_network_pickle(tmp_path / "nope.pkl")
    assert info.value.path == Path(tmp_path / "nope.pkl")
