"""End to end over JACK MIDI: the real daemon subprocess, a virtual port and a named one, a mapping file.

A private ``jackd -d dummy`` server; the test plays a controller (mido output ports on JACK),
patches it with ``jack_connect`` like a user would in a patchbay, and watches parameters move
over OSCQuery. Also: unplug / re-plug a named controller, and a JACK server restart under the
running daemon (the daemon must neither crash nor need a restart).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests.jackd import JackServer, jack_server as _jack_server, send_until
from tests.test_daemon_e2e import MODEL, RunningDaemon

MAPPING = textwrap.dedent("""\
    mappings:
      - name: fader 1 -> coarse mix
        source: {type: midi_cc, channel: 1, cc: 16}
        filters: [{type: remap, in: [0, 127], out: [0, 1]}]
        target: mix.coarse
      - name: pad -> next seed
        source: {type: midi_note, channel: 10, note: 36}
        filters: [{type: trigger, action: next_seed}]
      - name: wheel -> truncation
        source: {type: midi_pitchbend, channel: 1}
        filters: [{type: remap, in: [-8192, 8191], out: [-1, 2]}]
        target: truncation.psi
      - name: NRPN 300 -> fine mix
        source: {type: midi_nrpn, channel: 2, param: 300}
        filters: [{type: remap, in: [0, 16383], out: [0, 1]}]
        target: mix.fine
""")


@pytest.fixture(scope="module")
def jack() -> Iterator[JackServer]:
    yield from _jack_server()


@pytest.fixture(scope="module")
def mido_jack(jack):
    mp = pytest.MonkeyPatch()
    jack.activate(mp)  # for this process's mido/rtmidi clients
    import mido

    yield mido, mido.Backend("mido.backends.rtmidi/UNIX_JACK")
    mp.undo()


@pytest.fixture(scope="module")
def daemon(jack, mido_jack, tmp_path_factory) -> Iterator[RunningDaemon]:
    mapping = tmp_path_factory.mktemp("midi") / "midi.yaml"
    mapping.write_text(MAPPING)
    # The daemon inherits JACK_DEFAULT_SERVER from this process (set by mido_jack).
    d = RunningDaemon("--midi-virtual", "--midi-api", "jack", "--midi", "fakectl", "--mapping", str(mapping))
    yield d
    d.stop()


def midi_port(d: RunningDaemon, name: str) -> dict:
    return next(p for p in d.health()["midi"]["ports"] if p["name"] == name)


def close(a: float, b: float, tol: float = 1e-3) -> bool:
    return abs(a - b) <= tol


def test_controller_patched_to_the_virtual_port_moves_parameters(daemon, jack, mido_jack):
    mido, backend = mido_jack
    assert "oscgan:oscgan" in jack.ports()
    port = midi_port(daemon, "oscgan")
    assert port["virtual"] and port["status"] == "open" and port["ports"] == ["oscgan:oscgan"]
    seed_before = daemon.value("/oscgan/latent/seed")[0]

    def cc(channel: int, control: int, value: int):
        return mido.Message("control_change", channel=channel - 1, control=control, value=value)

    def param(address: str, value: float):
        return lambda: close(daemon.value(address)[0], value)

    with backend.open_output("ctl", client_name="testctl", virtual=True) as out:
        jack.connect("testctl:ctl", "oscgan:oscgan")  # as in a patchbay (qjackctl, Carla)
        send_until(out, [cc(1, 16, 127)], param("/oscgan/mix/coarse", 1.0), what="mix.coarse = 1")
        send_until(out, [cc(1, 16, 0)], param("/oscgan/mix/coarse", 0.0), what="mix.coarse = 0")
        pad = [mido.Message("note_on", channel=9, note=36, velocity=100), mido.Message("note_off", channel=9, note=36)]
        send_until(out, pad, lambda: daemon.value("/oscgan/latent/seed")[0] > seed_before, what="next seed")
        send_until(out, [mido.Message("pitchwheel", channel=0, pitch=8191)], param("/oscgan/truncation/psi", 2.0),
                   what="psi = 2")
        nrpn = [cc(2, 99, 2), cc(2, 98, 44), cc(2, 6, 64), cc(2, 38, 0)]  # NRPN 2 * 128 + 44 = 300
        send_until(out, nrpn, param("/oscgan/mix/fine", 8192 / 16383), what="mix.fine by NRPN")
    health = daemon.health()
    assert health["midi"]["messages"] >= 9 and health["midi"]["errors"] == 0
    assert health["midi"]["api"] == "UNIX_JACK"


def test_named_controller_unplugged_and_plugged_back(daemon, mido_jack):
    mido, backend = mido_jack
    assert midi_port(daemon, "fakectl")["status"] == "waiting"

    def fader(value: int):
        return [mido.Message("control_change", channel=0, control=16, value=value)]

    def coarse(value: float):
        return lambda: close(daemon.value("/oscgan/mix/coarse")[0], value)

    with backend.open_output("fakectl", client_name="fakectl", virtual=True) as out:
        daemon.wait_for(lambda: midi_port(daemon, "fakectl")["status"] == "open", what="fakectl opened")
        send_until(out, fader(64), coarse(64 / 127), what="CC from fakectl")
    # unplugged: the daemon notices within its 1.5 s port check
    daemon.wait_for(lambda: midi_port(daemon, "fakectl")["status"] == "lost", what="fakectl lost")
    with backend.open_output("fakectl", client_name="fakectl", virtual=True) as out:
        daemon.wait_for(lambda: midi_port(daemon, "fakectl")["status"] == "open", what="fakectl reopened")
        send_until(out, fader(32), coarse(32 / 127), what="CC after re-plug")
    assert midi_port(daemon, "fakectl")["reopened"] == 1
    assert daemon.proc.poll() is None


def test_jack_server_restart_under_the_daemon(daemon, jack, mido_jack):
    # Runs last: it replaces the module's server. No client of this process may be open across
    # the restart (libjack crashes closing a client whose server died) -- the daemon's were.
    mido, backend = mido_jack
    jack.proc.kill()  # a crash, not a clean shutdown
    jack.proc.wait(10)
    daemon.wait_for(lambda: midi_port(daemon, "oscgan")["status"] != "open", timeout=10,
                    what="virtual port reported down")
    jack.start()
    daemon.wait_for(lambda: midi_port(daemon, "oscgan")["status"] == "open", timeout=10,
                    what="virtual port made again")
    assert "oscgan:oscgan" in jack.ports()
    with backend.open_output("oscgan:oscgan") as out:
        send_until(out, [mido.Message("control_change", channel=0, control=16, value=127)],
                   lambda: close(daemon.value("/oscgan/mix/coarse")[0], 1.0), what="CC after restart")
    assert daemon.proc.poll() is None
    assert daemon.health()["ok"]


def test_missing_midi_packages_are_a_clear_error(tmp_path):
    # The daemon checks before loading the model; a python that cannot import rtmidi stands in
    # for an install without the [midi] extra.
    shim = tmp_path / "rtmidi.py"
    shim.write_text("raise ImportError('No module named rtmidi (test shim)')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "oscgan", "serve", "--model", str(MODEL), "--device", "cpu",
                           "--midi-virtual"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'oscgan[midi]'" in proc.stderr
    assert "Traceback" not in proc.stderr
