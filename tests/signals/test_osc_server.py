"""Tests for the OSC server, sender and telemetry over real UDP sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY as PY_IMMEDIATELY
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage as PyOscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket as PyOscPacket
from pythonosc.udp_client import SimpleUDPClient

from oscgan.signals import osc
from oscgan.signals.osc import OscSender, OscServer, OscStats, OscTelemetry
from oscgan.signals.osc_protocol import (
    Char,
    Double,
    OscMessage,
    TimeTag,
    encode_bundle,
    encode_message,
    parse_packet,
)
from oscgan.state.params import ModelInfo, ParamRegistry, build_registry

SMALL = ModelInfo("stylegan2", 8, 8, 6, 64, (4, 4, 8, 8, 16, 64))
NTP_UNIX_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


@pytest.fixture
def reg() -> ParamRegistry:
    return build_registry(SMALL)


@pytest.fixture
def server(reg: ParamRegistry) -> Iterator[OscServer]:
    with OscServer(reg, port=0) as srv:
        yield srv
        assert srv.is_alive
        assert srv.stats.balanced(), srv.stats


@pytest.fixture
def raw() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield sock
    sock.close()


class Sender:
    """Sends datagrams to a server and waits until the server has counted them."""

    def __init__(self, server: OscServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.client = SimpleUDPClient("127.0.0.1", server.address[1])

    def raw(self, *datagrams: bytes) -> OscStats:
        before = self.server.stats.received
        for data in datagrams:
            self.sock.sendto(data, self.server.address)
        return self._wait(before + len(datagrams))

    def msg(self, address: str, *args: object) -> OscStats:
        return self.raw(encode_message(address, args))

    def py(self, address: str, value: object) -> OscStats:
        """Through python-osc's client: an independent encoder."""
        before = self.server.stats.received
        self.client.send_message(address, value)
        return self._wait(before + 1)

    def _wait(self, count: int) -> OscStats:
        assert wait_until(lambda: self.server.stats.received >= count), self.server.stats
        return self.server.stats


@pytest.fixture
def send(server: OscServer, raw: socket.socket) -> Sender:
    return Sender(server, raw)


# -- setting parameters -----------------------------------------------------------------------------------


def test_scalar_from_python_osc_client(reg: ParamRegistry, send: Sender) -> None:
    stats = send.py("/oscgan/truncation/psi", 0.5)
    assert reg.get("truncation.psi") == 0.5
    assert (stats.received, stats.accepted, stats.messages, stats.applied) == (1, 1, 1, 1)


def test_number_types(reg: ParamRegistry, send: Sender) -> None:
    send.msg("/oscgan/truncation/psi", 1)
    assert reg.get("truncation.psi") == 1.0
    send.msg("/oscgan/truncation/psi", Double(0.123456789))
    assert reg.get("truncation.psi") == 0.123456789  # doubles keep their precision
    send.msg("/oscgan/latent/seed", 41.6)
    assert reg.get("latent.seed") == 42
    send.msg("/oscgan/output/paused", True)
    assert reg.get("output.paused") is True
    send.msg("/oscgan/output/paused", 0.0)
    assert reg.get("output.paused") is False
    send.msg("/oscgan/affine/rotate", False)
    assert reg.get("affine.rotate") == 0.0
    assert send.server.stats.applied == 6


def test_enums_by_name_and_index(reg: ParamRegistry, send: Sender) -> None:
    send.py("/oscgan/noise/mode", "random")
    assert reg.get("noise.mode") == "random"
    send.py("/oscgan/latent/travel/mode", 1)
    assert reg.get("latent.travel.mode") == "lerp_w"
    stats = send.py("/oscgan/noise/mode", "loud")
    assert reg.get("noise.mode") == "random" and stats.bad_value == 1


def test_vectors_full_prefix_element_and_array(reg: ParamRegistry, send: Sender) -> None:
    send.msg("/oscgan/latent/z", *[float(i) / 4 for i in range(8)])
    assert reg.get("latent.z") == tuple(i / 4 for i in range(8))
    send.msg("/oscgan/latent/z", -1.0, -2.0)
    assert reg.get("latent.z")[:3] == (-1.0, -2.0, 0.5)
    send.msg("/oscgan/latent/z/5", 3.5)
    assert reg.get("latent.z.5") == 3.5
    send.msg("/oscgan/mix/layer", [0.5, 0.25])  # one OSC array argument
    assert reg.get("mix.layer")[:3] == (0.5, 0.25, 0.0)
    send.py("/oscgan/latent/keyframes", [10, 20, 30])  # python-osc sends a list as three ints
    assert reg.get("latent.keyframes")[:4] == (10, 20, 30, 3)
    stats = send.msg("/oscgan/latent/z", *([0.0] * 9))  # longer than the vector
    assert stats.bad_value == 1 and stats.applied == 5


