"""MIDI decoding: raw bytes (and mido.Message objects) through ``decode``, NRPN sequences, clock tempo."""

from __future__ import annotations

import random

import pytest

from oscgan.signals.midi_protocol import ClockTempo, DecoderState, MidiParseError, decode, flush, parse_message


def run(state: DecoderState, *messages: bytes) -> list[tuple[str, object]]:
    events: list[tuple[str, object]] = []
    for m in messages:
        events += decode(m, state)
    return events


# -- channel voice messages ------------------------------------------------------------------------


def test_control_change_channels_are_1_to_16():
    s = DecoderState()
    assert decode(b"\xb0\x10\x40", s) == [("midi/cc/1/16", 64)]
    assert decode(b"\xbf\x7f\x7f", s) == [("midi/cc/16/127", 127)]
    assert decode(bytes([0xB3, 0, 0]), s) == [("midi/cc/4/0", 0)]


def test_repeated_cc_values_are_each_reported():
    # A relative encoder sends the same increment again and again: every message is an event.
    s = DecoderState()
    assert run(s, b"\xb0\x10\x01", b"\xb0\x10\x01") == [("midi/cc/1/16", 1)] * 2


def test_notes_on_off_and_velocity_zero():
    s = DecoderState()
    assert decode(b"\x90\x3c\x64", s) == [("midi/note/1/60", 100)]
    assert decode(b"\x80\x3c\x40", s) == [("midi/note/1/60", 0)]  # note off: release velocity ignored
    assert decode(b"\x99\x24\x00", s) == [("midi/note/10/36", 0)]  # note on, velocity 0 = note off
    assert decode(b"\x9f\x7f\x7f", s) == [("midi/note/16/127", 127)]


@pytest.mark.parametrize("lsb,msb,value", [(0x00, 0x00, -8192), (0x7F, 0x7F, 8191), (0x00, 0x40, 0),
                                           (0x7F, 0x3F, -1), (0x01, 0x40, 1)])
def test_pitchbend_extremes(lsb, msb, value):
    assert decode(bytes([0xE2, lsb, msb]), DecoderState()) == [("midi/pitchbend/3", value)]


def test_mido_messages_decode_like_their_bytes():
    mido = pytest.importorskip("mido")
    s = DecoderState()
    assert decode(mido.Message("control_change", channel=0, control=16, value=99), s) == [("midi/cc/1/16", 99)]
    assert decode(mido.Message("note_on", channel=9, note=36, velocity=0), s) == [("midi/note/10/36", 0)]
    assert decode(mido.Message("note_off", channel=1, note=60), s) == [("midi/note/2/60", 0)]
    assert decode(mido.Message("pitchwheel", channel=15, pitch=-8192), s) == [("midi/pitchbend/16", -8192)]
    assert decode(mido.Message("pitchwheel", channel=15, pitch=8191), s) == [("midi/pitchbend/16", 8191)]
    assert decode(mido.Message("start"), s) == [("midi/transport", "start")]
    assert decode(mido.Message("sysex", data=[1, 2, 3]), s) == []


def test_messages_that_produce_nothing():
    s = DecoderState()
    for m in (b"\xc0\x05",              # program change
              b"\xd0\x40",              # channel pressure
              b"\xa0\x3c\x40",          # polyphonic aftertouch
              b"\xf0\x7e\x7f\x06\x01\xf7",  # sysex (identity request)
              b"\xf0\xf7",              # empty sysex
              b"\xf1\x20",              # MTC quarter frame
              b"\xf2\x00\x10",          # song position
              b"\xf3\x01",              # song select
              b"\xf6",                  # tune request
              b"\xfe",                  # active sensing
              b"\xff"):                 # reset
        assert decode(m, s) == [], m
    assert s.errors == 0


def test_transport():
    s = DecoderState()
    assert run(s, b"\xfa", b"\xfc", b"\xfb") == [("midi/transport", "start"), ("midi/transport", "stop"),
                                                 ("midi/transport", "continue")]


