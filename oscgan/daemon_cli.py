"""`oscgan serve`: its arguments, merged over the daemon config file, and running it."""

from __future__ import annotations

import argparse
from typing import Any

from oscgan.config import DaemonConfig, load_daemon_config


def add_serve_parser(sub: Any) -> None:
    from oscgan.cli import parse_size

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


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """The config file (or defaults) with every given flag applied on top."""
    cfg = load_daemon_config(args.config) if args.config else DaemonConfig()
    data = cfg.model_dump()
    top = {"model": args.model, "fps": args.fps, "size": args.size, "device": args.device,
           "threads": args.threads}
    data.update({k: v for k, v in top.items() if v is not None})
    osc = {"port": args.osc_port, "host": args.osc_host, "allow_from": args.osc_allow, "out": args.osc_out}
    data["osc"].update({k: v for k, v in osc.items() if v is not None})
    http = {"port": args.http_port, "host": args.http_host, "zeroconf": args.zeroconf}
    data["http"].update({k: v for k, v in http.items() if v is not None})
    return DaemonConfig.model_validate(data)


def run_serve(args: argparse.Namespace) -> int:
    from oscgan.daemon import Daemon

    return Daemon(config_from_args(args)).run_until_signal()