def test_clamping_is_counted(reg: ParamRegistry, send: Sender) -> None:
    stats = send.py("/oscgan/truncation/psi", 5.0)
    assert reg.get("truncation.psi") == 2.0
    assert stats.clamped == 1 and stats.applied == 1 and reg.clamp_count == 1
    stats = send.msg("/oscgan/latent/z", 0.0, 99.0, -99.0)
    assert reg.get("latent.z")[:3] == (0.0, 4.0, -4.0)
    assert stats.clamped == 2  # counted per message
    assert reg.clamp_count == 2


def test_wildcards(reg: ParamRegistry, send: Sender) -> None:
    send.msg("/oscgan/mix/{coarse,fine}", 0.5)
    assert (reg.get("mix.coarse"), reg.get("mix.middle"), reg.get("mix.fine")) == (0.5, 0.0, 0.5)
    send.msg("//psi", 0.25)
    assert reg.get("truncation.psi") == 0.25
    send.msg("/oscgan/latent/z/*", 1.0)
    assert reg.get("latent.z") == (1.0,) * 8
    send.msg("/oscgan/mix/layer/[!0-3]", 0.75)
    assert reg.get("mix.layer") == (0.0,) * 4 + (0.75,) * 2
    send.msg("/oscgan/const/shift/?", -0.5)
    assert reg.get("const.shift.x") == reg.get("const.shift.y") == -0.5
    stats = send.msg("/oscgan/nothing/*", 1.0)
    assert stats.unknown_address == 1
    stats = send.msg("/oscgan/mix/[abc", 1.0)  # malformed pattern: matches nothing
    assert stats.unknown_address == 2 and stats.applied == 5


def test_wildcard_with_some_bad_targets_applies_the_good_ones(reg: ParamRegistry, send: Sender) -> None:
    stats = send.msg("/oscgan/noise/*", "random")  # fits noise.mode, not noise.strength
    assert reg.get("noise.mode") == "random" and reg.get("noise.strength") == 1.0
    assert stats.applied == 1 and stats.bad_value == 0


@pytest.mark.parametrize("address, args", [
    ("/oscgan/truncation/psi", ("high",)),
    ("/oscgan/truncation/psi", (0.1, 0.2)),
    ("/oscgan/truncation/psi", ()),
    ("/oscgan/truncation/psi", (None,)),
    ("/oscgan/truncation/psi", ([0.5],)),
    ("/oscgan/latent/seed", (Char("x"),)),
    ("/oscgan/latent/z", (TimeTag(5),)),
    ("/oscgan/latent/z", ()),
    ("/oscgan/latent/z", ("a", "b")),
    ("/oscgan/latent/z/3", (1.0, 2.0)),
    ("/oscgan/truncation/psi", (float("nan"),)),
    ("/oscgan/output/paused", (b"blob",)),
])
def test_bad_values_are_counted_and_change_nothing(reg: ParamRegistry, send: Sender, address: str,
                                                    args: tuple) -> None:
    before = dict(reg.snapshot())
    stats = send.msg(address, *args)
    assert stats.bad_value == 1 and stats.applied == 0
    assert dict(reg.snapshot()) == before


def test_unknown_address_is_counted_and_logged(send: Sender, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="oscgan.signals.osc"):
        stats = send.msg("/oscgan/truncation/pis", 0.5)
    assert stats.unknown_address == 1
    assert "did you mean /oscgan/truncation/psi" in caplog.text


def test_logging_is_rate_limited(send: Sender, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="oscgan.signals.osc"):
        send.raw(*[encode_message("/nowhere", [i]) for i in range(200)])
    assert send.server.stats.unknown_address == 200
    assert 1 <= len(caplog.records) <= 2


