"""MIDI 1.0 bytes -> bus signals: pure parsing, the per-channel NRPN state machine, clock tempo."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from oscgan.signals.names import MIDI_CLOCK_BPM, MIDI_TRANSPORT, midi_cc, midi_note, midi_nrpn, midi_pitchbend

# -- status bytes -------------------------------------------------------------------------------------

NOTE_OFF, NOTE_ON, POLY_PRESSURE, CONTROL_CHANGE = 0x80, 0x90, 0xA0, 0xB0
PROGRAM_CHANGE, CHANNEL_PRESSURE, PITCH_BEND = 0xC0, 0xD0, 0xE0
SYSEX, MTC_QUARTER, SONG_POSITION, SONG_SELECT, TUNE_REQUEST, SYSEX_END = 0xF0, 0xF1, 0xF2, 0xF3, 0xF6, 0xF7
CLOCK, START, CONTINUE, STOP, ACTIVE_SENSING, RESET = 0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF

# Data bytes that follow each status: channel messages by their high nibble, system ones exactly.
_CHANNEL_LENGTH = {NOTE_OFF: 2, NOTE_ON: 2, POLY_PRESSURE: 2, CONTROL_CHANGE: 2,
                   PROGRAM_CHANGE: 1, CHANNEL_PRESSURE: 1, PITCH_BEND: 2}
_SYSTEM_LENGTH = {MTC_QUARTER: 1, SONG_POSITION: 2, SONG_SELECT: 1, TUNE_REQUEST: 0,
                  CLOCK: 0, 0xF9: 0, START: 0, CONTINUE: 0, STOP: 0, 0xFD: 0, ACTIVE_SENSING: 0, RESET: 0}
_TRANSPORT = {START: "start", STOP: "stop", CONTINUE: "continue"}

# Controller numbers of the (N)RPN protocol (MIDI 1.0 spec, "Registered/Non-Registered Parameter").
CC_DATA_MSB, CC_DATA_LSB = 6, 38
CC_DATA_INCREMENT, CC_DATA_DECREMENT = 96, 97
CC_NRPN_LSB, CC_NRPN_MSB = 98, 99
CC_RPN_LSB, CC_RPN_MSB = 100, 101
NULL_PARAM = 127  # 101/100 = 127/127 deselects (RPN null); 99/98 = 127/127 is used the same way

CLOCKS_PER_BEAT = 24

Value = Union[int, float, str]
Event = tuple[str, Value]


class MidiParseError(ValueError):
    """Bytes that are not one complete MIDI message; ``offset`` is the byte where it went wrong."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


def parse_message(data: bytes | bytearray | Sequence[int]) -> tuple[int, ...]:
    """Check that ``data`` is exactly one MIDI message (status byte first, as rtmidi delivers them).

    Running status is resolved by the driver (rtmidi), so a message that starts with a data byte
    is an error here. System exclusive is returned whole; everything else must have exactly the
    data bytes its status asks for, each below 0x80.
    """
    msg = tuple(data)
    if not msg:
        raise MidiParseError("empty message")
    for i, b in enumerate(msg):
        if not isinstance(b, int) or not 0 <= b <= 0xFF:
            raise MidiParseError(f"not a byte: {b!r}", i)
    status = msg[0]
    if status < 0x80:
        raise MidiParseError(f"message starts with data byte 0x{status:02X}, not a status byte", 0)
    if status == SYSEX:
        if msg[-1] != SYSEX_END:
            raise MidiParseError("system exclusive without its 0xF7 end byte", len(msg) - 1)
        for i, b in enumerate(msg[1:-1], 1):
            if b >= 0x80:
                raise MidiParseError(f"status byte 0x{b:02X} inside system exclusive", i)
        return msg
    length = _CHANNEL_LENGTH.get(status & 0xF0) if status < 0xF0 else _SYSTEM_LENGTH.get(status)
    if length is None:
        raise MidiParseError(f"undefined status byte 0x{status:02X}", 0)
    if len(msg) != 1 + length:
        raise MidiParseError(f"status 0x{status:02X} takes {length} data bytes, got {len(msg) - 1}", 0)
    for i, b in enumerate(msg[1:], 1):
        if b >= 0x80:
            raise MidiParseError(f"data byte 0x{b:02X} has its high bit set", i)
    return msg


