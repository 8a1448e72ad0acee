"""Mapping sources: OSC, MIDI (CC, 14-bit, relative encoders, NRPN, notes, pitch bend), LFOs, constants, analyzers.

A source turns raw bus events into samples. Its configuration is a pydantic model (the mapping
file's ``source:``); ``build_source(config)`` makes the runtime object, which is fed every bus
event it subscribes to (``feed``) and, for time-driven sources, asked once per frame (``tick``).
Nothing here reads a clock: the engine passes a ``FrameClock``.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oscgan.signals import names

log = logging.getLogger(__name__)

Sample = float | np.ndarray  # float for one-wide sources, [width] float64 array otherwise
MAX_WIDTH = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Channel = Annotated[int, Field(ge=1, le=16, description="MIDI channel 1-16, as printed on the controller")]


# --------------------------------------------------------------------------------------- configs

class OscSourceConfig(_Strict):
    """An OSC address that is not an oscgan parameter (TouchDesigner, TouchOSC, Chataigne, ...)."""

    type: Literal["osc"]
    address: str = Field(pattern=r"^/[^\s#*?,\[\]{}]*$",
                         description="OSC address, e.g. /td/fader1 or /1/fader1 (no wildcards)")
    arg: int | Literal["all"] = Field(0, description="which argument to read (0 = first); 'all' = every "
                                      "argument as a vector of `length` values")
    length: int = Field(1, ge=1, le=MAX_WIDTH, description="vector length for arg: all")

    @model_validator(mode="after")
    def _check(self) -> OscSourceConfig:
        if self.arg != "all" and self.length != 1:
            raise ValueError("length is only for arg: all (a vector of arguments)")
        if isinstance(self.arg, int) and self.arg < 0:
            raise ValueError("arg counts from 0 (the first argument)")
        if self.address.startswith("/oscgan/"):
            raise ValueError("addresses under /oscgan/ are oscgan's own parameters and commands; "
                             "send to those directly instead of mapping them")
        return self


class MidiCcSourceConfig(_Strict):
    """A MIDI Control Change: fader, knob, button or endless encoder."""

    type: Literal["midi_cc"]
    channel: Channel
    cc: int = Field(ge=0, le=127, description="controller number 0-127 (the MSB for 14bit)")
    mode: Literal["absolute", "14bit", "relative_twos_complement", "relative_binary_offset",
                  "relative_signed_bit"] = Field(
        "absolute", description="absolute: value 0-127; 14bit: MSB cc 0-31 + LSB cc+32, value 0-16383; "
        "relative_*: endless encoders, accumulated into a value 0-127")
    sensitivity: float = Field(1.0, gt=0, description="relative modes: value units per encoder step")
    start: float = Field(0.0, ge=0, le=127, description="relative modes: value before the first turn")

    @model_validator(mode="after")
    def _check(self) -> MidiCcSourceConfig:
        if self.mode == "14bit" and self.cc > 31:
            raise ValueError(f"14bit needs the MSB controller (0-31); cc {self.cc} is "
                             + (f"the LSB of cc {self.cc - 32}" if self.cc < 64 else "not a 14-bit pair"))
        if not self.mode.startswith("relative") and ("sensitivity" in self.model_fields_set
                                                     or "start" in self.model_fields_set):
            raise ValueError("sensitivity and start are for relative_* modes (endless encoders)")
        return self


class MidiNrpnSourceConfig(_Strict):
    """A MIDI NRPN parameter (14-bit value 0-16383)."""

    type: Literal["midi_nrpn"]
    channel: Channel
    param: int = Field(ge=0, le=16383, description="NRPN parameter number 0-16383")


class MidiNoteSourceConfig(_Strict):
    """A MIDI note: pad, key or button."""

    type: Literal["midi_note"]
    channel: Channel
    note: int = Field(ge=0, le=127, description="note number 0-127 (60 = middle C)")
    mode: Literal["gate", "velocity", "toggle", "trigger"] = Field(
        "gate", description="gate: 1 while held, 0 when released; velocity: 0-127 of the last hit; "
        "toggle: flips 0/1 on each hit; trigger: 1 for one frame per hit (for trigger filters)")


class MidiPitchbendSourceConfig(_Strict):
    """A channel's pitch bend wheel (-8192..8191)."""

    type: Literal["midi_pitchbend"]
    channel: Channel