# -- garbage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [
    b"",                      # empty
    b"\x40\x10",              # data bytes without a status (running status is rtmidi's job)
    b"\xb0\x10",              # truncated CC
    b"\xb0\x10\x40\x01",      # a byte too many
    b"\xb0\x10\xc8",          # data byte with the high bit set
    b"\x90\x3c\x90",          # status byte where velocity should be
    b"\xf4",                  # undefined system common status
    b"\xf5\x01",              # undefined
    b"\xf0\x01\x02",          # sysex without F7
    b"\xf0\x01\x81\xf7",      # status byte inside sysex
    b"\xf8\x00",              # real-time with data
    [0xB0, 16, 300],          # not a byte
    [0xB0, 16, -1],
    ["a", "b"],
    None,
    3.5,
])
def test_garbage_is_dropped_and_counted(garbage):
    s = DecoderState()
    assert decode(garbage, s) == []
    assert s.errors == 1 and s.last_error
    assert decode(b"\xb0\x01\x02", s) == [("midi/cc/1/1", 2)]  # and the next message is fine


def test_parse_message_errors_name_the_byte():
    with pytest.raises(MidiParseError, match="at byte 2"):
        parse_message(b"\xb0\x10\x80")
    with pytest.raises(MidiParseError, match="takes 2 data bytes, got 1"):
        parse_message(b"\x90\x3c")
    assert parse_message(b"\xf0\x01\xf7") == (0xF0, 1, 0xF7)


def test_random_bytes_never_raise():
    rng = random.Random(4)
    s = DecoderState(clock=lambda: 0.0)
    for _ in range(20000):
        msg = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 5)))
        for name, value in decode(msg, s):
            assert name.startswith("midi/")
    assert s.errors > 1000


# -- NRPN ------------------------------------------------------------------------------------------

def cc(ch: int, number: int, value: int) -> bytes:
    return bytes([0xB0 | (ch - 1), number, value])


def nrpn_events(events):
    return [e for e in events if e[0].startswith("midi/nrpn/")]


def test_nrpn_14_bit_is_one_write_per_value_once_the_lsb_is_known():
    s = DecoderState()
    select = (cc(1, 99, 3), cc(1, 98, 5))  # parameter 3 * 128 + 5 = 389
    first = run(s, *select, cc(1, 6, 64), cc(1, 38, 10))
    # The first MSB is from an unknown sender (it might never send an LSB), so it is written
    # at once, spread over 14 bits; its LSB then completes the exact value.
    assert nrpn_events(first) == [("midi/nrpn/1/389", 8256), ("midi/nrpn/1/389", 64 * 128 + 10)]
    # Every CC is still its own raw event too.
    assert [e for e in first if e[0].startswith("midi/cc/")] == [
        ("midi/cc/1/99", 3), ("midi/cc/1/98", 5), ("midi/cc/1/6", 64), ("midi/cc/1/38", 10)]
    # From now on the sender is known to send LSBs: MSB + LSB is one write.
    second = run(s, *select, cc(1, 6, 100), cc(1, 38, 127))
    assert nrpn_events(second) == [("midi/nrpn/1/389", 100 * 128 + 127)]
    # An LSB alone (fine adjustment) keeps the MSB.
    assert nrpn_events(run(s, cc(1, 38, 0))) == [("midi/nrpn/1/389", 100 * 128)]


def test_nrpn_without_lsb_spans_the_full_range():
    s = DecoderState()
    run(s, cc(2, 99, 0), cc(2, 98, 7))
    assert nrpn_events(run(s, cc(2, 6, 0))) == [("midi/nrpn/2/7", 0)]
    assert nrpn_events(run(s, cc(2, 6, 127))) == [("midi/nrpn/2/7", 16383)]
    assert nrpn_events(run(s, cc(2, 6, 64))) == [("midi/nrpn/2/7", round(64 * 16383 / 127))]


