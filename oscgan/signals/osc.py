"""OSC over UDP: the server that sets registry parameters, and the sender that echoes them and status."""

from __future__ import annotations

import difflib
import ipaddress
import logging
import math
import reprlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import cast

from oscgan.signals.osc_protocol import (
    MAX_PACKET_SIZE,
    AddressTree,
    OscMessage,
    OscParseError,
    encode_bundle,
    encode_message,
    has_wildcards,
    iter_messages,
    parse_packet,
)
from oscgan.state.params import OSC_PREFIX, ParamRegistry, ParamSpec, ParamValueError, UnknownParameter

logger = logging.getLogger(__name__)

UnhandledHook = Callable[[OscMessage], bool | None]
STATUS_PREFIX = OSC_PREFIX + "/status"
SYNC_STALE_S = 1.0  # a render loop that has not drained for this long no longer counts as draining
DRAIN_BATCH = 256  # most datagrams one drain() applies on the render thread (about 3 ms)
DRAIN_LOCK_WAIT_S = 0.002  # how long drain() waits while the receive thread applies a batch
THREAD_BATCH = 4096  # most datagrams the receive thread applies before it checks stop() again
LATE_FRAME_BATCH_S = 0.01  # while a drained loop's frame is late, the receive thread applies this often
ECHO_COALESCE_S = 0.005  # how long the echo thread gathers changes before it sends them
ECHO_BUNDLE_BYTES = 1400  # under an Ethernet MTU: no IP fragments for Wi-Fi to lose
BUNDLE_OVERHEAD = 16  # '#bundle\0' and the timetag


@dataclass(frozen=True)
class OscStats:
    """Counters of an OscServer. Every datagram and every message lands in exactly one outcome:

    ``received == rejected_sender + malformed + accepted`` (datagrams) and
    ``messages == applied + handled + unknown_address + bad_value`` (messages of accepted
    datagrams). ``clamped`` counts applied messages with at least one value clamped into range.
    """

    received: int = 0  # datagrams read from the socket
    rejected_sender: int = 0  # datagrams from a host outside allow_from
    malformed: int = 0  # datagrams that are not valid OSC (oversized included); dropped whole
    accepted: int = 0  # datagrams parsed
    messages: int = 0  # messages in accepted datagrams (bundles flattened)
    applied: int = 0  # messages that set at least one parameter
    handled: int = 0  # messages for no parameter that the on_unhandled hook took
    unknown_address: int = 0  # messages whose address (pattern) matches no parameter, not handled
    bad_value: int = 0  # messages whose arguments fit none of their parameters
    clamped: int = 0  # applied messages with a value clamped into range
    errors: int = 0  # internal errors (bugs); such datagrams are also counted as malformed

    def balanced(self) -> bool:
        """Whether the counters add up (they always should)."""
        return (self.received == self.rejected_sender + self.malformed + self.accepted
                and self.messages == self.applied + self.handled + self.unknown_address + self.bad_value)


class _LogLimiter:
    """At most one log line per key every ``interval`` seconds; the next line says how many it hid.

    A misconfigured controller can send hundreds of bad messages per second; the log should say
    so once, not drown.
    """

    def __init__(self, interval: float = 5.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._hidden: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None when this line should be dropped, else the number of lines dropped since the last one."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._hidden[key] = self._hidden.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._hidden.pop(key, 0)

    def warning(self, key: str, msg: str, *args: object) -> None:
        hidden = self.allow(key)
        if hidden is None:
            return
        if hidden:
            msg += " (%d similar messages since the previous one not shown)"
            args = (*args, hidden)
        logger.warning(msg, *args)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_allowlist(allow_from: Iterable[str] | None) -> tuple[IPNetwork, ...] | None:
    if allow_from is None:
        return None
    nets = []
    for entry in allow_from:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"OSC allow-list entry {entry!r} is not an IP address or network "
                             "(use e.g. 192.168.1.20 or 192.168.1.0/24; host names are not resolved)") from None
    return tuple(nets)


def _address_table(registry: ParamRegistry) -> dict[str, str]:
    """OSC address -> parameter path, vector elements included."""
    table: dict[str, str] = {}
    for spec in registry.specs():
        table[spec.osc_address] = spec.path
        if spec.is_vector:
            for i in range(spec.length):
                table[spec.element_address(i)] = spec.element_path(i)
    return table


