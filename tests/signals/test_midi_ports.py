"""MidiInput against a fake python-rtmidi: opening by name, unplug / re-plug, virtual ports, errors.

The real backend is exercised on a JACK server in test_midi_jack.py; this one runs anywhere and
drives the corner cases a real server cannot be made to produce on demand.
"""

from __future__ import annotations

import collections
import functools
import logging
import sys
import time
import types
from typing import Any

import pytest

from oscgan.signals import midi
from oscgan.signals.bus import SignalBus
from oscgan.signals.midi import MidiError, MidiInput, normalize_api
from tests import waiting


class FakeWorld:
    """A MIDI server: sources (controllers) with their listeners, destinations (virtual ports)."""

    def __init__(self) -> None:
        self.sources: dict[str, list[Any]] = {}
        self.virtual: dict[str, Any] = {}
        self.local: dict[str, Any] = {}  # the ports readers make to connect to sources
        self.dead: set[int] = set()  # ids of clients whose server died (libjack crashes on them)
        self.crashes: list[str] = []
        self.fail_open: set[str] = set()
        self.broken_apis: set[int] = set()
        self.clients = 0
        self.all: list = []

    def plug(self, name: str) -> None:
        self.sources.setdefault(name, [])

    def unplug(self, name: str) -> None:
        for listener in self.sources.pop(name, []):
            listener.source = None

    def send(self, source: str, data: bytes, delta: float = 0.0) -> None:
        for listener in self.sources[source]:
            listener.queue.append((list(data), delta))

    def send_virtual(self, port: str, data: bytes, delta: float = 0.0) -> None:
        self.virtual[port].queue.append((list(data), delta))

    def restart(self, clients: list) -> None:
        """The server restarts: every port and connection is gone, old clients are dead."""
        for name in list(self.sources):
            self.unplug(name)
        self.virtual.clear()
        self.local.clear()
        self.dead.update(id(c) for c in clients)


def fake_rtmidi(world: FakeWorld) -> types.ModuleType:
    mod = types.ModuleType("rtmidi")
    mod.API_UNSPECIFIED, mod.API_MACOSX_CORE, mod.API_LINUX_ALSA, mod.API_UNIX_JACK = 0, 1, 2, 3
    mod.API_WINDOWS_MM, mod.API_RTMIDI_DUMMY, mod.API_WEB_MIDI = 4, 5, 6
    mod.get_compiled_api = lambda: [2, 3]

    class Base:
        def __init__(self, rtapi: int = 0, name: str | None = None, queue_size_limit: int = 1024) -> None:
            if rtapi in world.broken_apis or (rtapi == 0 and 2 in world.broken_apis):
                raise OSError("MidiInAlsa::initialize: error creating ALSA sequencer client object.")
            self.api = 3 if rtapi == 0 else rtapi
            self.client = name
            self.deleted = False
            world.clients += 1
            world.all.append(self)

        def get_current_api(self) -> int:
            return self.api

        def delete(self) -> None:
            if id(self) in world.dead:
                world.crashes.append(f"delete() on dead client {self.client}")
            assert not self.deleted, "deleted twice"
            self.deleted = True
            world.clients -= 1

    class MidiIn(Base):
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            self.queue: collections.deque = collections.deque()
            self.source: str | None = None
            self.ignore: tuple | None = None

        def get_ports(self) -> list[str]:
            return list(world.sources)

        def ignore_types(self, sysex=True, timing=True, active_sense=True) -> None:
            self.ignore = (sysex, timing, active_sense)

        def open_port(self, index: int, name: str = "") -> None:
            source = list(world.sources)[index]
            if source in world.fail_open:
                raise OSError(f"cannot connect to {source}")
            self.source = source
            world.sources[source].append(self)
            world.local[f"{self.client}:{name}"] = self

        def open_virtual_port(self, name: str) -> None:
            world.virtual[f"{self.client}:{name}"] = self

        def get_message(self):
            assert not self.deleted, "read after delete"
            return self.queue.popleft() if self.queue else None

        def close_port(self) -> None:
            if id(self) in world.dead:
                world.crashes.append(f"close_port() on dead client {self.client}")
            world.local = {k: v for k, v in world.local.items() if v is not self}
            if self.source in world.sources:
                world.sources[self.source].remove(self)
            self.source = None

    class MidiOut(Base):
        def get_ports(self) -> list[str]:
            return list(world.virtual) + list(world.local)

    mod.MidiIn, mod.MidiOut = MidiIn, MidiOut
    return mod


@pytest.fixture
def world(monkeypatch) -> FakeWorld:
    w = FakeWorld()
    mod = fake_rtmidi(w)
    monkeypatch.setattr(midi, "_rtmidi", lambda: mod)
    return w


wait_for = functools.partial(waiting.wait_for, timeout=2.0, interval=0.002)


def status(m: MidiInput, name: str):
    return next(p for p in m.port_status() if p.name == name)


def make(bus: SignalBus, **kw) -> MidiInput:
    # A long watch interval: the tests call refresh() themselves, deterministically.
    return MidiInput(bus, api="jack", watch_interval=3600, **kw)