def test_on_unhandled_hook(reg: ParamRegistry, raw: socket.socket) -> None:
    seen: list[OscMessage] = []

    def hook(msg: OscMessage) -> bool:
        if msg.address == "/boom":
            raise RuntimeError("hook failure")
        seen.append(msg)
        return msg.address.startswith("/td/")

    with OscServer(reg, port=0, on_unhandled=hook) as srv:
        send = Sender(srv, raw)
        send.msg("/td/fader1", 0.5)
        send.msg("/other", 1)
        send.msg("/oscgan/truncation/psi", 0.5)  # a parameter: the hook is not asked
        stats = send.msg("/boom")
        assert [m.address for m in seen] == ["/td/fader1", "/other"]
        assert seen[0].args == (0.5,)
        assert (stats.handled, stats.unknown_address, stats.applied) == (1, 2, 1)
        assert srv.is_alive and stats.balanced()


# -- frame-synchronised draining -----------------------------------------------------------------------------

def _send_seeds(raw: socket.socket, port: int, seeds: range) -> None:
    for seed in seeds:
        raw.sendto(encode_message("/oscgan/latent/seed", [seed]), ("127.0.0.1", port))


def thread_recorder() -> tuple[list[str], Callable[[OscMessage], bool]]:
    """An on_unhandled hook that notes the name of the thread each message is handled on."""
    threads: list[str] = []

    def hook(msg: OscMessage) -> bool:
        threads.append(threading.current_thread().name)
        return True

    return threads, hook


def test_drain_applies_on_the_callers_thread_in_order(reg: ParamRegistry, raw: socket.socket) -> None:
    threads, hook = thread_recorder()
    # A fallback far longer than the test: only drain() may apply anything.
    with OscServer(reg, port=0, on_unhandled=hook, sync_fallback=30.0) as srv:
        assert srv.drain() == 0  # from now on a "render loop" drains
        _send_seeds(raw, srv.address[1], range(1, 51))
        raw.sendto(encode_message("/td/fader1", [0.5]), ("127.0.0.1", srv.address[1]))
        time.sleep(0.2)
        assert reg.get("latent.seed") == 0 and srv.stats.received == 0  # left to the loop
        assert srv.drain() == 51
        assert reg.get("latent.seed") == 50  # in arrival order: the last one wins
        assert threads == [threading.current_thread().name]
        assert srv.stats.received == 51 and srv.stats.balanced()


def test_receive_thread_steps_in_when_no_frame_drains(reg: ParamRegistry, raw: socket.socket) -> None:
    threads, hook = thread_recorder()
    with OscServer(reg, port=0, on_unhandled=hook, sync_fallback=0.05) as srv:
        srv.drain()  # a loop drained once, then its frame takes long
        raw.sendto(encode_message("/td/fader1", [0.5]), ("127.0.0.1", srv.address[1]))
        _send_seeds(raw, srv.address[1], range(7, 8))
        assert wait_until(lambda: reg.get("latent.seed") == 7, 3.0)
        assert threads == [f"osc-in:{srv.address[1]}"]


def test_drain_leaves_a_flood_to_the_receive_thread(reg: ParamRegistry, raw: socket.socket,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osc, "DRAIN_BATCH", 40)
    with OscServer(reg, port=0, sync_fallback=1.0) as srv:
        srv.drain()
        _send_seeds(raw, srv.address[1], range(1, 101))
        time.sleep(0.1)
        assert srv.drain() == 40  # one frame's share; the queue is not empty...
        assert reg.get("latent.seed") == 40
        assert wait_until(lambda: reg.get("latent.seed") == 100, 5.0)  # ...so the thread takes the rest
        assert srv.stats.received == 100 and srv.stats.balanced()


def test_drain_before_start_and_after_stop_does_nothing(reg: ParamRegistry) -> None:
    srv = OscServer(reg, port=0)
    assert srv.drain() == 0
    srv.start()
    srv.stop()
    assert srv.drain() == 0


# -- dropping bad datagrams --------------------------------------------------------------------------------


def test_malformed_and_oversized_datagrams(reg: ParamRegistry, raw: socket.socket) -> None:
    with OscServer(reg, port=0, max_packet=256) as srv:
        send = Sender(srv, raw)
        stats = send.raw(b"garbage!", b"/\xff\0\0,f\0\0\0\0\0\0", b"/a\0",
                         encode_message("/oscgan/truncation/psi", [b"x" * 300]),
                         encode_message("/oscgan/truncation/psi", ["x" * 1000]), b"#bundle\0")
        assert stats.malformed == 6 and stats.accepted == 0
        stats = send.msg("/oscgan/truncation/psi", 0.5)
        assert reg.get("truncation.psi") == 0.5 and stats.balanced()


