"""Latest-wins fan-out: every consumer gets its own one-frame slot, so none can stall the render."""

from __future__ import annotations

import threading
from typing import Any

from oscgan.render.frames import Frame, LatestFrameSlot


class FrameFanout:
    """Hands each published frame to every registered consumer's slot (never blocks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, Any] = {}
        self.latest = LatestFrameSlot()  # what /frame.png and late joiners read

    def add_consumer(self, name: str, consumer: Any = None) -> Any:
        """Register a mailbox: a new LatestFrameSlot by default, or ``consumer`` — any object
        whose ``put(frame)`` never blocks and that counts ``dropped`` (e.g. sinks.base.FrameQueue
        for a recorder that needs every frame)."""
        with self._lock:
            if name in self._slots:
                raise ValueError(f"a frame consumer named {name!r} already exists")
            slot = LatestFrameSlot() if consumer is None else consumer
            self._slots[name] = slot
            return slot

    def remove_consumer(self, name: str) -> None:
        with self._lock:
            self._slots.pop(name, None)

    def publish(self, frame: Frame) -> None:
        self.latest.put(frame)
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.put(frame)

    def dropped(self) -> dict[str, int]:
        """Frames each consumer missed because a newer one replaced them first."""
        with self._lock:
            return {name: slot.dropped for name, slot in self._slots.items()}
