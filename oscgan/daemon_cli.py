"""`oscgan serve`: its arguments, merged over the daemon config file, and running it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oscgan.config import DaemonConfig, load_daemon_config


def add_serve_parser(sub: Any) -> None:
    from oscgan.cli import parse_size
    from oscgan.midi_cli import midi_api_arg

    s = sub.add_parser("serve", help="run the live daemon (OSC in/out, OSCQuery, web monitor)",
                       description="Render continuously and play the picture over OSC. Flags override "
                       "the --config file.")
    s.add_argument("--model", default=None, help="model file or builtin:NAME (default builtin:sg2-256)")
    s.add_argument("--config", default=None, help="daemon config YAML")
    s.add_argument("--fps", type=float, default=None, help="target frame rate (default 30)")
    s.add_argument("--size", type=parse_size, default=None, help="output WxH (default: the model's)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    s.add_argument("--threads", type=int, default=None, help="CPU render threads (default: cores - 1)")
    s.add_argument("--osc-port", type=int, default=None, help="UDP port for OSC input (default 9000)")
    s.add_argument("--osc-host", default=None, help="interface for OSC input (default 127.0.0.1)")
    s.add_argument("--osc-allow", action="append", default=None, metavar="IP[/NET]",
                   help="only accept OSC from these senders (repeatable)")
    s.add_argument("--osc-out", default=None, metavar="HOST:PORT", help="send telemetry and echoes here")
    s.add_argument("--http-port", type=int, default=None, help="web monitor + OSCQuery port (default 8080)")
    s.add_argument("--http-host", default=None, help="interface for the web monitor (default 127.0.0.1)")
    s.add_argument("--zeroconf", action="store_true", default=None, help="advertise OSCQuery on the LAN")
    s.add_argument("--midi", action="append", default=None, metavar="NAME",
                   help="open MIDI inputs whose name contains NAME (repeatable; see `oscgan midi list`)")
    s.add_argument("--midi-virtual", action="store_true", default=None,
                   help="create a virtual MIDI input named oscgan that DAWs and controllers can send to")
    s.add_argument("--midi-api", type=midi_api_arg, default=None, metavar="API",
                   help="MIDI backend: jack, alsa, coremidi, winmm (default: rtmidi's default)")
    s.add_argument("--record", default=None, metavar="FILE.mp4",
                   help="record every frame to an H.264 video (adds a 'record' output)")
    s.add_argument("--record-control", default=None, metavar="FILE.jsonl",
                   help="record every parameter change and frame tick, for `oscgan replay`")
    s.add_argument("--mapping", action="append", default=None, metavar="FILE",
                   help="mapping file: MIDI/OSC/LFO sources -> filters -> parameters (repeatable; "
                   "replaces the config's mappings; reloaded when saved)")
    s.add_argument("--presets", default=None, metavar="DIR",
                   help="folder for presets.yaml (default: beside the first mapping file)")
    s.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help="tempo for beat-synced LFOs until MIDI clock arrives (default 120)")

    from oscgan.sinks.cli_outputs import add_output_flags

    add_output_flags(s, parse_size)


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """The config file (or defaults) with every given flag applied on top."""
    cfg = load_daemon_config(args.config) if args.config else DaemonConfig()
    data = cfg.model_dump()
    if args.config:
        # Files named in the config file are relative to it, not to where oscgan was started.
        base = Path(args.config).resolve().parent
        data["mappings"] = [str(base / m) for m in data.get("mappings", [])]
        if data.get("presets"):
            data["presets"] = str(base / data["presets"])
    if getattr(args, "mapping", None):
        data["mappings"] = list(args.mapping)
    if getattr(args, "presets", None):
        data["presets"] = args.presets
    if getattr(args, "tempo", None) is not None:
        data["tempo_bpm"] = args.tempo
    top = {"model": args.model, "fps": args.fps, "size": args.size, "device": args.device,
           "threads": args.threads}
    data.update({k: v for k, v in top.items() if v is not None})
    osc = {"port": args.osc_port, "host": args.osc_host, "allow_from": args.osc_allow, "out": args.osc_out}
    data["osc"].update({k: v for k, v in osc.items() if v is not None})
    http = {"port": args.http_port, "host": args.http_host, "zeroconf": args.zeroconf}
    data["http"].update({k: v for k, v in http.items() if v is not None})
    midi = {"inputs": args.midi, "virtual": args.midi_virtual, "api": args.midi_api}
    data["midi"].update({k: v for k, v in midi.items() if v is not None})
    if getattr(args, "record", None):
        taken = {s.get("name") or s["type"] for s in data["sinks"]}
        name = next(n for n in ("record", *(f"record{i}" for i in range(2, 100))) if n not in taken)
        data["sinks"].append({"type": "record", "path": args.record, "name": name})
    if getattr(args, "record_control", None):
        data["record_control"] = args.record_control
    from oscgan.sinks.cli_outputs import output_entries

    data["sinks"].extend(output_entries(args, data["sinks"]))  # --ndi, --spout, --syphon, --stream, --webcam
    return DaemonConfig.model_validate(data)


def run_serve(args: argparse.Namespace) -> int:
    from oscgan.sinks.cli_outputs import check_flag_outputs

    check_flag_outputs(args)  # an output asked for by flag must run here: say why not before loading the model
    if getattr(args, "record", None):
        from oscgan.sinks.record import check_pyav

        ok, why = check_pyav()
        if not ok:
            raise ValueError(f"--record: {why}")
    from oscgan.daemon import Daemon

    return Daemon(config_from_args(args)).run_until_signal()
