"""One mapping = source -> filter chain -> target: its file model and its checked, runtime form."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oscgan.mapping.filters import FilterParams, TakeoverParams, TriggerParams
from oscgan.mapping.sources import Source, SourceConfig, build_source
from oscgan.mapping.targets import Combine, Target, TargetError, parse_target, resolve_target
from oscgan.state.params import ParamRegistry

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MappingConfig(_Strict):
    """One entry of ``mappings:``: where a value comes from, how it is shaped, what it moves."""

    name: str | None = Field(None, max_length=200, description="a label for logs and the web page")
    enabled: bool = Field(True, description="false = keep the entry but do not run it")
    source: SourceConfig
    filters: list[FilterParams] = Field(default_factory=list, description="applied in order")
    target: str | None = Field(None, description="parameter path: truncation.psi, latent.z.5 (one element) or "
                               "latent.z[0:128] (a slice); optional for trigger actions")
    combine: Combine = Field("set", description="set: the mapping sets the value (latest wins, like a "
                             "fader); add / multiply: modulate on top of the value set by hand, "
                             "presets and set mappings, every frame")

    @field_validator("target")
    @classmethod
    def _target_syntax(cls, v: str | None) -> str | None:
        if v is not None:
            parse_target(v)  # TargetError is a ValueError: pydantic reports it at the target's line
        return v

    @model_validator(mode="after")
    def _check(self) -> MappingConfig:
        for i, f in enumerate(self.filters):
            if isinstance(f, (TakeoverParams, TriggerParams)) and i != len(self.filters) - 1:
                raise ValueError(f"{f.type} must be the last filter (it is number {i + 1} of {len(self.filters)})")
        last = self.filters[-1] if self.filters else None
        if isinstance(last, TakeoverParams) and self.combine != "set":
            raise ValueError("takeover only makes sense with combine: set")
        if isinstance(last, TriggerParams):
            if self.combine != "set":
                raise ValueError("a trigger fires an action; combine does not apply to it (leave it at set)")
            if last.action == "preset" and self.target is not None:
                raise ValueError("action preset recalls a whole preset: remove target")
        elif self.target is None:
            raise ValueError("target is required (e.g. truncation.psi), except for trigger actions")
        return self

    @property
    def trigger(self) -> TriggerParams | None:
        last = self.filters[-1] if self.filters else None
        return last if isinstance(last, TriggerParams) else None

    @property
    def target_text(self) -> str | None:
        """The target, or the trigger action's default target."""
        if self.target is not None:
            return self.target
        trig = self.trigger
        return trig.default_target if trig is not None else None


class MappingFileConfig(_Strict):
    """A mapping file: a list of mappings."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="oscgan mapping file",
                              json_schema_extra={"description": "Mappings for oscgan serve --mapping FILE: "
                                                 "source -> filters -> target. Reloaded when saved."})
    mappings: list[MappingConfig] = Field(default_factory=list)


class MappingError(ValueError):
    """A mapping that validates on its own but does not fit the registry (unknown target, width clash)."""


@dataclass
class Mapping:
    """A checked mapping, ready for the engine.

    Attributes:
        config: the entry as validated.
        source: its runtime source (holds input state: encoder position, toggle state, ...).
        target: the resolved target, or None for a preset trigger.
        width: values per sample (1, or the source's vector width).
        where: ``file:line`` for messages.
        key: identity across reloads: an unchanged entry keeps its filter state and source.
    """

    config: MappingConfig
    source: Source
    target: Target | None
    width: int
    where: str
    key: str

    @property
    def combine(self) -> str:
        return self.config.combine

    @property
    def source_key(self) -> str:
        """Identity of the source alone (a mapping edited in its filters keeps its input)."""
        return json.dumps(self.config.source.model_dump(mode="json"), sort_keys=True)

    @property
    def label(self) -> str:
        return self.config.name or f"{self.source.describe()} -> {self.config.target_text or 'action'}"


def mapping_key(config: MappingConfig) -> str:
    """Canonical JSON of a mapping entry (same text = same mapping)."""
    return json.dumps(config.model_dump(mode="json", by_alias=True), sort_keys=True)


def build_mapping(config: MappingConfig, registry: ParamRegistry, where: str = "") -> Mapping:
    """Resolve the target and check the shapes; MappingError says what does not fit."""
    target: Target | None = None
    text = config.target_text
    if text is not None:
        try:
            target = resolve_target(text, registry)
        except TargetError as e:
            raise MappingError(f"target: {e}") from None
    source = build_source(config.source)
    width = source.width
    if target is not None and width > 1 and width != target.length:
        raise MappingError(f"the source gives {width} values but target {target.text} has {target.length}; "
                           "use a single value (it is spread over the slice) or matching lengths")
    trig = config.trigger
    if trig is not None and target is not None:
        if trig.action in ("next_seed", "prev_seed", "random_seed") and target.kind != "int":
            raise MappingError(f"action {trig.action} needs an integer target such as latent.seed, "
                               f"not {target.text} ({target.kind})")
        if trig.action in ("next_keyframe", "prev_keyframe") and target.path != "latent.travel":
            raise MappingError(f"action {trig.action} moves latent.travel; remove target or set it to latent.travel")
    if any(isinstance(f, TakeoverParams) for f in config.filters):
        if width != 1:
            raise MappingError("takeover needs a single-value source, not a vector")
        if target is not None and target.length != 1:
            raise MappingError(f"takeover needs a single-value target (a parameter or one element), "
                               f"not {target.text} ({target.length} elements)")
    return Mapping(config, source, target, width, where, mapping_key(config))


def describe_where(path: Path | str | None, line: int | None) -> str:
    if path is None:
        return f"line {line}" if line else ""
    return f"{path}:{line}" if line else str(path)
