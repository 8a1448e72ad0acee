"""Size limits for untrusted pickles, and an opcode pre-scan that runs before any unpickling.

The scan decodes opcodes with ``pickletools.genops`` (a parser: it builds nothing and calls
nothing) and simulates the unpickler's stack just far enough to refuse, before CPython's C
unpickler sees the bytes:

* opcodes a network pickle never needs (persistent ids unless asked for, extension codes,
  ``INST``/``OBJ``/``NEWOBJ_EX``, out-of-band buffers; the in-band ``BYTEARRAY8`` of protocol 5
  is plain data and allowed);
* memo indices far beyond the number of opcodes read (the C unpickler grows its memo table to
  the index it is given, so ``LONG_BINPUT 0xfffffff0`` alone allocates tens of GiB);
* tuples nested deeper than ``max_depth``: hashing a deeply nested tuple (as a dict key or set
  item) recurses in C without a guard and crashes the interpreter (about 10**5 levels are
  enough, and they take only 100 kB of pickle);
* MARK nesting deeper than ``max_depth`` and MARK groups longer than ``max_container_items``.
"""

from __future__ import annotations

import mmap
import pickletools
from dataclasses import dataclass
from typing import IO

from oscgan.models.errors import FormatError

GiB = 1 << 30

HINT_CORRUPT = "the file is truncated or damaged; fetch it again"
HINT_LIMIT = "if you trust this file, raise the matching ReadLimits field"
HINT_REFUSED = "the file may be malicious or is not a StyleGAN network file; nothing in it was run"


@dataclass(frozen=True)
class ReadLimits:
    """Caps that keep a hostile or broken file from exhausting memory, stack or time.

    Attributes:
        max_file_bytes: largest file read at all.
        max_depth: deepest nesting of containers, MARK groups, tuples and modules.
        max_container_items: most items in one list, tuple, dict or set.
        max_nodes: most values visited while converting one file's plain data (constructor
            arguments, attributes); shared references count every time they are reached.
        max_opcodes: most pickle opcodes in one pickle.
        max_tensor_bytes: largest single tensor or storage.
        max_total_tensor_bytes: most tensor bytes created from one file.
        max_array_items: most elements of one numpy array (these become Python lists).
    """

    max_file_bytes: int = 4 * GiB
    max_depth: int = 100
    max_container_items: int = 1_000_000
    max_nodes: int = 1_000_000
    max_opcodes: int = 50_000_000
    max_tensor_bytes: int = 4 * GiB
    max_total_tensor_bytes: int = 16 * GiB
    max_array_items: int = 1_000_000


DEFAULT_LIMITS = ReadLimits()

_REFUSED_OPCODES = {
    "EXT1": "an extension-registry reference",
    "EXT2": "an extension-registry reference",
    "EXT4": "an extension-registry reference",
    "INST": "an old-style class instantiation",
    "OBJ": "an old-style class instantiation",
    "NEWOBJ_EX": "a keyword-argument object construction",
    "NEXT_BUFFER": "an out-of-band buffer",
    "READONLY_BUFFER": "an out-of-band buffer",
}
_PERSISTENT_OPCODES = ("PERSID", "BINPERSID")
_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")
_MEMO_GETS = ("GET", "BINGET", "LONG_BINGET")
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
# Opcodes that pop some values and leave the object below them (list, dict, set, instance) in
# place; the object keeps its tuple depth (it is never a tuple: the unpickler refuses these on
# tuples).
_IN_PLACE = ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD")
HIGHEST_PROTOCOL = 5


def scan_pickle(
    stream: IO[bytes] | mmap.mmap,
    limits: ReadLimits = DEFAULT_LIMITS,
    *,
    allow_persistent_ids: bool = False,
    what: str = "pickle",
) -> int:
    """Check one pickle starting at ``stream``'s position; return the offset just past its STOP.

    Raises ``FormatError`` for anything refused (see the module docstring) and for truncated
    or malformed opcodes. The stream is left somewhere inside or after the pickle; callers
    seek back before unpickling.

    Tuple depth is tracked exactly: tuples are immutable, so a tuple's depth is fixed when it
    is built from the values on the stack. Every other value counts as depth 0, which is sound
    because the only callables the readers allow never return tuples.
    """
    stack: list[int] = []  # tuple depth of each value on the simulated stack
    marks: list[int] = []  # stack lengths at each MARK
    memo: dict[int, int] = {}
    n_ops = 0
    end = -1
    try:
        for opcode, arg, pos in pickletools.genops(stream):  # type: ignore[arg-type]
            n_ops += 1
            if n_ops > limits.max_opcodes:
                raise FormatError(f"{what} has more than {limits.max_opcodes} opcodes", HINT_LIMIT)
            name = opcode.name
            if name in _REFUSED_OPCODES:
                raise FormatError(f"{what} contains {_REFUSED_OPCODES[name]} ({name})", HINT_REFUSED)
            if name in _PERSISTENT_OPCODES and not allow_persistent_ids:
                raise FormatError(f"{what} contains a persistent id ({name}), which network pickles never use",
                                  HINT_REFUSED)
            if name == "PROTO" and not (isinstance(arg, int) and 0 <= arg <= HIGHEST_PROTOCOL):
                raise FormatError(f"{what} uses unknown pickle protocol {arg}", HINT_CORRUPT)
            _simulate(name, opcode, arg, stack, marks, memo, n_ops, limits, what)
            if name == "STOP":
                end = -1 if pos is None else pos + 1
                break
    except FormatError:
        raise
    except (ValueError, EOFError, OverflowError, UnicodeDecodeError, MemoryError) as exc:
        raise FormatError(f"{what} is truncated or malformed ({type(exc).__name__})", HINT_CORRUPT) from None
    if end < 0:
        raise FormatError(f"{what} ends before its STOP opcode", HINT_CORRUPT)
    return end


