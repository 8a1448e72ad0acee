"""Tests for the parameter registry: specs, coercion, clamping, atomic set_many, snapshots and listeners."""

from __future__ import annotations

import json
import logging
import math
import threading

import pytest

from oscgan.state.params import (
    ModelInfo,
    ParamRegistry,
    ParamSnapshot,
    ParamSpec,
    ParamValueError,
    SetResult,
    UnknownParameter,
    build_registry,
)

SG2_1024 = ModelInfo("stylegan2", 512, 512, 18, 1024,
                     (4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024))
SMALL = ModelInfo("stylegan2", 8, 8, 6, 64, (4, 4, 8, 8, 16, 64))


@pytest.fixture
def reg() -> ParamRegistry:
    return build_registry(SMALL)


# -- ModelInfo ---------------------------------------------------------------------------------------


def test_layer_groups_follow_the_stylegan_paper() -> None:
    groups = SG2_1024.layer_groups()
    assert groups == {"coarse": (0, 1, 2, 3), "middle": (4, 5, 6, 7), "fine": tuple(range(8, 18))}


def test_layer_groups_overrides_take_indices_out_of_other_groups() -> None:
    groups = SG2_1024.layer_groups({"coarse": [0, 1, 2, 3, 4, 5]})
    assert groups["coarse"] == (0, 1, 2, 3, 4, 5)
    assert groups["middle"] == (6, 7)
    assert groups["fine"] == tuple(range(8, 18))


@pytest.mark.parametrize("overrides, match", [
    ({"huge": [0]}, "unknown layer group"),
    ({"coarse": [18]}, "outside"),
    ({"coarse": [1], "fine": [1]}, "two overrides"),
])
def test_layer_groups_bad_overrides(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SG2_1024.layer_groups(overrides)


def test_model_info_validation() -> None:
    with pytest.raises(ValueError, match="layer_resolutions"):
        ModelInfo("stylegan2", 512, 512, 18, 1024, (4, 4))
    with pytest.raises(ValueError, match="architecture"):
        ModelInfo("stylegan9", 512, 512, 2, 1024, (4, 4))  # type: ignore[arg-type]
    info = ModelInfo("stylegan3", 512, 512, 2, 256, [16, 256])  # type: ignore[arg-type]
    assert info.layer_resolutions == (16, 256)
    assert hash(info)


# -- the parameter set --------------------------------------------------------------------------------


REQUIRED = {
    "latent.seed": ("int", 0, 2**31 - 1), "latent.z": ("vector", -4, 4), "latent.travel": ("float", 0, 1),
    "latent.travel.speed": ("float", 0, 10), "latent.travel.mode": ("enum", None, None),
    "latent.keyframes": ("vector", 0, 2**31 - 1), "mix.seed": ("int", 0, 2**31 - 1),
    "mix.coarse": ("float", 0, 1), "mix.middle": ("float", 0, 1), "mix.fine": ("float", 0, 1),
    "mix.layer": ("vector", 0, 1), "truncation.psi": ("float", -1, 2), "truncation.cutoff": ("int", 0, 18),
    "noise.mode": ("enum", None, None), "noise.strength": ("float", 0, 4), "const.corruption": ("float", 0, 10),
    "const.seed": ("int", 0, 2**31 - 1), "const.shift.x": ("float", -1, 1), "const.shift.y": ("float", -1, 1),
    "const.scale": ("float", 0.1, 4), "affine.rotate": ("float", -360, 360),
    "affine.translate.x": ("float", -1, 1),
    "affine.translate.y": ("float", -1, 1), "affine.scale": ("float", 0.1, 4), "output.fps": ("float", 1, 240),
    "output.paused": ("bool", None, None),
}


def test_required_parameters_with_ranges() -> None:
    reg = build_registry(SG2_1024)
    for path, (kind, lo, hi) in REQUIRED.items():
        spec = reg.spec(path)
        assert spec.kind == kind, path
        assert spec.minimum == lo and spec.maximum == hi, path
        assert spec.description and spec.group, path
    assert reg.spec("latent.z").length == 512
    assert reg.spec("mix.layer").length == 18
    assert reg.get("truncation.psi") == 0.7
    assert reg.spec("latent.travel.mode").choices == ("slerp_z", "lerp_w")
    assert reg.spec("noise.mode").choices == ("const", "random", "none")
    assert reg.spec("latent.keyframes").element_kind == "int"


def test_every_default_is_valid_and_json_describable(reg: ParamRegistry) -> None:
    for spec in reg.specs():
        value, clamped = reg.coerce(spec.path, spec.default)
        assert value == spec.default and not clamped
        json.dumps(spec.to_dict())


def test_leaf_and_prefix_coexist(reg: ParamRegistry) -> None:
    assert reg.spec("latent.travel").osc_address == "/oscgan/latent/travel"
    assert reg.spec("latent.travel.speed").osc_address == "/oscgan/latent/travel/speed"
    reg.set("latent.travel", 0.25)
    reg.set("latent.travel.speed", 2)
    assert reg.get("latent.travel") == 0.25 and reg.get("latent.travel.speed") == 2.0


def test_osc_addresses(reg: ParamRegistry) -> None:
    assert reg.spec("truncation.psi").osc_address == "/oscgan/truncation/psi"
    assert reg.spec("latent.z").element_address(5) == "/oscgan/latent/z/5"
    assert reg.spec("latent.z").element_path(5) == "latent.z.5"
    with pytest.raises(IndexError):
        reg.spec("latent.z").element_path(8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(path="Bad.Path", kind="float", default=0.0), "lowercase"),
    (dict(path="latent.3", kind="float", default=0.0), "lowercase"),
    (dict(path="a", kind="complex", default=0.0), "kind"),
    (dict(path="a", kind="float", default=5.0, minimum=0, maximum=1), "outside"),
    (dict(path="a", kind="float", default=0.5, minimum=1, maximum=0), "above maximum"),
    (dict(path="a", kind="enum", default="x", choices=("y",)), "not one of"),
    (dict(path="a", kind="enum", default="x", choices=()), "distinct choices"),
    (dict(path="a", kind="vector", default=(0.0,), length=2), "tuple of 2"),
    (dict(path="a", kind="float", default=0.0, length=2), "only vectors"),
    (dict(path="a", kind="float", default=0.0, choices=("a",)), "only enums"),
    (dict(path="a", kind="float", default="x"), "bad default"),
])
def test_spec_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ParamSpec(**kwargs)


