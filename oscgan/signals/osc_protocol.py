"""OSC 1.0/1.1 wire format and address patterns: pure functions from bytes to messages and back."""

from __future__ import annotations

import functools
import math
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Union

MAX_PACKET_SIZE = 65536  # bytes; more than any UDP datagram on IPv4 can carry (65507)
MAX_DEPTH = 8  # nesting limit for bundles in bundles and for arrays in arrays
IMMEDIATELY = 1  # the timetag that means "now" (OSC 1.0)

_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")
_UINT64 = struct.Struct(">Q")
_FLOAT32 = struct.Struct(">f")
_FLOAT64 = struct.Struct(">d")
_NUMBER_TAGS = {"i": _INT32, "f": _FLOAT32, "d": _FLOAT64, "h": _INT64}  # plain big-endian numbers
_BUNDLE_HEADER = b"#bundle\0"


class OscParseError(ValueError):
    """A packet or address pattern is not valid OSC; ``offset`` is the byte where it went wrong."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


class OscEncodeError(ValueError):
    """A value cannot be written as an OSC argument."""


# -- argument types without a plain Python equivalent ---------------------------------------------


class TimeTag(NamedTuple):
    """An OSC timetag argument (``t``): 64-bit NTP time, seconds since 1900 << 32 | fraction."""

    value: int

    @property
    def seconds(self) -> float:
        return (self.value >> 32) + (self.value & 0xFFFFFFFF) / 2**32


class Char(NamedTuple):
    """An OSC character argument (``c``), sent as a 32-bit code point."""

    char: str


class RGBA(NamedTuple):
    """An OSC colour argument (``r``), one byte per channel."""

    r: int
    g: int
    b: int
    a: int


class Midi(NamedTuple):
    """An OSC MIDI argument (``m``): port id, status byte and two data bytes."""

    port: int
    status: int
    data1: int
    data2: int


class _Impulse:
    """The OSC 1.1 impulse (``I``, "infinitum" in OSC 1.0): a trigger without a value."""

    __slots__ = ()
    _instance: _Impulse | None = None

    def __new__(cls) -> _Impulse:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IMPULSE"

    def __reduce__(self) -> str:
        return "IMPULSE"


IMPULSE = _Impulse()


class Double(float):
    """A float to encode as 64-bit ``d`` (plain floats are written as 32-bit ``f``)."""


class Int64(int):
    """An int to encode as 64-bit ``h`` (plain ints are ``i`` when they fit in 32 bits)."""


class Symbol(str):
    """A string to encode as an OSC 1.1 symbol (``S``) rather than a string (``s``)."""


OscArg = Union[int, float, str, bytes, bool, None, TimeTag, Char, RGBA, Midi, _Impulse, tuple]


@dataclass(frozen=True)
class OscMessage:
    """One OSC message: an address (or address pattern) and its arguments.

    ``tags`` is the type tag string without the comma, as received (``'fff'``); it is empty for
    messages built in code and is not part of equality.
    """

    address: str
    args: tuple[OscArg, ...] = ()
    tags: str = field(default="", compare=False)


@dataclass(frozen=True)
class OscBundle:
    """An OSC bundle: a timetag and elements (messages or bundles) meant to take effect together."""

    timetag: int
    elements: tuple[OscMessage | OscBundle, ...] = ()


# -- parsing ---------------------------------------------------------------------------------------


def parse_packet(data: bytes | bytearray | memoryview, max_depth: int = MAX_DEPTH,
                 max_size: int = MAX_PACKET_SIZE) -> list[OscMessage | OscBundle]:
    """Parse one OSC packet (one UDP datagram) into its top-level element.

    A datagram carries exactly one packet, so the list has one element; the list form leaves
    room for stream transports (OSC 1.1 over SLIP/TCP) that carry several. Bundles keep their
    structure; use ``iter_messages`` to walk them. Raises OscParseError for anything that is not
    strictly valid: wrong alignment, lengths running past the end, unknown type tags, addresses
    or strings that are not UTF-8, unbalanced arrays, nesting deeper than ``max_depth`` or more
    than ``max_size`` bytes.
    """
    data = bytes(data)
    if not data:
        raise OscParseError("empty packet")
    if len(data) > max_size:
        raise OscParseError(f"packet of {len(data)} bytes is over the {max_size}-byte limit")
    if len(data) % 4:
        raise OscParseError(f"packet length {len(data)} is not a multiple of 4")
    return [_parse_element(data, 0, len(data), 1, max_depth)]


def iter_messages(elements: Iterable[OscMessage | OscBundle]) -> list[OscMessage]:
    """All messages of parsed elements, depth-first in packet order (bundles flattened)."""
    out: list[OscMessage] = []
    stack = [iter(elements)]
    while stack:
        for element in stack[-1]:
            if isinstance(element, OscBundle):
                stack.append(iter(element.elements))
                break
            out.append(element)
        else:
            stack.pop()
    return out


def _parse_element(data: bytes, start: int, end: int, depth: int, max_depth: int) -> OscMessage | OscBundle:
    if data.startswith(b"#", start, end):
        return _parse_bundle(data, start, end, depth, max_depth)
    if data.startswith(b"/", start, end):
        return _parse_message(data, start, end, max_depth)
    raise OscParseError('element is neither a message (starts with "/") nor a bundle ("#bundle")', start)


def _parse_bundle(data: bytes, start: int, end: int, depth: int, max_depth: int) -> OscBundle:
    if depth > max_depth:
        raise OscParseError(f"bundles nested deeper than {max_depth}", start)
    if end - start < 16 or data[start:start + 8] != _BUNDLE_HEADER:
        raise OscParseError('bundle must start with "#bundle\\0" and an 8-byte timetag', start)
    timetag = _UINT64.unpack_from(data, start + 8)[0]
    elements = []
    pos = start + 16
    while pos < end:
        if pos + 4 > end:
            raise OscParseError("bundle element size runs past the end", pos)
        size = _INT32.unpack_from(data, pos)[0]
        if size <= 0 or size % 4:
            raise OscParseError(f"bundle element size {size} is not a positive multiple of 4", pos)
        if pos + 4 + size > end:
            raise OscParseError(f"bundle element of {size} bytes runs past the end of the bundle", pos)
        elements.append(_parse_element(data, pos + 4, pos + 4 + size, depth + 1, max_depth))
        pos += 4 + size
    return OscBundle(timetag, tuple(elements))


def _read_string(data: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    nul = data.find(b"\0", pos, end)
    if nul < 0:
        raise OscParseError(f"{what} has no terminating NUL", pos)
    after = (nul + 4) & ~3  # the NUL plus padding up to the next multiple of 4
    if after > end:
        raise OscParseError(f"{what} padding runs past the end", nul)
    if data.count(0, nul, after) != after - nul:
        raise OscParseError(f"{what} padding is not all NUL bytes", nul)
    try:
        return data[pos:nul].decode("utf-8"), after
    except UnicodeDecodeError as e:
        raise OscParseError(f"{what} is not valid UTF-8: {e.reason}", pos + e.start) from None


def _need(pos: int, n: int, end: int, tag: str) -> None:
    if pos + n > end:
        raise OscParseError(f'argument "{tag}" needs {n} bytes, {max(end - pos, 0)} left', pos)


def _parse_message(data: bytes, start: int, end: int, max_depth: int) -> OscMessage:
    address, pos = _read_string(data, start, end, "address")
    if pos == end:
        # OSC 1.0 allows a message without a type tag string; it has no arguments.
        return OscMessage(address, (), "")
    if data[pos] != ord(","):
        raise OscParseError('type tag string must start with ","', pos)
    tag_string, pos = _read_string(data, pos, end, "type tag string")
    tags = tag_string[1:]
    stack: list[list[OscArg]] = [[]]
    for tag in tags:
        args = stack[-1]
        number = _NUMBER_TAGS.get(tag)
        if number is not None:
            _need(pos, number.size, end, tag)
            args.append(number.unpack_from(data, pos)[0])
            pos += number.size
        elif tag in "sS":
            value, pos = _read_string(data, pos, end, f'argument "{tag}"')
            args.append(value)
        elif tag == "b":
            _need(pos, 4, end, tag)
            size = _INT32.unpack_from(data, pos)[0]
            if size < 0:
                raise OscParseError(f"blob size {size} is negative", pos)
            after = (pos + 4 + size + 3) & ~3
            if after > end:
                raise OscParseError(f"blob of {size} bytes runs past the end", pos)
            if data.count(0, pos + 4 + size, after) != after - (pos + 4 + size):
                raise OscParseError("blob padding is not all NUL bytes", pos + 4 + size)
            args.append(data[pos + 4:pos + 4 + size])
            pos = after
        elif tag == "t":
            _need(pos, 8, end, tag)
            args.append(TimeTag(_UINT64.unpack_from(data, pos)[0]))
            pos += 8
        elif tag == "c":
            _need(pos, 4, end, tag)
            code = _UINT32.unpack_from(data, pos)[0]
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise OscParseError(f"char argument {code:#x} is not a Unicode code point", pos)
            args.append(Char(chr(code)))
            pos += 4
        elif tag in "rm":
            _need(pos, 4, end, tag)
            args.append((RGBA if tag == "r" else Midi)(*data[pos:pos + 4]))
            pos += 4
        elif tag == "T":
            args.append(True)
        elif tag == "F":
            args.append(False)
        elif tag == "N":
            args.append(None)
        elif tag == "I":
            args.append(IMPULSE)
        elif tag == "[":
            if len(stack) > max_depth:
                raise OscParseError(f"arrays nested deeper than {max_depth}", pos)
            stack.append([])
        elif tag == "]":
            if len(stack) == 1:
                raise OscParseError('"]" without "[" in type tags', pos)
            inner = stack.pop()
            stack[-1].append(tuple(inner))
        else:
            raise OscParseError(f"unknown type tag {tag!r} in {tag_string!r}", pos)
    if len(stack) != 1:
        raise OscParseError('"[" without "]" in type tags', pos)
    if pos != end:
        raise OscParseError(f"{end - pos} bytes after the last argument", pos)
    return OscMessage(address, tuple(stack[0]), tags)


# -- encoding --------------------------------------------------------------------------------------


def _encode_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    if b"\0" in raw:
        raise OscEncodeError(f"OSC strings cannot contain NUL: {value!r}")
    return raw + b"\0" * (4 - len(raw) % 4)


def _encode_arg(value: object, tags: list[str], chunks: list[bytes], depth: int) -> None:
    # Order matters: bool before int, the typed subclasses before their bases.
    if value is True:
        tags.append("T")
    elif value is False:
        tags.append("F")
    elif value is None:
        tags.append("N")
    elif value is IMPULSE:
        tags.append("I")
    elif isinstance(value, TimeTag):
        if not 0 <= value.value < 2**64:
            raise OscEncodeError(f"timetag {value.value} is outside 64 bits")
        tags.append("t")
        chunks.append(_UINT64.pack(value.value))
    elif isinstance(value, Char):
        if len(value.char) != 1:
            raise OscEncodeError(f"char argument must be one character, got {value.char!r}")
        tags.append("c")
        chunks.append(_UINT32.pack(ord(value.char)))
    elif isinstance(value, (RGBA, Midi)):
        try:
            chunks.append(bytes(value))
        except ValueError:
            raise OscEncodeError(f"{type(value).__name__} channels must be 0..255: {value}") from None
        tags.append("r" if isinstance(value, RGBA) else "m")
    elif isinstance(value, Int64):
        tags.append("h")
        try:
            chunks.append(_INT64.pack(value))
        except struct.error:
            raise OscEncodeError(f"{value} does not fit in 64 bits") from None
    elif isinstance(value, int):
        if -2**31 <= value < 2**31:
            tags.append("i")
            chunks.append(_INT32.pack(value))
        elif -2**63 <= value < 2**63:
            tags.append("h")
            chunks.append(_INT64.pack(value))
        else:
            raise OscEncodeError(f"{value} does not fit in 64 bits")
    elif isinstance(value, Double):
        tags.append("d")
        chunks.append(_FLOAT64.pack(value))
    elif isinstance(value, float):
        tags.append("f")
        try:
            chunks.append(_FLOAT32.pack(value))
        except OverflowError:
            # Too large for 32 bits: send infinity rather than fail, as C senders would.
            chunks.append(_FLOAT32.pack(math.copysign(math.inf, value)))
    elif isinstance(value, Symbol):
        tags.append("S")
        chunks.append(_encode_string(value))
    elif isinstance(value, str):
        tags.append("s")
        chunks.append(_encode_string(value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        tags.append("b")
        chunks.append(_INT32.pack(len(raw)) + raw + b"\0" * (-len(raw) % 4))
    elif isinstance(value, (tuple, list)):
        if depth >= MAX_DEPTH:
            raise OscEncodeError(f"arrays nested deeper than {MAX_DEPTH}")
        tags.append("[")
        for item in value:
            _encode_arg(item, tags, chunks, depth + 1)
        tags.append("]")
    else:
        raise OscEncodeError(f"cannot send {type(value).__name__} {value!r} as an OSC argument")


def encode_message(address: str, args: Iterable[object] = ()) -> bytes:
    """One OSC message as bytes.

    Types: bool -> T/F, None -> N, int -> i (h beyond 32 bits), float -> f, str -> s, bytes -> b,
    list/tuple -> array, and the wrappers Double (d), Int64 (h), Symbol (S), TimeTag (t), Char (c),
    RGBA (r), Midi (m), IMPULSE (I).
    """
    if not address.startswith("/"):
        raise OscEncodeError(f'OSC address must start with "/": {address!r}')
    tags = [","]
    chunks: list[bytes] = []
    for arg in args:
        _encode_arg(arg, tags, chunks, 0)
    return _encode_string(address) + _encode_string("".join(tags)) + b"".join(chunks)


def encode_bundle(elements: Iterable[OscMessage | OscBundle | bytes], timetag: int = IMMEDIATELY) -> bytes:
    """One OSC bundle as bytes; elements are messages, bundles or already encoded packets."""
    if not 0 <= timetag < 2**64:
        raise OscEncodeError(f"timetag {timetag} is outside 64 bits")
    parts = [_BUNDLE_HEADER, _UINT64.pack(timetag)]
    for element in elements:
        raw = element if isinstance(element, bytes) else encode_packet(element)
        if not raw or len(raw) % 4:
            raise OscEncodeError("bundle elements must be non-empty and a multiple of 4 bytes long")
        parts.append(_INT32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_packet(element: OscMessage | OscBundle) -> bytes:
    """A parsed (or built) message or bundle back to bytes."""
    if isinstance(element, OscBundle):
        return encode_bundle(element.elements, element.timetag)
    return encode_message(element.address, element.args)


# -- address patterns ------------------------------------------------------------------------------
#
# Matching simulates a nondeterministic automaton instead of compiling to a backtracking regex, so
# time is O(len(pattern) * len(address)) at worst: '*a*a*a...' against a long address cannot blow
# up. Each part between slashes is matched by a lazily built DFA (cached per compiled part); the
# parts are matched by a second automaton whose only nondeterminism is '//' (any number of parts).

_SPECIAL = frozenset("*?[]{}")
_MAX_DFA_STATES = 2048  # per pattern part; beyond it matching falls back to the uncached automaton
_MAX_DFA_EDGES = 32768


def has_wildcards(address: str) -> bool:
    """Whether an address uses pattern syntax (``? * [] {}`` or ``//``)."""
    return not _SPECIAL.isdisjoint(address) or "//" in address


class _CharClass(NamedTuple):
    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negate: bool

    def test(self, c: str) -> bool:
        hit = c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)
        return hit != self.negate


