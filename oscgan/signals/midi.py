"""MIDI input ports (python-rtmidi): open by name or as a virtual port, survive re-plugging, write the bus."""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from oscgan.signals.bus import SignalBus
from oscgan.signals.midi_protocol import DecoderState, MidiParseError, decode, flush, parse_message

__all__ = ["MidiError", "MidiInput", "MidiParseError", "DecoderState", "available_apis", "check_available", "decode",
           "flush", "list_input_ports", "normalize_api", "parse_message"]

log = logging.getLogger(__name__)

INSTALL_HINT = "install the MIDI extra: pip install 'oscgan[midi]' (mido and python-rtmidi)"
DEFAULT_VIRTUAL_NAME = "oscgan"
READER_CLIENT = "oscgan-in"  # JACK/ALSA client name of the ports that read named inputs
POLL_INTERVAL = 0.001  # seconds a reader sleeps when its queue is empty, while a controller is played
IDLE_POLL_INTERVAL = 0.004  # ... and after IDLE_AFTER seconds without a message (saves CPU)
IDLE_AFTER = 2.0
WATCH_INTERVAL = 1.5  # seconds between port-list checks (unplug / re-plug)
QUEUE_SIZE = 4096  # messages rtmidi buffers per port between two polls

_reader_ids = itertools.count(1)

# rtmidi's API constants without the API_ prefix (also the names mido's "rtmidi/<API>" backend uses).
_API_ALIASES = {
    "jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "core": "MACOSX_CORE", "coremidi": "MACOSX_CORE",
    "macos": "MACOSX_CORE", "winmm": "WINDOWS_MM", "windows": "WINDOWS_MM", "mm": "WINDOWS_MM",
    "web": "WEB_MIDI", "dummy": "RTMIDI_DUMMY",
}
_API_NAMES = frozenset(_API_ALIASES.values())


class MidiError(OSError):
    """MIDI cannot run as asked: the packages are missing, the backend is unknown or not compiled in."""


def normalize_api(name: str | None) -> str | None:
    """'jack', 'UNIX_JACK' or 'mido.backends.rtmidi/UNIX_JACK' -> 'UNIX_JACK'; None stays None.

    ValueError names the choices; pure, so the config can validate without the MIDI packages.
    """
    if name is None or not name.strip():
        return None
    text = name.strip()
    if "/" in text:  # mido's backend string: module/API
        text = text.rsplit("/", 1)[1]
    key = text.lower()
    if key in _API_ALIASES:
        return _API_ALIASES[key]
    if text.upper().removeprefix("API_") in _API_NAMES:
        return text.upper().removeprefix("API_")
    raise ValueError(f"unknown MIDI API {name!r}; use one of jack, alsa, coremidi, winmm "
                     f"(or {', '.join(sorted(_API_NAMES))})")


def _rtmidi() -> ModuleType:
    try:
        import rtmidi
    except ImportError as e:
        raise MidiError(f"MIDI was requested but python-rtmidi is not installed ({e}); {INSTALL_HINT}") from None
    return rtmidi


def available_apis() -> list[str]:
    """The rtmidi backends compiled into the installed python-rtmidi, e.g. ['LINUX_ALSA', 'UNIX_JACK']."""
    rtmidi = _rtmidi()
    names = {getattr(rtmidi, f"API_{n}"): n for n in _API_NAMES if hasattr(rtmidi, f"API_{n}")}
    return [names[a] for a in rtmidi.get_compiled_api() if a in names]


def _api_id(rtmidi: ModuleType, api: str | None) -> int:
    if api is None:
        return rtmidi.API_UNSPECIFIED
    compiled = available_apis()
    if api not in compiled:
        raise MidiError(f"MIDI API {api} is not compiled into this python-rtmidi "
                        f"(available: {', '.join(compiled) or 'none'})")
    return getattr(rtmidi, f"API_{api}")


def _api_name(rtmidi: ModuleType, api_id: int) -> str:
    for n in _API_NAMES:
        if getattr(rtmidi, f"API_{n}", None) == api_id:
            return n
    return str(api_id)


