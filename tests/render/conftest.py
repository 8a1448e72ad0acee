"""Shared fixtures for render tests: small real generators and a renderer rig around them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from oscgan.daemon import model_info
from oscgan.models.stylegan2 import Generator
from oscgan.render.renderer import Renderer
from oscgan.state.params import build_registry
from oscgan.state.snapshot import RenderArgs, render_args

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stylegan"


def small_generator() -> nn.Module:
    """A 32 px StyleGAN2 with random weights (8 w's: coarse 0-2, middle 3-7, no fine layers)."""
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                  channel_base=256, channel_max=16, num_fp16_res=0)
    return G.eval().requires_grad_(False)


def load_fixture(name: str) -> nn.Module:
    from oscgan.models.loader import load_generator

    return load_generator(FIXTURES / name, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every render test runs torch on one thread (see tests/conftest.py)."""
    yield


@pytest.fixture(scope="session")
def _small_master() -> nn.Module:
    return small_generator()


@pytest.fixture(scope="session")
def _sg2_master() -> nn.Module:
    return load_fixture("sg2_64.pkl")


# Tests get copies: renderers write into generators (input transforms, hooks) and tests patch them.
@pytest.fixture
def small_G(_small_master: nn.Module) -> nn.Module:
    return copy.deepcopy(_small_master)


@pytest.fixture
def sg2_G(_sg2_master: nn.Module) -> nn.Module:
    return copy.deepcopy(_sg2_master)


class Rig:
    """A generator, its parameter registry and a CPU renderer: set parameters, get frames."""

    def __init__(self, G: nn.Module, **renderer_kwargs: object) -> None:
        self.G = G
        self.info = model_info(G)
        self.registry = build_registry(self.info)
        self.renderer = Renderer(G, torch.device("cpu"), **renderer_kwargs)  # type: ignore[arg-type]

    def args(self, changes: Mapping[str, object] | None = None) -> RenderArgs:
        if changes:
            self.registry.set_many(changes.items())
        return render_args(self.registry.snapshot(), self.info)

    def frame(self, changes: Mapping[str, object] | None = None) -> np.ndarray:
        result = self.renderer.render(self.args(changes))
        assert result.error is None, result.error
        assert result.rgba is not None
        return result.rgba
