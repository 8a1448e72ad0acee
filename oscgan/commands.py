"""The offline commands behind the CLI: inspect, render, convert, bench."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import torch
from torch import nn

from oscgan.devices import resolve_device
from oscgan.models.common import layer_group
from oscgan.models.loader import load_generator
from oscgan.render.convert import images_to_rgba
from oscgan.state.latents import z_from_seed
from oscgan.tables import format_table
from oscgan.timing import time_samples


def describe_generator(G: nn.Module) -> dict[str, object]:
    """Summary facts of a loaded generator."""
    n_params = sum(p.numel() for p in G.parameters())
    return dict(
        architecture=G.architecture, img_resolution=G.img_resolution, img_channels=G.img_channels,
        z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, num_ws=G.num_ws, parameters=n_params,
    )


def inspect_model(model: str, which: str = "G_ema") -> str:
    """Human-readable architecture, resolution, num_ws, layers (coarse/middle/fine), parameter count."""
    G = load_generator(model, which=which, device="cpu")
    info = describe_generator(G)
    kind = G.architecture
    if kind == "stylegan3":
        kind += "-R" if G.init_kwargs.get("use_radial_filters") else "-T"
    elif kind == "stylegan2":
        kind += f" ({G.synthesis.blocks()[0].architecture})"
    head = [
        f"model:        {model}",
        f"architecture: {kind}",
        f"resolution:   {info['img_resolution']}x{info['img_resolution']}, {info['img_channels']} channels",
        f"latents:      z_dim={info['z_dim']}  w_dim={info['w_dim']}  c_dim={info['c_dim']}  num_ws={info['num_ws']}",
        f"parameters:   {info['parameters']:,}",
        "",
    ]
    rows = [[l.index, l.name, f"{l.resolution}px", layer_group(l.resolution)] for l in G.layers()]
    return "\n".join(head) + format_table(["w", "layer", "resolution", "group"], rows)


def _class_vector(G: nn.Module, class_idx: int | None, device: torch.device) -> torch.Tensor | None:
    if G.c_dim == 0:
        return None
    if class_idx is None:
        raise ValueError(f"this model is conditional ({G.c_dim} classes): pass --class N")
    if not 0 <= class_idx < G.c_dim:
        raise ValueError(f"--class {class_idx} out of range 0..{G.c_dim - 1}")
    c = torch.zeros([1, G.c_dim], device=device)
    c[0, class_idx] = 1
    return c


@torch.no_grad()
def render_seeds(model: str, seeds: list[int], psi: float = 1.0, cutoff: int | None = None,
                 noise_mode: str = "const", out_dir: Path = Path("renders"), device: str | None = None,
                 class_idx: int | None = None, which: str = "G_ema", progress: bool = True) -> list[Path]:
    """Render one PNG per seed into ``out_dir`` (seed0000.png, ...); returns the paths."""
    from PIL import Image
    from tqdm import tqdm

    dev = resolve_device(device)
    G = load_generator(model, which=which, device=dev)
    c = _class_vector(G, class_idx, dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in tqdm(seeds, desc="rendering", unit="img", disable=not progress or len(seeds) < 2):
        z = torch.from_numpy(z_from_seed(seed, G.z_dim))[None].to(dev)
        ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
        img = G.synthesis(ws, noise_mode=noise_mode)
        rgba = images_to_rgba(img)[0].cpu().numpy()
        path = out_dir / f"seed{seed:04d}.png"
        mode = "RGBA" if G.img_channels == 4 else "RGB"
        Image.fromarray(rgba if mode == "RGBA" else np.ascontiguousarray(rgba[:, :, :3]), mode).save(path)
        paths.append(path)
    return paths


def convert_model(model: str, out: Path, which: str = "G_ema") -> str:
    """Write ``model`` as an oscgan .safetensors file (weights + architecture kwargs)."""
    from oscgan.models.safetensors_io import save_generator_safetensors

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"output must end in .safetensors, got {out.name}")
    G = load_generator(model, which=which, device="cpu")
    save_generator_safetensors(G.state_dict(), G.architecture, G.init_kwargs, out,
                               extra={"source": Path(model).name})
    # Read it back: a convert that cannot be loaded is worse than none.
    G2 = load_generator(str(out), device="cpu")
    for k, v in G.state_dict().items():
        if not torch.equal(v, G2.state_dict()[k]):
            raise ValueError(f"round trip of {out} changed tensor {k}")
    return f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {G.architecture}, {G.img_resolution}px)"


@torch.no_grad()
def bench_model(model: str, device: str | None = None, size: tuple[int, int] | None = None,
                runs: int = 30, warmup: int = 3, which: str = "G_ema") -> str:
    """Median ms and frames/s of mapping and synthesis at batch 1, as a table."""
    dev = resolve_device(device)
    G = load_generator(model, which=which, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    z = torch.from_numpy(z_from_seed(0, G.z_dim))[None].to(dev)
    c = torch.zeros([1, G.c_dim], device=dev) if G.c_dim else None
    ws = G.mapping(z, c)
    stages = [("mapping", lambda: G.mapping(z, c)), ("synthesis", lambda: G.synthesis(ws))]
    img = G.synthesis(ws)
    if size is not None:
        stages.append((f"to RGBA {size[0]}x{size[1]}", lambda: images_to_rgba(img, size).cpu()))
    rows, total = [], 0.0
    for name, fn in stages:
        t = time_samples(fn, runs, warmup, sync)
        med = statistics.median(t)
        total += med
        rows.append([name, f"{med:.2f}", f"{min(t):.2f}", f"{1000 / med:.1f}"])
    rows.append(["total", f"{total:.2f}", "", f"{1000 / total:.1f}"])
    head = (f"model {model} ({G.architecture}, {G.img_resolution}px) on {dev}, batch 1, "
            f"median of {runs} runs after {warmup} warm-up, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads\n")
    return head + format_table(["stage", "median ms", "min ms", "frames/s"], rows)