_ANY = _CharClass(frozenset(), (), True)  # '?' and the loop of '*': any single character


class _PartMatcher:
    """Glob for one address part (no '/'): literals, ?, *, [class], {alt,ernatives}."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.literal: str | None = text if _SPECIAL.isdisjoint(text) else None
        if self.literal is not None:
            return
        # Thompson automaton. A node is ('c', test, next) consuming one character, ('e', nexts)
        # with epsilon moves, or ('m',) accepting.
        self._nodes: list[tuple] = []
        self._build(text)
        self._lock = threading.Lock()
        self._dfa_sets: list[frozenset[int]] = []
        self._dfa_ids: dict[frozenset[int], int] = {}
        self._dfa_accept: list[bool] = []
        self._dfa_next: dict[tuple[int, str], int] = {}
        self._dfa_dead = self._dfa_state(frozenset())  # no NFA node left: the part cannot match
        self._dfa_start = self._dfa_state(self._closure({0}))

    def _new(self) -> int:
        self._nodes.append(("e", []))
        return len(self._nodes) - 1

    def _build(self, text: str) -> None:
        cur = self._new()
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "*":
                loop, after = self._new(), self._new()
                self._nodes[cur] = ("e", [loop, after])
                self._nodes[loop] = ("c", _ANY, cur)
                cur = after
                i += 1
            elif c == "{":
                close = text.find("}", i)
                if close < 0:
                    raise OscParseError(f'"{{" without "}}" in pattern part {text!r}')
                body = text[i + 1:close]
                if "{" in body:
                    raise OscParseError(f'nested "{{" in pattern part {text!r}')
                after = self._new()
                starts = []
                for option in dict.fromkeys(body.split(",")):  # drop duplicate options
                    if not option:
                        starts.append(after)
                        continue
                    first = node = self._new()
                    for k, ch in enumerate(option):
                        nxt = after if k == len(option) - 1 else self._new()
                        self._nodes[node] = ("c", _CharClass(frozenset(ch), (), False), nxt)
                        node = nxt
                    starts.append(first)
                self._nodes[cur] = ("e", starts)
                cur = after
                i = close + 1
            else:
                if c == "?":
                    test, i = _ANY, i + 1
                elif c == "[":
                    test, i = self._parse_class(text, i)
                else:
                    # A lone ']' or '}' is taken literally; OSC gives it no other meaning.
                    test, i = _CharClass(frozenset(c), (), False), i + 1
                nxt = self._new()
                self._nodes[cur] = ("c", test, nxt)
                cur = nxt
        self._accept = cur
        self._nodes[cur] = ("m",)

    @staticmethod
    def _parse_class(text: str, i: int) -> tuple[_CharClass, int]:
        j = i + 1
        negate = j < len(text) and text[j] == "!"
        if negate:
            j += 1
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        first = True
        while True:
            if j >= len(text):
                raise OscParseError(f'"[" without "]" in pattern part {text!r}')
            c = text[j]
            if c == "]" and not first:
                return _CharClass(frozenset(chars), tuple(ranges), negate), j + 1
            first = False
            if j + 2 < len(text) and text[j + 1] == "-" and text[j + 2] != "]":
                lo, hi = sorted((c, text[j + 2]))
                ranges.append((lo, hi))
                j += 3
            else:
                chars.add(c)  # includes a '-' at either end of the class
                j += 1

    def _closure(self, start: Iterable[int]) -> frozenset[int]:
        seen: set[int] = set()
        stack = list(start)
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            node = self._nodes[k]
            if node[0] == "e":
                stack.extend(node[1])
        # Only consuming and accepting nodes matter for the next step.
        return frozenset(k for k in seen if self._nodes[k][0] != "e")

    def _dfa_state(self, nfa_set: frozenset[int]) -> int:
        sid = self._dfa_ids.get(nfa_set)
        if sid is None:
            sid = len(self._dfa_sets)
            self._dfa_sets.append(nfa_set)
            self._dfa_accept.append(self._accept in nfa_set)
            self._dfa_ids[nfa_set] = sid
        return sid

    def _targets(self, nfa_set: Iterable[int], c: str) -> frozenset[int]:
        return self._closure([node[2] for k in nfa_set if (node := self._nodes[k])[0] == "c" and node[1].test(c)])

    def _step(self, sid: int, c: str) -> int:
        """DFA transition, built on first use; -1 when the cache is full and the state is new."""
        with self._lock:  # only on a cache miss; lookups in match() take no lock
            nxt = self._dfa_next.get((sid, c))
            if nxt is not None:
                return nxt
            target = self._targets(self._dfa_sets[sid], c)
            nxt = self._dfa_ids.get(target)
            if nxt is None:
                # Some patterns ('*a??????...') have exponentially many DFA states; cap the memory.
                if len(self._dfa_sets) >= _MAX_DFA_STATES:
                    return -1
                nxt = self._dfa_state(target)
            if len(self._dfa_next) < _MAX_DFA_EDGES:
                self._dfa_next[(sid, c)] = nxt
            return nxt

    def match(self, part: str) -> bool:
        if self.literal is not None:
            return part == self.literal
        sid, dead, table = self._dfa_start, self._dfa_dead, self._dfa_next
        for i, c in enumerate(part):
            nxt = table.get((sid, c))
            if nxt is None:
                nxt = self._step(sid, c)
                if nxt < 0:
                    return self._match_nfa(self._dfa_sets[sid], part[i:])
            sid = nxt
            if sid == dead:
                return False
        return self._dfa_accept[sid]

    def _match_nfa(self, nfa_set: frozenset[int], rest: str) -> bool:
        """Plain automaton simulation (no cache): still O(len(pattern)) per character."""
        for c in rest:
            nfa_set = self._targets(nfa_set, c)
            if not nfa_set:
                return False
        return self._accept in nfa_set


_DESCEND = None  # a '//' in a pattern: any number of address parts, zero included


class AddressPattern:
    """A compiled OSC address pattern; ``match(address)`` runs in time linear in the address."""

    def __init__(self, pattern: str) -> None:
        if not pattern.startswith("/"):
            raise OscParseError(f'address pattern must start with "/": {pattern!r}')
        self.pattern = pattern
        raw = pattern[1:].split("/")
        parts: list[_PartMatcher | None] = []
        for k, text in enumerate(raw):
            if text == "" and k < len(raw) - 1:
                if parts and parts[-1] is _DESCEND:
                    continue  # '///' means the same as '//'
                parts.append(_DESCEND)
            else:
                parts.append(_PartMatcher(text))
        self.parts: tuple[_PartMatcher | None, ...] = tuple(parts)

        # State i means "parts[:i] matched"; a '//' at i may also match nothing, so reaching i
        # reaches i + 1 as well. Precomputed once: matching then does no closure searches.
        n = len(parts)
        reach: list[tuple[int, ...]] = [(n,)] * (n + 1)
        for i in range(n - 1, -1, -1):
            reach[i] = (i,) + reach[i + 1] if parts[i] is _DESCEND else (i,)
        self._reach = tuple(reach)
        self.is_literal = all(p is not None and p.literal is not None for p in parts)

    def start(self) -> frozenset[int]:
        return frozenset(self._reach[0])

    def step(self, states: frozenset[int], part: str) -> frozenset[int]:
        """States after consuming one address part (empty: no match possible)."""
        nxt: set[int] = set()
        parts, reach, n = self.parts, self._reach, len(self.parts)
        for i in states:
            if i == n:
                continue
            matcher = parts[i]
            if matcher is _DESCEND:
                nxt.update(reach[i])
            elif matcher.match(part):
                nxt.update(reach[i + 1])
        return frozenset(nxt)

    def accepts(self, states: frozenset[int]) -> bool:
        return len(self.parts) in states

    def match(self, address: str) -> bool:
        if not address.startswith("/"):
            return False
        if self.is_literal:
            return address == self.pattern
        states = self.start()
        for part in address[1:].split("/"):
            states = self.step(states, part)
            if not states:
                return False
        return self.accepts(states)


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> AddressPattern:
    """Compile (and cache) an address pattern; raises OscParseError for a malformed one."""
    return AddressPattern(pattern)


def match_pattern(pattern: str, address: str) -> bool:
    """Whether OSC address pattern ``pattern`` matches ``address``.

    Supports ``?`` (one character), ``*`` (any run within one part), ``[abc]``, ``[a-z]``,
    ``[!a-z]``, ``{foo,bar}`` and OSC 1.1's ``//`` (any number of parts). Raises OscParseError
    for a malformed pattern (unclosed ``[`` or ``{``).
    """
    return compile_pattern(pattern).match(address)


class AddressTree:
    """A fixed set of addresses, matched against patterns by walking a tree of their parts.

    Matching a pattern visits only the branches the pattern can still match, so ``/oscgan/mix/*``
    does not look at the 512 elements of ``/oscgan/latent/z``.
    """

    def __init__(self, addresses: Iterable[str]) -> None:
        self._root: dict = {}
        self._order: dict[str, int] = {}
        for address in addresses:
            if not address.startswith("/"):
                raise ValueError(f'address must start with "/": {address!r}')
            self._order.setdefault(address, len(self._order))
            node = self._root
            for part in address[1:].split("/"):
                node = node.setdefault(part, {})
            node[None] = address  # the None key marks "an address ends here"

    def __contains__(self, address: object) -> bool:
        return address in self._order

    def __len__(self) -> int:
        return len(self._order)

    def match(self, pattern: str | AddressPattern) -> list[str]:
        """Addresses matched by the pattern, in the order they were given."""
        compiled = compile_pattern(pattern) if isinstance(pattern, str) else pattern
        if compiled.is_literal:
            return [compiled.pattern] if compiled.pattern in self._order else []
        found: list[str] = []
        stack: list[tuple[dict, frozenset[int]]] = [(self._root, compiled.start())]
        while stack:
            node, states = stack.pop()
            if None in node and compiled.accepts(states):
                found.append(node[None])
            literal = _literal_choices(compiled, states)
            children = ((k, node[k]) for k in literal if k in node) if literal is not None else node.items()
            for part, child in children:
                if part is None:
                    continue
                nxt = compiled.step(states, part)
                if nxt:
                    stack.append((child, nxt))
        found.sort(key=self._order.__getitem__)
        return found


def _literal_choices(compiled: AddressPattern, states: frozenset[int]) -> Sequence[str] | None:
    """The only part names that can match next, when all live states are literal parts."""
    names = []
    for i in states:
        if i == len(compiled.parts):
            continue
        matcher = compiled.parts[i]
        if matcher is None or matcher.literal is None:
            return None
        names.append(matcher.literal)
    return list(dict.fromkeys(names))
