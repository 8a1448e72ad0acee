"""Mapping files: the issue's example loads as written, errors name file, line and a hint, schema and examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oscgan.cli import main
from oscgan.config import ConfigError, DaemonConfig
from oscgan.mapping.filters import RemapParams, SmoothParams, TakeoverParams
from oscgan.mapping.schema import SCHEMA_HEADER, load_mapping_file, mapping_json_schema, parse_mapping_file, schema_text
from oscgan.mapping.sources import LfoSourceConfig, MidiCcSourceConfig, OscSourceConfig
from oscgan.state.params import build_registry

from .conftest import INFO_512, write_yaml

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"

ISSUE_EXAMPLE = """\
mappings:
  - source: {type: osc, address: /td/fader1}
    filters:
      - {type: remap, in: [0, 1], out: [0.2, 1.2]}
      - {type: smooth, method: one_euro, min_cutoff: 1.0, beta: 0.0}
    target: truncation.psi
  - source: {type: midi_cc, channel: 1, cc: 16, mode: absolute}
    filters: [{type: remap, in: [0, 127], out: [0, 1]}, {type: takeover, mode: pickup}]
    target: mix.coarse
  - source: {type: lfo, shape: sine, rate_hz: 0.1}
    filters: [{type: remap, in: [-1, 1], out: [-30, 30]}]
    target: affine.rotate
"""


def test_the_issue_example_loads_exactly_as_written(tmp_path, registry) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    a, b, c = load_mapping_file(path, registry)
    assert isinstance(a.config.source, OscSourceConfig) and a.config.source.address == "/td/fader1"
    remap, smooth = a.config.filters
    assert isinstance(remap, RemapParams) and remap.in_ == (0, 1) and remap.out == (0.2, 1.2)
    assert isinstance(smooth, SmoothParams) and (smooth.method, smooth.min_cutoff, smooth.beta) == ("one_euro", 1.0, 0.0)
    assert a.target.path == "truncation.psi" and a.combine == "set"
    assert isinstance(b.config.source, MidiCcSourceConfig)
    assert (b.config.source.channel, b.config.source.cc, b.config.source.mode) == (1, 16, "absolute")
    assert isinstance(b.config.filters[1], TakeoverParams) and b.config.filters[1].mode == "pickup"
    assert b.target.path == "mix.coarse"
    assert isinstance(c.config.source, LfoSourceConfig) and c.config.source.rate_hz == 0.1
    assert c.target.path == "affine.rotate"


def error_for(tmp_path: Path, text: str) -> str:
    path = write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as e:
        parse_mapping_file(path)
    msg = str(e.value)
    assert msg.startswith(str(path) + ":"), msg
    return msg[len(str(path)) + 1:]


def test_misspelt_key_names_its_line_and_the_right_spelling(tmp_path) -> None:
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: osc, address: /a}
            target: truncation.psi
          - source:
              type: midi_cc
              chanel: 1
              cc: 16
            target: mix.coarse
    """)
    assert msg.startswith("6: mappings.1.source.chanel: Extra inputs are not permitted (did you mean 'channel'?)")


def test_misspelt_values_and_types_get_hints(tmp_path) -> None:
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: midi_cc, channel: 1, cc: 16, mode: absolut}
            target: mix.coarse
    """)
    assert msg.startswith("2: mappings.0.source.mode: Input should be") and "(did you mean 'absolute'?)" in msg
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: osc, address: /a}
            filters:
              - {type: remap, in: [0, 1], out: [0, 2]}
              - {type: smoth, method: one_euro}
            target: mix.coarse
    """)
    assert msg.startswith("5: mappings.0.filters.1:") and "(did you mean 'smooth'?)" in msg
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: lfo, shape: sine, rate_hz: 0.1}
            filters: [{type: smooth, method: one_euro, min_cutof: 2}]
            target: mix.coarse
    """)
    assert msg.startswith("3: mappings.0.filters.0.min_cutof:") and "did you mean 'min_cutoff'" in msg


def test_out_of_range_and_semantic_errors(tmp_path) -> None:
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: midi_cc, channel: 17, cc: 16}
            target: mix.coarse
    """)
    assert msg.startswith("2: mappings.0.source.channel: Input should be less than or equal to 16")
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: osc, address: /a}
            filters: [{type: takeover}, {type: remap, in: [0, 1], out: [0, 2]}]
            target: mix.coarse
    """)
    assert msg.startswith("2: mappings.0: takeover must be the last filter")
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: osc, address: /a}
    """)
    assert "target is required" in msg
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: osc, address: /a}
            target: "truncation psi"
    """)
    assert msg.startswith("3: mappings.0.target: ") and "not a parameter path" in msg


def test_duplicate_keys_are_refused_with_both_lines(tmp_path) -> None:
    msg = error_for(tmp_path, """
        mappings:
          - source: {type: osc, address: /a}
            target: mix.coarse
            target: mix.fine
    """)
    assert msg.startswith("4: duplicate key 'target' (first defined on line 3)")


def test_yaml_syntax_error_has_a_line(tmp_path) -> None:
    msg = error_for(tmp_path, "mappings:\n  - source: {type: osc, address: /a\n    target: x\n")
    assert msg.split(":")[0].isdigit()


def test_empty_file_is_no_mappings(tmp_path, registry) -> None:
    path = write_yaml(tmp_path / "empty.yaml", "# nothing yet\n")
    assert load_mapping_file(path, registry) == []


def test_committed_schema_is_the_generated_one() -> None:
    committed = (MAPPINGS / "schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run: oscgan schema --out mappings/schema.json"


def test_schema_describes_the_file() -> None:
    schema = mapping_json_schema()
    assert schema["title"] == "oscgan mapping file"
    defs = schema["$defs"]
    assert set(defs["RemapParams"]["properties"]) == {"type", "in", "out", "clamp"}
    assert defs["MappingConfig"]["properties"]["filters"]["items"]["discriminator"]["propertyName"] == "type"
    assert "truncation.psi" in defs["MappingConfig"]["properties"]["target"]["examples"]


def test_schema_command(tmp_path, capsys) -> None:
    out = tmp_path / "schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert out.read_text() == schema_text()
    capsys.readouterr()
    assert main(["schema", "--daemon"]) == 0
    daemon = json.loads(capsys.readouterr().out)
    assert {"mappings", "presets", "tempo_bpm", "osc"} <= set(daemon["properties"])


@pytest.mark.parametrize("name", ["nanokontrol2", "akai_midimix", "touchosc", "touchdesigner",
                                  "generic_8_fader", "installation_lfo"])
def test_example_mapping_files_load(name: str) -> None:
    path = MAPPINGS / f"{name}.yaml"
    assert path.read_text().startswith(SCHEMA_HEADER + "schema.json\n")
    mappings = load_mapping_file(path, build_registry(INFO_512))
    assert len(mappings) >= 8
    assert all(m.config.name for m in mappings)  # every entry says what it does


def test_daemon_config_takes_mapping_settings(tmp_path) -> None:
    cfg = DaemonConfig.model_validate({"mappings": ["a.yaml"], "presets": "p", "tempo_bpm": 128})
    assert cfg.mappings == ["a.yaml"] and cfg.tempo_bpm == 128
