"""Targets alone: parsing, resolving against the registry (elements, slices), coercion like the registry."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from oscgan.mapping.targets import TargetError, coerce_array, parse_target, registry_value, resolve_target


def test_parse_target_forms() -> None:
    assert parse_target("truncation.psi").path == "truncation.psi"
    ref = parse_target("latent.z.5")
    assert (ref.path, ref.index) == ("latent.z", 5)
    assert parse_target("latent.z[7]").index == 7
    ref = parse_target("latent.z[0:128]")
    assert (ref.path, ref.start, ref.stop, ref.sliced) == ("latent.z", 0, 128, True)
    ref = parse_target("mix.layer[-2:]")
    assert (ref.start, ref.stop) == (-2, None)
    for bad in ("Truncation.psi", "latent.z[1:2:3]", "latent..z", "/oscgan/truncation/psi", ""):
        with pytest.raises(TargetError, match="not a parameter path"):
            parse_target(bad)


def test_resolve_elements_and_slices(registry, caplog) -> None:
    t = resolve_target("truncation.psi", registry)
    assert t.is_scalar and t.value_range() == (-1.0, 2.0) and t.kind == "float"
    assert list(resolve_target("latent.z.3", registry).indices) == [3]
    assert list(resolve_target("latent.z[2:5]", registry).indices) == [2, 3, 4]
    assert list(resolve_target("mix.layer[-3:]", registry).indices) == [5, 6, 7]
    assert resolve_target("latent.z", registry).length == 16
    with caplog.at_level(logging.WARNING):
        assert resolve_target("latent.z[8:64]", registry).length == 8  # cut to the model, with a warning
    assert "has only 16 elements" in caplog.text
    assert resolve_target("output.paused", registry).value_range() == (0.0, 1.0)
    assert resolve_target("noise.mode", registry).value_range() == (0.0, 2.0)
    assert resolve_target("latent.seed", registry).kind == "int"
    with pytest.raises(TargetError, match="did you mean 'mix.coarse'"):
        resolve_target("mix.corse", registry)


def test_coercion_matches_the_registry(registry) -> None:
    spec = registry.spec("latent.seed")
    assert list(coerce_array(spec, np.array([2.5, -3.0, 7.49]))) == [3, 0, 7]
    assert registry_value(spec, np.array([3.0])) == 3
    mode = registry.spec("noise.mode")
    assert registry_value(mode, coerce_array(mode, np.array([1.6]))) == "none"
    paused = registry.spec("output.paused")
    assert registry_value(paused, coerce_array(paused, np.array([0.5]))) is True
    z = registry.spec("latent.z")
    values = coerce_array(z, np.linspace(-8, 8, 16))
    assert values.min() == -4 and values.max() == 4
    stored = registry_value(z, values)
    assert registry.coerce("latent.z", stored)[0] == stored