def _resolve_api(api: str | None) -> str:
    """The backend to use: ``api`` when given, else rtmidi's default, else the first that starts.

    rtmidi's default on Linux is ALSA, which fails outright where there is no sequencer device
    (containers, JACK-only machines); trying the other compiled backends then beats failing.
    """
    rtmidi = _rtmidi()
    api = normalize_api(api)
    candidates = [api] if api else [None, *[a for a in available_apis() if a not in ("RTMIDI_DUMMY", "WEB_MIDI")]]
    errors = []
    for candidate in candidates:
        try:
            probe = rtmidi.MidiIn(rtapi=_api_id(rtmidi, candidate), name="oscgan-probe")
        except MidiError:
            raise
        except Exception as e:  # noqa: BLE001 - rtmidi raises its own SystemError subclasses
            errors.append(f"{candidate or 'default'}: {e}")
            continue
        try:
            return _api_name(rtmidi, probe.get_current_api())
        finally:
            probe.delete()
    if api is None:
        hint = " (no ALSA sequencer here? start a JACK server and use --midi-api jack)"
    elif api == "UNIX_JACK":
        hint = " (start the JACK server first: qjackctl, or jackd -d alsa; JACK_DEFAULT_SERVER names a non-default one)"
    else:
        hint = ""
    raise MidiError(f"cannot start MIDI backend {api or '(default)'}: {'; '.join(errors)}{hint}")


def check_available(api: str | None = None) -> str:
    """The backend MIDI would use; MidiError (with the fix) when the packages or the backend are missing."""
    return _resolve_api(api)


def list_input_ports(api: str | None = None) -> tuple[str, list[str]]:
    """(backend used, names of the MIDI input ports it sees), for ``oscgan midi list``."""
    rtmidi = _rtmidi()
    resolved = _resolve_api(api)
    return resolved, _list_ports(rtmidi, resolved, output=False)


def _list_ports(rtmidi: ModuleType, api: str, output: bool = False) -> list[str]:
    # A fresh client per listing: a long-lived one goes stale when the JACK server restarts.
    cls = rtmidi.MidiOut if output else rtmidi.MidiIn
    client = cls(rtapi=getattr(rtmidi, f"API_{api}"), name="oscgan-list")
    try:
        return list(client.get_ports())
    finally:
        client.delete()


def _is_virtual_port(name: str, port: str) -> bool:
    """Whether ``port`` (as listed) is a virtual port made under ``name``: "oscgan" (CoreMIDI),
    "oscgan:oscgan" or "oscgan-01:oscgan" (JACK; it numbers clashing clients), "oscgan:oscgan 128:0" (ALSA)."""
    n = re.escape(name)
    return port == name or re.match(rf"{n}(-\d+)?:{n}(\s|$)", port) is not None


# -- one open port ---------------------------------------------------------------------------------


