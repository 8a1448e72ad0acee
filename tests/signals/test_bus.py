"""Tests for the signal bus: latest values, ordered change log, overflow and concurrent writers."""

from __future__ import annotations

import threading

import pytest

from oscgan.signals.bus import Changes, Signal, SignalBus


def test_latest_values_and_times() -> None:
    bus = SignalBus()
    assert bus.seq == 0 and bus.read_all() == {} and bus.read("x", 7) == 7
    assert bus.write("/td/fader1", 0.25, t=1.0) == 1
    bus.write("/td/fader1", 0.5, t=2.0)
    bus.write("midi/cc/7", 64)  # t defaults to now
    all_values = bus.read_all()
    assert all_values["/td/fader1"] == (0.5, 2.0)
    assert all_values["midi/cc/7"][0] == 64
    assert bus.read("/td/fader1") == 0.5


def test_changes_since_in_order() -> None:
    bus = SignalBus()
    for i in range(5):
        bus.write("a" if i % 2 else "b", i, t=float(i))
    changes = bus.changes_since(2)
    assert changes == Changes((Signal("b", 2, 2.0, 3), Signal("a", 3, 3.0, 4), Signal("b", 4, 4.0, 5)), 5, True)
    assert bus.changes_since(5) == Changes((), 5, True)
    assert bus.changes_since(0).signals[0].seq == 1


def test_overflow_is_reported() -> None:
    bus = SignalBus(log_size=3)
    for i in range(10):
        bus.write("x", i, t=0.0)
    changes = bus.changes_since(2)
    assert not changes.complete
    assert [s.value for s in changes.signals] == [7, 8, 9]
    assert bus.changes_since(7).complete and not bus.changes_since(6).complete
    with pytest.raises(ValueError):
        SignalBus(log_size=0)


def test_concurrent_writers_get_unique_ordered_sequence_numbers() -> None:
    bus = SignalBus(log_size=100_000)

    def writer(k: int) -> None:
        for i in range(5000):
            bus.write(f"w{k}", i)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    changes = bus.changes_since(0)
    assert [s.seq for s in changes.signals] == list(range(1, 20001))
    assert {name: v for name, (v, _) in bus.read_all().items()} == {f"w{k}": 4999 for k in range(4)}