# -- NRPN ------------------------------------------------------------------------------------------


@dataclass
class NrpnChannel:
    """The (N)RPN selection and data-entry state of one MIDI channel.

    ``kind`` is "nrpn" or "rpn" once a parameter number has been started, None when deselected.
    ``values`` holds the last 14-bit value of each NRPN parameter (for increment/decrement) and
    ``has_lsb`` the parameters whose sender has been seen sending a data LSB (CC 38).
    """

    kind: str | None = None
    param_msb: int | None = None
    param_lsb: int | None = None
    data_msb: int | None = None
    values: dict[int, int] = field(default_factory=dict)
    has_lsb: set[int] = field(default_factory=set)

    @property
    def param(self) -> int | None:
        """The selected NRPN parameter number (0..16383), or None when no NRPN is selected."""
        if self.kind != "nrpn" or self.param_msb is None or self.param_lsb is None:
            return None
        return self.param_msb << 7 | self.param_lsb

    def select(self, kind: str, cc: int, value: int) -> None:
        msb_cc = CC_NRPN_MSB if kind == "nrpn" else CC_RPN_MSB
        if self.kind != kind:
            # Switching between NRPN and RPN starts a new parameter number.
            self.kind, self.param_msb, self.param_lsb = kind, None, None
        if cc == msb_cc:
            self.param_msb = value
        else:
            self.param_lsb = value
        self.data_msb = None
        if self.param_msb == NULL_PARAM and self.param_lsb == NULL_PARAM:
            self.kind, self.param_msb, self.param_lsb = None, None, None

    def data(self, cc: int, value: int) -> tuple[int, bool] | None:
        """Apply a data-entry CC (6, 38, 96, 97) to the selected NRPN.

        Returns (new 14-bit value, held) or None when no NRPN is selected. ``held`` is True for a
        data MSB from a sender known to follow it with an LSB: the value is complete only then.
        """
        param = self.param
        if param is None:
            return None
        held = False
        if cc == CC_DATA_MSB:
            self.data_msb = value
            # The spec: an MSB sets the LSB to zero. A sender never seen sending LSBs gets its 7 bits
            # spread over the whole 14-bit range, so its full travel still reads 0..16383.
            held = param in self.has_lsb
            new = value << 7 if held else round(value * 16383 / 127)
        elif cc == CC_DATA_LSB:
            self.has_lsb.add(param)
            msb = self.data_msb if self.data_msb is not None else self.values.get(param, 0) >> 7
            new = msb << 7 | value
        else:
            # Increment / decrement: the data byte is ignored (MIDI 1.0), one step each.
            step = 1 if cc == CC_DATA_INCREMENT else -1
            new = min(16383, max(0, self.values.get(param, 0) + step))
            self.data_msb = new >> 7
        self.values[param] = new
        return new, held


# -- MIDI clock ------------------------------------------------------------------------------------


