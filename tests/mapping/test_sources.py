"""Sources alone: OSC datagrams, raw MIDI-shaped bus events, LFOs on a fake clock, the bus naming contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from oscgan.mapping.sources import (
    FrameClock,
    SourceConfig,
    build_source,
    decode_relative,
    lfo_value,
)
from oscgan.signals import names
from oscgan.signals.osc_protocol import encode_message, iter_messages, parse_packet

CONFIG = TypeAdapter(SourceConfig)


def source(**kw):
    return build_source(CONFIG.validate_python(kw))


def clock(t: float = 0.0, beats: float = 0.0, bpm: float = 120.0) -> FrameClock:
    return FrameClock(t, 1 / 30, beats, bpm)


def osc_args(address: str, *args: object) -> tuple:
    """Arguments as the OSC server hands them over: through real datagram bytes."""
    (msg,) = iter_messages(parse_packet(encode_message(address, args)))
    return msg.args


# ----------------------------------------------------------------------------------------- names


def test_bus_names_contract() -> None:
    assert names.midi_cc(1, 16) == "midi/cc/1/16"
    assert names.midi_note(10, 36) == "midi/note/10/36"
    assert names.midi_pitchbend(16) == "midi/pitchbend/16"
    assert names.midi_nrpn(1, 16383) == "midi/nrpn/1/16383"
    assert names.osc("/td/fader1") == "osc/td/fader1"
    assert names.analyzer("hands.left.x") == "analyzer/hands.left.x"
    assert names.parse("midi/cc/3/7") == ("midi_cc", (3, 7))
    assert names.parse("osc/chop1/tx") == ("osc", ("/chop1/tx",))
    assert names.parse(names.MIDI_CLOCK_BPM) == ("midi_clock", ())
    assert names.parse("midi/cc/0/7") is None and names.parse("video/x") is None
    with pytest.raises(ValueError, match="1..16"):
        names.midi_cc(0, 1)
    with pytest.raises(ValueError, match="0..127"):
        names.midi_note(1, 128)


# ------------------------------------------------------------------------------------------- OSC


def test_osc_source_reads_one_argument_from_a_datagram() -> None:
    s = source(type="osc", address="/td/fader1")
    assert s.bus_names == ("osc/td/fader1",)
    assert s.feed("osc/td/fader1", osc_args("/td/fader1", 0.25)) == [0.25]
    assert s.feed("osc/td/fader1", osc_args("/td/fader1", True)) == [1.0]  # TouchOSC toggles send T/F
    assert s.feed("osc/td/fader1", osc_args("/td/fader1", 7)) == [7.0]
    assert s.feed("osc/td/fader1", osc_args("/td/fader1", "hello")) == []  # ignored (logged once)
    xy = source(type="osc", address="/3/xy", arg=1)
    assert xy.feed("osc/3/xy", osc_args("/3/xy", 0.1, 0.9)) == [pytest.approx(0.9)]
    assert xy.feed("osc/3/xy", osc_args("/3/xy", 0.1)) == []  # too few arguments


def test_osc_source_all_arguments_as_a_vector() -> None:
    s = source(type="osc", address="/td/latent", arg="all", length=4)
    assert s.width == 4
    (v,) = s.feed("osc/td/latent", osc_args("/td/latent", 1.0, 2.0, 3.0, 4.0))
    np.testing.assert_allclose(v, [1, 2, 3, 4])
    (v,) = s.feed("osc/td/latent", osc_args("/td/latent", 9.0))  # a prefix: the rest keep their values
    np.testing.assert_allclose(v, [9, 2, 3, 4])


def test_osc_source_validation() -> None:
    with pytest.raises(ValidationError, match="length is only for arg: all"):
        CONFIG.validate_python({"type": "osc", "address": "/a", "length": 3})
    with pytest.raises(ValidationError, match="oscgan's own parameters"):
        CONFIG.validate_python({"type": "osc", "address": "/oscgan/truncation/psi"})
    with pytest.raises(ValidationError, match="pattern"):
        CONFIG.validate_python({"type": "osc", "address": "td/fader1"})


# ------------------------------------------------------------------------------------------ MIDI


def test_midi_cc_absolute() -> None:
    s = source(type="midi_cc", channel=1, cc=16)
    assert s.bus_names == ("midi/cc/1/16",)
    assert [s.feed("midi/cc/1/16", v) for v in (0, 64, 127)] == [[0.0], [64.0], [127.0]]
    assert s.feed("midi/cc/1/16", 300) == []


def test_midi_cc_14bit_assembles_msb_and_lsb() -> None:
    s = source(type="midi_cc", channel=2, cc=1, mode="14bit")
    assert s.bus_names == ("midi/cc/2/1", "midi/cc/2/33")
    assert s.feed("midi/cc/2/1", 64) == [8192.0]          # MSB resets the LSB (MIDI 1.0)
    assert s.feed("midi/cc/2/33", 5) == [8197.0]
    assert s.feed("midi/cc/2/33", 127) == [8319.0]
    assert s.feed("midi/cc/2/1", 127) == [16256.0]
    assert s.feed("midi/cc/2/33", 127) == [16383.0]
    with pytest.raises(ValidationError, match="MSB controller"):
        CONFIG.validate_python({"type": "midi_cc", "channel": 1, "cc": 40, "mode": "14bit"})


@pytest.mark.parametrize("mode,up,down", [
    ("relative_twos_complement", [1, 2, 63], [127, 126, 65]),
    ("relative_binary_offset", [65, 66, 127], [63, 62, 1]),
    ("relative_signed_bit", [1, 2, 63], [65, 66, 127]),
])
def test_relative_encoder_decoding(mode: str, up: list[int], down: list[int]) -> None:
    assert [decode_relative(mode, v) for v in up] == [1, 2, 63]
    assert [decode_relative(mode, v) for v in down] == [-1, -2, -63]


def test_relative_encoder_accumulates_every_event_and_clamps() -> None:
    s = source(type="midi_cc", channel=1, cc=20, mode="relative_twos_complement", sensitivity=2, start=64)
    out = [s.feed("midi/cc/1/20", 1)[0] for _ in range(5)]  # the same value five times: five steps
    assert out == [66, 68, 70, 72, 74]
    assert s.feed("midi/cc/1/20", 127) == [72.0]
    for _ in range(100):
        s.feed("midi/cc/1/20", 63)
    assert s.feed("midi/cc/1/20", 1) == [127.0]
    with pytest.raises(ValidationError, match="relative_"):
        CONFIG.validate_python({"type": "midi_cc", "channel": 1, "cc": 1, "sensitivity": 2})


def test_midi_nrpn_and_pitchbend() -> None:
    n = source(type="midi_nrpn", channel=1, param=1024)
    assert n.bus_names == ("midi/nrpn/1/1024",) and n.feed("midi/nrpn/1/1024", 16383) == [16383.0]
    pb = source(type="midi_pitchbend", channel=3)
    assert pb.bus_names == ("midi/pitchbend/3",)
    assert [pb.feed("midi/pitchbend/3", v) for v in (-8192, 0, 8191)] == [[-8192.0], [0.0], [8191.0]]
    assert pb.feed("midi/pitchbend/3", 9000) == []


def test_midi_note_modes() -> None:
    name = "midi/note/1/60"
    gate = source(type="midi_note", channel=1, note=60, mode="gate")
    assert [gate.feed(name, v) for v in (100, 0)] == [[1.0], [0.0]]
    vel = source(type="midi_note", channel=1, note=60, mode="velocity")
    assert [vel.feed(name, v) for v in (100, 0, 30)] == [[100.0], [], [30.0]]
    tog = source(type="midi_note", channel=1, note=60, mode="toggle")
    assert [tog.feed(name, v) for v in (127, 0, 127, 0, 127)] == [[1.0], [], [0.0], [], [1.0]]
    trig = source(type="midi_note", channel=1, note=60, mode="trigger")
    assert trig.tick(clock()) is None
    assert trig.feed(name, 127) == [1.0]
    assert trig.feed(name, 0) == []
    assert trig.feed(name, 127) == [0.0, 1.0]  # a second hit in the same frame: a new edge
    assert trig.tick(clock()) == 0.0  # the next frame: back to 0
    assert trig.tick(clock()) is None


# ------------------------------------------------------------------------------------------ LFOs


def test_lfo_shapes() -> None:
    at = [0.0, 0.25, 0.5, 0.75]
    assert [lfo_value("sine", c) for c in at] == pytest.approx([0, 1, 0, -1], abs=1e-12)
    assert [lfo_value("triangle", c) for c in at + [0.125]] == pytest.approx([0, 1, 0, -1, 0.5])
    assert [lfo_value("saw", c) for c in at + [0.499]] == pytest.approx([0, 0.5, -1, -0.5, 0.998])
    assert [lfo_value("square", c) for c in at] == [1, 1, -1, -1]
    sh = [lfo_value("sample_and_hold", c, seed=3) for c in (0.1, 0.9, 1.2, 1.99, 2.5)]
    assert sh[0] == sh[1] and sh[2] == sh[3] and len({sh[0], sh[2], sh[4]}) == 3
    assert all(-1 <= v < 1 for v in sh)
    assert lfo_value("sample_and_hold", 0.5, seed=4) != sh[0]  # the seed picks another sequence
    assert lfo_value("sine", 12.25) == pytest.approx(1.0)  # whole cycles wrap


def test_lfo_rate_and_phase_in_hz() -> None:
    s = source(type="lfo", shape="sine", rate_hz=0.5, phase=0.25)
    assert s.tick(clock(t=0.0)) == pytest.approx(1.0)  # a quarter cycle ahead
    assert s.tick(clock(t=1.0)) == pytest.approx(-1.0)  # half a cycle later
    assert s.tick(clock(t=2.0)) == pytest.approx(1.0)


def test_lfo_beat_sync_follows_the_beat_position() -> None:
    s = source(type="lfo", shape="square", rate_beats=0.25)  # one cycle per 4 beats
    assert s.tick(clock(beats=0.0)) == 1.0
    assert s.tick(clock(beats=1.9)) == 1.0
    assert s.tick(clock(beats=2.1)) == -1.0
    assert s.tick(clock(beats=4.0)) == 1.0
    with pytest.raises(ValidationError, match="exactly one of rate_hz"):
        CONFIG.validate_python({"type": "lfo", "shape": "sine"})
    with pytest.raises(ValidationError, match="exactly one of rate_hz"):
        CONFIG.validate_python({"type": "lfo", "rate_hz": 1, "rate_beats": 1})


def test_constant_and_analyzer() -> None:
    c = source(type="constant", value=0.3)
    assert c.tick(clock()) == 0.3 and c.tick(clock()) is None  # once; the engine holds it
    v = source(type="constant", value=[1, 2, 3])
    assert v.width == 3
    a = source(type="analyzer", signal="hands.left.x")
    assert a.bus_names == ("analyzer/hands.left.x",)
    assert a.feed("analyzer/hands.left.x", 0.4) == [0.4]
    a3 = source(type="analyzer", signal="pose.head", length=3)
    (vec,) = a3.feed("analyzer/pose.head", [0.1, 0.2, math.pi])
    np.testing.assert_allclose(vec, [0.1, 0.2, math.pi])
    assert a3.feed("analyzer/pose.head", [0.1, 0.2]) == []  # wrong length: ignored
