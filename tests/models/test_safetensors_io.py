"""oscgan's safetensors generator files: round trip, metadata validation, corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from oscgan.models.errors import ModelLoadError
from oscgan.models.pickle_reader import read_network_pickle
from oscgan.models.safetensors_io import (
    read_generator_extra,
    read_generator_safetensors,
    save_generator_safetensors,
)
from tests.models.pickle_builders import FIXTURES

KWARGS = {"z_dim": 8, "w_dim": 8, "img_resolution": 16, "mapping_kwargs": {"num_layers": 2},
          "conv_clamp": None, "channel_base": np.int64(512), "magnitude_ema_beta": np.float64(0.999),
          "use_fp16": np.False_, "padding": (1, 2)}


def _state() -> dict[str, torch.Tensor]:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {"mapping.fc0.weight": base, "mapping.fc0.weight_t": base.t(),  # a view sharing memory
            "synthesis.b4.const": torch.randn(2, 4, 4, dtype=torch.float16),
            "counter": torch.tensor([3], dtype=torch.int64), "scalar": torch.tensor(0.5)}


def test_roundtrip(tmp_path):
    path = tmp_path / "g.safetensors"
    state = _state()
    assert save_generator_safetensors(state, "stylegan3", KWARGS, path, extra={"source": "x.pkl", "psi": 0.7}) == path
    arch, kwargs, loaded = read_generator_safetensors(path)
    assert arch == "stylegan3"
    assert kwargs == {"z_dim": 8, "w_dim": 8, "img_resolution": 16, "mapping_kwargs": {"num_layers": 2},
                      "conv_clamp": None, "channel_base": 512, "magnitude_ema_beta": 0.999, "use_fp16": False,
                      "padding": [1, 2]}
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key
    assert read_generator_extra(path) == {"source": "x.pkl", "psi": 0.7}
    assert not list(tmp_path.glob(".*.tmp"))


def test_roundtrip_fixture_generator(tmp_path):
    g = read_network_pickle(FIXTURES / "sg2_64.pkl")["G_ema"]
    path = save_generator_safetensors(g.state_dict(), "stylegan2", g.init_kwargs, tmp_path / "sg2.safetensors")
    arch, kwargs, state = read_generator_safetensors(path)
    assert arch == "stylegan2" and kwargs == g.init_kwargs
    assert set(state) == set(g.state_dict())
    assert all(torch.equal(state[k], v) for k, v in g.state_dict().items())
    assert read_generator_extra(path) == {}


def test_overwrite_is_atomic_replace(tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator_safetensors({"a": torch.zeros(1)}, "stylegan2", {}, path)
    save_generator_safetensors({"b": torch.ones(2)}, "stylegan2", {"z_dim": 1}, path)
    _, kwargs, state = read_generator_safetensors(path)
    assert kwargs == {"z_dim": 1} and list(state) == ["b"]


@pytest.mark.parametrize(("args", "error"), [
    (({}, "stylegan4", {}), ValueError),
    (({"a": np.zeros(2)}, "stylegan2", {}), TypeError),
    (({"a": torch.zeros(1)}, "stylegan2", {"f": lambda: 0}), TypeError),
    (({"a": torch.zeros(1)}, "stylegan2", {"t": torch.zeros(1)}), TypeError),
    (({"a": torch.zeros(1)}, "stylegan2", {"nan": float("nan")}), TypeError),
    (({"a": torch.zeros(1)}, "stylegan2", ["not", "a", "dict"]), TypeError),
])
def test_save_rejects_bad_arguments(tmp_path, args, error):
    with pytest.raises(error):
        save_generator_safetensors(*args, path=tmp_path / "bad.safetensors")
    assert not list(tmp_path.iterdir())


def _raw_safetensors(path: Path, metadata: dict[str, str] | None) -> Path:
    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)
    return path


GOOD = {"oscgan_format": "1", "architecture": "stylegan2", "init_kwargs": "{}"}


@pytest.mark.parametrize(("metadata", "pattern"), [
    (None, "safetensors file has no oscgan metadata"),
    ({"format": "pt"}, "safetensors file has no oscgan metadata"),
    ({**GOOD, "oscgan_format": "2"}, "unsupported oscgan format version '2'"),
    ({**GOOD, "architecture": "biggan"}, "unknown architecture 'biggan'"),
    ({k: v for k, v in GOOD.items() if k != "architecture"}, "unknown architecture 'None'"),
    ({k: v for k, v in GOOD.items() if k != "init_kwargs"}, "oscgan metadata has no init_kwargs"),
    ({**GOOD, "init_kwargs": "{not json"}, "init_kwargs is not valid JSON"),
    ({**GOOD, "init_kwargs": "[1, 2]"}, "init_kwargs is not a JSON object"),
])
def test_invalid_metadata(tmp_path, metadata, pattern):
    path = _raw_safetensors(tmp_path / "m.safetensors", metadata)
    with pytest.raises(ModelLoadError) as info:
        read_generator_safetensors(path)
    assert str(info.value).startswith("m.safetensors: ") and pattern in str(info.value), str(info.value)


def test_invalid_extra(tmp_path):
    path = _raw_safetensors(tmp_path / "e.safetensors", {**GOOD, "extra": json.dumps([1])})
    assert read_generator_safetensors(path)[0] == "stylegan2"
    with pytest.raises(ModelLoadError, match="extra is not a JSON object"):
        read_generator_extra(path)


def test_corrupt_files(tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator_safetensors(_state(), "stylegan2", {}, path)
    data = path.read_bytes()
    for name, content in {"empty": b"", "garbage": b"\x00" * 64, "text": b"hello world" * 10,
                          "truncated": data[: len(data) - 7], "header_only": data[:40],
                          "huge_header": (10**12).to_bytes(8, "little") + data[8:]}.items():
        broken = tmp_path / f"{name}.safetensors"
        broken.write_bytes(content)
        with pytest.raises(ModelLoadError, match=rf"^{name}\.safetensors: "):
            read_generator_safetensors(broken)
    with pytest.raises(ModelLoadError, match="file not found"):
        read_generator_safetensors(tmp_path / "missing.safetensors")
