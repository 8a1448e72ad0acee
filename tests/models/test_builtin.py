"""Built-in models: deterministic, cached safely, and every control visibly changes the picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oscgan.daemon import model_info
from oscgan.models.builtin import BUILTINS, build_builtin, builtin_spec
from oscgan.render.renderer import Renderer
from oscgan.state.params import build_registry
from oscgan.state.snapshot import render_args


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OSCGAN_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_unknown_builtin_names_the_choices():
    with pytest.raises(KeyError, match="builtin:sg2-256"):
        builtin_spec("builtin:nope")


def test_build_is_deterministic_and_cache_is_identical(cache):
    a = build_builtin("builtin:sg2-256", use_cache=False)
    b = build_builtin("builtin:sg2-256")  # builds and writes the cache
    c = build_builtin("builtin:sg2-256")  # reads the cache
    assert len(list(cache.glob("builtin-sg2-256-*.safetensors"))) == 1
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]) and torch.equal(v, c.state_dict()[k]), k


def test_corrupt_cache_is_ignored_and_rebuilt(cache):
    build_builtin("builtin:sg2-256")
    path = next(cache.glob("builtin-sg2-256-*.safetensors"))
    path.write_bytes(b"garbage" * 100)
    G = build_builtin("builtin:sg2-256")
    ref = build_builtin("builtin:sg2-256", use_cache=False)
    assert torch.equal(G.synthesis.b4.const, ref.synthesis.b4.const)


def test_w_avg_is_the_mean_latent():
    G = build_builtin("builtin:sg2-256", use_cache=False)
    assert float(G.mapping.w_avg.norm()) > 0
    with torch.no_grad():
        ws = G.mapping(torch.randn(2048, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    assert torch.allclose(ws[:, 0].mean(0), G.mapping.w_avg, atol=0.1 * float(ws[:, 0].std()))


@pytest.mark.parametrize("name", ["builtin:sg2-256", "builtin:sg3t-256"])
def test_every_control_changes_the_picture(name):
    G = build_builtin(name)
    renderer = Renderer(G, torch.device("cpu"))
    info = model_info(G)
    reg = build_registry(info)

    def frame(**changes) -> np.ndarray:
        reg.reset()
        for path, value in changes.items():
            reg.set(path.replace("__", "."), value)
        result = renderer.render(render_args(reg.snapshot(), info))
        assert result.error is None
        return result.rgba[:, :, :3].astype(np.float64)

    base = frame()
    assert base.std() > 25, "the picture should have lively contrast"
    assert np.ptp(base.reshape(-1, 3).mean(0)) > 0 or base.reshape(-1, 3).std(0).min() > 5
    controls = dict(latent__seed=7, truncation__psi=0.0, mix__coarse=1.0, mix__fine=1.0,
                    const__corruption=2.0, affine__rotate=60.0)
    for path, value in controls.items():
        diff = np.abs(frame(**{path: value}) - base).mean()
        assert diff > 4, f"{path}={value} barely changes the picture (mean abs diff {diff:.1f})"


def test_all_builtins_are_listed_with_honest_descriptions():
    for spec in BUILTINS.values():
        assert "untrained" in spec.description