class ClockTempo:
    """Tempo from MIDI clock ticks (24 per quarter note), robust to timing jitter.

    The tempo is the least-squares slope of tick time over tick number across the last
    ``window`` ticks (four beats), which averages per-tick jitter (USB frames, JACK periods,
    scheduler wake-ups) away instead of following it. A sustained change (the mean interval of
    the last ``min_ticks`` ticks off by more than ``change`` from the one before, ``persist`` ticks
    in a row) drops all but the last few ticks, so a new tempo is published within about half a
    beat while a single late tick changes nothing; a gap longer than ``max_gap`` (clock stopped) starts
    over. A new value is published only when it moved at least ``step`` bpm from the last one
    (or, once per beat, when it moved at least 0.05 bpm), so jitter does not flood the bus.
    """

    def __init__(self, window: int = 96, min_ticks: int = 12, max_gap: float = 0.5,
                 change: float = 0.08, persist: int = 4, step: float = 0.2) -> None:
        self.window, self.min_ticks, self.max_gap = window, min_ticks, max_gap
        self.change, self.persist, self.step = change, persist, step
        self._deviating = 0  # consecutive ticks whose recent mean interval is off by > change
        self._times: collections.deque[float] = collections.deque(maxlen=window)
        self._since_publish = 0
        self.bpm: float | None = None  # last published tempo

    def reset(self) -> None:
        """Forget the ticks (the published tempo stays: it is the last thing the clock said)."""
        self._times.clear()
        self._deviating = 0

    def estimate(self) -> float | None:
        """Current least-squares tempo in bpm, or None with too few ticks."""
        n = len(self._times)
        if n < self.min_ticks:
            return None
        times = self._times
        mean_i = (n - 1) / 2
        mean_t = sum(times) / n
        num = sum((i - mean_i) * (t - mean_t) for i, t in enumerate(times))
        den = n * (n * n - 1) / 12  # sum of (i - mean_i)^2
        period = num / den
        if period <= 0:
            return None
        return 60.0 / (CLOCKS_PER_BEAT * period)

    def tick(self, t: float) -> float | None:
        """Record a clock tick at time ``t`` (seconds); the tempo to publish, or None."""
        times = self._times
        if times and not 0 <= t - times[-1] <= self.max_gap:
            self.reset()
        times.append(t)
        self._since_publish += 1
        current = self.estimate()
        if current is None:
            return None
        recent = self.min_ticks
        older = len(times) - 1 - recent  # intervals before the last ``recent`` ones
        if older >= recent:
            # Mean intervals from end points, so per-tick jitter shrinks by the interval count (a
            # median of single intervals would see JACK-period quantisation as tempo changes).
            now_interval = (times[-1] - times[-1 - recent]) / recent
            before = (times[-1 - recent] - times[0]) / older
            if abs(now_interval - before) <= self.change * before:
                self._deviating = 0
            else:
                # One late tick moves an end-point mean for one tick only (the next is on time
                # again); a new tempo keeps it off. Only the latter drops the history.
                self._deviating += 1
                if self._deviating >= self.persist:
                    # Keep the ticks from the first one that was off: they all came after the
                    # change (a tempo change shows only after a few intervals; a phase jump, e.g.
                    # one stall without catching up, starts exactly there). Publish again once
                    # there are enough of them.
                    self._deviating = 0
                    while len(times) > self.persist:
                        times.popleft()
                    return None
        current = round(current, 2)
        moved = None if self.bpm is None else abs(current - self.bpm)
        if moved is None or moved >= self.step or (self._since_publish >= CLOCKS_PER_BEAT and moved >= 0.05):
            self.bpm = current
            self._since_publish = 0
            return current
        return None


# -- decoding --------------------------------------------------------------------------------------


@dataclass
class DecoderState:
    """Everything ``decode`` remembers between messages of one input port.

    ``clock`` gives the time of a message when ``decode`` is not told (tests pass a fake clock).
    ``errors`` counts messages that were not valid MIDI (and were dropped). ``pending`` is an
    NRPN value waiting for its data LSB (see ``flush``).
    """

    clock: Callable[[], float] = time.perf_counter
    nrpn: dict[int, NrpnChannel] = field(default_factory=dict)
    tempo: ClockTempo = field(default_factory=ClockTempo)
    pending: tuple[int, Event] | None = None  # (channel, event)
    errors: int = 0
    last_error: str | None = None


def _as_bytes(msg: Any) -> Sequence[int]:
    # A mido.Message (or anything with .bytes()) without importing mido: it is optional.
    to_bytes = getattr(msg, "bytes", None)
    if callable(to_bytes):
        return to_bytes()
    return msg