def test_duplicate_paths_rejected() -> None:
    spec = ParamSpec("a", "float", 0.0)
    with pytest.raises(ValueError, match="twice"):
        ParamRegistry([spec, spec])


def test_default_is_normalised_to_its_kind() -> None:
    assert isinstance(ParamSpec("a", "float", 1).default, float)


# -- get / set ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, value, expected", [
    ("truncation.psi", 1, 1.0),
    ("truncation.psi", True, 1.0),
    ("truncation.psi", 0.25, 0.25),
    ("latent.seed", 41.6, 42),  # TouchDesigner sends floats: rounded
    ("latent.seed", 7, 7),
    ("latent.seed", True, 1),
    ("output.paused", 1.0, True),
    ("output.paused", 0.2, False),
    ("output.paused", True, True),
    ("noise.mode", "random", "random"),
    ("noise.mode", 2, "none"),  # enum by index (TouchOSC radio)
    ("noise.mode", 1.0, "random"),
])
def test_coercion(reg: ParamRegistry, path: str, value: object, expected: object) -> None:
    result = reg.set(path, value, source="test")
    assert result == SetResult(path, expected, False)
    assert reg.get(path) == expected
    assert type(reg.get(path)) is type(expected)


@pytest.mark.parametrize("path, value, expected", [
    ("truncation.psi", 5.0, 2.0),
    ("truncation.psi", -3, -1.0),
    ("latent.seed", -5, 0),
    ("latent.seed", 2**40, 2**31 - 1),
    ("latent.seed", 1e300, 2**31 - 1),
    ("noise.mode", 9, "none"),
    ("noise.mode", -1, "const"),
    ("latent.z.3", 100.0, 4.0),
    ("truncation.cutoff", 99, 6),
])
def test_clamping_is_counted(reg: ParamRegistry, path: str, value: object, expected: object) -> None:
    before = reg.clamp_count
    result = reg.set(path, value)
    assert result.clamped and result.value == expected
    assert reg.get(path) == expected
    assert reg.clamp_count == before + 1