class LfoSourceConfig(_Strict):
    """A low-frequency oscillator, -1..1."""

    type: Literal["lfo"]
    shape: Literal["sine", "triangle", "saw", "square", "sample_and_hold"] = "sine"
    rate_hz: float | None = Field(None, gt=0, le=1000, description="cycles per second")
    rate_beats: float | None = Field(None, gt=0, le=64, description="cycles per beat (0.25 = one per "
                                     "4/4 bar), following tempo_bpm or MIDI clock")
    phase: float = Field(0.0, ge=0, le=1, description="phase offset in cycles (0.25 = a quarter ahead)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="sample_and_hold: seed of the random steps")

    @model_validator(mode="after")
    def _check(self) -> LfoSourceConfig:
        if (self.rate_hz is None) == (self.rate_beats is None):
            raise ValueError("give exactly one of rate_hz (cycles per second) or rate_beats (cycles per beat)")
        return self


class ConstantSourceConfig(_Strict):
    """A fixed value (or vector), e.g. to add a fixed offset to a slice."""

    type: Literal["constant"]
    value: float | list[float] = Field(description="a number, or a list of numbers for vector targets")

    @model_validator(mode="after")
    def _check(self) -> ConstantSourceConfig:
        if isinstance(self.value, list) and not 1 <= len(self.value) <= MAX_WIDTH:
            raise ValueError(f"a constant vector needs 1 to {MAX_WIDTH} numbers")
        return self


class AnalyzerSourceConfig(_Strict):
    """An analyzer signal (camera, pose, motion; read from the bus as analyzer/<signal>)."""

    type: Literal["analyzer"]
    signal: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$",
                        description="signal name, e.g. hands.left.x or motion.amount")
    length: int = Field(1, ge=1, le=MAX_WIDTH, description="values in the signal (1 = a number)")


SourceConfig = Annotated[
    Union[OscSourceConfig, MidiCcSourceConfig, MidiNrpnSourceConfig, MidiNoteSourceConfig,
          MidiPitchbendSourceConfig, LfoSourceConfig, ConstantSourceConfig, AnalyzerSourceConfig],
    Field(discriminator="type")]


# --------------------------------------------------------------------------------------- runtime

@dataclass(frozen=True)
class FrameClock:
    """Time as the engine sees it for one frame (never read from a clock inside mapping/).

    Attributes:
        t: seconds since the mapping engine started (continues across hot reloads).
        dt: seconds since the previous frame.
        beats: beats elapsed at the current tempo (reset to 0 by MIDI transport 'start').
        bpm: current tempo.
    """

    t: float
    dt: float
    beats: float
    bpm: float


class Source:
    """Runtime source: ``feed`` bus events, ``tick`` once per frame; samples out.

    ``width`` is the number of values per sample (1 = a float). ``bus_names`` are the signals
    whose every event this source wants, in bus order.
    """

    width: int = 1
    bus_names: tuple[str, ...] = ()
    config: BaseModel

    def feed(self, name: str, value: object) -> list[Sample]:
        """Samples produced by one bus event (often one; none for values this source ignores)."""
        return []

    def tick(self, clock: FrameClock) -> Sample | None:
        """A sample for this frame for time-driven sources (LFO, constant); None for event sources."""
        return None

    def _bad_value(self, name: str, value: object, why: str) -> None:
        if not getattr(self, "_warned", False):
            self._warned = True
            log.warning("mapping source %s: ignoring %r from %s (%s); further ones are not logged",
                        self.describe(), value, name, why)

    def describe(self) -> str:
        return type(self).__name__


_FINITE_MAX = 1.7976931348623157e308


def _number(value: object) -> float | None:
    t = type(value)
    if t is float:  # the common case first: an ABC isinstance check costs more than the rest of a feed
        return value if -_FINITE_MAX <= value <= _FINITE_MAX else None  # type: ignore[return-value,operator]
    if t is int or t is bool:
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, numbers.Real):
        x = float(value)
        return x if math.isfinite(x) else None
    return None


class OscSource(Source):
    """One argument (or all of them, as a vector) of an OSC address."""

    def __init__(self, config: OscSourceConfig) -> None:
        self.config = config
        self.bus_names = (names.osc(config.address),)
        self.width = config.length if config.arg == "all" else 1
        self._vector = np.zeros(self.width) if config.arg == "all" else None
        self._arg = 0 if config.arg == "all" else int(config.arg)

    def describe(self) -> str:
        return f"osc {self.config.address}"

    def feed(self, name: str, value: object) -> list[Sample]:
        args = value if isinstance(value, tuple) else (value,)
        if self._vector is not None:
            # One OSC array argument counts as the argument list (TouchOSC multi-faders send one).
            if len(args) == 1 and type(args[0]) in (tuple, list):
                args = tuple(args[0])
            xs = [_number(a) for a in args[: self.width]]
            if not xs or any(x is None for x in xs):
                self._bad_value(name, value, "expected numbers")
                return []
            vec = self._vector.copy()
            vec[: len(xs)] = xs  # a shorter message is a prefix; the rest keep their values
            self._vector = vec
            return [vec]
        arg = self._arg
        if arg >= len(args):
            self._bad_value(name, value, f"the message has {len(args)} argument(s), the mapping reads arg {arg}")
            return []
        x = _number(args[arg])
        if x is None:
            self._bad_value(name, value, f"argument {arg} is not a number")
            return []
        return [x]


