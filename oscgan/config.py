"""Daemon config YAML: pydantic models, a safe loader that rejects duplicate keys, errors with file and line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oscgan.sinks.registry import SinkConfig


class ConfigError(ValueError):
    """A config file problem, as ``file:line: what is wrong (hint)``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path, self.line = Path(path), line
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OscConfig(_Strict):
    host: str = Field("127.0.0.1", description="interface for OSC input; 0.0.0.0 opens it to the LAN")
    port: int = Field(9000, ge=0, le=65535, description="UDP port for OSC input")
    allow_from: list[str] | None = Field(None, description="sender IPs/networks allowed (None = anyone)")
    out: str | None = Field(None, description="HOST:PORT to send telemetry and parameter echoes to")

    @field_validator("out")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None:
            parse_host_port(v)
        return v


class HttpConfig(_Strict):
    host: str = Field("127.0.0.1", description="interface for the web monitor and OSCQuery")
    port: int = Field(8080, ge=0, le=65535, description="TCP port for the web monitor and OSCQuery")
    zeroconf: bool = Field(False, description="advertise _oscjson._tcp on the LAN (needs zeroconf)")


class MidiConfig(_Strict):
    inputs: list[str] = Field(default_factory=list, description="MIDI input ports to open, by case-insensitive "
                              "name substring (e.g. nanoKONTROL2); reopened when unplugged and plugged back")
    virtual: bool = Field(False, description="create a virtual MIDI input other programs can send to")
    virtual_name: str = Field("oscgan", min_length=1, description="name of the virtual MIDI input port")
    api: str | None = Field(None, description="MIDI backend: jack, alsa, coremidi, winmm (default: rtmidi's)")

    @field_validator("api")
    @classmethod
    def _api(cls, v: str | None) -> str | None:
        from oscgan.signals.midi import normalize_api

        normalize_api(v)  # raises with the choices
        return v

    @property
    def enabled(self) -> bool:
        return bool(self.inputs or self.virtual)


class DaemonConfig(_Strict):
    """Everything ``oscgan serve`` needs; command-line flags override these."""

    model: str = Field("builtin:sg2-256", description="model file or builtin:NAME")
    device: str | None = Field(None, description="cpu, cuda, cuda:N, mps (default: best available)")
    fps: float = Field(30.0, gt=0, le=240, description="target frame rate")
    size: tuple[int, int] | None = Field(None, description="output [width, height]; default: native")
    fit: Literal["stretch", "letterbox"] = "stretch"
    threads: int | None = Field(None, ge=1, le=256, description="CPU threads for rendering on the CPU "
                                "(default: all cores but one, left for OSC, web and outputs)")
    osc: OscConfig = Field(default_factory=OscConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    midi: MidiConfig = Field(default_factory=MidiConfig)
    params: dict[str, Any] = Field(default_factory=dict, description="initial parameter values by path")
    sinks: list[SinkConfig] = Field(
        default_factory=list, description="outputs, e.g. - {type: record, path: show.mp4}; see oscgan/sinks/registry.py")
    record_control: str | None = Field(None, description="write every parameter change and frame tick to "
                                       "this .jsonl session file (replay it with `oscgan replay`)")
    noise_seed: int | None = Field(0, ge=0, description="seed of the per-frame 'random' noise, so recorded "
                                   "sessions replay identically; null = unseeded (not reproducible)")
    mappings: list[str] = Field(default_factory=list, description="mapping files (source -> filters -> "
                                "target), relative to this config file; reloaded when saved")
    presets: str | None = Field(None, description="folder for presets.yaml (default: beside the first "
                                "mapping file)")
    tempo_bpm: float = Field(120.0, gt=0, le=999, description="tempo for beat-synced LFOs until MIDI clock "
                             "arrives")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _unique_sink_names(self) -> DaemonConfig:
        seen: set[str] = set()
        for sink in self.sinks:
            label = sink.label()
            if label in seen:
                raise ValueError(f"two outputs are named {label!r}; give each its own `name:`")
            seen.add(label)
        return self


def parse_size(text: str) -> tuple[int, int]:
    """'512' or '1280x720' -> (width, height); ValueError otherwise."""
    t = text.lower().replace("*", "x").strip()
    try:
        w, h = (int(v) for v in t.split("x", 1)) if "x" in t else (int(t), int(t))
    except ValueError:
        raise ValueError(f"size must look like 512 or 1280x720, got {text!r}") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise ValueError(f"size {w}x{h} out of range (8..8192)")
    return w, h


def parse_host_port(text: str) -> tuple[str, int]:
    """'127.0.0.1:9001' -> ('127.0.0.1', 9001)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9001, got {text!r}")
    return host.strip("[]"), int(port)


# libyaml's parser when PyYAML was built with it: about ten times faster on long mapping files.
_SafeLoaderBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoaderBase):  # type: ignore[misc, valid-type]
    """Safe YAML loader that refuses duplicate keys (a silent override is a classic show-day bug)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first defined on line {seen[key]})", key_node.start_mark)
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of a YAML file; ConfigError with the line on syntax errors or duplicate keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, None, f"cannot read: {e}") from None
    loader = _UniqueKeyLoader(text)
    try:
        # Parse once: the node tree gives error lines, the data is constructed from it.
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(path, mark.line + 1 if mark else None, f"{e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(path, None, str(e)) from None
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the value at ``loc`` in a composed YAML tree, or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _hint(model: type[BaseModel], loc: tuple[Any, ...], kind: str) -> str:
    if kind != "extra_forbidden" or not loc:
        return ""
    parent: Any = model
    for key in loc[:-1]:
        field = parent.model_fields.get(str(key)) if isinstance(parent, type) else None
        parent = field.annotation if field is not None else None
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
        if close:
            return f" (did you mean {close[0]!r}?)"
        return f" (allowed: {', '.join(parent.model_fields)})"
    return ""


def validation_error(path: str | Path, node: yaml.Node | None, model: type[BaseModel],
                     err: ValidationError) -> ConfigError:
    """The first pydantic error as a ConfigError pointing at its line, with a spelling hint."""
    e = err.errors()[0]
    loc = tuple(e["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    return ConfigError(path, line_of(node, loc), f"{dotted}: {e['msg']}{_hint(model, loc, e['type'])}")


def load_daemon_config(path: str | Path) -> DaemonConfig:
    """Read and validate a daemon config file."""
    data, node = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "the config must be a mapping of settings (key: value)")
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as err:
        raise validation_error(path, node, DaemonConfig, err) from None