@pytest.mark.parametrize("path, value", [
    ("truncation.psi", "high"),
    ("truncation.psi", None),
    ("truncation.psi", math.nan),
    ("truncation.psi", math.inf),
    ("truncation.psi", (0.5,)),
    ("latent.seed", "3"),
    ("latent.seed", math.nan),
    ("output.paused", "yes"),
    ("noise.mode", "loud"),
    ("noise.mode", None),
    ("noise.mode", True),
    ("latent.z", 0.5),  # a vector wants a sequence
    ("latent.z", "abc"),
    ("latent.z", ()),
    ("latent.z", (0.0,) * 9),  # longer than the vector
    ("latent.z", (0.0, "x")),
    ("latent.z.2", (1.0,)),
])
def test_wrong_types_raise_and_change_nothing(reg: ParamRegistry, path: str, value: object) -> None:
    before = reg.snapshot()
    with pytest.raises(ParamValueError):
        reg.set(path, value)
    assert dict(reg.snapshot()) == dict(before)
    assert reg.version == before.version


@pytest.mark.parametrize("path, match", [
    ("truncation.pis", "did you mean 'truncation.psi'"),
    ("latent.z.8", "there is no element 8"),
    ("latent.z.05", "unknown parameter"),
    ("latent.z.-1", "unknown parameter"),
    ("truncation.psi.0", "unknown parameter"),  # scalars have no elements
    ("", "unknown parameter"),
])
def test_unknown_parameters(reg: ParamRegistry, path: str, match: str) -> None:
    with pytest.raises(UnknownParameter, match=match):
        reg.set(path, 1.0)
    with pytest.raises(KeyError):
        reg.get(path)
    assert path not in reg


