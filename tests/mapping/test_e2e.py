"""End to end: `oscgan serve --mapping FILE` as a subprocess; OSC to /td/fader1 moves truncation.psi."""

from __future__ import annotations

import time

import pytest

from oscgan.signals.osc_protocol import iter_messages, parse_packet
from tests.test_daemon_e2e import RunningDaemon

from .test_schema import ISSUE_EXAMPLE


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("show")
    path = folder / "show.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    d = RunningDaemon("--mapping", str(path))
    d.mapping_path = path  # type: ignore[attr-defined]
    yield d
    d.stop()


def psi(d: RunningDaemon) -> float:
    return d.value("/oscgan/truncation/psi")[0]


def test_osc_fader_moves_psi_through_remap_and_one_euro(daemon) -> None:
    daemon.client.send_message("/td/fader1", 0.5)
    # The first value passes the one-euro filter as is: 0.5 remapped to 0.2..1.2 is 0.7.
    daemon.wait_for(lambda: abs(psi(daemon) - 0.7) < 1e-6, what="psi from the first fader value")
    daemon.client.send_message("/td/fader1", 1.0)
    seen = [psi(daemon)]
    deadline = time.monotonic() + 15
    while seen[-1] < 1.15 and time.monotonic() < deadline:
        time.sleep(0.1)
        seen.append(psi(daemon))
    assert seen[-1] >= 1.15, seen
    assert any(0.71 < v < 1.15 for v in seen), "one-euro smoothing should glide, not jump"
    assert seen == sorted(seen)
    assert daemon.health()["osc"]["handled"] >= 2  # the messages went to the mapping hook


def test_lfo_moves_rotate_and_errors_are_reported(daemon) -> None:
    a = daemon.value("/oscgan/affine/rotate")[0]
    daemon.wait_for(lambda: daemon.value("/oscgan/affine/rotate")[0] != a, what="the LFO moving")
    assert -30 <= daemon.value("/oscgan/affine/rotate")[0] <= 30
    health = daemon.health()
    assert health["mapping_error"] is None and health["mappings"]["count"] == 3

    path = daemon.mapping_path
    daemon.osc_out_messages(0.2)  # drain
    path.write_text(path.read_text().replace("channel: 1", "chanel: 1"))
    err = daemon.wait_for(lambda: daemon.health()["mapping_error"], what="mapping_error in /health")
    assert f"{path}:7:" in err and "did you mean 'channel'" in err
    msgs = [m for data in daemon.osc_out_messages(1.5) for m in iter_messages(parse_packet(data))]
    sent = [m.args[0] for m in msgs if m.address == "/oscgan/status/mapping_error"]
    assert sent and sent[0] == err
    # The old mappings keep running.
    daemon.client.send_message("/td/fader1", 0.0)
    daemon.wait_for(lambda: psi(daemon) < 1.0, what="psi following the fader after the bad edit")

    path.write_text(path.read_text().replace("chanel: 1", "channel: 1"))
    daemon.wait_for(lambda: daemon.health()["mapping_error"] is None, what="the error to clear")


def test_serve_refuses_a_broken_mapping_file_at_start(tmp_path, capsys) -> None:
    from oscgan.cli import main

    from tests.test_daemon_e2e import MODEL

    bad = tmp_path / "bad.yaml"
    bad.write_text("mappings:\n  - source: {type: midi_cc, chanel: 1, cc: 3}\n    target: mix.fine\n")
    code = main(["serve", "--model", str(MODEL), "--device", "cpu", "--osc-port", "0", "--http-port", "0",
                 "--mapping", str(bad)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: mappings.0.source.chanel" in err and "did you mean 'channel'" in err
