"""A private JACK server for MIDI tests: `jackd -d dummy` under its own server name, stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REQUIRE_ENV = "OSCGAN_REQUIRE_SYSTEM_DEPS"


def _missing(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}; {REQUIRE_ENV} is set, so this must not skip")
    pytest.skip(reason)


def require_jack() -> None:
    """Skip (or fail under OSCGAN_REQUIRE_SYSTEM_DEPS) without jackd, its tools, mido and python-rtmidi."""
    tools = [t for t in ("jackd", "jack_wait", "jack_connect", "jack_lsp") if shutil.which(t) is None]
    if tools:
        _missing(f"needs JACK ({', '.join(tools)} not found; apt-get install -y jackd2; make system-deps)")
    for module in ("mido", "rtmidi"):
        try:
            __import__(module)
        except ImportError:
            _missing(f"needs the MIDI extra ({module} missing; pip install -e '.[midi]')")


class JackServer:
    """``jackd --no-realtime -d dummy -r 48000 -p 256`` as server ``name``.

    The name goes to every JACK client through ``JACK_DEFAULT_SERVER`` (``env`` for
    subprocesses; ``activate()`` sets it in this process for in-process rtmidi/mido clients), so
    tests never touch a JACK server someone else runs. ``JACK_NO_START_SERVER`` stops libjack
    from spawning a server of its own when ours is not up.
    """

    def __init__(self) -> None:
        self.name = f"oscgan-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}
        self._log = tempfile.NamedTemporaryFile(prefix="jackd-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> JackServer:
        self.proc = subprocess.Popen(
            ["jackd", "--no-realtime", "--name", self.name, "-d", "dummy", "-r", "48000", "-p", "256"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}:\n{self.log()}")
            check = subprocess.run(["jack_wait", "--check", "--server", self.name], env=self.env,
                                   capture_output=True, text=True, timeout=10)
            if "running" in check.stdout and "not" not in check.stdout:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd did not come up within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ports(self) -> list[str]:
        out = subprocess.run(["jack_lsp"], env=self.env, capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()

    def connect(self, source: str, destination: str) -> None:
        subprocess.run(["jack_connect", source, destination], env=self.env, check=True,
                       capture_output=True, timeout=10)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", self.name)
        monkeypatch.setenv("JACK_NO_START_SERVER", "1")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        self.log_path.unlink(missing_ok=True)
        # Semaphores and segments a killed server or crashed client leaves in /dev/shm carry the
        # server's name, which is unique to this run.
        for leftover in Path("/dev/shm").glob(f"*{self.name}*"):
            leftover.unlink(missing_ok=True)


def jack_server() -> Iterator[JackServer]:
    """Body of a fixture: a started private server, stopped (by its PID) afterwards."""
    require_jack()
    server = JackServer().start()
    try:
        yield server
    finally:
        server.stop()


def send_until(out: object, messages: list, predicate: Callable[[], object], timeout: float = 10.0,
               resend: float = 0.5, what: str = "condition") -> object:
    """Send ``messages`` on the mido port ``out`` until ``predicate()`` is truthy; its value.

    A dummy-driver JACK server without real-time scheduling drops the odd MIDI event when a
    client misses its cycle on a busy machine (we measured about one in a few hundred). A hand
    on a fader sends a stream of messages and never notices; a test sends one, so it repeats
    them every ``resend`` seconds until the effect shows.
    """
    deadline = time.monotonic() + timeout
    while True:
        for msg in messages:
            out.send(msg)  # type: ignore[attr-defined]
        again = min(deadline, time.monotonic() + resend)
        while time.monotonic() < again:
            value = predicate()
            if value:
                return value
            time.sleep(0.01)
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
