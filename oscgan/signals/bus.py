"""Thread-safe latest-value table and bounded change log for external signals (name -> value, t)."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import NamedTuple


class Signal(NamedTuple):
    """One written value: ``seq`` orders all writes on the bus, ``t`` is when it was observed."""

    name: str
    value: object
    t: float
    seq: int


class Changes(NamedTuple):
    """Result of ``SignalBus.changes_since``.

    ``complete`` is False when the log no longer holds everything after the asked sequence number
    (the reader fell too far behind); it should then re-read ``read_all()``.
    """

    signals: tuple[Signal, ...]
    seq: int
    complete: bool


class SignalBus:
    """Inputs write the latest value of each named signal here; the render loop reads once per frame.

    Writers never block on readers beyond one short lock. Each write gets a sequence number, so
    a reader can ask for ``changes_since(seq)`` (triggers and every intermediate value) or just
    take ``read_all()`` (latest values). Signal names follow the contract in
    ``oscgan.signals.names`` (``midi/cc/<ch>/<cc>``, ``osc/<address>``, ``analyzer/<signal>``, ...).
    """

    def __init__(self, log_size: int = 4096) -> None:
        if log_size < 1:
            raise ValueError(f"log_size must be >= 1, got {log_size}")
        self._lock = threading.Lock()
        self._latest: dict[str, Signal] = {}
        self._log: collections.deque[Signal] = collections.deque(maxlen=log_size)
        self._seq = 0

    @property
    def seq(self) -> int:
        """Sequence number of the latest write (0 before any)."""
        return self._seq

    def write(self, name: str, value: object, t: float | None = None) -> int:
        """Record a value (``t`` defaults to ``time.perf_counter()``); returns its sequence number."""
        if t is None:
            t = time.perf_counter()
        with self._lock:
            self._seq += 1
            signal = Signal(name, value, t, self._seq)
            self._latest[name] = signal
            self._log.append(signal)
            return self._seq

    def read(self, name: str, default: object = None) -> object:
        """Latest value of one signal, or ``default`` when it was never written."""
        signal = self._latest.get(name)
        return default if signal is None else signal.value

    def read_all(self) -> dict[str, tuple[object, float]]:
        """Latest ``(value, t)`` of every signal written so far."""
        with self._lock:
            return {name: (s.value, s.t) for name, s in self._latest.items()}

    def changes_since(self, seq: int) -> Changes:
        """Writes with a sequence number above ``seq``, oldest first, and the newest number."""
        with self._lock:
            latest = self._seq
            if seq >= latest:
                return Changes((), latest, True)
            oldest = self._log[0].seq if self._log else latest + 1
            # Sequence numbers are consecutive, so the slice start is arithmetic, not a search.
            start = max(seq + 1 - oldest, 0)
            signals = tuple(itertools.islice(self._log, start, None))
            return Changes(signals, latest, seq + 1 >= oldest)