def _pop(stack: list[int], n: int, what: str) -> list[int]:
    if n > len(stack):
        raise FormatError(f"{what} is malformed (stack underflow)", HINT_CORRUPT)
    if n == 0:
        return []
    out = stack[-n:]
    del stack[-n:]
    return out


def _pop_mark(stack: list[int], marks: list[int], limits: ReadLimits, what: str) -> list[int]:
    if not marks:
        raise FormatError(f"{what} is malformed (no MARK)", HINT_CORRUPT)
    start = marks.pop()
    if start > len(stack):
        raise FormatError(f"{what} is malformed (MARK below stack)", HINT_CORRUPT)
    items = stack[start:]
    del stack[start:]
    if len(items) > limits.max_container_items:
        raise FormatError(f"{what} has a group of {len(items)} items (limit {limits.max_container_items})",
                          HINT_LIMIT)
    return items


def _simulate(
    name: str,
    opcode: pickletools.OpcodeInfo,
    arg: object,
    stack: list[int],
    marks: list[int],
    memo: dict[int, int],
    n_ops: int,
    limits: ReadLimits,
    what: str,
) -> None:
    """Apply one opcode's effect to the simulated stack of tuple depths."""
    if name == "MARK":
        marks.append(len(stack))
        if len(marks) > limits.max_depth:
            raise FormatError(f"{what} nests MARK groups deeper than {limits.max_depth}", HINT_LIMIT)
        return
    if name in _MEMO_PUTS or name == "MEMOIZE":
        if not stack:
            raise FormatError(f"{what} is malformed (memo of empty stack)", HINT_CORRUPT)
        index = len(memo) if name == "MEMOIZE" else arg
        if not isinstance(index, int) or index < 0 or index > n_ops:
            raise FormatError(f"{what} uses memo slot {_short_int(index)} after {n_ops} opcodes", HINT_REFUSED)
        memo[index] = stack[-1]
        return
    if name in _MEMO_GETS:
        if arg not in memo:
            raise FormatError(f"{what} reads memo slot {_short_int(arg)} that was never written", HINT_CORRUPT)
        stack.append(memo[arg])
        return
    if name == "DUP":
        if not stack:
            raise FormatError(f"{what} is malformed (DUP of empty stack)", HINT_CORRUPT)
        stack.append(stack[-1])
        return
    before = opcode.stack_before
    if pickletools.markobject in before:
        items = _pop_mark(stack, marks, limits, what)
        _pop(stack, before.index(pickletools.markobject), what)
        if name in ("TUPLE", "FROZENSET"):
            _push_tuple(stack, items, limits, what)
            return
        if name in _IN_PLACE:  # APPENDS / SETITEMS / ADDITEMS keep their container
            before_mark = before[: before.index(pickletools.markobject)]
            # The container was popped with the items before the mark; put back a depth 0 entry.
            stack.extend([0] * len(before_mark))
            return
    elif name in _TUPLE_N:
        _push_tuple(stack, _pop(stack, _TUPLE_N[name], what), limits, what)
        return
    elif name in _IN_PLACE:  # APPEND / SETITEM / BUILD: pop the extra values, keep the object
        _pop(stack, len(before) - 1, what)
        if not stack:
            raise FormatError(f"{what} is malformed (stack underflow)", HINT_CORRUPT)
        return
    else:
        _pop(stack, len(before), what)
    stack.extend([0] * len(opcode.stack_after))


def _push_tuple(stack: list[int], items: list[int], limits: ReadLimits, what: str) -> None:
    depth = 1 + max(items, default=0)
    if depth > limits.max_depth:
        raise FormatError(f"{what} nests tuples deeper than {limits.max_depth}", HINT_LIMIT)
    stack.append(depth)


def _short_int(value: object) -> str:
    if isinstance(value, int) and value.bit_length() <= 64:
        return str(value)
    return "<huge>" if isinstance(value, int) else f"<{type(value).__name__}>"
