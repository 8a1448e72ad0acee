"""MidiInput on a real (dummy-driver) JACK server: virtual port, named port unplug / re-plug, clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from oscgan.signals.bus import SignalBus
from oscgan.signals.midi import MidiInput
from tests.jackd import JackServer, jack_server as _jack_server, send_until
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def jack() -> Iterator[JackServer]:
    yield from _jack_server()


@pytest.fixture
def backend(jack, monkeypatch):
    jack.activate(monkeypatch)
    import mido

    return mido.Backend("mido.backends.rtmidi/UNIX_JACK")


def port_status(m: MidiInput, name: str):
    return next(p for p in m.port_status() if p.name == name)


def test_virtual_port_receives_from_a_jack_client(backend, jack):
    import mido

    bus = SignalBus()
    with MidiInput(bus, virtual=True, api="jack", watch_interval=0.3) as m:
        assert "oscgan:oscgan" in jack.ports()
        assert "oscgan:oscgan" in backend.get_output_names()
        with backend.open_output("oscgan:oscgan") as out:  # rtmidi connects to it by name
            cc = mido.Message("control_change", channel=0, control=16, value=99)
            send_until(out, [cc], lambda: bus.read("midi/cc/1/16") == 99, what="CC")
            on = mido.Message("note_on", channel=1, note=60, velocity=100)
            off = mido.Message("note_on", channel=1, note=60, velocity=0)  # note on, velocity 0 = off

            def on_then_off() -> bool:  # every event is in the change log, in order
                vals = [s.value for s in bus.changes_since(0).signals if s.name == "midi/note/2/60"]
                return any(a == 100 and b == 0 for a, b in zip(vals, vals[1:]))

            send_until(out, [on, off], on_then_off, what="note on, then off")
            bend = mido.Message("pitchwheel", channel=15, pitch=8191)
            send_until(out, [bend], lambda: bus.read("midi/pitchbend/16") == 8191, what="pitch bend")
            nrpn = [mido.Message("control_change", channel=0, control=c, value=v)
                    for c, v in ((99, 2), (98, 3), (6, 127))]
            send_until(out, nrpn, lambda: bus.read("midi/nrpn/1/259") == 16383, what="NRPN 259 (no LSB)")
            sysex = mido.Message("sysex", data=[0x7E, 0x7F, 0x06, 0x01])
            send_until(out, [sysex, mido.Message("start")], lambda: bus.read("midi/transport") == "start",
                       what="transport")
        st = m.stats()
        assert st["api"] == "UNIX_JACK" and st["messages"] >= 8 and st["errors"] == 0  # sysex: filtered by rtmidi
        assert st["ports"][0]["status"] == "open" and st["ports"][0]["ports"] == ("oscgan:oscgan",)
    assert "oscgan:oscgan" not in jack.ports()


def test_named_port_survives_unplug_and_replug(backend, jack):
    import mido

    bus = SignalBus()
    with MidiInput(bus, inputs=["FAKECTL"], api="jack", watch_interval=0.2) as m:
        assert port_status(m, "FAKECTL").status == "waiting"
        out = backend.open_output("fakectl", client_name="fakectl")  # appears as fakectl:fakectl
        try:
            wait_for(lambda: port_status(m, "FAKECTL").status == "open", what="port opened")
            assert port_status(m, "FAKECTL").ports == ("fakectl:fakectl",)
            send_until(out, [mido.Message("control_change", channel=0, control=16, value=1)],
                       lambda: bus.read("midi/cc/1/16") == 1, what="first CC")
        finally:
            out.close()  # unplug
        wait_for(lambda: port_status(m, "FAKECTL").status == "lost", what="port lost")
        with backend.open_output("fakectl", client_name="fakectl") as out:  # plug back in
            wait_for(lambda: port_status(m, "FAKECTL").status == "open", what="port reopened")
            send_until(out, [mido.Message("control_change", channel=0, control=16, value=2)],
                       lambda: bus.read("midi/cc/1/16") == 2, what="CC after re-plug")
        assert port_status(m, "FAKECTL").reopened == 1


def test_clock_tempo_through_jack(backend, jack):
    # The plumbing: ticks through JACK, timed by the driver, become a tempo on the bus. The
    # estimator's precision under jitter is tested with exact fake clocks in test_midi_protocol;
    # here a Python sender on a shared machine sleeps late now and then (and JACK may drop a
    # tick), so the bound is loose.
    import mido

    bus = SignalBus()
    with MidiInput(bus, virtual=True, api="jack", watch_interval=0.3), backend.open_output("oscgan:oscgan") as out:
        period = 60.0 / (125.0 * 24)
        t0 = time.perf_counter()
        for i in range(96):  # four beats, paced from an anchor so sleeps do not drift
            out.send(mido.Message("clock"))
            time.sleep(max(0.0, t0 + (i + 1) * period - time.perf_counter()))
        wait_for(lambda: bus.read("midi/clock/bpm") is not None, what="tempo")
        assert abs(bus.read("midi/clock/bpm") - 125.0) < 7.0, bus.read("midi/clock/bpm")
