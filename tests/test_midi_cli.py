"""MIDI on the command line and in the config: serve flags, the midi: section, `oscgan midi list|monitor`."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from oscgan.cli import build_parser, main
from oscgan.config import ConfigError, DaemonConfig, load_daemon_config
from oscgan.daemon_cli import config_from_args
from oscgan.midi_cli import run_midi
from tests.signals.test_midi_ports import FakeWorld, fake_rtmidi


def serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_midi_is_off_by_default():
    cfg = config_from_args(serve_args())
    assert cfg.midi.inputs == [] and not cfg.midi.virtual and cfg.midi.api is None
    assert not cfg.midi.enabled


def test_serve_midi_flags():
    cfg = config_from_args(serve_args("--midi", "nanoKONTROL", "--midi", "Launch Control XL",
                                      "--midi-virtual", "--midi-api", "jack"))
    assert cfg.midi.inputs == ["nanoKONTROL", "Launch Control XL"]
    assert cfg.midi.virtual and cfg.midi.api == "jack" and cfg.midi.enabled


def test_config_file_midi_section_and_flags_override(tmp_path: Path):
    path = tmp_path / "show.yaml"
    path.write_text("midi:\n  inputs: [nanoKONTROL2]\n  virtual: true\n  virtual_name: stage\n  api: alsa\n")
    cfg = load_daemon_config(path)
    assert cfg.midi.inputs == ["nanoKONTROL2"] and cfg.midi.virtual_name == "stage" and cfg.midi.api == "alsa"
    cfg = config_from_args(serve_args("--config", str(path), "--midi", "other", "--midi-api", "jack"))
    assert cfg.midi.inputs == ["other"] and cfg.midi.virtual and cfg.midi.api == "jack"


def test_config_rejects_bad_midi_settings(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("fps: 30\nmidi:\n  api: pulse\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: midi.api: .*unknown MIDI API 'pulse'"):
        load_daemon_config(path)
    path.write_text("midi:\n  input: [x]\n")
    with pytest.raises(ConfigError, match="did you mean 'inputs'"):
        load_daemon_config(path)
    with pytest.raises(ValueError):
        DaemonConfig.model_validate({"midi": {"virtual_name": ""}})


def test_midi_list(monkeypatch, capsys):
    from oscgan.signals import midi

    world = FakeWorld()
    world.plug("nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0")
    monkeypatch.setattr(midi, "_rtmidi", lambda: fake_rtmidi(world))
    assert main(["midi", "list", "--midi-api", "jack"]) == 0
    out = capsys.readouterr().out
    assert "MIDI inputs (UNIX_JACK" in out and "  nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0" in out
    world.unplug("nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0")
    assert main(["midi", "list", "--midi-api", "jack"]) == 0
    assert "(none" in capsys.readouterr().out


def test_midi_list_without_the_packages(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "rtmidi", None)
    assert main(["midi", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oscgan midi: error:") and "pip install 'oscgan[midi]'" in err


def test_midi_monitor_prints_signal_names(monkeypatch):
    from oscgan.signals import midi

    world = FakeWorld()
    world.plug("pads")
    monkeypatch.setattr(midi, "_rtmidi", lambda: fake_rtmidi(world))
    real_start = midi.MidiInput.start

    def start(self):  # play the pads as soon as the monitor has opened them
        result = real_start(self)
        world.send("pads", b"\x99\x24\x64")
        world.send("pads", b"\xb0\x10\x7f")
        return result

    monkeypatch.setattr(midi.MidiInput, "start", start)
    out = io.StringIO()
    args = build_parser().parse_args(["midi", "monitor", "--midi-api", "jack", "--seconds", "0.3"])
    assert run_midi(args, out) == 0
    text = out.getvalue()
    assert "# input (all): pads" in text
    assert "midi/note/10/36          100" in text and "midi/cc/1/16             127" in text


@pytest.mark.parametrize("command", [["serve"], ["midi", "list"], ["midi", "monitor"]])
def test_unknown_midi_api_is_an_argument_error(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*command, "--midi-api", "pulse"])
    assert e.value.code == 2
    assert "argument --midi-api: unknown MIDI API 'pulse'; use one of jack, alsa" in capsys.readouterr().err