def test_vectors_prefix_and_elements(reg: ParamRegistry) -> None:
    assert reg.get("latent.z") == (0.0,) * 8
    result = reg.set("latent.z", [1, 2.5, -9])
    assert result.clamped
    assert result.value == (1.0, 2.5, -4.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    reg.set("latent.z.7", 0.5)
    assert reg.get("latent.z.7") == 0.5
    assert reg.get("latent.z") == (1.0, 2.5, -4.0, 0.0, 0.0, 0.0, 0.0, 0.5)
    assert "latent.z.7" in reg and "latent.z.8" not in reg
    assert reg.spec("latent.z.7") is reg.spec("latent.z")
    reg.set("latent.keyframes.2", 123456789.4)
    assert reg.get("latent.keyframes")[2] == 123456789
    assert all(type(x) is int for x in reg.get("latent.keyframes"))


def test_set_many_is_all_or_nothing(reg: ParamRegistry) -> None:
    version = reg.version
    with pytest.raises(ParamValueError):
        reg.set_many([("mix.coarse", 0.5), ("mix.middle", "x")])
    with pytest.raises(UnknownParameter):
        reg.set_many([("mix.coarse", 0.5), ("mix.nope", 1.0)])
    assert reg.get("mix.coarse") == 0.0 and reg.version == version
    results = reg.set_many([("mix.coarse", 0.5), ("mix.middle", 2.0), ("mix.coarse", 0.75)])
    assert [r.clamped for r in results] == [False, True, False]
    assert reg.get("mix.coarse") == 0.75 and reg.get("mix.middle") == 1.0
    assert reg.version == version + 1  # one bundle, one version


def test_version_and_snapshot_cache(reg: ParamRegistry) -> None:
    snap = reg.snapshot()
    assert isinstance(snap, ParamSnapshot)
    assert reg.snapshot() is snap  # nothing changed: same object
    reg.set("truncation.psi", 0.7)  # same value: no change
    assert reg.snapshot() is snap and reg.version == snap.version
    reg.set("truncation.psi", 0.5)
    new = reg.snapshot()
    assert new is not snap and new.version == snap.version + 1
    assert snap["truncation.psi"] == 0.7 and new["truncation.psi"] == 0.5
    assert len(new) == len(reg) and set(new) == {s.path for s in reg.specs()}
    with pytest.raises(TypeError):
        new["truncation.psi"] = 1.0  # type: ignore[index]


def test_reset(reg: ParamRegistry) -> None:
    reg.set_many([("truncation.psi", 0.1), ("latent.z.1", 2.0)])
    reg.reset(["truncation.psi"])
    assert reg.get("truncation.psi") == 0.7 and reg.get("latent.z.1") == 2.0
    reg.reset()
    assert reg.get("latent.z") == (0.0,) * 8


# -- listeners ----------------------------------------------------------------------------------------


def test_listeners_get_path_value_source_once_per_change(reg: ParamRegistry) -> None:
    events = []
    unsubscribe = reg.subscribe(lambda *e: events.append(e))
    reg.set_many([("latent.z.1", 1.0), ("latent.z.2", 2.0), ("truncation.psi", 0.7)], source="osc:x")
    assert events == [("latent.z", (0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0), "osc:x")]  # psi unchanged
    unsubscribe()
    reg.set("truncation.psi", 0.1)
    assert len(events) == 1


def test_listener_exceptions_are_logged_not_raised(reg: ParamRegistry, caplog: pytest.LogCaptureFixture) -> None:
    seen = []

    def broken(path: str, value: object, source: str) -> None:
        raise RuntimeError("boom")

    reg.subscribe(broken)
    reg.subscribe(lambda *e: seen.append(e))
    with caplog.at_level(logging.ERROR, logger="oscgan.state.params"):
        reg.set("truncation.psi", 0.2)
    assert "listener" in caplog.text and "boom" in caplog.text
    assert seen == [("truncation.psi", 0.2, "")]


def test_listener_runs_after_lock_release_and_may_set(reg: ParamRegistry) -> None:
    events = []

    def follower(path: str, value: object, source: str) -> None:
        events.append((path, value))
        if path == "mix.coarse":
            # Re-entrant use: would deadlock if listeners ran under the registry lock.
            assert reg.snapshot()["mix.coarse"] == value
            reg.set("mix.fine", value, source="follower")

    reg.subscribe(follower)
    reg.set("mix.coarse", 0.5)
    assert events == [("mix.coarse", 0.5), ("mix.fine", 0.5)]
    assert reg.get("mix.fine") == 0.5


def test_concurrent_bundles_are_atomic_for_readers_and_listeners(reg: ParamRegistry) -> None:
    paths = ("mix.coarse", "mix.middle", "mix.fine")
    torn = []

    def listener(path: str, value: object, source: str) -> None:
        snap = reg.snapshot()
        if len({snap[p] for p in paths}) != 1:
            torn.append(("listener", dict(snap)))

    reg.subscribe(listener)
    stop = threading.Event()

    def writer(offset: int) -> None:
        for i in range(2000):
            x = ((i * 2 + offset) % 1000) / 1000
            reg.set_many([(p, x) for p in paths], source=f"w{offset}")

    def reader() -> None:
        while not stop.is_set():
            snap = reg.snapshot()
            if len({snap[p] for p in paths}) != 1:
                torn.append(("reader", dict(snap)))

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert not torn


def test_listener_order_matches_change_order_across_threads(reg: ParamRegistry) -> None:
    last: dict[str, object] = {}
    lock = threading.Lock()

    def listener(path: str, value: object, source: str) -> None:
        with lock:
            last[path] = value

    reg.subscribe(listener)

    def writer(k: int) -> None:
        for i in range(3000):
            reg.set("truncation.psi", ((i * 7 + k) % 300) / 100 - 1)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Deliveries are ordered, so the last one a listener saw is the registry's final value.
    assert last["truncation.psi"] == reg.get("truncation.psi")
