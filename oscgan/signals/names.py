"""Names of signals on the SignalBus: the contract between inputs (OSC, MIDI, analyzers) and mappings.

Every input writes raw events onto the bus with ``bus.write(name, value, t)``; every write goes
into the change log, so readers that need every event (relative encoders, note triggers, button
edges) see each one, in order, with ``bus.changes_since(seq)``. The names:

==============================  =====================================================================
``midi/cc/<ch>/<cc>``           raw value 0..127 of one Control Change message (one write per message,
                                also when the value repeats: a relative encoder sends the same
                                increment again and again). 14-bit pairs (MSB cc 0..31, LSB cc+32)
                                are written as two plain CC signals; mappings assemble them.
``midi/note/<ch>/<note>``       velocity 1..127 for note-on, 0 for note-off (a note-on with velocity
                                0 is a note-off too).
``midi/pitchbend/<ch>``         -8192..8191 (0 = centre).
``midi/nrpn/<ch>/<param>``      0..16383: the MIDI side assembles CC 99/98 (parameter MSB/LSB) and
                                6/38 (data entry MSB/LSB) into one write per completed value.
``midi/clock/bpm``              tempo in beats per minute measured from MIDI clock (24 ppqn).
``midi/transport``              ``'start'``, ``'stop'`` or ``'continue'``.
``osc/<address without />``     OSC messages that are no oscgan parameter (``osc/td/fader1`` for
                                ``/td/fader1``): the tuple of the message's arguments.
``analyzer/<signal>``           analyzer outputs (``analyzer/hands.left.x``): a number or a sequence.
==============================  =====================================================================

``<ch>`` is the MIDI channel **1..16** as printed on controllers (not the 0..15 of the wire).
Use the functions below on both sides instead of formatting names by hand.
"""

from __future__ import annotations

MIDI_PREFIX = "midi/"
OSC_PREFIX = "osc/"
ANALYZER_PREFIX = "analyzer/"

MIDI_CLOCK_BPM = "midi/clock/bpm"
MIDI_TRANSPORT = "midi/transport"
TRANSPORT_VALUES = ("start", "stop", "continue")


def _channel(channel: int) -> int:
    if not isinstance(channel, int) or not 1 <= channel <= 16:
        raise ValueError(f"MIDI channel must be 1..16 (as printed on the controller), got {channel!r}")
    return channel


def _in_range(what: str, value: int, hi: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= hi:
        raise ValueError(f"{what} must be 0..{hi}, got {value!r}")
    return value


def midi_cc(channel: int, cc: int) -> str:
    """Bus name of one Control Change: ``midi_cc(1, 16) == 'midi/cc/1/16'``."""
    return f"midi/cc/{_channel(channel)}/{_in_range('CC number', cc, 127)}"


def midi_note(channel: int, note: int) -> str:
    """Bus name of one note: ``midi_note(10, 36) == 'midi/note/10/36'``."""
    return f"midi/note/{_channel(channel)}/{_in_range('note number', note, 127)}"


def midi_pitchbend(channel: int) -> str:
    """Bus name of a channel's pitch bend: ``'midi/pitchbend/1'``."""
    return f"midi/pitchbend/{_channel(channel)}"


def midi_nrpn(channel: int, param: int) -> str:
    """Bus name of one NRPN parameter (0..16383): ``'midi/nrpn/1/1024'``."""
    return f"midi/nrpn/{_channel(channel)}/{_in_range('NRPN parameter', param, 16383)}"


def osc(address: str) -> str:
    """Bus name of an OSC address: ``osc('/td/fader1') == 'osc/td/fader1'``."""
    if not address.startswith("/"):
        raise ValueError(f"an OSC address starts with '/', got {address!r}")
    return OSC_PREFIX + address[1:]


def analyzer(signal: str) -> str:
    """Bus name of an analyzer signal: ``analyzer('hands.left.x') == 'analyzer/hands.left.x'``."""
    if not signal or signal.startswith("/"):
        raise ValueError(f"analyzer signal names look like 'hands.left.x', got {signal!r}")
    return ANALYZER_PREFIX + signal


def parse(name: str) -> tuple[str, tuple[object, ...]] | None:
    """Split a bus name into its kind and fields, or None for names outside this contract.

    ``'midi/cc/1/16'`` -> ``('midi_cc', (1, 16))``; ``'midi/note/1/60'`` -> ``('midi_note', (1, 60))``;
    ``'midi/pitchbend/2'`` -> ``('midi_pitchbend', (2,))``; ``'midi/nrpn/1/5'`` ->
    ``('midi_nrpn', (1, 5))``; ``'osc/td/fader1'`` -> ``('osc', ('/td/fader1',))``;
    ``'analyzer/x'`` -> ``('analyzer', ('x',))``; the clock and transport names -> ``('midi_clock', ())``
    and ``('midi_transport', ())``.
    """
    if name.startswith(OSC_PREFIX):
        return "osc", ("/" + name[len(OSC_PREFIX):],)
    if name.startswith(ANALYZER_PREFIX):
        return "analyzer", (name[len(ANALYZER_PREFIX):],)
    if name == MIDI_CLOCK_BPM:
        return "midi_clock", ()
    if name == MIDI_TRANSPORT:
        return "midi_transport", ()
    parts = name.split("/")
    if len(parts) < 3 or parts[0] != "midi" or not all(p.isdigit() for p in parts[2:]):
        return None
    kind, numbers = parts[1], tuple(int(p) for p in parts[2:])
    shapes = {"cc": 2, "note": 2, "pitchbend": 1, "nrpn": 2}
    if shapes.get(kind) != len(numbers) or not 1 <= numbers[0] <= 16:
        return None
    return f"midi_{kind}", numbers


def tempo_from(bus: object, fallback_bpm: float) -> float:
    """Tempo in bpm: the MIDI clock's estimate on ``bus`` while plausible, else ``fallback_bpm``."""
    bpm = bus.read(MIDI_CLOCK_BPM)  # type: ignore[attr-defined]
    if isinstance(bpm, (int, float)) and not isinstance(bpm, bool) and 1 <= bpm <= 999:
        return float(bpm)
    return float(fallback_bpm)
