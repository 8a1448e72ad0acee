"""OSCQuery namespace: the registry as a Vidvox OSCQuery JSON tree, attribute queries and LISTEN messages."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from oscgan.signals.osc_protocol import encode_message

if TYPE_CHECKING:  # duck-typed at runtime; only the attributes of ParamSpec are used
    from oscgan.state.params import ParamRegistry, ParamSpec

log = logging.getLogger(__name__)

#: Attributes a node may carry (spec "Core" + "Optional" attributes). A query for one of
#: these that the node lacks answers ``{}`` (spec example ``/baz?TYPE``); anything else is 400.
KNOWN_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "FULL_PATH",
        "CONTENTS",
        "TYPE",
        "ACCESS",
        "VALUE",
        "RANGE",
        "DESCRIPTION",
        "TAGS",
        "EXTENDED_TYPE",
        "UNIT",
        "CRITICAL",
        "CLIPMODE",
        "OVERLOADS",
    }
)

#: Optional attributes and streaming commands this server implements (HOST_INFO.EXTENSIONS).
EXTENSIONS: dict[str, bool] = {
    "ACCESS": True,
    "VALUE": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "TAGS": True,
    "UNIT": True,
    "CLIPMODE": True,
    "EXTENDED_TYPE": False,
    "CRITICAL": False,
    "OVERLOADS": False,
    "HTML": True,
    "LISTEN": True,
    "PATH_CHANGED": False,
    "PATH_RENAMED": False,
    "PATH_ADDED": False,
    "PATH_REMOVED": False,
}

ACCESS_NONE = 0
ACCESS_READ_WRITE = 3


class OSCQueryError(ValueError):
    """A query the namespace cannot answer; ``status`` is the HTTP status to reply with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------
# Leaves: one ParamSpec -> one OSC method description
# ---------------------------------------------------------------------------------------


def osc_type(spec: ParamSpec) -> str:
    """The OSC type tag string of a parameter (``f``, ``i``, ``T``, ``s``, ``ff…f``)."""
    if spec.kind == "float":
        return "f"
    if spec.kind == "int":
        return "i"
    if spec.kind == "bool":
        # The spec has no plain boolean tag; T (with F on the wire for false) is the
        # convention TouchDesigner, libossia and VRChat clients understand.
        return "T"
    if spec.kind == "enum":
        return "s"
    if spec.kind == "vector":
        return _element_tag(spec) * max(1, int(spec.length))
    raise ValueError(f"parameter {spec.path!r}: no OSC type for kind {spec.kind!r}")


def _element_tag(spec: ParamSpec) -> str:
    # Seed lists are int vectors (element_kind 'int'); latents and per-layer mixes are float.
    return "i" if getattr(spec, "element_kind", "float") == "int" else "f"


def _arg_count(spec: ParamSpec) -> int:
    return max(1, int(spec.length)) if spec.kind == "vector" else 1


def _number_range(spec: ParamSpec) -> dict[str, float | int]:
    cast = int if spec.kind == "int" or (spec.kind == "vector" and _element_tag(spec) == "i") else float
    out: dict[str, float | int] = {}
    if spec.minimum is not None:
        out["MIN"] = cast(spec.minimum)
    if spec.maximum is not None:
        out["MAX"] = cast(spec.maximum)
    return out


def _clipmode(spec: ParamSpec) -> str:
    low, high = spec.minimum is not None, spec.maximum is not None
    return {(True, True): "both", (True, False): "low", (False, True): "high"}.get((low, high), "none")


def json_values(spec: ParamSpec, value: Any) -> list[Any]:
    """A parameter value as the OSCQuery ``VALUE`` array (one JSON item per type tag)."""
    if spec.kind == "vector":
        items = list(value) if isinstance(value, Iterable) and not isinstance(value, str) else [value]
        if _element_tag(spec) == "i":
            return [int(v) for v in items]
        return [_finite(float(v)) for v in items]
    if spec.kind == "float":
        return [_finite(float(value))]
    if spec.kind == "int":
        return [int(value)]
    if spec.kind == "bool":
        return [bool(value)]
    return [str(value)]


def _finite(x: float) -> float | None:
    # JSON has no NaN/Infinity; the spec's placeholder for "no value" is null.
    return x if math.isfinite(x) else None


def leaf_attributes(spec: ParamSpec, value: Any) -> dict[str, Any]:
    """The OSCQuery attributes of one parameter: TYPE, ACCESS, VALUE, RANGE, CLIPMODE, …"""
    n = _arg_count(spec)
    node: dict[str, Any] = {
        "TYPE": osc_type(spec),
        "ACCESS": ACCESS_READ_WRITE,
        "VALUE": json_values(spec, value),
        "DESCRIPTION": spec.description or spec.path,
    }
    if spec.kind in ("float", "int", "vector"):
        node["RANGE"] = [_number_range(spec) for _ in range(n)]
        node["CLIPMODE"] = [_clipmode(spec)] * n
    elif spec.kind == "enum":
        node["RANGE"] = [{"VALS": list(spec.choices)}]
    if spec.unit:
        node["UNIT"] = [spec.unit] * n
    tags = [t for t in (spec.group,) if t]
    if tags:
        node["TAGS"] = tags
    return node


# ---------------------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------------------


def _container(full_path: str, description: str) -> dict[str, Any]:
    return {"FULL_PATH": full_path, "DESCRIPTION": description, "ACCESS": ACCESS_NONE, "CONTENTS": {}}


def _address_parts(address: str) -> list[str]:
    parts = [p for p in address.split("/") if p]
    if not parts or not address.startswith("/"):
        raise ValueError(f"bad OSC address {address!r}: must start with '/' and name a method")
    return parts


