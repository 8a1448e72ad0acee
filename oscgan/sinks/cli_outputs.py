"""`oscgan serve` flags for live outputs (--ndi, --spout, --syphon, --stream, --webcam).

Each flag adds an entry to the config's ``sinks:`` list. Unlike entries in a config file (which
log a warning and let the show go on), an output asked for on the command line must work: a
missing backend stops ``serve`` before the model loads, with the reason and the fix.
"""

from __future__ import annotations

import argparse
from typing import Any

# flag dest -> (sink type, label, field the flag's value goes to)
FLAG_OUTPUTS: dict[str, tuple[str, str, str]] = {
    "ndi": ("ndi", "ndi", "source"),
    "spout": ("spout", "spout", "sender"),
    "syphon": ("syphon", "syphon", "server"),
    "stream": ("udp_stream", "stream", "url"),
    "webcam": ("webcam", "webcam", "device"),
}
FLAG_SIZES = {"ndi": "ndi_size", "stream": "stream_size", "webcam": "webcam_size"}


def add_output_flags(parser: argparse.ArgumentParser, parse_size: Any) -> None:
    g = parser.add_argument_group("live outputs (each adds an entry to the config's sinks: list)")
    g.add_argument("--ndi", default=None, metavar="NAME",
                   help="send an NDI® source named NAME (receivers show 'HOSTNAME (NAME)'; needs cyndilib)")
    g.add_argument("--ndi-size", type=parse_size, default=None, metavar="WxH", help="NDI frame size (default: render size)")
    g.add_argument("--spout", default=None, metavar="NAME", help="Spout sender NAME (Windows; needs SpoutGL)")
    g.add_argument("--syphon", default=None, metavar="NAME", help="Syphon server NAME (macOS; needs syphon-python)")
    g.add_argument("--stream", default=None, metavar="URL",
                   help="H.264 MPEG-TS stream to udp://HOST:PORT (or srt://HOST:PORT); needs PyAV")
    g.add_argument("--stream-size", type=parse_size, default=None, metavar="WxH",
                   help="stream frame size, even numbers (default: render size)")
    g.add_argument("--webcam", nargs="?", const="", default=None, metavar="DEVICE",
                   help="virtual webcam (optionally the device, e.g. /dev/video10); needs pyvirtualcam")
    g.add_argument("--webcam-size", type=parse_size, default=None, metavar="WxH", help="webcam frame size")


def output_entries(args: argparse.Namespace, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Config ``sinks:`` entries for the output flags given, with labels unique among ``existing``."""
    taken = {e.get("name") or e.get("type") for e in existing}
    entries: list[dict[str, Any]] = []
    for dest, (kind, label, field) in FLAG_OUTPUTS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        name = next(n for n in (label, *(f"{label}{i}" for i in range(2, 100))) if n not in taken)
        taken.add(name)
        entry: dict[str, Any] = {"type": kind, "name": name, field: value or None}
        size = getattr(args, FLAG_SIZES.get(dest, ""), None)
        if size is not None:
            entry["size"] = list(size)
        entries.append(entry)
    return entries


def check_flag_outputs(args: argparse.Namespace) -> None:
    """ValueError naming the flag when an output asked for on the command line cannot run here."""
    from oscgan.sinks.registry import SINK_TYPES

    for dest, (kind, _, _) in FLAG_OUTPUTS.items():
        if getattr(args, dest, None) is None:
            continue
        factory = SINK_TYPES[kind].load_factory()
        sink_cls = getattr(factory, "__self__", None)
        if sink_cls is None or not hasattr(sink_cls, "is_available"):
            continue
        ok, why = sink_cls.is_available()
        if not ok:
            raise ValueError(f"--{dest.replace('_', '-')}: {why}")
