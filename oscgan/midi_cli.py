"""`oscgan midi list|monitor`: see which MIDI inputs exist and what signal names a controller sends."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO


def midi_api_arg(text: str) -> str:
    """argparse type for --midi-api: the name as given, checked (ArgumentTypeError lists the choices)."""
    from oscgan.signals.midi import normalize_api

    try:
        normalize_api(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_midi_parser(sub: Any) -> None:
    m = sub.add_parser("midi", help="list MIDI inputs; show what a controller sends (for mapping files)",
                       description="MIDI helpers. Needs the MIDI extra: pip install 'oscgan[midi]'.")
    msub = m.add_subparsers(dest="midi_command", required=True, metavar="ACTION")
    s = msub.add_parser("list", help="list MIDI input ports (the names `serve --midi NAME` matches)")
    s.add_argument("--midi-api", type=midi_api_arg, default=None, metavar="API",
                   help="jack, alsa, coremidi, winmm (default: rtmidi's)")
    s = msub.add_parser("monitor", help="print the bus signals MIDI input produces (move a knob, see its name)",
                        description="Opens MIDI inputs like `serve` does and prints every signal they write, "
                        "e.g. 'midi/cc/1/16  64': the names to use as sources in a mapping file.")
    s.add_argument("--midi", action="append", default=None, metavar="NAME",
                   help="inputs whose name contains NAME (repeatable; default: every input)")
    s.add_argument("--midi-virtual", action="store_true", help="also create the virtual input 'oscgan'")
    s.add_argument("--midi-api", type=midi_api_arg, default=None, metavar="API",
                   help="jack, alsa, coremidi, winmm (default: rtmidi's)")
    s.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")


def run_midi(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from oscgan.signals.midi import available_apis, list_input_ports

    out = out or sys.stdout
    if args.midi_command == "list":
        api, ports = list_input_ports(args.midi_api)
        print(f"MIDI inputs ({api}; compiled backends: {', '.join(available_apis())}):", file=out)
        for port in ports:
            print(f"  {port}", file=out)
        if not ports:
            print("  (none: plug in a controller, or use `serve --midi-virtual` and send to 'oscgan')", file=out)
        return 0
    return _monitor(args, out)


def _monitor(args: argparse.Namespace, out: TextIO) -> int:
    from oscgan.signals.bus import SignalBus
    from oscgan.signals.midi import MidiInput

    bus = SignalBus()
    patterns = args.midi if args.midi else ([] if args.midi_virtual else [""])
    midi = MidiInput(bus, patterns, virtual=args.midi_virtual, api=args.midi_api).start()
    try:
        for port in midi.port_status():
            where = ", ".join(port.ports) or port.status
            print(f"# {'virtual port' if port.virtual else 'input'} {port.name or '(all)'}: {where}", file=out)
        print("# move a control; Ctrl-C to stop", file=out, flush=True)
        seq = 0
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            changes = bus.changes_since(seq)
            seq = changes.seq
            for signal in changes.signals:
                print(f"{signal.name:<24} {signal.value}", file=out)
            if changes.signals:
                out.flush()
            time.sleep(0.01)
    except KeyboardInterrupt:
        pass
    finally:
        midi.stop()
    return 0
