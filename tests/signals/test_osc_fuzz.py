"""Fuzz tests: random and mutated OSC packets against the parser and a running OscServer."""

from __future__ import annotations

import math
import random
import socket
import struct
import time
from collections.abc import Callable

import pytest

from oscgan.signals.osc import OscServer
from oscgan.signals.osc_protocol import (
    IMPULSE,
    RGBA,
    Char,
    Double,
    Int64,
    Midi,
    OscMessage,
    OscParseError,
    TimeTag,
    encode_bundle,
    encode_message,
    parse_packet,
)
from oscgan.state.params import ModelInfo, ParamRegistry, build_registry

SMALL = ModelInfo("stylegan2", 8, 8, 6, 64, (4, 4, 8, 8, 16, 64))
SOCKET_PACKETS = 100_000
PARSER_PACKETS = 100_000
MAX_PACKET = 4096  # the fuzzed server's limit, so that oversized datagrams fit through loopback


class PacketFactory:
    """Valid packets aimed at the parameter set, and mutations of them (seeded: failures replay)."""

    def __init__(self, registry: ParamRegistry, seed: int) -> None:
        self.rng = random.Random(seed)
        self.addresses = [s.osc_address for s in registry.specs()]
        self.addresses += [s.element_address(i) for s in registry.specs() if s.is_vector for i in range(s.length)]
        self.patterns = ["/oscgan/mix/*", "//psi", "/oscgan/latent/z/[0-3]", "/oscgan/{mix,const}/seed",
                         "/oscgan/*/*", "//*", "/oscgan/mix/layer/[!0]", "/oscgan/noise/?ode", "/oscgan/[",
                         "/oscgan/{a,", "/" + "*a" * 30 + "*b", "/oscgan///speed"]
        self.mutators: list[Callable[[bytes], bytes]] = [
            self.bit_flips, self.truncate, self.length_lie, self.splice, self.extend, self.wrap, self.pad_garbage,
        ]

    def value(self) -> object:
        rng = self.rng
        kind = rng.randrange(16)
        if kind < 5:
            return rng.uniform(-10, 10)
        return [lambda: rng.randint(-2**31, 2**31 - 1), lambda: Double(rng.uniform(-1e3, 1e3)),
                lambda: rng.choice([True, False]), lambda: rng.choice(["const", "random", "none", "slerp_z", "x"]),
                lambda: rng.choice([math.nan, math.inf, -math.inf, 1e38]), lambda: Int64(rng.getrandbits(63)),
                lambda: rng.randbytes(rng.randrange(12)), lambda: None,
                lambda: [rng.uniform(-5, 5) for _ in range(rng.randrange(10))],
                lambda: rng.choice([IMPULSE, TimeTag(rng.getrandbits(64)), Char("x"), RGBA(1, 2, 3, 4),
                                    Midi(0, 1, 2, 3)]),
                lambda: rng.randint(0, 3)][kind - 5]()

    def message(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            address = rng.choice(self.addresses)
        elif roll < 0.8:
            address = rng.choice(self.patterns)
        elif roll < 0.9:
            address = rng.choice(["/td/fader1", "/oscgan/preset/load", "/nowhere", "/oscgan/truncation/pis"])
        else:
            address = "/" + "".join(rng.choice("abz/*?[]{},!-0123456789") for _ in range(rng.randrange(1, 20)))
        args = [self.value() for _ in range(rng.choice([1, 1, 1, 0, 2, 3, 8]))]
        return encode_message(address, args)

    def valid(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.7:
            return self.message()
        return encode_bundle([self.message() for _ in range(rng.randrange(0, 6))], timetag=rng.getrandbits(64))

    # -- mutations ----------------------------------------------------------------------------------------

    def bit_flips(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(b))
            b[i] ^= 1 << self.rng.randrange(8)
        return bytes(b)

    def truncate(self, data: bytes) -> bytes:
        cut = self.rng.randrange(len(data))
        return data[:cut - cut % 4] if self.rng.random() < 0.5 else data[:cut]

    def length_lie(self, data: bytes) -> bytes:
        """Overwrite an aligned 32-bit word: blob sizes, bundle element sizes, int arguments."""
        if len(data) < 8:
            return data
        i = self.rng.randrange(len(data) // 4) * 4
        lie = self.rng.choice([0x7FFFFFFF, -1, -4, 0, 1, 3, len(data), len(data) + 4, len(data) - i,
                               self.rng.getrandbits(31), -self.rng.getrandbits(31)])
        return data[:i] + struct.pack(">i", lie) + data[i + 4:]

    def splice(self, data: bytes) -> bytes:
        other = self.valid()
        return data[:self.rng.randrange(len(data) + 1)] + other[self.rng.randrange(len(other) + 1):]

    def extend(self, data: bytes) -> bytes:
        return data + self.rng.randbytes(self.rng.choice([1, 3, 4, 8, 17]))

    def wrap(self, data: bytes) -> bytes:
        for _ in range(self.rng.choice([1, 2, 7, 8, 9, 12])):
            data = encode_bundle([data]) if len(data) % 4 == 0 and data else data
        return data

    def pad_garbage(self, data: bytes) -> bytes:
        # Non-zero padding and non-UTF-8 bytes where the address is.
        b = bytearray(data)
        nul = b.find(b"\0")
        if nul > 0:
            b[nul - 1] = self.rng.choice([0xFF, 0xC3, 0x80, 0x01])
        return bytes(b)

    def huge_counts(self) -> bytes:
        tag = self.rng.choice("bsifdhtcrmTFNI[]")
        tags = b"," + tag.encode() * self.rng.choice([100, 1000, 3000])
        tags += b"\0" * (4 - len(tags) % 4)
        return b"/oscgan/latent/z\0\0\0\0" + tags + self.rng.randbytes(self.rng.choice([0, 4, 64, 400]) // 4 * 4)

    def packet(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            return self.valid()
        if roll < 0.85:
            data = self.valid()
            for _ in range(rng.choice([1, 1, 2, 3])):
                data = rng.choice(self.mutators)(data) or b"\0\0\0\0"
            return data
        if roll < 0.93:
            return self.huge_counts()
        if roll < 0.995:
            return rng.randbytes(rng.randrange(0, 256))
        # Over the server's limit (but under what loopback UDP carries).
        return encode_message("/oscgan/latent/z", [0.0] * rng.randrange(MAX_PACKET // 4, 3 * MAX_PACKET // 4))


def test_parser_only_raises_osc_parse_error() -> None:
    factory = PacketFactory(build_registry(SMALL), seed=1)
    parsed = failed = 0
    for _ in range(PARSER_PACKETS):
        data = factory.packet()
        try:
            parse_packet(data, max_size=MAX_PACKET)
        except OscParseError:
            failed += 1
        else:
            parsed += 1
    # Both outcomes are exercised in quantity.
    assert parsed > PARSER_PACKETS // 5 and failed > PARSER_PACKETS // 5


def test_server_survives_100k_random_and_mutated_packets() -> None:
    registry = build_registry(SMALL)
    hook_calls = 0

    def hook(msg: OscMessage) -> bool:
        nonlocal hook_calls
        hook_calls += 1
        return msg.address.startswith("/td/")

    factory = PacketFactory(registry, seed=2)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    with OscServer(registry, port=0, on_unhandled=hook, max_packet=MAX_PACKET) as server:
        target = server.address
        sent = 0
        batch = 100  # paced: a batch fits the receive buffer, so loopback does not drop
        while sent < SOCKET_PACKETS:
            for _ in range(min(batch, SOCKET_PACKETS - sent)):
                client.sendto(factory.packet(), target)
                sent += 1
            # Wait for the server to catch up; stop waiting if it makes no progress (a datagram lost).
            last, last_change = server.stats.received, time.monotonic()
            while last < sent and time.monotonic() - last_change < 0.5:
                time.sleep(0.0005)
                now = server.stats.received
                if now != last:
                    last, last_change = now, time.monotonic()
        stats = server.stats
        client.close()

        assert server.is_alive
        assert stats.balanced(), stats
        assert stats.errors == 0, stats
        assert SOCKET_PACKETS * 0.99 <= stats.received <= SOCKET_PACKETS, stats
        assert hook_calls == stats.handled + stats.unknown_address
        for name in ("rejected_sender",):
            assert getattr(stats, name) == 0
        for name in ("malformed", "accepted", "applied", "handled", "unknown_address", "bad_value", "clamped"):
            assert getattr(stats, name) > 100, (name, stats)

        # Every value is still finite and in range: clamping and validation held.
        for spec in registry.specs():
            value = registry.get(spec.path)
            for x in (value if spec.is_vector else [value]):
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    assert math.isfinite(x)
                    assert spec.minimum is None or x >= spec.minimum
                    assert spec.maximum is None or x <= spec.maximum

        # And the server still works.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(encode_message("/oscgan/truncation/psi", [0.125]), target)
            deadline = time.monotonic() + 5
            while registry.get("truncation.psi") != 0.125 and time.monotonic() < deadline:
                time.sleep(0.001)
        assert registry.get("truncation.psi") == 0.125


@pytest.mark.parametrize("seed", range(3))
def test_mutations_of_every_fixture_type(seed: int) -> None:
    """Each mutator on a message with every argument type: only OscParseError, and valid output round-trips."""
    factory = PacketFactory(build_registry(SMALL), seed=100 + seed)
    base = encode_message("/all", [1, 2.0, Double(3.0), Int64(4), "s", b"blob", True, False, None, IMPULSE,
                                   TimeTag(9), Char("c"), RGBA(1, 2, 3, 4), Midi(5, 6, 7, 8), [1, [2.0]]])
    bundle = encode_bundle([base, encode_bundle([base])], timetag=5)
    for data in (base, bundle):
        for mutate in factory.mutators:
            for _ in range(300):
                try:
                    parse_packet(mutate(data))
                except OscParseError:
                    pass