def test_opens_ports_by_case_insensitive_substring(world):
    world.plug("nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0")
    world.plug("Launchpad:Launchpad MIDI 1")
    bus = SignalBus()
    with make(bus, inputs=["nanokontrol"]) as m:
        st = status(m, "nanokontrol")
        assert st.status == "open" and st.ports == ("nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0",)
        world.send("nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0", b"\xb0\x10\x40")
        world.send("Launchpad:Launchpad MIDI 1", b"\xb0\x11\x40")  # not opened
        wait_for(lambda: bus.read("midi/cc/1/16") == 64)
        time.sleep(0.02)
        assert bus.read("midi/cc/1/17") is None
        stats = m.stats()
        assert stats["api"] == "UNIX_JACK" and stats["messages"] == 1
        assert stats["ports"][0]["status"] == "open"
    assert world.clients == 0, "every rtmidi object is deleted on stop"


def test_a_pattern_opens_every_match_and_patterns_do_not_share_ports(world):
    for n in ("synth A", "synth B", "drums"):
        world.plug(n)
    bus = SignalBus()
    with make(bus, inputs=["synth", "synth B", "drum"]) as m:
        assert status(m, "synth").ports == ("synth A", "synth B")
        assert status(m, "synth B").status == "waiting"  # already taken by "synth": opened once
        assert status(m, "drum").ports == ("drums",)
        world.send("synth B", b"\x90\x3c\x64")
        world.send("drums", b"\x99\x24\x7f")
        wait_for(lambda: bus.read("midi/note/10/36") == 127 and bus.read("midi/note/1/60") == 100)


def test_unplug_and_replug(world, caplog):
    caplog.set_level(logging.INFO, logger="oscgan.signals.midi")
    world.plug("fakectl:out")
    bus = SignalBus()
    with make(bus, inputs=["fakectl"]) as m:
        world.send("fakectl:out", b"\xb0\x10\x01")
        wait_for(lambda: bus.read("midi/cc/1/16") == 1)
        world.unplug("fakectl:out")
        m.refresh()
        st = status(m, "fakectl")
        assert st.status == "lost" and st.ports == ()
        assert "disappeared" in caplog.text
        m.refresh()  # still gone: nothing happens, nothing crashes
        world.plug("fakectl:out")
        m.refresh()
        st = status(m, "fakectl")
        assert st.status == "open" and st.reopened == 1
        assert "is back" in caplog.text
        world.send("fakectl:out", b"\xb0\x10\x02")
        wait_for(lambda: bus.read("midi/cc/1/16") == 2)
        assert status(m, "fakectl").messages == 2
    assert world.clients == 0


def test_a_port_that_appears_later_is_opened(world):
    bus = SignalBus()
    with make(bus, inputs=["late"]) as m:
        assert status(m, "late").status == "waiting"
        world.plug("late:port")
        m.refresh()
        assert status(m, "late").status == "open" and status(m, "late").reopened == 0


def test_watcher_thread_reopens_without_help(world):
    world.plug("ctl")
    bus = SignalBus()
    m = MidiInput(bus, inputs=["ctl"], api="jack", watch_interval=0.02).start()
    try:
        world.unplug("ctl")
        wait_for(lambda: status(m, "ctl").status == "lost")
        world.plug("ctl")
        wait_for(lambda: status(m, "ctl").status == "open")
        world.send("ctl", b"\xe0\x7f\x7f")
        wait_for(lambda: bus.read("midi/pitchbend/1") == 8191)
    finally:
        m.stop()


def test_open_failure_is_reported_and_retried(world):
    world.plug("flaky")
    world.fail_open.add("flaky")
    bus = SignalBus()
    with make(bus, inputs=["flaky"]) as m:
        st = status(m, "flaky")
        assert st.status == "error" and "cannot connect" in st.last_error
        world.fail_open.clear()
        m.refresh()
        st = status(m, "flaky")
        assert st.status == "open" and st.last_error is None
    assert world.clients == 0


def test_virtual_port_and_server_restart(world):
    bus = SignalBus()
    with make(bus, virtual=True) as m:
        assert "oscgan:oscgan" in world.virtual
        assert status(m, "oscgan").ports == ("oscgan:oscgan",)
        world.send_virtual("oscgan:oscgan", b"\xb0\x10\x05")
        wait_for(lambda: bus.read("midi/cc/1/16") == 5)
        world.restart(world.all)
        m.refresh()
        st = status(m, "oscgan")
        assert "oscgan:oscgan" in world.virtual and st.status == "open" and st.reopened == 1
        world.send_virtual("oscgan:oscgan", b"\xb0\x10\x06")
        wait_for(lambda: bus.read("midi/cc/1/16") == 6)
    # The dead port was abandoned, never closed or deleted (that segfaults in libjack).
    assert world.crashes == []
    assert world.clients == 1


