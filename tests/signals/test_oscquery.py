"""OSCQuery namespace: tree shape per the Vidvox spec, attribute queries, HOST_INFO, LISTEN packets."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from oscgan.signals import oscquery
from oscgan.state.params import ModelInfo, ParamSpec, build_registry

MODEL = ModelInfo("stylegan2", 16, 16, 6, 32, (4, 4, 8, 8, 16, 32))


@pytest.fixture()
def registry():
    return build_registry(MODEL)


def _walk(node: dict[str, Any], name: str = ""):
    yield name, node
    for child_name, child in node.get("CONTENTS", {}).items():
        yield from _walk(child, child_name)


def test_root_and_container_shape(registry):
    ns = oscquery.build_namespace(registry)
    assert ns["FULL_PATH"] == "/"
    assert ns["ACCESS"] == 0 and "TYPE" not in ns and "DESCRIPTION" in ns
    top = ns["CONTENTS"]["oscgan"]
    assert top["FULL_PATH"] == "/oscgan"
    assert set(top["CONTENTS"]) >= {"latent", "mix", "truncation", "noise", "const", "affine", "output"}
    trunc = top["CONTENTS"]["truncation"]
    assert trunc["ACCESS"] == 0 and "TYPE" not in trunc and "VALUE" not in trunc
    assert set(trunc["CONTENTS"]) == {"psi", "cutoff"}
    # Valid JSON for strict parsers (no NaN / Infinity).
    json.dumps(ns, allow_nan=False)


def test_every_node_is_consistent(registry):
    ns = oscquery.build_namespace(registry)

    def check(node: dict[str, Any], path: str) -> None:
        assert node["FULL_PATH"] == path
        assert isinstance(node["DESCRIPTION"], str) and node["DESCRIPTION"]
        if "TYPE" in node:
            n = len(node["TYPE"])
            assert node["ACCESS"] == 3
            assert len(node["VALUE"]) == n
            if "RANGE" in node:
                assert len(node["RANGE"]) == n
            for attr in ("CLIPMODE", "UNIT"):
                if attr in node:
                    assert len(node[attr]) == n
        else:
            assert node["ACCESS"] == 0 and node["CONTENTS"]
        for name, child in node.get("CONTENTS", {}).items():
            check(child, path.rstrip("/") + "/" + name)

    check(ns, "/")
    leaves = {n["FULL_PATH"] for _, n in _walk(ns) if "TYPE" in n}
    assert leaves == {s.osc_address for s in registry.specs()}


def test_leaf_types_ranges_and_values(registry):
    ns = oscquery.build_namespace(registry)
    node = lambda p: oscquery.node_for_path(ns, p)  # noqa: E731

    psi = node("/oscgan/truncation/psi")
    assert psi["TYPE"] == "f" and psi["VALUE"] == [pytest.approx(0.7)]
    assert psi["RANGE"] == [{"MIN": -1.0, "MAX": 2.0}] and psi["CLIPMODE"] == ["both"]
    assert "CONTENTS" not in psi  # a pure method has no CONTENTS

    seed = node("/oscgan/latent/seed")
    assert seed["TYPE"] == "i" and seed["VALUE"] == [0]
    assert seed["RANGE"] == [{"MIN": 0, "MAX": 2**31 - 1}]
    assert all(isinstance(v, int) for v in seed["RANGE"][0].values())

    paused = node("/oscgan/output/paused")
    assert paused["TYPE"] == "T" and paused["VALUE"] == [False]

    mode = node("/oscgan/noise/mode")
    assert mode["TYPE"] == "s" and mode["VALUE"] == ["const"]
    assert mode["RANGE"] == [{"VALS": ["const", "random", "none"]}]

    z = node("/oscgan/latent/z")
    assert z["TYPE"] == "f" * MODEL.z_dim and len(z["VALUE"]) == MODEL.z_dim
    assert z["RANGE"] == [{"MIN": -4.0, "MAX": 4.0}] * MODEL.z_dim

    keyframes = node("/oscgan/latent/keyframes")
    assert keyframes["TYPE"] == "i" * 8 and keyframes["VALUE"] == list(range(8))

    fps = node("/oscgan/output/fps")
    assert fps["UNIT"] == ["fps"] and fps["TAGS"] == ["output"]


def test_leaf_that_is_also_a_container(registry):
    ns = oscquery.build_namespace(registry)
    travel = oscquery.node_for_path(ns, "/oscgan/latent/travel")
    assert travel["TYPE"] == "f" and travel["ACCESS"] == 3 and travel["VALUE"] == [0.0]
    assert set(travel["CONTENTS"]) == {"speed", "mode", "beats"}
    assert travel["CONTENTS"]["speed"]["FULL_PATH"] == "/oscgan/latent/travel/speed"


def test_leaf_and_container_independent_of_order():
    child = ParamSpec("fx.glow.amount", "float", 0.5, 0.0, 1.0, description="child")
    parent = ParamSpec("fx.glow", "bool", True, description="parent")
    for specs in ([child, parent], [parent, child]):
        ns = oscquery.namespace_from_specs(specs, {})
        glow = oscquery.node_for_path(ns, "/oscgan/fx/glow")
        assert glow["TYPE"] == "T" and glow["VALUE"] == [True] and glow["DESCRIPTION"] == "parent"
        assert glow["CONTENTS"]["amount"]["VALUE"] == [0.5]


def test_values_follow_the_registry(registry):
    registry.set("truncation.psi", 0.25)
    registry.set("latent.z.3", 1.5)
    registry.set("noise.mode", "random")
    ns = oscquery.build_namespace(registry)
    assert oscquery.node_for_path(ns, "/oscgan/truncation/psi")["VALUE"] == [0.25]
    assert oscquery.node_for_path(ns, "/oscgan/latent/z")["VALUE"][3] == 1.5
    assert oscquery.node_for_path(ns, "/oscgan/noise/mode")["VALUE"] == ["random"]


def test_node_for_path(registry):
    ns = oscquery.build_namespace(registry)
    assert oscquery.node_for_path(ns, "/")["FULL_PATH"] == "/"
    assert oscquery.node_for_path(ns, "/oscgan/")["FULL_PATH"] == "/oscgan"
    assert oscquery.node_for_path(ns, "/oscgan/nope") is None
    assert oscquery.node_for_path(ns, "/oscgan/truncation/psi/deeper") is None


def test_attribute_queries(registry):
    ns = oscquery.build_namespace(registry)
    psi = oscquery.node_for_path(ns, "/oscgan/truncation/psi")
    assert oscquery.attribute_of(psi, "VALUE") == {"VALUE": [pytest.approx(0.7)]}
    assert oscquery.attribute_of(psi, "TYPE") == {"TYPE": "f"}
    assert oscquery.attribute_of(psi, "UNIT") == {}  # known attribute the node lacks (spec: /baz?TYPE)
    container = oscquery.node_for_path(ns, "/oscgan/truncation")
    assert oscquery.attribute_of(container, "TYPE") == {}
    with pytest.raises(oscquery.OSCQueryError) as e:
        oscquery.attribute_of(container, "VALUE")
    assert e.value.status == 204
    with pytest.raises(oscquery.OSCQueryError) as e:
        oscquery.attribute_of(psi, "COLOUR")
    assert e.value.status == 400 and "COLOUR" in str(e.value)


def test_host_info():
    info = oscquery.host_info("booth", osc_port=9000)
    assert info["NAME"] == "booth" and info["OSC_PORT"] == 9000 and info["OSC_TRANSPORT"] == "UDP"
    assert "OSC_IP" not in info  # same host as the HTTP server
    ext = info["EXTENSIONS"]
    assert ext["LISTEN"] is True and ext["PATH_CHANGED"] is False
    assert all(ext[k] for k in ("ACCESS", "VALUE", "RANGE", "DESCRIPTION"))
    assert "OSC_PORT" not in oscquery.host_info("x")
    assert oscquery.host_info("x", 1, "10.0.0.2")["OSC_IP"] == "10.0.0.2"


def _spec(registry, path):
    return registry.spec(path)


def test_value_message_bytes(registry):
    msg = oscquery.value_message(_spec(registry, "truncation.psi"), 0.5)
    assert msg == b"/oscgan/truncation/psi\x00\x00" + b",f\x00\x00" + b"\x3f\x00\x00\x00"
    assert len(msg) % 4 == 0

    assert oscquery.value_message(_spec(registry, "output.paused"), True) == (
        b"/oscgan/output/paused\x00\x00\x00" + b",T\x00\x00"
    )
    assert oscquery.value_message(_spec(registry, "output.paused"), False).endswith(b",F\x00\x00")
    assert oscquery.value_message(_spec(registry, "noise.mode"), "random") == (
        b"/oscgan/noise/mode\x00\x00" + b",s\x00\x00" + b"random\x00\x00"
    )
    assert oscquery.value_message(_spec(registry, "latent.seed"), 258).endswith(b",i\x00\x00\x00\x00\x01\x02")

    z = oscquery.value_message(_spec(registry, "latent.z"), tuple(float(i) for i in range(MODEL.z_dim)))
    tags = b"," + b"f" * MODEL.z_dim + b"\x00"
    tags += b"\x00" * (-len(tags) % 4)
    assert z.startswith(b"/oscgan/latent/z\x00\x00\x00\x00" + tags)
    assert struct.unpack(f">{MODEL.z_dim}f", z[-4 * MODEL.z_dim:]) == tuple(float(i) for i in range(MODEL.z_dim))

    kf = oscquery.value_message(_spec(registry, "latent.keyframes"), tuple(range(8)))
    assert b",iiiiiiii\x00" in kf and kf.endswith(struct.pack(">8i", *range(8)))


def test_osc_args_are_typed_by_the_spec(registry):
    # An integral value of a float parameter must still go out as "f" (TouchDesigner checks tags).
    assert oscquery.value_message(_spec(registry, "truncation.psi"), 1).endswith(b",f\x00\x00\x3f\x80\x00\x00")
    assert oscquery.osc_args(_spec(registry, "latent.seed"), 3.0) == [3]
    assert oscquery.osc_args(_spec(registry, "output.paused"), 1) == [True]


def test_path_for_address():
    assert oscquery.path_for_address("/oscgan/truncation/psi") == "truncation.psi"
    assert oscquery.path_for_address("/oscgan/latent/z/5") == "latent.z.5"
    assert oscquery.path_for_address("/other/thing") is None
    assert oscquery.path_for_address("/oscgan") is None