def test_allow_list(reg: ParamRegistry, raw: socket.socket) -> None:
    with OscServer(reg, port=0, allow_from={"10.0.0.0/8", "192.168.1.20"}) as srv:
        stats = Sender(srv, raw).msg("/oscgan/truncation/psi", 0.5)
        assert stats.rejected_sender == 1 and stats.accepted == 0
        assert reg.get("truncation.psi") == 0.7
    with OscServer(reg, port=0, allow_from={"127.0.0.1"}) as srv:
        stats = Sender(srv, raw).msg("/oscgan/truncation/psi", 0.5)
        assert stats.applied == 1 and reg.get("truncation.psi") == 0.5
    with pytest.raises(ValueError, match="not an IP address"):
        OscServer(reg, port=0, allow_from={"touchosc.local"})


def test_port_in_use_names_the_port(reg: ParamRegistry, server: OscServer) -> None:
    port = server.address[1]
    with pytest.raises(OSError, match=f"127.0.0.1:{port}.*another program"):
        OscServer(reg, port=port).start()


def test_stop_is_prompt_and_idempotent(reg: ParamRegistry) -> None:
    srv = OscServer(reg, port=0).start()
    assert srv.is_alive
    with pytest.raises(RuntimeError):
        srv.start()
    start = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - start < 1.0
    assert not srv.is_alive
    srv.stop()


# -- bundles -------------------------------------------------------------------------------------------------


def test_touchdesigner_bundle_with_relative_timetag(reg: ParamRegistry, send: Sender) -> None:
    td_bundle = (b"#bundle\0" b"\x00\x00\x00\x00\x19\x99\x99\x9a"
                 b"\x00\x00\x00\x1c" b"/oscgan/mix/coarse\0\0" b",f\0\0" b"\x3e\x80\x00\x00"
                 b"\x00\x00\x00\x1c" b"/oscgan/mix/fine\0\0\0\0" b",i\0\0" b"\x00\x00\x00\x01")
    version = reg.version
    stats = send.raw(td_bundle)
    assert (reg.get("mix.coarse"), reg.get("mix.fine")) == (0.25, 1.0)
    assert reg.version == version + 1  # one set_many
    assert stats.messages == 2 and stats.applied == 2


def test_future_timetag_never_delays(reg: ParamRegistry, send: Sender) -> None:
    in_an_hour = int(time.time() + NTP_UNIX_OFFSET + 3600) << 32
    start = time.perf_counter()
    send.raw(encode_bundle([encode_message("/oscgan/truncation/psi", [0.25])], timetag=in_an_hour))
    assert reg.get("truncation.psi") == 0.25
    assert time.perf_counter() - start < 2.0


def test_nested_bundles_land_in_one_set_many(reg: ParamRegistry, send: Sender) -> None:
    events = []
    reg.subscribe(lambda path, value, source: events.append((path, reg.snapshot().version)))
    inner = encode_bundle([encode_message("/oscgan/mix/middle", [0.5]),
                           encode_message("/oscgan/latent/z/2", [1.0])])
    stats = send.raw(encode_bundle([encode_message("/oscgan/mix/coarse", [0.5]), inner,
                                    encode_message("/oscgan/mix/fine", [0.5])]))
    assert stats.messages == 4 and stats.applied == 4
    assert [p for p, _ in events] == ["mix.coarse", "mix.middle", "latent.z", "mix.fine"]
    assert len({v for _, v in events}) == 1  # every listener call saw the whole bundle applied


def test_bundle_with_bad_and_unknown_messages_applies_the_rest(reg: ParamRegistry, send: Sender) -> None:
    stats = send.raw(encode_bundle([encode_message("/oscgan/mix/coarse", [0.5]),
                                    encode_message("/oscgan/mix/middle", ["x"]),
                                    encode_message("/nowhere", [1])]))
    assert reg.get("mix.coarse") == 0.5
    assert (stats.applied, stats.bad_value, stats.unknown_address) == (1, 1, 1)


def test_python_osc_bundle(reg: ParamRegistry, send: Sender) -> None:
    builder = OscBundleBuilder(PY_IMMEDIATELY)
    for address, value in [("/oscgan/affine/rotate", 90.0), ("/oscgan/affine/scale", 2.0)]:
        msg = OscMessageBuilder(address)
        msg.add_arg(value)
        builder.add_content(msg.build())
    send.raw(builder.build().dgram)
    assert (reg.get("affine.rotate"), reg.get("affine.scale")) == (90.0, 2.0)