def _values_of(registry: ParamRegistry, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    snap = registry.snapshot()  # one consistent set of values for the whole tree
    return {spec.path: snap[spec.path] if spec.path in snap else registry.get(spec.path) for spec in specs}


def build_namespace(registry: ParamRegistry, *, name: str = "oscgan") -> dict[str, Any]:
    """The whole OSC address space as the OSCQuery JSON tree rooted at ``/``.

    Containers carry ``FULL_PATH``, ``DESCRIPTION``, ``ACCESS: 0`` and ``CONTENTS``. Methods
    carry ``FULL_PATH`` plus :func:`leaf_attributes`. A path that is both a parameter and a
    prefix of others (``latent.travel`` and ``latent.travel.speed``) is one node with both
    ``TYPE``/``VALUE`` and ``CONTENTS`` (the spec allows ``CONTENTS`` next to any attribute;
    only its absence implies "method only").
    """
    specs = list(registry.specs())
    values = _values_of(registry, specs)
    return namespace_from_specs(specs, values, name=name)


def namespace_from_specs(
    specs: Iterable[ParamSpec], values: Mapping[str, Any], *, name: str = "oscgan"
) -> dict[str, Any]:
    """:func:`build_namespace` from specs and a ``{path: value}`` table (pure; for tests/caching)."""
    root = _container("/", f"{name} OSC address space")
    for spec in specs:
        parts = _address_parts(spec.osc_address)
        node = root
        for depth, part in enumerate(parts):
            contents = node.setdefault("CONTENTS", {})
            child = contents.get(part)
            if child is None:
                full = "/" + "/".join(parts[: depth + 1])
                child = _container(full, f"{full} parameters")
                contents[part] = child
            node = child
        # `node` is the method; it may already be a container (children registered first).
        attrs = leaf_attributes(spec, values.get(spec.path, spec.default))
        had_contents = bool(node.get("CONTENTS"))
        node.update(attrs)
        if not had_contents:
            node.pop("CONTENTS", None)  # a pure method: no CONTENTS (spec: absence = method)
    return root


def node_for_path(namespace: Mapping[str, Any], osc_path: str) -> dict[str, Any] | None:
    """The node at ``osc_path`` (``/``, ``/oscgan/truncation``, …) or None when absent."""
    parts = [p for p in osc_path.split("/") if p]
    node: Any = namespace
    for part in parts:
        contents = node.get("CONTENTS") if isinstance(node, Mapping) else None
        if not isinstance(contents, Mapping) or part not in contents:
            return None
        node = contents[part]
    return dict(node)


def attribute_of(node: Mapping[str, Any], attribute: str) -> dict[str, Any]:
    """Answer ``?ATTRIBUTE`` for one node: ``{ATTRIBUTE: value}``, ``{}`` when the node lacks it.

    Raises:
        OSCQueryError: 400 for an attribute this server does not know, 204 for ``VALUE`` on a
            node whose ``ACCESS`` says it has no readable value (spec, "ACCESS").
    """
    if attribute not in KNOWN_ATTRIBUTES:
        raise OSCQueryError(
            400,
            f"unsupported OSCQuery attribute {attribute!r}; "
            f"known: HOST_INFO, HTML, {', '.join(sorted(KNOWN_ATTRIBUTES))}",
        )
    if attribute == "VALUE" and not int(node.get("ACCESS", ACCESS_READ_WRITE)) & 1:
        raise OSCQueryError(204, f"{node.get('FULL_PATH')} has no readable value")
    if attribute not in node:
        return {}
    return {attribute: node[attribute]}


def host_info(
    name: str,
    osc_port: int | None = None,
    osc_ip: str | None = None,
    osc_transport: str = "UDP",
) -> dict[str, Any]:
    """The ``?HOST_INFO`` object. Omitted keys mean "same address as this HTTP server" (spec).

    The WebSocket runs on the HTTP port, so ``WS_IP``/``WS_PORT`` are left out on purpose.
    """
    info: dict[str, Any] = {"NAME": name, "EXTENSIONS": dict(EXTENSIONS)}
    if osc_ip:
        info["OSC_IP"] = osc_ip
    if osc_port is not None:
        info["OSC_PORT"] = int(osc_port)
    info["OSC_TRANSPORT"] = osc_transport
    return info


def path_for_address(address: str, prefix: str = "/oscgan") -> str | None:
    """Registry path of an OSC address (``/oscgan/latent/z/5`` -> ``latent.z.5``); None if foreign."""
    if not address.startswith(prefix + "/"):
        return None
    rest = address[len(prefix) + 1 :].strip("/")
    return rest.replace("/", ".") if rest else None


def address_table(specs: Iterable[ParamSpec]) -> dict[str, ParamSpec]:
    """``{osc_address: spec}`` for LISTEN lookups."""
    return {spec.osc_address: spec for spec in specs}


# ---------------------------------------------------------------------------------------
# LISTEN stream: one binary OSC message per value change
# ---------------------------------------------------------------------------------------


def osc_args(spec: ParamSpec, value: Any) -> list[float | int | bool | str]:
    """A parameter value as OSC arguments, typed by the spec (never by the Python value).

    ``osc_protocol.encode_message`` picks tags from Python types: float -> f, int -> i,
    bool -> T/F, str -> s; so an int-valued float parameter still goes out as ``f``.
    """
    if spec.kind == "bool":
        return [bool(value)]
    if spec.kind == "enum":
        return [str(value)]
    if spec.kind == "int":
        return [int(value)]
    if spec.kind == "vector":
        cast = int if _element_tag(spec) == "i" else float
        return [cast(v) for v in value]
    return [float(value)]


def value_message(spec: ParamSpec, value: Any) -> bytes:
    """The binary OSC message streamed to LISTENers of ``spec.osc_address``."""
    return encode_message(spec.osc_address, osc_args(spec, value))