def test_held_msb_is_written_by_the_next_message_or_flush():
    s = DecoderState(clock=lambda: 0.0)
    run(s, cc(1, 99, 0), cc(1, 98, 1), cc(1, 6, 1), cc(1, 38, 1))  # learn that LSBs come
    # A clock tick in between neither completes nor flushes.
    assert nrpn_events(run(s, cc(1, 6, 2), b"\xf8")) == []
    # The next non-real-time message writes the held value first, in order.
    assert run(s, b"\x90\x3c\x64") == [("midi/nrpn/1/1", 256), ("midi/note/1/60", 100)]
    assert run(s, cc(1, 6, 3)) == [("midi/cc/1/6", 3)]
    assert flush(s) == [("midi/nrpn/1/1", 384)]
    assert flush(s) == []
    # An LSB on another channel does not complete channel 1's value.
    run(s, cc(1, 6, 4))
    assert nrpn_events(run(s, cc(2, 38, 5))) == [("midi/nrpn/1/1", 512)]


def test_nrpn_increment_and_decrement_clamp():
    s = DecoderState()
    run(s, cc(1, 99, 1), cc(1, 98, 0))
    assert nrpn_events(run(s, cc(1, 96, 0))) == [("midi/nrpn/1/128", 1)]  # from 0
    assert nrpn_events(run(s, cc(1, 96, 9), cc(1, 96, 0))) == [("midi/nrpn/1/128", 2), ("midi/nrpn/1/128", 3)]
    assert nrpn_events(run(s, cc(1, 97, 0))) == [("midi/nrpn/1/128", 2)]
    assert nrpn_events(run(s, *[cc(1, 97, 0)] * 5))[-1] == ("midi/nrpn/1/128", 0)
    run(s, cc(1, 6, 127))
    assert nrpn_events(run(s, cc(1, 96, 0))) == [("midi/nrpn/1/128", 16383)]


def test_rpn_and_null_deselect_nrpn():
    s = DecoderState()
    run(s, cc(1, 99, 0), cc(1, 98, 1))
    assert nrpn_events(run(s, cc(1, 6, 10)))
    # RPN 0 (pitch bend sensitivity) is selected: data entry no longer goes to the NRPN.
    assert nrpn_events(run(s, cc(1, 101, 0), cc(1, 100, 0), cc(1, 6, 2), cc(1, 38, 0), cc(1, 96, 0))) == []
    # RPN null: nothing selected.
    assert nrpn_events(run(s, cc(1, 101, 127), cc(1, 100, 127), cc(1, 6, 2))) == []
    # NRPN 127/127 is used as a null the same way.
    run(s, cc(1, 99, 0), cc(1, 98, 1))
    assert nrpn_events(run(s, cc(1, 6, 5)))
    assert nrpn_events(run(s, cc(1, 99, 127), cc(1, 98, 127), cc(1, 6, 5))) == []
    # Data entry before any selection does nothing either.
    assert nrpn_events(run(DecoderState(), cc(3, 6, 5), cc(3, 38, 5), cc(3, 96, 0))) == []


def test_nrpn_state_is_per_channel():
    s = DecoderState()
    run(s, cc(1, 99, 0), cc(1, 98, 1), cc(2, 99, 0), cc(2, 98, 2))
    assert nrpn_events(run(s, cc(2, 6, 127), cc(1, 6, 0))) == [("midi/nrpn/2/2", 16383), ("midi/nrpn/1/1", 0)]


def test_parameter_msb_only_change_keeps_lsb():
    # Controllers that skip unchanged selection bytes: a new 99 alone keeps the previous 98.
    s = DecoderState()
    run(s, cc(1, 99, 1), cc(1, 98, 2))
    assert nrpn_events(run(s, cc(1, 99, 3), cc(1, 6, 0))) == [("midi/nrpn/1/386", 0)]


# -- clock -----------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def play_clock(state: DecoderState, clock: FakeClock, bpm: float, beats: float, rng: random.Random,
               jitter: float = 0.0025, period: float | None = 256 / 48000) -> list[float]:
    """Send clock ticks at ``bpm``, each late by uniform jitter and then quantised to a JACK period."""
    published = []
    start = clock.t
    ticks = int(beats * 24)
    for i in range(ticks):
        t = start + i * 60.0 / (bpm * 24) + rng.uniform(0, jitter)
        if period:
            t = (int(t / period) + 1) * period  # delivered at the end of the period it fell in
        clock.t = max(clock.t, t)
        for name, value in decode(b"\xf8", state):
            assert name == "midi/clock/bpm"
            published.append(value)
    clock.t = start + ticks * 60.0 / (bpm * 24)
    return published