def test_bundles_are_atomic_for_concurrent_readers(reg: ParamRegistry, send: Sender) -> None:
    paths = ("mix.coarse", "mix.middle", "mix.fine", "mix.layer.3")
    torn: list[dict] = []
    stop = threading.Event()

    def listener(path: str, value: object, source: str) -> None:
        snap = reg.snapshot()
        if len({snap["mix.coarse"], snap["mix.middle"], snap["mix.fine"], snap["mix.layer"][3]}) != 1:
            torn.append(dict(snap))

    def reader() -> None:
        while not stop.is_set():
            snap = reg.snapshot()
            if len({snap["mix.coarse"], snap["mix.middle"], snap["mix.fine"], snap["mix.layer"][3]}) != 1:
                torn.append(dict(snap))

    reg.subscribe(listener)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for batch in range(10):
            datagrams = []
            for i in range(50):
                x = (batch * 50 + i + 1) / 1000
                messages = [encode_message("/oscgan/" + p.replace(".", "/"), [x]) for p in paths]
                datagrams.append(encode_bundle(messages))
            send.raw(*datagrams)
    finally:
        stop.set()
        thread.join()
    assert not torn
    assert reg.get("mix.fine") == pytest.approx(0.5)


# -- sender and telemetry -----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def receive(sock: socket.socket, expect: int | None = None, quiet: float = 0.2) -> list[tuple[str, list]]:
    """Messages until ``expect`` arrived, or until nothing came for ``quiet`` seconds (parsed by python-osc)."""
    out: list[tuple[str, list]] = []
    sock.settimeout(2.0 if expect else quiet)
    while expect is None or len(out) < expect:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            break
        for element in PyOscPacket(data).messages:  # a message, or each message of a bundle
            out.append((element.message.address, element.message.params))
    return out


@pytest.fixture
def telemetry(reg: ParamRegistry, receiver: socket.socket) -> Iterator[OscTelemetry]:
    with OscSender("127.0.0.1", receiver.getsockname()[1]) as sender:
        t = OscTelemetry(reg, sender)
        yield t
        t.close()


def test_sender(receiver: socket.socket) -> None:
    with OscSender("127.0.0.1", receiver.getsockname()[1]) as sender:
        assert sender.send("/x", 1.5, "a", 3)
        assert sender.send_bundle([("/y", [1]), ("/z", [2.0])])
        assert sender.stats.sent == 2
    data, _ = receiver.recvfrom(65536)
    assert PyOscMessage(data).params == [1.5, "a", 3]
    data, _ = receiver.recvfrom(65536)
    [bundle] = parse_packet(data)
    assert [m.address for m in bundle.elements] == ["/y", "/z"]


def test_sender_errors_are_counted_not_raised(receiver: socket.socket) -> None:
    sender = OscSender("127.0.0.1", receiver.getsockname()[1])
    sender.close()
    assert sender.send("/x", 1.0) is False
    assert sender.stats.errors == 1


def test_telemetry_scalars(reg: ParamRegistry, receiver: socket.socket, telemetry: OscTelemetry) -> None:
    reg.set("truncation.psi", 0.5)
    reg.set("latent.seed", 2**30 + 1)  # an int: exact, unlike a float32
    reg.set("noise.mode", "none")
    reg.set("output.paused", True)
    assert receive(receiver, 4) == [("/oscgan/truncation/psi", [0.5]), ("/oscgan/latent/seed", [2**30 + 1]),
                                    ("/oscgan/noise/mode", [2.0]), ("/oscgan/output/paused", [1.0])]


def test_telemetry_sends_only_changed_vector_elements(reg: ParamRegistry, receiver: socket.socket,
                                                      telemetry: OscTelemetry) -> None:
    reg.set("latent.z.3", 1.0)
    assert receive(receiver, 1) == [("/oscgan/latent/z/3", [1.0])]
    reg.set("latent.z", [0.5, 0.0, 0.0, 1.0])  # elements 1-3 unchanged
    assert receive(receiver) == [("/oscgan/latent/z/0", [0.5])]
    reg.set("latent.keyframes.2", 99)
    assert receive(receiver) == [("/oscgan/latent/keyframes/2", [99])]


