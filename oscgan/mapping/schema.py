"""Reading mapping files (file:line errors with did-you-mean hints) and their JSON Schema."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from oscgan.config import ConfigError, line_of, load_yaml
from oscgan.mapping.mapping import Mapping, MappingConfig, MappingError, MappingFileConfig, build_mapping
from oscgan.state.params import ParamRegistry

SCHEMA_HEADER = "# yaml-language-server: $schema="

# Which pydantic errors to report first: a misspelt key also makes its correct spelling "missing",
# and the typo with its hint is the useful message.
_PRIORITY = {"extra_forbidden": 0, "union_tag_invalid": 1, "literal_error": 2, "missing": 9}


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return tp


def _union_members(tp: Any) -> dict[str, type[BaseModel]] | None:
    """Tag -> model of a discriminated union on ``type`` (None if ``tp`` is not one)."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return None
    members: dict[str, type[BaseModel]] = {}
    for m in typing.get_args(tp):
        if isinstance(m, type) and issubclass(m, BaseModel) and "type" in m.model_fields:
            for tag in typing.get_args(m.model_fields["type"].annotation):
                members[str(tag)] = m
    return members or None


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """Name as written in YAML (alias) -> Python field name."""
    return {(f.alias or name): name for name, f in model.model_fields.items()}


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the models.

    Returns the location as it is in the YAML (union tags removed), the model that holds the
    last key (None if unknown) and the annotation of the last key.
    """
    yaml_loc: list[Any] = []
    tp: Any = model
    holder: type[BaseModel] | None = None
    i = 0
    while i < len(loc):
        key = loc[i]
        tp = _strip_optional(tp)
        members = _union_members(tp)
        if members is not None:
            if isinstance(key, str) and key in members:
                tp = members[key]
                i += 1
                continue
            return tuple(yaml_loc) + tuple(loc[i:]), None, None
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(key, str):
            holder = tp
            yaml_loc.append(key)
            field = tp.model_fields.get(_field_names(tp).get(key, key))
            tp = field.annotation if field is not None else None
        elif typing.get_origin(tp) in (list, tuple) and isinstance(key, int):
            yaml_loc.append(key)
            args = typing.get_args(tp)
            tp = args[0] if args else None
            holder = None
        else:
            yaml_loc.append(key)
            tp, holder = None, None
        i += 1
    return tuple(yaml_loc), holder, tp


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _hint(err: dict[str, Any], holder: type[BaseModel] | None) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden" and holder is not None and loc:
        allowed = [a for a in _field_names(holder) if a != "type"]
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r}?)"
        return f" (allowed here: {', '.join(allowed)})" if allowed else ""
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        close = difflib.get_close_matches(str(ctx.get("tag")), _quoted(str(ctx.get("expected_tags", ""))), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""
    if kind == "literal_error":
        expected = _quoted(str((err.get("ctx") or {}).get("expected", "")))
        close = difflib.get_close_matches(str(err.get("input")), expected, n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""
    return ""


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    # pydantic prefixes messages of our own validators with "Value error, ".
    return msg.removeprefix("Value error, ")


def explain(path: str | Path, node: yaml.Node | None, model: type[BaseModel], err: ValidationError) -> ConfigError:
    """The most useful pydantic error as ``file:line: where: what (did you mean ...?)``."""
    errors = sorted(err.errors(), key=lambda e: _PRIORITY.get(e["type"], 5))
    e = errors[0]
    yaml_loc, holder, _ = _walk(model, tuple(e["loc"]))
    dotted = ".".join(str(p) for p in yaml_loc) or "(top level)"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return ConfigError(path, line_of(node, yaml_loc), f"{dotted}: {_message(e)}{_hint(e, holder)}{more}")


def parse_mapping_file(path: str | Path) -> tuple[MappingFileConfig, yaml.Node | None]:
    """Read and validate a mapping file (no registry needed); ConfigError with file and line."""
    data, node = load_yaml(path)
    if data is None:
        data = {"mappings": []}
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "a mapping file is a YAML mapping with a 'mappings:' list")
    try:
        return MappingFileConfig.model_validate(data), node
    except ValidationError as err:
        raise explain(path, node, MappingFileConfig, err) from None


def load_mapping_file(path: str | Path, registry: ParamRegistry) -> list[Mapping]:
    """Parse, validate and resolve a mapping file against the registry (disabled entries left out)."""
    cfg, node = parse_mapping_file(path)
    return build_mappings(path, cfg, node, registry)


def build_mappings(path: str | Path, cfg: MappingFileConfig, node: yaml.Node | None,
                   registry: ParamRegistry) -> list[Mapping]:
    out: list[Mapping] = []
    for i, m in enumerate(cfg.mappings):
        line = line_of(node, ("mappings", i))
        if not m.enabled:
            continue
        try:
            out.append(build_mapping(m, registry, f"{path}:{line}" if line else str(path)))
        except MappingError as e:
            msg = str(e)
            if msg.startswith("target: "):
                raise ConfigError(path, line_of(node, ("mappings", i, "target")), f"mappings.{i}.{msg}") from None
            raise ConfigError(path, line, f"mappings.{i}: {msg}") from None
    return out


def mapping_json_schema() -> dict[str, Any]:
    """JSON Schema of mapping files (for editors: yaml-language-server, VS Code)."""
    schema = MappingFileConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    targets = _known_targets()
    mc = schema["$defs"]["MappingConfig"]["properties"]["target"]
    mc["examples"] = targets
    return schema


def daemon_json_schema() -> dict[str, Any]:
    """JSON Schema of the daemon config file (``oscgan serve --config``)."""
    from oscgan.config import DaemonConfig

    schema = DaemonConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "oscgan daemon config"
    return schema


def _known_targets() -> list[str]:
    """Parameter paths (the same for every model) for editor completion."""
    from oscgan.state.params import ModelInfo, default_specs

    info = ModelInfo("stylegan2", 512, 512, 14, 256, (4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256))
    out: list[str] = []
    for spec in default_specs(info):
        out.append(spec.path)
        if spec.is_vector:
            out.append(f"{spec.path}[0:{spec.length}]")
    return out


def schema_text(daemon: bool = False) -> str:
    """The schema as the text written to ``mappings/schema.json`` (stable key order, final newline)."""
    return json.dumps(daemon_json_schema() if daemon else mapping_json_schema(), indent=2, sort_keys=True) + "\n"


def mapping_config_for(entry: dict[str, Any]) -> MappingConfig:
    """Validate one mapping entry given as a dict (used by learn before writing it to a file)."""
    return MappingConfig.model_validate(entry)