def _abandon(midi_in: Any) -> None:
    """Never close or free an rtmidi object whose MIDI server died under it.

    libjack frees a client's state when its server goes away; closing the port or deleting the
    object afterwards (its destructor does both) then segfaults the whole process. One extra
    reference that is never dropped keeps the destructor from ever running; the leak is a few
    kilobytes per server restart.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(midi_in))


class _Reader:
    """One open rtmidi input and the thread that drains it into the bus.

    rtmidi can call back into Python from the driver thread, but for JACK that is the real-time
    process thread, which would then wait for the GIL whenever the render thread holds it and
    cause xruns for every client in the JACK graph. So rtmidi only queues (lock-free) and this
    thread polls the queue: every millisecond while messages come, every 4 ms after two idle
    seconds (about 1% of a core per port). The clock tempo is measured on the driver's delta
    times, so neither the polling nor a GIL wait shows up as jitter.

    ``own`` tells this reader's own port in a listing of destinations (where JACK and ALSA show
    it); once it was seen there, its absence means the MIDI server died under it.
    """

    def __init__(self, midi_in: Any, port: str, own: Callable[[str], bool], bus: SignalBus,
                 slot: _Slot, poll: float) -> None:
        self.midi_in, self.port, self.own, self.bus, self.slot, self.poll = midi_in, port, own, bus, slot, poll
        self.listed_as: str | None = None  # this reader's own port as listed, once seen
        self.state = DecoderState()
        self.failed: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"oscgan-midi {port}", daemon=True)

    def start(self) -> _Reader:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def note_listing(self, destinations: Sequence[str]) -> None:
        if self.listed_as is None:
            self.listed_as = next((d for d in destinations if self.own(d)), None)

    def orphaned(self, destinations: Sequence[str] | None) -> bool:
        """Whether the server died under this port (``destinations`` None: it cannot be listed)."""
        if destinations is None:
            return True
        return self.listed_as is not None and self.listed_as not in destinations

    def close(self, orphaned: bool = False) -> None:
        """Stop reading and release the port; ``orphaned`` ports are only abandoned (see ``_abandon``)."""
        self._stop.set()
        self._thread.join(2)
        if orphaned or self._thread.is_alive():
            # A reader still inside get_message() must not have its object deleted either.
            if self._thread.is_alive():
                log.error("MIDI reader for %r did not stop; leaving its port open", self.port)
            _abandon(self.midi_in)
            return
        try:
            self.midi_in.close_port()
        except Exception:  # noqa: BLE001 - the device may be gone already
            log.debug("closing MIDI port %r failed", self.port, exc_info=True)
        self.midi_in.delete()

    def _run(self) -> None:
        get, bus, state, slot = self.midi_in.get_message, self.bus, self.state, self.slot
        stop, poll, sleep, clock = self._stop, self.poll, time.sleep, time.perf_counter
        idle_poll = max(poll, IDLE_POLL_INTERVAL)
        t_driver = 0.0  # the sum of rtmidi's delta times: when the driver saw each message
        last = -IDLE_AFTER
        try:
            while not stop.is_set():
                item = get()
                if item is None:
                    if state.pending is not None:  # the queue ran dry: no data LSB is coming now
                        for name, value in flush(state):
                            bus.write(name, value)
                    # time.sleep, not stop.wait: a timed Event wait costs twice the CPU per poll.
                    sleep(poll if clock() - last < IDLE_AFTER else idle_poll)
                    continue
                data, delta = item
                now = last = clock()
                t_driver += max(0.0, delta)
                slot.messages += 1
                errors = state.errors
                # The clock estimate runs on driver time: free of our polling and GIL delays.
                for name, value in decode(data, state, t_driver):
                    bus.write(name, value, now)
                if state.errors != errors:
                    slot.errors += 1
                    slot.warn(f"MIDI input {self.port!r}: dropped a malformed message: {state.last_error}")
        except Exception as e:  # noqa: BLE001 - a reader must end logged, never kill the process
            self.failed = f"{type(e).__name__}: {e}"
            log.exception("MIDI reader for %r failed; the watcher will reopen it", self.port)


# -- what was asked for: a name pattern or the virtual port ----------------------------------------


@dataclass(frozen=True)
class MidiPortStatus:
    """One requested input, as /health reports it.

    ``status``: "open" (receiving from ``ports``), "waiting" (no port matches yet), "lost" (was
    open, its device disappeared; reopened when it comes back) or "error" (cannot open; retried).
    """

    name: str
    virtual: bool
    status: str
    ports: tuple[str, ...]
    messages: int
    errors: int
    reopened: int
    last_error: str | None


class _Slot:
    def __init__(self, name: str, virtual: bool) -> None:
        self.name, self.virtual = name, virtual
        self.readers: dict[str, _Reader] = {}
        self.seen: set[str] = set()  # port names opened at some point (to log "reappeared")
        self.messages = 0
        self.errors = 0
        self.reopened = 0
        self.last_error: str | None = None
        self.lost = False
        self._last_warning: tuple[str, float] | None = None

    def warn(self, message: str, interval: float = 10.0) -> None:
        """Log a warning, but the same text at most every ``interval`` seconds (no log floods)."""
        now = time.monotonic()
        if self._last_warning is None or self._last_warning[0] != message or now - self._last_warning[1] > interval:
            log.warning("%s", message)
            self._last_warning = (message, now)

    def matches(self, port: str) -> bool:
        return self.name.lower() in port.lower()

    def status(self) -> MidiPortStatus:
        readers = tuple(self.readers.items())  # one step under the GIL: safe while the watcher edits
        if self.virtual:
            ports = tuple(r.listed_as or self.name for _, r in readers)
        else:
            ports = tuple(port for port, _ in readers)
        state = "open" if ports else "lost" if self.lost else "error" if self.last_error else "waiting"
        return MidiPortStatus(self.name, self.virtual, state, ports, self.messages, self.errors,
                              self.reopened, self.last_error)


class MidiInput:
    """MIDI inputs writing to a ``SignalBus``: named ports (by substring) and an optional virtual port.

    ``inputs`` are case-insensitive substrings of port names ("nanoKONTROL" opens
    "nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0"); each opens every port it matches, and a port
    that is not there yet, or is unplugged later, is opened when it (re)appears: a watcher
    thread checks the port list every ``watch_interval`` seconds. ``virtual`` creates a port
    named ``virtual_name`` that other programs (a DAW, TouchDesigner) can send to. ``api``
    picks the rtmidi backend ("jack", "alsa", "coremidi", "winmm"; default: rtmidi's default).

    Each port is read on its own thread, which only decodes and writes the bus (see
    ``midi_protocol.decode`` for the names); nothing here touches torch or waits on the renderer.
    """

    def __init__(self, bus: SignalBus, inputs: Iterable[str] = (), virtual: bool = False,
                 virtual_name: str = DEFAULT_VIRTUAL_NAME, api: str | None = None,
                 watch_interval: float = WATCH_INTERVAL, poll_interval: float = POLL_INTERVAL) -> None:
        self.bus = bus
        self.requested_api = normalize_api(api)
        self.api: str | None = None
        self.watch_interval, self.poll_interval = watch_interval, poll_interval
        patterns = list(dict.fromkeys(p for p in inputs))
        if any(not p.strip() for p in patterns) and len(patterns) > 1:
            raise ValueError("an empty MIDI input name matches every port; give it alone or not at all")
        self._slots = [_Slot(p, False) for p in patterns]
        if virtual:
            if not virtual_name.strip():
                raise ValueError("the virtual MIDI port needs a name")
            self._slots.insert(0, _Slot(virtual_name, True))
        self._lock = threading.Lock()  # the watcher and stop() both open / close readers
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._rtmidi: ModuleType | None = None
        self._last_ports: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> MidiInput:
        """Pick the backend (MidiError if impossible), open what is there, start watching."""
        self._rtmidi = _rtmidi()
        self.api = _resolve_api(self.requested_api)
        self._stop.clear()
        self.refresh()
        for slot in self._slots:
            if not slot.virtual and not slot.readers:
                log.warning("MIDI input %r is not connected (yet); it opens when it appears%s", slot.name,
                            f" (inputs now: {', '.join(self._last_ports) or 'none'})")
        self._watcher = threading.Thread(target=self._watch, name="oscgan-midi-watch", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Close every port and stop the watcher (idempotent)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(self.watch_interval + 5)
            self._watcher = None
        with self._lock:
            readers = [r for slot in self._slots for r in slot.readers.values()]
            destinations = self._destinations() if readers else []
            for reader in readers:
                reader.close(orphaned=reader.orphaned(destinations))
            for slot in self._slots:
                slot.readers.clear()

    def __enter__(self) -> MidiInput:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- status ------------------------------------------------------------------------------
    def port_status(self) -> list[MidiPortStatus]:
        # No lock: /health must answer while a port check waits on a slow MIDI server.
        return [slot.status() for slot in self._slots]

    def stats(self) -> dict[str, Any]:
        """JSON-able summary for /health: backend, per-port status, message and error counts."""
        ports = self.port_status()
        return {"api": self.api, "ports": [dataclasses.asdict(p) for p in ports],
                "messages": sum(p.messages for p in ports), "errors": sum(p.errors for p in ports)}

    # -- watching ----------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.watch_interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the watcher must outlive any backend hiccup
                log.exception("MIDI port check failed; trying again in %.1f s", self.watch_interval)

    def refresh(self) -> None:
        """One check: release ports that vanished or lost their server, (re)open what appeared."""
        assert self._rtmidi is not None and self.api is not None
        with self._lock:
            if self._stop.is_set():  # stopping: open nothing new
                return
            try:
                sources = _list_ports(self._rtmidi, self.api)
            except Exception as e:  # noqa: BLE001 - e.g. the JACK server is down
                sources = []
                log.debug("listing MIDI inputs failed: %s", e)
            self._last_ports = sources
            has_readers = any(slot.readers for slot in self._slots)
            destinations = self._destinations() if has_readers else []
            taken = {p for slot in self._slots for p in slot.readers}
            for slot in self._slots:
                if slot.virtual:
                    self._refresh_virtual(slot, destinations)
                else:
                    self._refresh_named(slot, sources, destinations, taken)
            # Note how new ports are listed, to tell later when their server dies under them.
            unlisted = [r for slot in self._slots for r in slot.readers.values() if r.listed_as is None]
            if unlisted:
                for reader in unlisted:
                    reader.note_listing(self._destinations() or [])

    def _destinations(self) -> list[str] | None:
        """Ports that can be sent to (ours among them), or None when they cannot be listed."""
        assert self._rtmidi is not None and self.api is not None
        try:
            return _list_ports(self._rtmidi, self.api, output=True)
        except Exception:  # noqa: BLE001
            return None

    def _release(self, slot: _Slot, key: str, destinations: Sequence[str] | None, what: str) -> None:
        reader = slot.readers.pop(key)
        orphaned = reader.orphaned(destinations)
        if orphaned:
            why = "lost its MIDI server (restarted?)"
        elif not reader.alive:
            why = f"stopped ({reader.failed})"
        else:
            why = "disappeared (unplugged?)"
        log.warning("%s %r %s; %s", "virtual MIDI port" if slot.virtual else "MIDI input", key, why, what)
        reader.close(orphaned=orphaned)

    def _refresh_named(self, slot: _Slot, sources: Sequence[str], destinations: Sequence[str] | None,
                       taken: set[str]) -> None:
        for port, reader in list(slot.readers.items()):
            if port not in sources or not reader.alive or reader.orphaned(destinations):
                self._release(slot, port, destinations, "it reopens when it comes back")
                taken.discard(port)
                slot.lost = not slot.readers
        for port in sources:
            if port in taken or not slot.matches(port):
                continue
            opened = self._open_named(slot, port)
            if opened is None:
                continue
            if port in slot.seen or slot.lost:
                slot.reopened += 1
                log.info("MIDI input %r is back: reopened for %r", port, slot.name)
            else:
                log.info("MIDI input %r opened (matches %r)", port, slot.name)
            slot.seen.add(port)
            slot.readers[port] = opened
            slot.lost = False
            slot.last_error = None
            taken.add(port)

    def _open_named(self, slot: _Slot, port: str) -> _Reader | None:
        rtmidi = self._rtmidi
        assert rtmidi is not None
        # A port name of our own, unique, to find this reader in destination listings.
        tag = f"input-{os.getpid()}-{next(_reader_ids)}"
        midi_in = None
        try:
            midi_in = rtmidi.MidiIn(rtapi=getattr(rtmidi, f"API_{self.api}"), name=READER_CLIENT,
                                    queue_size_limit=QUEUE_SIZE)
            # Ports are opened by index: look it up on this very client, right before opening.
            names = midi_in.get_ports()
            if port not in names:
                midi_in.delete()
                return None
            midi_in.ignore_types(sysex=True, timing=False, active_sense=True)
            midi_in.open_port(names.index(port), name=tag)
        except Exception as e:  # noqa: BLE001
            if midi_in is not None:
                midi_in.delete()
            slot.last_error = f"cannot open {port!r}: {e}"
            slot.warn(f"MIDI input {slot.last_error}; retrying every {self.watch_interval:g} s")
            return None
        own = re.compile(rf"(^|:){re.escape(tag)}(\s|$)")
        return _Reader(midi_in, port, lambda p: own.search(p) is not None, self.bus, slot,
                       self.poll_interval).start()

    def _refresh_virtual(self, slot: _Slot, destinations: Sequence[str] | None) -> None:
        rtmidi = self._rtmidi
        assert rtmidi is not None
        reader = slot.readers.get(slot.name)
        if reader is not None:
            # A virtual port dies with its MIDI server (a JACK restart): it is then missing from
            # the destinations it had been listed in, and is made again.
            if reader.alive and not reader.orphaned(destinations):
                return
            self._release(slot, slot.name, destinations, "making it again")
        midi_in = None
        try:
            midi_in = rtmidi.MidiIn(rtapi=getattr(rtmidi, f"API_{self.api}"), name=slot.name,
                                    queue_size_limit=QUEUE_SIZE)
            midi_in.ignore_types(sysex=True, timing=False, active_sense=True)
            midi_in.open_virtual_port(slot.name)
        except Exception as e:  # noqa: BLE001
            if midi_in is not None:
                midi_in.delete()
            slot.last_error = f"cannot create virtual port {slot.name!r} ({self.api}): {e}"
            slot.warn(f"MIDI: {slot.last_error}; retrying every {self.watch_interval:g} s")
            return
        if slot.seen:
            slot.reopened += 1
        slot.seen.add(slot.name)
        slot.last_error = None
        name = slot.name
        slot.readers[name] = _Reader(midi_in, name, lambda p: _is_virtual_port(name, p), self.bus, slot,
                                     self.poll_interval).start()
        log.info("virtual MIDI input %r created (%s); connect a controller or DAW output to it", name, self.api)