def decode_relative(mode: str, value: int) -> int:
    """Signed step of one relative-encoder message (0..127) in the given encoding.

    ``relative_twos_complement``: 1..63 up, 127..64 down (127 = -1); ``relative_binary_offset``:
    65.. up, ..63 down (64 = no change); ``relative_signed_bit``: bit 6 is the sign, bits 0-5
    the amount (1 = +1, 65 = -1).
    """
    if mode == "relative_twos_complement":
        return value if value < 64 else value - 128
    if mode == "relative_binary_offset":
        return value - 64
    if mode == "relative_signed_bit":
        return -(value & 0x3F) if value & 0x40 else value & 0x3F
    raise ValueError(f"not a relative mode: {mode!r}")


class MidiCcSource(Source):
    """A CC: absolute 0..127, 14-bit 0..16383 (MSB/LSB pair), or a relative encoder accumulated into 0..127."""

    def __init__(self, config: MidiCcSourceConfig) -> None:
        self.config = config
        self._msb_name = names.midi_cc(config.channel, config.cc)
        if config.mode == "14bit":
            self._lsb_name = names.midi_cc(config.channel, config.cc + 32)
            self.bus_names = (self._msb_name, self._lsb_name)
        else:
            self.bus_names = (self._msb_name,)
        self._msb = 0
        self._lsb = 0
        self._position = float(config.start)

    def describe(self) -> str:
        return f"midi_cc ch {self.config.channel} cc {self.config.cc} ({self.config.mode})"

    def feed(self, name: str, value: object) -> list[Sample]:
        x = _number(value)
        if x is None or not 0 <= x <= 127 or x != int(x):
            self._bad_value(name, value, "a CC value is an integer 0..127")
            return []
        v = int(x)
        mode = self.config.mode
        if mode == "absolute":
            return [float(v)]
        if mode == "14bit":
            if name == self._msb_name:
                # MIDI 1.0: a new MSB resets the LSB, so a controller that sends only MSBs still works.
                self._msb, self._lsb = v, 0
            else:
                self._lsb = v
            return [float(self._msb * 128 + self._lsb)]
        step = decode_relative(mode, v) * self.config.sensitivity
        self._position = min(127.0, max(0.0, self._position + step))
        return [self._position]


class MidiNrpnSource(Source):
    """An NRPN value 0..16383 (assembled from CC 99/98/6/38 by the MIDI input)."""

    def __init__(self, config: MidiNrpnSourceConfig) -> None:
        self.config = config
        self.bus_names = (names.midi_nrpn(config.channel, config.param),)

    def describe(self) -> str:
        return f"midi_nrpn ch {self.config.channel} param {self.config.param}"

    def feed(self, name: str, value: object) -> list[Sample]:
        x = _number(value)
        if x is None or not 0 <= x <= 16383:
            self._bad_value(name, value, "an NRPN value is 0..16383")
            return []
        return [x]


class MidiNoteSource(Source):
    """A note as a gate (0/1), its velocity (0..127), a toggle (0/1) or a trigger pulse."""

    def __init__(self, config: MidiNoteSourceConfig) -> None:
        self.config = config
        self.bus_names = (names.midi_note(config.channel, config.note),)
        self._state = 0.0
        self._pulse = False

    def describe(self) -> str:
        return f"midi_note ch {self.config.channel} note {self.config.note} ({self.config.mode})"

    def feed(self, name: str, value: object) -> list[Sample]:
        x = _number(value)
        if x is None or not 0 <= x <= 127:
            self._bad_value(name, value, "a velocity is 0..127")
            return []
        on = x > 0
        mode = self.config.mode
        if mode == "gate":
            return [1.0 if on else 0.0]
        if mode == "velocity":
            return [x] if on else []  # the release keeps the last velocity
        if not on:
            return []
        if mode == "toggle":
            self._state = 0.0 if self._state else 1.0
            return [self._state]
        # trigger: one rising edge per hit, also for several hits within one frame; back to 0 next frame
        out: list[Sample] = [0.0, 1.0] if self._pulse else [1.0]
        self._pulse = True
        return out

    def tick(self, clock: FrameClock) -> Sample | None:
        if self.config.mode == "trigger" and self._pulse:
            # Called before this frame's events: last frame's pulse ends now.
            self._pulse = False
            return 0.0
        return None


