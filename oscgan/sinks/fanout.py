"""Latest-wins fan-out: every consumer gets its own one-frame slot, so none can stall the render."""

from __future__ import annotations

import threading

from oscgan.render.frames import Frame, LatestFrameSlot


class FrameFanout:
    """Hands each published frame to every registered consumer's slot (never blocks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, LatestFrameSlot] = {}
        self.latest = LatestFrameSlot()  # what /frame.png and late joiners read

    def add_consumer(self, name: str) -> LatestFrameSlot:
        with self._lock:
            if name in self._slots:
                raise ValueError(f"a frame consumer named {name!r} already exists")
            slot = LatestFrameSlot()
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