@pytest.mark.parametrize("bpm", [120.0, 128.0, 174.0])
def test_clock_tempo_with_jitter(bpm):
    rng = random.Random(int(bpm))
    clock = FakeClock()
    s = DecoderState(clock=clock)
    published = play_clock(s, clock, bpm, beats=16, rng=rng)
    assert published, "no tempo published"
    assert abs(published[-1] - bpm) < 0.5, published
    assert abs(s.tempo.estimate() - bpm) < 0.3
    # After settling (two beats) it does not chatter: at most about one write per beat.
    settled = play_clock(s, clock, bpm, beats=16, rng=rng)
    assert len(settled) <= 17, settled
    assert all(abs(v - bpm) < 0.6 for v in settled), settled


def test_clock_first_estimate_within_half_a_beat():
    clock = FakeClock()
    s = DecoderState(clock=clock)
    published = play_clock(s, clock, 128.0, beats=0.5, rng=random.Random(1))
    assert published and abs(published[0] - 128.0) < 3.0


def test_clock_follows_a_tempo_change_within_a_beat():
    rng = random.Random(7)
    clock = FakeClock()
    s = DecoderState(clock=clock)
    play_clock(s, clock, 120.0, beats=8, rng=rng)
    after = play_clock(s, clock, 174.0, beats=1, rng=rng)
    assert after and abs(after[-1] - 174.0) < 2.0, after
    after = play_clock(s, clock, 174.0, beats=3, rng=rng)
    assert abs(s.tempo.bpm - 174.0) < 0.5


def test_clock_gap_restarts_the_estimate_but_keeps_the_last_tempo():
    rng = random.Random(3)
    clock = FakeClock()
    s = DecoderState(clock=clock)
    play_clock(s, clock, 140.0, beats=4, rng=rng)
    clock.t += 5.0  # the clock stopped for 5 s
    assert decode(b"\xf8", s) == []
    assert s.tempo.bpm is not None and abs(s.tempo.bpm - 140.0) < 0.5
    published = play_clock(s, clock, 90.0, beats=2, rng=rng)
    assert abs(published[-1] - 90.0) < 1.0


def test_clock_uses_the_given_time_over_the_state_clock():
    s = DecoderState(clock=lambda: pytest.fail("the clock must not be read when t is given"))
    out = []
    for i in range(48):
        out += decode(b"\xf8", s, t=i * 0.02)  # 125 bpm
    assert out[-1] == ("midi/clock/bpm", 125.0)


def test_clock_tempo_ignores_non_increasing_time():
    tempo = ClockTempo()
    for i in range(30):
        tempo.tick(i * 0.02)
    tempo.tick(0.0)  # time went backwards (re-anchored clock): start over, no crash
    assert tempo.estimate() is None


@pytest.mark.parametrize("catch_up", [False, True])
def test_clock_one_stall_is_not_a_tempo_change(catch_up):
    # A sender that stalls 60 ms once (a busy laptop), then either carries on 60 ms late (a phase
    # jump) or catches up with a burst of ticks 1 ms apart: the tempo is still 128.
    tempo = ClockTempo()
    period = 60.0 / (128.0 * 24)
    published = []
    for i in range(24 * 8):
        t = i * period
        if i >= 100:
            t += 0.060
            if catch_up:
                t = max(i * period, 100 * period + 0.060 + (i - 100) * 0.001)
        value = tempo.tick(t)
        if value is not None:
            published.append((i, value))
    after = [v for i, v in published if i >= 100]
    assert all(abs(v - 128.0) < 1.0 for v in after), after
    assert abs(tempo.estimate() - 128.0) < 0.75  # the burst sits in the window for 4 beats
