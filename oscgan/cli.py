"""Command line: argument parsing only; each command calls into the package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("oscgan")


def parse_seeds(text: str) -> list[int]:
    """'0-7', '1,5,9', '0-3,10' -> list of ints (ranges inclusive)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if hi < lo:
                raise argparse.ArgumentTypeError(f"seed range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    for s in seeds:
        if not 0 <= s < 2**32:
            raise argparse.ArgumentTypeError(f"seed {s} out of range 0..2**32-1")
    return seeds


def _seeds_arg(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --seeds {text!r}: {e}") from None


def parse_size(text: str) -> tuple[int, int]:
    """'512' or '1280x720' -> (width, height), for argparse."""
    from oscgan.config import parse_size as parse

    try:
        return parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    from oscgan import __version__

    p = argparse.ArgumentParser(
        prog="oscgan",
        description="Headless real-time StyleGAN renderer for live visuals. "
        "MODEL is a network pickle (.pkl), an oscgan .safetensors file, a rosinality .pt "
        "checkpoint, or builtin:NAME (builtin:sg2-256, builtin:sg2-512, builtin:sg3t-256, "
        "builtin:sg3t-512, builtin:sg3r-256).",
    )
    p.add_argument("--version", action="version", version=f"oscgan {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("inspect", help="show a model's architecture, layers and parameter count")
    s.add_argument("model")
    s.add_argument("--which", default="G_ema", help="network inside a pickle (default G_ema)")

    s = sub.add_parser("render", help="render seeds to PNG files")
    s.add_argument("model")
    s.add_argument("--seeds", type=_seeds_arg, default=parse_seeds("0-7"), help="e.g. 0-7 or 1,5,9 (default 0-7)")
    s.add_argument("--psi", type=float, default=1.0, help="truncation psi (default 1)")
    s.add_argument("--cutoff", type=int, default=None, help="truncate only the first N layers")
    s.add_argument("--noise", choices=["const", "random", "none"], default="const")
    s.add_argument("--class", dest="class_idx", type=int, default=None, help="class index for conditional models")
    s.add_argument("--out", type=Path, default=Path("renders"), help="output folder (default ./renders)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    s.add_argument("--which", default="G_ema")

    s = sub.add_parser("convert", help="convert a model to oscgan's fast, safe .safetensors format")
    s.add_argument("model")
    s.add_argument("out", type=Path)
    s.add_argument("--which", default="G_ema")

    s = sub.add_parser("bench", help="time mapping and synthesis at batch 1")
    s.add_argument("model")
    s.add_argument("--device", default=None)
    s.add_argument("--size", type=parse_size, default=None, help="also time conversion to a WxH RGBA frame")
    s.add_argument("--runs", type=int, default=30, help="timed runs after warm-up (default 30)")
    s.add_argument("--warmup", type=int, default=3)
    s.add_argument("--which", default="G_ema")

    s = sub.add_parser("replay", help="re-render a recorded control session (--record-control) to video",
                       description="Re-render a performance recorded with `serve --record-control`, "
                       "frame-exact at the recorded fps (or re-timed to --fps), at any output size.")
    s.add_argument("session", type=Path, help="session .jsonl file")
    s.add_argument("--out", type=Path, required=True,
                   help="video file (.mp4, .mkv, .mov) or a folder for lossless PNG frames")
    s.add_argument("--model", default=None, help="model (default: the one named in the session)")
    s.add_argument("--size", type=parse_size, default=None, help="output WxH (default: as recorded)")
    s.add_argument("--fit", choices=["stretch", "letterbox"], default=None, help="when --size changes the aspect")
    s.add_argument("--fps", type=float, default=None, help="frame rate (default: as recorded; "
                   "another rate re-times the performance)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    s.add_argument("--crf", type=int, default=16, help="H.264 quality, 0 (lossless) .. 51 (default 16)")
    s.add_argument("--preset", default="medium", help="x264 preset (default medium)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--which", default="G_ema")

    s = sub.add_parser("schema", help="write the JSON Schema of mapping files (or of the daemon config)",
                       description="JSON Schema for editor completion and checking: point a YAML file at it "
                       "with a first line '# yaml-language-server: $schema=PATH'.")
    s.add_argument("--out", type=Path, default=None, help="write to this file (default: print)")
    s.add_argument("--daemon", action="store_true", help="the daemon config (--config) instead of mapping files")

    from oscgan.daemon_cli import add_serve_parser
    from oscgan.midi_cli import add_midi_parser

    add_serve_parser(sub)
    add_midi_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from oscgan.allocator import keep_freed_memory
    from oscgan.config import ConfigError
    from oscgan.devices import DeviceError
    from oscgan.models.errors import ModelLoadError

    keep_freed_memory()  # renders free and re-allocate the same buffers every frame
    try:
        if args.command == "inspect":
            from oscgan.commands import inspect_model

            print(inspect_model(args.model, which=args.which))
        elif args.command == "render":
            from oscgan.commands import render_seeds

            render_seeds(args.model, args.seeds, psi=args.psi, cutoff=args.cutoff, noise_mode=args.noise,
                         out_dir=args.out, device=args.device, class_idx=args.class_idx, which=args.which)
        elif args.command == "convert":
            from oscgan.commands import convert_model

            print(convert_model(args.model, args.out, which=args.which))
        elif args.command == "bench":
            from oscgan.commands import bench_model

            print(bench_model(args.model, device=args.device, size=args.size, runs=args.runs,
                              warmup=args.warmup, which=args.which))
        elif args.command == "serve":
            from oscgan.daemon_cli import run_serve

            return run_serve(args)
        elif args.command == "midi":
            from oscgan.midi_cli import run_midi

            return run_midi(args)
        elif args.command == "schema":
            from oscgan.mapping.schema import schema_text

            text = schema_text(daemon=args.daemon)
            if args.out is None:
                print(text, end="")
            else:
                args.out.write_text(text, encoding="utf-8")
                print(f"wrote {args.out}")
        elif args.command == "replay":
            from oscgan.render.replay import replay

            # A bad session file raises SessionError (a ValueError naming file and line).
            result = replay(args.session, args.out, model=args.model, size=args.size, fps=args.fps,
                            fit=args.fit, device=args.device, crf=args.crf, preset=args.preset,
                            progress=not args.no_progress, which=args.which)
            print(result.summary())
    except (ModelLoadError, ConfigError, DeviceError, KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"oscgan {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
