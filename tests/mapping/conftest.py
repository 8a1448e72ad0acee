"""Shared helpers for mapping tests: a registry, a bus, mapping files and an engine on a fake clock."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from oscgan.mapping.engine import MappingEngine
from oscgan.mapping.mapping import Mapping
from oscgan.mapping.schema import load_mapping_file
from oscgan.mapping.sources import FrameClock
from oscgan.state.params import ModelInfo, ParamRegistry, build_registry

# A small model: z 16 wide, 8 style layers.
INFO = ModelInfo("stylegan2", 16, 16, 8, 32, (4, 4, 8, 8, 16, 16, 32, 32))
# NVIDIA-sized latent, for the example mapping files (they address latent.z[448:512]).
INFO_512 = ModelInfo("stylegan2", 512, 512, 14, 256, (4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256))


@pytest.fixture
def registry() -> ParamRegistry:
    return build_registry(INFO)


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def mappings_from(tmp_path: Path, registry: ParamRegistry, text: str, name: str = "m.yaml") -> list[Mapping]:
    return load_mapping_file(write_yaml(tmp_path / name, text), registry)


class Rig:
    """An attached engine driven frame by frame on a fake clock; each frame's writes go to the registry."""

    def __init__(self, mappings: Sequence[Mapping], registry: ParamRegistry, fps: float = 30.0,
                 bpm: float = 120.0) -> None:
        self.registry = registry
        self.engine = MappingEngine(mappings, registry, rng_seed=1)
        self.engine.attach(None)
        self.dt = 1.0 / fps
        self.t = 0.0
        self.beats = 0.0
        self.bpm = bpm
        self.writes: list[list[tuple[str, object]]] = []
        self.fired: list[Any] = []

    def frame(self, events: Iterable[tuple[str, object]] = (), dt: float | None = None) -> list[tuple[str, object]]:
        dt = self.dt if dt is None else dt
        self.t += dt
        self.beats += dt * self.bpm / 60.0
        items, fired = self.engine.step(list(events), FrameClock(self.t, dt, self.beats, self.bpm))
        self.fired.extend(fired)
        if items:
            self.registry.set_many(items, source="mapping")
        self.writes.append(items)
        return items

    def external(self, path: str, value: object, source: str = "osc:test") -> None:
        """A change from outside the mappings (OSC, web, preset), delivered to the engine's base."""
        from oscgan.mapping.targets import param_vector

        self.registry.set(path, value, source=source)
        spec = self.registry.spec(path)
        if spec.path == path:
            self.engine.apply_base(path, None, param_vector(spec, self.registry.get(path)))
        else:
            import numpy as np

            index = int(path.rsplit(".", 1)[1])
            self.engine.apply_base(spec.path, np.array([index]), np.array([float(self.registry.get(path))]))