def test_named_port_whose_server_restarts_is_abandoned_and_reopened(world):
    world.plug("ctl")
    bus = SignalBus()
    with make(bus, inputs=["ctl"]) as m:
        m.refresh()
        world.restart(world.all)
        world.plug("ctl")  # back already at the next check: only the listing shows the restart
        m.refresh()
        st = status(m, "ctl")
        assert st.status == "open" and st.reopened == 1
        world.send("ctl", b"\xb0\x10\x07")
        wait_for(lambda: bus.read("midi/cc/1/16") == 7)
        world.restart(world.all)  # and down for good: stop() must not touch the dead port either
    assert world.crashes == []


def test_server_down_abandons_ports(world):
    world.plug("ctl")
    with make(SignalBus(), inputs=["ctl"], virtual=True) as m:
        world.restart(world.all)
        world.broken_apis.add(3)  # nothing can be listed or opened while the server is down
        m.refresh()
        assert [p.status for p in m.port_status()] == ["error", "lost"]
        world.broken_apis.clear()
        world.plug("ctl")
        m.refresh()
        assert [p.status for p in m.port_status()] == ["open", "open"]
    assert world.crashes == []


def test_virtual_port_custom_name_and_listening_ignore_flags(world):
    with make(SignalBus(), virtual=True, virtual_name="stage-left") as m:
        port = world.virtual["stage-left:stage-left"]
        # sysex ignored at the driver, clock passed through (tempo), active sensing ignored
        assert port.ignore == (True, False, True)
        assert m.stats()["ports"][0]["virtual"] is True


def test_reader_survives_garbage_and_flushes_a_held_nrpn(world):
    world.plug("ctl")
    bus = SignalBus()
    with make(bus, inputs=["ctl"]) as m:
        for data in (b"\x40\x40", b"\xb0\x10", b"\xf4"):
            world.send("ctl", data)
        # NRPN 1/1: teach the decoder that this sender sends LSBs, then a lone MSB
        for data in (b"\xb0\x63\x00", b"\xb0\x62\x01", b"\xb0\x06\x01", b"\xb0\x26\x00", b"\xb0\x06\x02"):
            world.send("ctl", data)
        wait_for(lambda: bus.read("midi/nrpn/1/1") == 256)  # the held MSB, flushed when the queue ran dry
        st = status(m, "ctl")
        assert st.errors == 3 and st.messages == 8


def test_clock_tempo_uses_driver_time_not_arrival_time(world):
    world.plug("clock")
    bus = SignalBus()
    with make(bus, inputs=["clock"]):
        # 4 beats of ticks 20 ms apart by the driver's clock (125 bpm), all read in one burst.
        for i in range(96):
            world.send("clock", b"\xf8", 0.0 if i == 0 else 0.020)
        wait_for(lambda: bus.read("midi/clock/bpm") == 125.0)


def test_stop_is_idempotent_and_joins_readers(world):
    world.plug("a")
    m = make(SignalBus(), inputs=["a"]).start()
    m.stop()
    m.stop()
    assert world.clients == 0


def test_default_api_falls_back_when_alsa_has_no_sequencer(world):
    world.broken_apis.add(2)
    with MidiInput(SignalBus(), virtual=True, watch_interval=3600) as m:
        assert m.api == "UNIX_JACK"


def test_unusable_api_is_a_clear_error(world):
    world.broken_apis.update({2, 3})
    with pytest.raises(MidiError, match="cannot start MIDI backend"):
        MidiInput(SignalBus(), virtual=True).start()
    with pytest.raises(MidiError, match="not compiled"):
        MidiInput(SignalBus(), virtual=True, api="coremidi").start()


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rtmidi", None)  # import rtmidi -> ImportError
    with pytest.raises(MidiError, match=r"pip install 'oscgan\[midi\]'"):
        MidiInput(SignalBus(), virtual=True).start()
    with pytest.raises(MidiError, match="python-rtmidi is not installed"):
        midi.list_input_ports()


@pytest.mark.parametrize("text,api", [("jack", "UNIX_JACK"), ("JACK", "UNIX_JACK"), ("alsa", "LINUX_ALSA"),
                                      ("UNIX_JACK", "UNIX_JACK"), ("mido.backends.rtmidi/UNIX_JACK", "UNIX_JACK"),
                                      ("coremidi", "MACOSX_CORE"), ("winmm", "WINDOWS_MM"), (None, None), ("", None)])
def test_normalize_api(text, api):
    assert normalize_api(text) == api


def test_normalize_api_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown MIDI API 'pulse'.*jack, alsa"):
        normalize_api("pulse")


def test_virtual_port_names_as_backends_list_them():
    from oscgan.signals.midi import _is_virtual_port

    for listed in ("oscgan", "oscgan:oscgan", "oscgan-01:oscgan", "oscgan:oscgan 128:0"):
        assert _is_virtual_port("oscgan", listed), listed
    for listed in ("oscgan-in:input", "oscgan:oscgan2", "other:oscgan", "RtMidiIn Client:oscgan"):
        assert not _is_virtual_port("oscgan", listed), listed


def test_list_input_ports(world):
    world.plug("x:1")
    assert midi.list_input_ports("jack") == ("UNIX_JACK", ["x:1"])
    assert world.clients == 0
