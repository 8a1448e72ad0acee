"""Plain monospace tables for the CLI and the benchmarks."""

from __future__ import annotations


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain monospace table with a header rule."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