class OscServer:
    """Receives OSC on a UDP port and writes parameters into the registry.

    Address ``/oscgan/<path with / for .>`` sets a parameter (``/oscgan/truncation/psi 0.5``);
    vectors take all or a prefix of their elements (``/oscgan/latent/z 0.1 -0.3``, or one array
    argument) and single elements (``/oscgan/latent/z/5 0.2``). Patterns (``/oscgan/mix/*``,
    ``//psi``) set every parameter and element address they match; a matched whole-vector address
    takes the arguments as a prefix like a direct message does (``/oscgan/mix/*`` 0.5 also sets
    element 0 of ``mix.layer``; use ``/oscgan/mix/layer/*`` for all layers). Numbers may be int,
    float, double or T/F; enums take their choice string or its index. Changes are made with
    source ``'osc:<sender ip>:<sender port>'``.

    Every datagram is applied with one ``registry.set_many``: a bundle (nested ones included)
    lands all at once, so no frame sees half of it. A bundle's timetag never delays anything:
    TouchDesigner sends relative timetags, and late is worse than early for live control.

    Datagrams are applied by the receive thread as they arrive, or, once a render loop calls
    ``drain`` before each frame, by the loop itself right before it reads the parameters: waking a
    second Python thread for every datagram costs the render thread a GIL hand-off each time
    (about 0.1 ms; at 1000 messages per second that was an eighth of a 64 px frame). While the
    loop drains, the receive thread sleeps; it steps in when no drain has come for
    ``sync_fallback`` seconds (a slow frame), so the registry, OSCQuery and the echo never lag by
    much more than that, and when a drain leaves a backlog (a flood).

    Messages for addresses that are no parameter go to ``on_unhandled(message)`` first (called on
    the thread that applies the datagram, before its parameters are set; return True when
    handled). Bad input of any kind is dropped, counted in ``stats`` and logged with rate
    limiting; nothing raises out of the thread. ``allow_from`` limits senders to IP addresses or
    networks (``'192.168.1.0/24'``); None accepts everyone, which is fine on 127.0.0.1 but think
    twice with ``host='0.0.0.0'``.
    """

    def __init__(self, registry: ParamRegistry, host: str = "127.0.0.1", port: int = 9000,
                 allow_from: Iterable[str] | None = None, on_unhandled: UnhandledHook | None = None, *,
                 max_packet: int = MAX_PACKET_SIZE, recv_buffer: int = 4 * 1024 * 1024,
                 poll_interval: float = 0.05, sync_fallback: float = 0.05) -> None:
        """
        Args:
            registry: where parameters are set.
            host: interface to listen on; '0.0.0.0' (or '::') for all, e.g. for tablets on the LAN.
            port: UDP port; 0 picks a free one (see ``address`` after ``start``).
            allow_from: IP addresses / networks allowed to send; None = anyone.
            on_unhandled: hook for messages whose address is not a parameter.
            max_packet: datagrams above this many bytes are dropped as malformed.
            recv_buffer: requested socket receive buffer in bytes (the OS may grant less); a large
                one absorbs bursts (a TouchOSC page sending every control at once).
            poll_interval: seconds between checks for ``stop()``; bounds how long stop takes.
            sync_fallback: while a render loop calls ``drain``, the longest a datagram waits
                before the receive thread applies it itself (seconds).
        """
        self._registry = registry
        self._host = host
        self._port = port
        self._allow = _parse_allowlist(allow_from)
        self._allow_cache: dict[str, bool] = {}
        self._on_unhandled = on_unhandled
        self._max_packet = max_packet
        self._recv_buffer = recv_buffer
        self._poll_interval = poll_interval
        self._targets = _address_table(registry)
        self._tree = AddressTree(self._targets)
        self._counts = {f.name: 0 for f in fields(OscStats)}
        self._counts_lock = threading.Lock()
        self._log = _LogLimiter()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._close_on_exit = False
        self._sync_fallback = sync_fallback
        self._apply_lock = threading.Lock()  # one applier at a time keeps datagrams in arrival order
        self._last_drain = -math.inf  # time.monotonic() of the last drain() call
        self._backlog = False  # the last drain left datagrams for the receive thread

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> OscServer:
        """Bind the socket (errors raise here, in the caller's thread) and start the receive thread."""
        if self._thread is not None:
            raise RuntimeError("OscServer already started")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer)
            except OSError:
                logger.debug("could not set SO_RCVBUF to %d", self._recv_buffer)
            sock.bind((self._host, self._port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"cannot listen for OSC on {self._host}:{self._port}: {e.strerror}. "
                                   "Is another program (or another oscgan) using this port? "
                                   "Choose another one with --osc-port.") from e
        sock.setblocking(False)
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"osc-in:{self.address[1]}", daemon=True)
        self._thread.start()
        logger.info("listening for OSC on %s:%d", *self.address[:2])
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the receive thread and close the socket; returns within about ``poll_interval``."""
        self._stopping.set()
        if self._thread is threading.current_thread():
            # Called from on_unhandled: cannot join ourselves; the loop closes the socket on its way out.
            self._close_on_exit = True
            return
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("OSC receive thread did not stop within %.1f s", timeout)
        if self._sock is not None:
            self._sock.close()
        self._thread = None
        self._sock = None

    def __enter__(self) -> OscServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple:
        """The bound ``(host, port)``; the real port when 0 was asked for."""
        if self._sock is None:
            raise RuntimeError("OscServer is not started")
        return self._sock.getsockname()

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stats(self) -> OscStats:
        """Consistent copy of the counters (a datagram is counted all at once)."""
        with self._counts_lock:
            return OscStats(**self._counts)

    # -- receive thread -------------------------------------------------------------------------

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            self._receive_loop(sock)
        finally:
            if self._close_on_exit:
                sock.close()

    def _receive_loop(self, sock: socket.socket) -> None:
        while not self._stopping.is_set():
            if self._defer_to_loop():
                continue
            try:
                ready, _, _ = select.select([sock], [], [], self._poll_interval)
            except (OSError, ValueError) as e:
                if self._stopping.is_set():
                    break
                self._log.warning("select", "OSC socket error: %s", e)
                time.sleep(self._poll_interval)
                continue
            if not ready or self._defer_to_loop():  # a loop may have begun draining meanwhile
                continue
            with self._apply_lock:
                self._apply_queued(sock, THREAD_BATCH)
            if self._frame_synced():
                # The loop's frame is late (a slow model) or more arrives than it takes: apply
                # in batches, not per datagram.
                self._stopping.wait(LATE_FRAME_BATCH_S)

    def _defer_to_loop(self) -> bool:
        """While a render loop drains in time, sleep until its frame would be late; True if slept.

        The receive thread then wakes neither per datagram nor per frame.
        """
        if not self._frame_synced() or self._backlog:
            return False
        due = self._last_drain + self._sync_fallback - time.monotonic()
        if due <= 0:
            return False
        self._stopping.wait(due)
        return True

    def _frame_synced(self) -> bool:
        return time.monotonic() - self._last_drain < SYNC_STALE_S

    def drain(self, now: float = 0.0, dt: float = 0.0) -> int:
        """Apply the datagrams waiting on the socket, on the calling thread; returns how many.

        Made to be a render loop's first pre-frame hook (``loop.pre_frame.insert(0, osc.drain)``,
        the arguments are ignored): OSC input then lands right before the frame's parameter
        snapshot, without waking the receive thread for each datagram. A flood is not taken on
        the render thread: past ``DRAIN_BATCH`` datagrams (or while the receive thread holds
        the queue) the rest is left to the receive thread. Safe at any time, from any thread,
        before ``start`` and after ``stop`` (then it does nothing).
        """
        sock = self._sock
        if sock is None or self._stopping.is_set():
            return 0
        self._last_drain = time.monotonic()
        if not self._apply_lock.acquire(timeout=DRAIN_LOCK_WAIT_S):
            return 0  # the receive thread is applying a backlog; this frame takes what it has done
        try:
            applied, emptied = self._apply_queued(sock, DRAIN_BATCH)
        finally:
            self._apply_lock.release()
        self._backlog = not emptied
        return applied

    def _apply_queued(self, sock: socket.socket, limit: int) -> tuple[int, bool]:
        """Receive and apply up to ``limit`` queued datagrams; returns (how many, socket emptied).

        The caller holds ``_apply_lock``. No select per datagram; bounded so stop() is noticed
        under a flood.
        """
        # One byte more than allowed, so that a datagram over the limit shows as such rather than
        # being cut to a valid-looking prefix.
        bufsize = self._max_packet + 1
        applied = 0
        while applied < limit and not self._stopping.is_set():
            try:
                data, sender = sock.recvfrom(bufsize)
            except (BlockingIOError, InterruptedError):
                return applied, True
            except OSError as e:
                if not self._stopping.is_set():  # else: closed under us by stop()
                    # Windows reports an ICMP "port unreachable" for an earlier send as an error here.
                    self._log.warning("recv", "OSC receive error: %s", e)
                return applied, False
            self._process(data, sender)
            applied += 1
        return applied, False

    def _process(self, data: bytes, sender: tuple) -> None:
        try:
            deltas = self._handle(data, sender)
        except Exception:
            hidden = self._log.allow("internal")
            if hidden is not None:
                logger.exception("internal error handling an OSC datagram from %s", sender[0])
            deltas = {"received": 1, "malformed": 1, "errors": 1}
        with self._counts_lock:
            for name, n in deltas.items():
                self._counts[name] += n

    def _allowed(self, host: str) -> bool:
        if self._allow is None:
            return True
        ok = self._allow_cache.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                ok = False
            else:
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d
                ok = any(ip.version == net.version and ip in net for net in self._allow)
            if len(self._allow_cache) < 4096:
                self._allow_cache[host] = ok
        return ok

    def _handle(self, data: bytes, sender: tuple) -> dict[str, int]:
        host, port = sender[0], sender[1]
        if not self._allowed(host):
            self._log.warning("rejected", "OSC from %s dropped: sender is not in the allow-list", host)
            return {"received": 1, "rejected_sender": 1}
        try:
            elements = parse_packet(data, max_size=self._max_packet)
        except OscParseError as e:
            self._log.warning("malformed", "malformed OSC datagram (%d bytes) from %s dropped: %s",
                              len(data), host, e)
            return {"received": 1, "malformed": 1}
        messages = iter_messages(elements)
        deltas = {"received": 1, "accepted": 1, "messages": len(messages)}
        deltas.update(self._apply(messages, f"osc:{host}:{port}"))
        return deltas

    def _apply(self, messages: Sequence[OscMessage], source: str) -> dict[str, int]:
        counts = {"applied": 0, "handled": 0, "unknown_address": 0, "bad_value": 0, "clamped": 0}
        items: list[tuple[str, object]] = []
        spans: list[tuple[int, int]] = []  # items of each message that has any
        for msg in messages:
            paths = self._paths_for(msg.address)
            if not paths:
                if self._on_unhandled is not None and self._call_hook(msg):
                    counts["handled"] += 1
                else:
                    counts["unknown_address"] += 1
                    self._log_unknown(msg.address, source)
                continue
            start = len(items)
            error: Exception | None = None
            for path in paths:
                try:
                    value = self._value_for(path, msg.args)
                    self._registry.coerce(path, value)
                except (ParamValueError, UnknownParameter) as e:
                    error = error or e
                    continue
                items.append((path, value))
            if len(items) > start:
                spans.append((start, len(items)))
            else:
                counts["bad_value"] += 1
                self._log.warning("bad_value", "OSC %s %s from %s dropped: %s", msg.address,
                                  reprlib.repr(msg.args), source, error)
        if items:
            results = self._registry.set_many(items, source)
            counts["applied"] += len(spans)
            counts["clamped"] += sum(any(r.clamped for r in results[a:b]) for a, b in spans)
        return counts

    def _paths_for(self, address: str) -> list[str]:
        path = self._targets.get(address)
        if path is not None:
            return [path]
        if not has_wildcards(address):
            return []
        try:
            return [self._targets[a] for a in self._tree.match(address)]
        except OscParseError as e:
            self._log.warning("pattern", "OSC address pattern %r is malformed: %s", address, e)
            return []

    def _value_for(self, path: str, args: tuple) -> object:
        spec: ParamSpec = self._registry.spec(path)
        if spec.is_vector and path == spec.path:
            # One OSC array argument or the arguments themselves; exact type check because the
            # typed arguments (RGBA, Midi, TimeTag) are tuples too.
            return args[0] if len(args) == 1 and type(args[0]) is tuple else args
        if len(args) != 1:
            raise ParamValueError(f"{path} takes exactly one value, got {len(args)}")
        return args[0]

    def _call_hook(self, msg: OscMessage) -> bool:
        try:
            return bool(self._on_unhandled(msg))  # type: ignore[misc]
        except Exception:
            if self._log.allow("hook") is not None:
                logger.exception("on_unhandled hook failed for OSC %s", msg.address)
            return False

    def _log_unknown(self, address: str, source: str) -> None:
        hidden = self._log.allow("unknown")
        if hidden is None:
            return
        hint = ""
        if not address.startswith(OSC_PREFIX + "/"):
            hint = f"; oscgan parameters live under {OSC_PREFIX}/, e.g. {OSC_PREFIX}/truncation/psi"
        else:
            close = difflib.get_close_matches(address, list(self._targets), n=1)
            if close:
                hint = f"; did you mean {close[0]}?"
        logger.warning("OSC %s from %s matches no parameter%s%s", address, source, hint,
                       f" ({hidden} similar messages not shown)" if hidden else "")


@dataclass(frozen=True)
class SenderStats:
    sent: int = 0  # datagrams handed to the OS
    dropped: int = 0  # datagrams dropped because the socket buffer was full
    errors: int = 0  # datagrams the OS refused (unreachable network, ...)


class OscSender:
    """Sends OSC messages to one host and port over UDP; never blocks and never raises on network errors.

    The address is resolved once here (no DNS lookup per message). Broadcast addresses work
    (e.g. ``192.168.1.255`` to reach every TouchOSC tablet on the LAN).
    """

    def __init__(self, host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise OSError(f"cannot resolve OSC target {host!r}: {e}; "
                          "use an IP address or a known host name") from e
        family, _, _, _, target = infos[0]
        self._target: tuple = target
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "dropped": 0, "errors": 0}
        self._log = _LogLimiter()
        self.host, self.port = host, port

    @property
    def stats(self) -> SenderStats:
        with self._lock:
            return SenderStats(**self._counts)

    def send(self, address: str, *args: object) -> bool:
        """Send one message; False when the OS dropped or refused it (logged, rate-limited).

        Raises OscEncodeError for arguments OSC cannot carry (a programming error, not a network one).
        """
        return self.send_raw(encode_message(address, args))

    def send_bundle(self, messages: Iterable[tuple[str, Sequence[object]]]) -> bool:
        """Send messages as one bundle with timetag "immediately" (receivers apply them together)."""
        return self.send_raw(encode_bundle([encode_message(a, args) for a, args in messages]))

    def send_raw(self, data: bytes) -> bool:
        try:
            self._sock.sendto(data, self._target)
        except BlockingIOError:
            outcome = "dropped"
            self._log.warning("dropped", "OSC to %s:%d dropped: send buffer full", self.host, self.port)
        except OSError as e:
            outcome = "errors"
            self._log.warning("error", "OSC to %s:%d failed: %s", self.host, self.port, e)
        else:
            outcome = "sent"
        with self._lock:
            self._counts[outcome] += 1
        return outcome == "sent"

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> OscSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire_value(kind: str, spec: ParamSpec, value: object) -> float | int:
    """The one number sent for a value.

    Floats, bools (1.0 / 0.0) and enums (index of the choice, what TouchOSC radio buttons expect)
    go as floats. Ints go as ints: seeds above 2**24 do not survive a 32-bit float.
    """
    if kind == "int":
        return int(value)  # type: ignore[call-overload]
    if kind == "enum":
        return float(spec.choices.index(value))
    return float(value)  # type: ignore[arg-type]


class OscTelemetry:
    """Echoes every parameter change to an OscSender, and sends engine status.

    A change of a scalar goes out as one message on its address; a change of a vector as one
    message per *changed* element on the element address (``/oscgan/latent/z/5``). Changes coming
    from OSC are echoed too (``echo_osc``), because TouchOSC and TouchDesigner panels expect the
    engine to confirm (and, after clamping, correct) what they sent. This cannot loop forever:
    the registry notifies only when a value really changes, so a controller that re-sends what it
    receives stops after one round trip.

    Nothing is sent on the thread that made the change (often the render thread, when mappings
    move 200 latent elements a frame): changes are noted, and an echo thread sends them
    ``coalesce`` seconds later, only the newest value of each, packed into bundles of at most
    ``ECHO_BUNDLE_BYTES`` (a single message goes out as itself).
    """

    def __init__(self, registry: ParamRegistry, sender: OscSender, *, echo_osc: bool = True,
                 coalesce: float = ECHO_COALESCE_S) -> None:
        self._registry = registry
        self._sender = sender
        self._echo_osc = echo_osc
        self._coalesce = coalesce
        self._lock = threading.Lock()  # guards _pending and _last
        self._send_lock = threading.Lock()  # keeps whole flushes in order
        self._last: dict[str, object] = dict(registry.snapshot())  # what the receiver has, as far as we know
        self._pending: dict[str, tuple[object, bool]] = {}  # path -> (newest value, echo it)
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="osc-echo", daemon=True)
        self._thread.start()
        self._unsubscribe: Callable[[], None] | None = registry.subscribe(self._on_change)

    def _on_change(self, path: str, value: object, source: str) -> None:
        echo = self._echo_osc or not source.startswith("osc:")
        with self._lock:
            self._pending[path] = (value, echo)
        self._wake.set()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait()
            if not self._closing:
                time.sleep(self._coalesce)  # let the rest of this frame's (or burst's) changes in
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Send the noted changes now (the echo thread does this by itself)."""
        messages: list[bytes] = []
        with self._send_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                for path, (value, echo) in pending.items():
                    previous = self._last.get(path)
                    self._last[path] = value
                    if echo:
                        messages.extend(self._encode_param(self._registry.spec(path), value, previous))
            self._send(messages)

    def _encode_param(self, spec: ParamSpec, value: object, previous: object | None) -> list[bytes]:
        """Messages for ``value`` that the receiver (holding ``previous``, None = unknown) lacks."""
        if spec.is_vector:
            old = cast(tuple, previous)
            return [encode_message(spec.element_address(i), [_wire_value(spec.element_kind, spec, x)])
                    for i, x in enumerate(cast(tuple, value)) if old is None or old[i] != x]
        if previous is not None and previous == value:
            return []  # changed and changed back within one flush
        return [encode_message(spec.osc_address, [_wire_value(spec.kind, spec, value)])]

    def _send(self, messages: list[bytes]) -> None:
        batch: list[bytes] = []
        size = BUNDLE_OVERHEAD
        for message in messages:
            if batch and size + 4 + len(message) > ECHO_BUNDLE_BYTES:
                self._send_batch(batch)
                batch, size = [], BUNDLE_OVERHEAD
            batch.append(message)
            size += 4 + len(message)
        if batch:
            self._send_batch(batch)

    def _send_batch(self, batch: list[bytes]) -> None:
        self._sender.send_raw(batch[0] if len(batch) == 1 else encode_bundle(batch))

    def send_all(self) -> None:
        """Send every parameter (every vector element) once, e.g. when a controller connects."""
        with self._send_lock:
            with self._lock:
                snapshot = self._registry.snapshot()
                messages: list[bytes] = []
                for spec in self._registry.specs():
                    value = snapshot[spec.path]
                    self._last[spec.path] = value
                    self._pending.pop(spec.path, None)
                    messages.extend(self._encode_param(spec, value, None))
            self._send(messages)

    def send_status(self, fps: float, render_ms: float, dropped: int, errors: int) -> None:
        """Engine health to ``/oscgan/status/{fps,render_ms,dropped,errors}``, as one bundle."""
        with self._send_lock:
            self._send([encode_message(STATUS_PREFIX + "/fps", [float(fps)]),
                        encode_message(STATUS_PREFIX + "/render_ms", [float(render_ms)]),
                        encode_message(STATUS_PREFIX + "/dropped", [int(dropped)]),
                        encode_message(STATUS_PREFIX + "/errors", [int(errors)])])

    def close(self) -> None:
        """Stop echoing, after sending what is noted (the sender stays open; its owner closes it)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._closing = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)
