"""Generator forward time at batch 1 on built-in models with realistic channel counts.

Prints a table: for each model, our forward (mapping + synthesis) and, side by side in the same
run, the baseline algorithm (per-sample modulated weights + grouped conv, the route NVIDIA's
pure-PyTorch reference path takes; our implementation of it on the same weights). With
``--nvidia-repo PATH`` (a checkout of NVlabs/stylegan3, not shipped with oscgan) NVIDIA's own
modules are built from the same kwargs, loaded with our state dict and timed too.

    python benchmarks/generator.py [--models sg2-256,sg2-512,sg3t-256,sg3t-512] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

import torch

from oscgan.allocator import keep_freed_memory
from oscgan.tables import format_table
from oscgan.timing import median, time_interleaved, time_samples
from oscgan.devices import resolve_device
from oscgan.models import ops
from oscgan.models.builtin import build_builtin


@contextlib.contextmanager
def baseline_modconv() -> Iterator[None]:
    """Run the textbook formulation: per-sample modulated weights + grouped conv, separate
    bias/activation passes, contiguous (NCHW) activations, i.e. NVIDIA's reference route."""
    import oscgan.models.stylegan2 as sg2

    patched: list[tuple[object, str, object]] = [
        (sg2, "modulated_conv2d", sg2.modulated_conv2d),
        (sg2, "fast_paths_enabled", sg2.fast_paths_enabled),
    ]
    try:
        import oscgan.models.stylegan3 as sg3

        if hasattr(sg3, "modulated_conv2d"):
            patched.append((sg3, "modulated_conv2d", sg3.modulated_conv2d))
    except ImportError:
        pass
    replacements = {"modulated_conv2d": ops.modulated_conv2d_per_sample,
                    "fast_paths_enabled": lambda: False}
    for mod, name, _ in patched:
        setattr(mod, name, replacements[name])
    try:
        yield
    finally:
        for mod, name, orig in patched:
            setattr(mod, name, orig)


def run_baseline(G: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    with baseline_modconv():
        return G.synthesis(ws)


def nvidia_generator(repo: str, G: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    sys.path.insert(0, repo)
    if G.architecture == "stylegan2":
        from training.networks_stylegan2 import Generator  # type: ignore[import-not-found]
    else:
        from training.networks_stylegan3 import Generator  # type: ignore[import-not-found]
    N = Generator(**G.init_kwargs).eval().requires_grad_(False)
    N.load_state_dict(G.state_dict())
    return N.to(device)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sg2-256,sg2-512,sg3t-256,sg3t-512")
    ap.add_argument("--device", default=None)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--nvidia-repo", default=None, help="path to a NVlabs/stylegan3 checkout (optional)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = ap.parse_args()
    # What the daemon and the CLI do at start, so every loop here runs on the same allocator settings.
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for name in args.models.split(","):
        G = build_builtin("builtin:" + name).to(dev)
        z = torch.randn([1, G.z_dim], device=dev, generator=None)
        ws = G.mapping(z, None)
        ours_map = median(time_samples(lambda: G.mapping(z, None), args.runs, args.warmup, sync))
        fns: list[Callable[[], object]] = [lambda: G.synthesis(ws)]
        if G.architecture == "stylegan2":  # the baseline swaps StyleGAN2's modulated conv
            diff = (run_baseline(G, ws) - G.synthesis(ws)).abs().max().item()
            assert diff < 1e-3, f"baseline disagrees with ours ({diff})"
            fns.append(lambda: run_baseline(G, ws))
        if args.nvidia_repo:
            N = nvidia_generator(args.nvidia_repo, G, dev)
            fns.append(lambda: N.synthesis(ws, noise_mode="const", force_fp32=dev.type != "cuda"))
        times = [median(t) for t in time_interleaved(fns, args.runs, args.warmup, sync)]
        ours = times[0]
        row = [name, f"{ours_map:.2f}", f"{ours:.1f}"]
        if G.architecture == "stylegan2":
            row += [f"{times[1]:.1f}", f"{times[1] / ours:.2f}x"]
        else:
            row += ["-", "-"]
        if args.nvidia_repo:
            row += [f"{times[-1]:.1f}", f"{times[-1] / ours:.2f}x"]
        rows.append(row)
        print(f"done {name}", file=sys.stderr)
    headers = ["model", "mapping ms", "synthesis ms", "baseline ms", "baseline/ours"]
    # baseline = per-sample modulated weights + grouped conv, separate bias/activation passes,
    # NCHW: the route NVIDIA's reference path takes (StyleGAN2 only; for NVIDIA's own modules,
    # StyleGAN3 included, pass --nvidia-repo).
    if args.nvidia_repo:
        headers += ["nvidia ms", "nvidia/ours"]
    print(f"device {dev}, batch 1, median of {args.runs} runs after {args.warmup} warm-up, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(format_table(headers, rows))


if __name__ == "__main__":
    main()