def test_telemetry_status_and_send_all(reg: ParamRegistry, receiver: socket.socket,
                                       telemetry: OscTelemetry) -> None:
    telemetry.send_status(59.9, 12.5, 3, 0)
    assert receive(receiver, 4) == [("/oscgan/status/fps", [pytest.approx(59.9)]),
                                    ("/oscgan/status/render_ms", [12.5]),
                                    ("/oscgan/status/dropped", [3]), ("/oscgan/status/errors", [0])]
    telemetry.send_all()
    expected = sum(s.length for s in reg.specs())
    got = receive(receiver, expected)
    assert len(got) == expected
    assert ("/oscgan/truncation/psi", [pytest.approx(0.7)]) in got
    assert ("/oscgan/latent/z/7", [0.0]) in got


def test_telemetry_sends_a_burst_as_bundles_with_the_newest_values(reg: ParamRegistry,
                                                                  receiver: socket.socket) -> None:
    with OscSender("127.0.0.1", receiver.getsockname()[1]) as sender:
        t = OscTelemetry(reg, sender, coalesce=0.5)  # far longer than the burst takes
        try:
            for step in range(1, 4):  # what mappings do frame after frame: every element moves
                reg.set("latent.z", [step / 10] * 8)
            reg.set("truncation.psi", 0.5)
            reg.set("truncation.psi", 0.7)  # back to what the receiver has: nothing to send
            reg.set("mix.fine", 0.25)
            datagrams = []
            receiver.settimeout(2.0)
            while sum(len(PyOscPacket(d).messages) for d in datagrams) < 9:
                datagrams.append(receiver.recvfrom(65536)[0])
            got = [(e.message.address, e.message.params) for d in datagrams for e in PyOscPacket(d).messages]
            assert sorted(got) == sorted([(f"/oscgan/latent/z/{i}", [pytest.approx(0.3)]) for i in range(8)]
                                         + [("/oscgan/mix/fine", [0.25])])
            assert len(datagrams) == 1 and len(datagrams[0]) <= osc.ECHO_BUNDLE_BYTES
            assert receive(receiver) == []
        finally:
            t.close()


def test_telemetry_bundles_stay_under_the_mtu(reg: ParamRegistry, receiver: socket.socket,
                                              telemetry: OscTelemetry) -> None:
    telemetry.send_all()
    expected = sum(s.length for s in reg.specs())
    receiver.settimeout(2.0)
    datagrams, count = [], 0
    while count < expected:
        datagrams.append(receiver.recvfrom(65536)[0])
        count += len(PyOscPacket(datagrams[-1]).messages)
    assert count == expected and len(datagrams) < expected / 10
    assert max(len(d) for d in datagrams) <= osc.ECHO_BUNDLE_BYTES


def test_telemetry_echo_osc_off_and_close(reg: ParamRegistry, receiver: socket.socket) -> None:
    with OscSender("127.0.0.1", receiver.getsockname()[1]) as sender:
        t = OscTelemetry(reg, sender, echo_osc=False)
        reg.set("mix.coarse", 0.5, source="osc:127.0.0.1:5000")
        reg.set("mix.fine", 0.5, source="mapping")
        assert receive(receiver) == [("/oscgan/mix/fine", [0.5])]
        t.close()
        reg.set("mix.fine", 0.25)
        assert receive(receiver) == []


def test_round_trip_with_clamp_correction(reg: ParamRegistry, server: OscServer, receiver: socket.socket,
                                          telemetry: OscTelemetry) -> None:
    # A TouchOSC fader overshoots; the echo tells it the value the engine really uses.
    SimpleUDPClient("127.0.0.1", server.address[1]).send_message("/oscgan/truncation/psi", 5.0)
    assert receive(receiver, 1) == [("/oscgan/truncation/psi", [2.0])]


def test_stop_from_the_hook(reg: ParamRegistry, raw: socket.socket) -> None:
    holder: list[OscServer] = []

    def hook(msg: OscMessage) -> bool:
        if msg.address == "/quit":
            holder[0].stop()  # on the server's own thread: must not deadlock
        return True

    srv = OscServer(reg, port=0, on_unhandled=hook).start()
    holder.append(srv)
    raw.sendto(encode_message("/quit"), srv.address)
    assert wait_until(lambda: not srv.is_alive)
    srv.stop()