class MidiPitchbendSource(Source):
    """Pitch bend, -8192..8191."""

    def __init__(self, config: MidiPitchbendSourceConfig) -> None:
        self.config = config
        self.bus_names = (names.midi_pitchbend(config.channel),)

    def describe(self) -> str:
        return f"midi_pitchbend ch {self.config.channel}"

    def feed(self, name: str, value: object) -> list[Sample]:
        x = _number(value)
        if x is None or not -8192 <= x <= 8191:
            self._bad_value(name, value, "pitch bend is -8192..8191")
            return []
        return [x]


def _unit_hash(seed: int, cycle: int) -> float:
    """Deterministic pseudo-random number in [-1, 1) for (seed, cycle): splitmix64 of both."""
    z = (seed * 0x9E3779B97F4A7C15 + cycle * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return (z >> 11) / float(1 << 52) - 1.0


def lfo_value(shape: str, cycles: float, seed: int = 0) -> float:
    """LFO output in -1..1 after ``cycles`` cycles (phase included).

    Every shape starts at its zero crossing going up, like a sine: triangle peaks at a quarter
    cycle, saw rises from 0 to 1 and jumps to -1 at half a cycle, square is +1 for the first
    half. ``sample_and_hold`` holds a new random value each cycle (repeatable with ``seed``).
    """
    p = cycles - math.floor(cycles)
    if shape == "sine":
        return math.sin(2.0 * math.pi * p)
    if shape == "triangle":
        q = p + 0.25
        return 1.0 - 4.0 * abs((q - math.floor(q)) - 0.5)
    if shape == "saw":
        q = p + 0.5
        return 2.0 * (q - math.floor(q)) - 1.0
    if shape == "square":
        return 1.0 if p < 0.5 else -1.0
    if shape == "sample_and_hold":
        return _unit_hash(seed, math.floor(cycles))
    raise ValueError(f"unknown LFO shape {shape!r}")


class LfoSource(Source):
    """An LFO: phase from the engine's time (rate_hz) or beat position (rate_beats), so it never drifts."""

    def __init__(self, config: LfoSourceConfig) -> None:
        self.config = config

    def describe(self) -> str:
        rate = f"{self.config.rate_hz} Hz" if self.config.rate_hz is not None else f"{self.config.rate_beats}/beat"
        return f"lfo {self.config.shape} {rate}"

    def cycles(self, clock: FrameClock) -> float:
        c = self.config
        if c.rate_hz is not None:
            return clock.t * c.rate_hz + c.phase
        return clock.beats * float(c.rate_beats) + c.phase  # type: ignore[arg-type]

    def tick(self, clock: FrameClock) -> Sample | None:
        return lfo_value(self.config.shape, self.cycles(clock), self.config.seed)


class ConstantSource(Source):
    """A fixed value, emitted once (the engine holds it)."""

    def __init__(self, config: ConstantSourceConfig) -> None:
        self.config = config
        v = config.value
        self.width = len(v) if isinstance(v, list) else 1
        self._value: Sample = np.asarray(v, dtype=np.float64) if isinstance(v, list) else float(v)
        self._sent = False

    def describe(self) -> str:
        return f"constant {self.config.value if self.width <= 4 else f'[{self.width} values]'}"

    def tick(self, clock: FrameClock) -> Sample | None:
        if self._sent:
            return None
        self._sent = True
        return self._value


class AnalyzerSource(Source):
    """An analyzer signal from the bus (a number, or a sequence of ``length`` numbers)."""

    def __init__(self, config: AnalyzerSourceConfig) -> None:
        self.config = config
        self.width = config.length
        self.bus_names = (names.analyzer(config.signal),)

    def describe(self) -> str:
        return f"analyzer {self.config.signal}"

    def feed(self, name: str, value: object) -> list[Sample]:
        if self.width == 1:
            x = _number(value if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 1
                        else value[0])
            if x is None:
                self._bad_value(name, value, "expected a number")
                return []
            return [x]
        try:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            self._bad_value(name, value, f"expected {self.width} numbers")
            return []
        if arr.size != self.width or not np.isfinite(arr).all():
            self._bad_value(name, f"<{arr.size} values>", f"expected {self.width} finite numbers")
            return []
        return [arr]


_SOURCES: dict[type[BaseModel], type[Source]] = {
    OscSourceConfig: OscSource,
    MidiCcSourceConfig: MidiCcSource,
    MidiNrpnSourceConfig: MidiNrpnSource,
    MidiNoteSourceConfig: MidiNoteSource,
    MidiPitchbendSourceConfig: MidiPitchbendSource,
    LfoSourceConfig: LfoSource,
    ConstantSourceConfig: ConstantSource,
    AnalyzerSourceConfig: AnalyzerSource,
}


def build_source(config: BaseModel) -> Source:
    """The runtime source for a validated source config."""
    return _SOURCES[type(config)](config)  # type: ignore[call-arg]