def decode(msg: bytes | bytearray | Sequence[int] | Any, state: DecoderState,
           t: float | None = None) -> list[Event]:
    """One MIDI message (raw bytes or a ``mido.Message``) -> the bus writes it causes.

    Returns ``[(name, value), ...]`` in the order they should be written
    (names from ``oscgan.signals.names``):

    - ``midi/cc/<ch>/<cc>``: 0..127, every control change (the (N)RPN ones too)
    - ``midi/note/<ch>/<note>``: velocity 1..127 on note on, 0 on note off (or note on velocity 0)
    - ``midi/pitchbend/<ch>``: -8192..8191
    - ``midi/nrpn/<ch>/<param>``: 0..16383, once per completed value (CC 99/98 select, 6/38 set,
      96/97 step). A data MSB from a sender that sends LSBs waits for its LSB (or the next
      message, or ``flush``), so a 14-bit move is one write, not a coarse one and a fine one.
    - ``midi/clock/bpm``: tempo from clock ticks, when it changed (see ``ClockTempo``)
    - ``midi/transport``: "start", "stop" or "continue"

    Channels are 1..16. Invalid bytes are dropped and counted in ``state.errors`` (never raised):
    a controller sending garbage must not stop the input. System exclusive, aftertouch, program
    change, MTC, song position and the other system messages produce nothing. ``t`` is the
    message time in seconds (only the clock uses it); it defaults to ``state.clock()``.
    """
    try:
        data = parse_message(_as_bytes(msg))
    except (MidiParseError, TypeError, ValueError) as e:
        state.errors += 1
        state.last_error = str(e)
        return []
    status = data[0]
    if status >= CLOCK:
        # Real-time messages may sit between any two bytes of other messages: they never
        # complete or flush a pending NRPN value.
        if status == CLOCK:
            bpm = state.tempo.tick(state.clock() if t is None else t)
            return [] if bpm is None else [(MIDI_CLOCK_BPM, bpm)]
        if status in _TRANSPORT:
            return [(MIDI_TRANSPORT, _TRANSPORT[status])]
        return []
    if status >= SYSEX:
        return flush(state)  # system common and exclusive: nothing of ours, but a new message
    kind, channel = status & 0xF0, (status & 0x0F) + 1
    events: list[Event] = []
    if state.pending is not None and not (kind == CONTROL_CHANGE and data[1] == CC_DATA_LSB
                                          and channel == state.pending[0]):
        events.append(state.pending[1])
        state.pending = None
    if kind == NOTE_ON:
        events.append((midi_note(channel, data[1]), data[2]))
    elif kind == NOTE_OFF:
        events.append((midi_note(channel, data[1]), 0))
    elif kind == PITCH_BEND:
        events.append((midi_pitchbend(channel), (data[2] << 7 | data[1]) - 8192))
    elif kind == CONTROL_CHANGE:
        cc, value = data[1], data[2]
        events.append((midi_cc(channel, cc), value))
        _nrpn(state, channel, cc, value, events)
    return events


def flush(state: DecoderState) -> list[Event]:
    """The NRPN value still waiting for a data LSB, if any (call when the input queue runs dry)."""
    if state.pending is None:
        return []
    event = state.pending[1]
    state.pending = None
    return [event]


def _nrpn(state: DecoderState, channel: int, cc: int, value: int, events: list[Event]) -> None:
    if cc in (CC_NRPN_MSB, CC_NRPN_LSB, CC_RPN_MSB, CC_RPN_LSB):
        ch = state.nrpn.get(channel)
        if ch is None:
            ch = state.nrpn[channel] = NrpnChannel()
        ch.select("nrpn" if cc in (CC_NRPN_MSB, CC_NRPN_LSB) else "rpn", cc, value)
    elif cc in (CC_DATA_MSB, CC_DATA_LSB, CC_DATA_INCREMENT, CC_DATA_DECREMENT):
        ch = state.nrpn.get(channel)
        param = ch.param if ch is not None else None
        if ch is None or param is None:
            return
        result = ch.data(cc, value)
        if result is None:
            return
        event = (midi_nrpn(channel, param), result[0])
        if result[1]:
            state.pending = (channel, event)
        else:
            state.pending = None  # an LSB completes the held value with this event
            events.append(event)
