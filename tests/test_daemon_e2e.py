"""End to end: the real daemon as a subprocess on loopback, driven by real OSC, observed over HTTP and OSC out."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from oscgan.signals.osc_protocol import iter_messages, parse_packet

MODEL = Path(__file__).parent / "fixtures" / "stylegan" / "sg2_64.pkl"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class RunningDaemon:
    """``python -m oscgan serve`` in a subprocess, stopped by its PID."""

    def __init__(self, *extra: str, model: str = str(MODEL)) -> None:
        self.http = free_port()
        self.osc = free_port(socket.SOCK_DGRAM)
        self.out_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out_sock.bind(("127.0.0.1", 0))
        self.out_sock.settimeout(0.2)
        out_port = self.out_sock.getsockname()[1]
        cmd = [sys.executable, "-m", "oscgan", "serve", "--model", model, "--device", "cpu",
               "--fps", "30", "--osc-port", str(self.osc), "--http-port", str(self.http),
               "--osc-out", f"127.0.0.1:{out_port}", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.base = f"http://127.0.0.1:{self.http}"
        self.client = SimpleUDPClient("127.0.0.1", self.osc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{self.proc.stdout.read()}")
            try:
                if json.loads(get(self.base + "/health", 1))["frames"] > 0:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("daemon did not serve a frame within 60 s")

    def health(self) -> dict:
        return json.loads(get(self.base + "/health"))

    def frame(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(get(self.base + "/frame.png"))))

    def value(self, address: str) -> list:
        return json.loads(get(f"{self.base}{address}?VALUE"))["VALUE"]

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result is not None and result is not False:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def osc_out_messages(self, seconds: float = 1.0) -> list[bytes]:
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.out_sock.recv(65536))
            except socket.timeout:
                pass
        return got

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out_sock.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def daemon():
    d = RunningDaemon()
    yield d
    d.stop()


def test_osc_changes_the_frame_and_oscquery_value(daemon):
    before = daemon.frame()
    daemon.client.send_message("/oscgan/latent/seed", 1234)
    daemon.wait_for(lambda: daemon.value("/oscgan/latent/seed") == [1234], what="seed in OSCQuery")

    def changed():
        f = daemon.frame()
        return f if not np.array_equal(f, before) else None

    after = daemon.wait_for(changed, what="a new picture")
    assert after.shape == (64, 64, 4)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 2


def test_out_of_range_is_clamped_and_counted(daemon):
    clamped = daemon.health()["osc"]["clamped"]
    daemon.client.send_message("/oscgan/truncation/psi", 99.0)
    daemon.wait_for(lambda: daemon.value("/oscgan/truncation/psi") == [2.0], what="clamped psi")
    assert daemon.health()["osc"]["clamped"] == clamped + 1


def test_bundle_applies_together(daemon):
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder

    b = OscBundleBuilder(IMMEDIATELY)
    for addr, val in (("/oscgan/mix/seed", 77), ("/oscgan/mix/fine", 1.0), ("/oscgan/const/corruption", 0.5)):
        m = OscMessageBuilder(addr)
        m.add_arg(val)
        b.add_content(m.build())
    daemon.client.send(b.build())
    daemon.wait_for(lambda: daemon.value("/oscgan/const/corruption") == [0.5], what="bundle applied")
    assert daemon.value("/oscgan/mix/seed") == [77] and daemon.value("/oscgan/mix/fine") == [1.0]


def test_osc_out_echoes_changes_and_sends_status(daemon):
    daemon.osc_out_messages(0.3)  # drain
    daemon.client.send_message("/oscgan/noise/strength", 2.5)
    msgs = {m.address: m.args for data in daemon.osc_out_messages(1.6) for m in iter_messages(parse_packet(data))}
    assert msgs["/oscgan/noise/strength"] == (2.5,)
    assert "/oscgan/status/fps" in msgs and "/oscgan/status/errors" in msgs


def test_fuzz_100k_packets_daemon_keeps_rendering(daemon):
    """100,000 random and mutated datagrams at the OSC port: counted, never fatal."""
    rng = random.Random(1)
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder

    def message(addr: str, *args: object) -> bytes:
        m = OscMessageBuilder(addr)
        for a in args:
            m.add_arg(a)
        return m.build().dgram

    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(OscMessageBuilder("/oscgan/mix/coarse").build())
    valid = [message("/oscgan/truncation/psi", 0.5), message("/oscgan/latent/z", 0.1, -0.2, 0.3),
             message("/oscgan/*/seed", 3), bundle.build().dgram]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    before = daemon.health()
    base = before["osc"]["received"]
    n, batch = 100_000, 1000
    packets = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            data = rng.randbytes(rng.randint(0, 200))
        else:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                if op < 0.4 and data:
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
                elif op < 0.7:
                    data = data[: rng.randrange(len(data) + 1)]
                else:
                    data += rng.randbytes(rng.randint(1, 16))
            data = bytes(data)
        packets.append(data)
    for start in range(0, n, batch):
        for data in packets[start:start + batch]:
            sock.sendto(data, ("127.0.0.1", daemon.osc))
        # Flow control: let the daemon drain before the next batch, or loopback UDP drops
        # datagrams whenever its receiver thread is briefly descheduled.
        sent = start + batch
        daemon.wait_for(lambda: daemon.health()["osc"]["received"] >= base + sent - batch // 2 or None,
                        timeout=30, what=f"daemon to read packets up to {sent}")
    sock.close()
    frames = before["frames"]
    after = daemon.wait_for(lambda: (h := daemon.health())["osc"]["received"] >= base + n * 0.99 and h,
                            timeout=30, what="fuzz packets counted")
    assert after["ok"]
    osc = after["osc"]
    assert osc["malformed"] > before["osc"]["malformed"] + 10_000
    assert osc["received"] == osc["rejected_sender"] + osc["malformed"] + osc["accepted"]
    assert osc["errors"] == 0
    daemon.wait_for(lambda: daemon.health()["frames"] > frames + 10, what="frames after fuzz")
    daemon.client.send_message("/oscgan/latent/seed", 4321)
    daemon.wait_for(lambda: daemon.value("/oscgan/latent/seed") == [4321], what="valid message after fuzz")


def test_sigterm_shuts_down_cleanly():
    d = RunningDaemon()
    assert d.stop() == 0
    out = d.proc.stdout.read()
    assert "shutting down" in out
    assert "Traceback" not in out


def test_bad_model_fails_with_a_clear_message(tmp_path):
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"\x80\x04not a pickle at all")
    r = subprocess.run([sys.executable, "-m", "oscgan", "serve", "--model", str(bad), "--http-port", "0",
                        "--osc-port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "broken.pkl" in r.stderr and "Traceback" not in r.stderr
