"""NDI end to end, run INSIDE a network namespace that has only loopback (see test_ndi.py).

This process is the NDI receiver. It:

1. brings ``lo`` up and refuses to run if any other interface exists (nothing can leak out);
2. writes an NDI config (``NDI_CONFIG_DIR``) that restricts NDI to 127.0.0.1 with no discovery
   server, so sources are found by mDNS on loopback;
3. starts the real daemon as a child (``python -m oscgan serve ... --ndi NAME --ndi-size WxH``),
   which shares this namespace;
4. pauses the picture over OSC (``/oscgan/output/paused 1``) and fetches ``/frame.png``;
5. finds the source with cyndilib's Finder, receives frames with a Receiver, and compares the
   last one with ``/frame.png`` scaled to the NDI size the way the sink scales it;
6. prints one JSON line with the measurements and exits 0 when every check passed.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
NDI_CONFIG = {"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""},
                      "adapters": {"allowed": ["127.0.0.1"]}}}
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def bring_loopback_up() -> None:
    """``ip link set lo up`` without iproute2: SIOCSIFFLAGS on a struct ifreq."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with _OPENER.open(url, timeout=timeout) as r:
        return r.read()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 Y' of [H, W, 3] uint8 as float."""
    return rgb[..., :3].astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def osc_message(address: str, value: int) -> bytes:
    """One OSC message with a single int32 argument (python-osc-free, so no extra import)."""
    def pad(b: bytes) -> bytes:
        b += b"\0"
        return b + b"\0" * (-len(b) % 4)
    return pad(address.encode()) + pad(b",i") + struct.pack(">i", value)


class Daemon:
    def __init__(self, model: str, name: str, size: str, env: dict[str, str]) -> None:
        self.http, self.osc = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        self.log = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, "-m", "oscgan", "serve", "--model", model, "--device", "cpu", "--fps", "30",
               "--threads", "1", "--osc-port", str(self.osc), "--http-port", str(self.http),
               "--ndi", name, "--ndi-size", size]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self.base = f"http://127.0.0.1:{self.http}"

    def health(self) -> dict:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with code {self.proc.returncode}")
        return json.loads(http_get(self.base + "/health", 2))

    def frame(self) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(http_get(self.base + "/frame.png"))).convert("RGBA"))

    def osc_send(self, address: str, value: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(osc_message(address, value), ("127.0.0.1", self.osc))

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = predicate()
            if got:
                return got
        except RuntimeError:
            raise
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}" + (f" ({last_exc!r})" if last_exc else ""))


def receive_frames(source_suffix: str, seconds: float, timeout: float, min_frames: int = 5) -> tuple[str, list[dict]]:
    """Find the NDI source whose name ends with ``source_suffix`` and receive video for ``seconds``
    and at least ``min_frames`` frames (connecting can take a second of the window)."""
    from cyndilib import Finder, RecvBandwidth, RecvColorFormat, Receiver, VideoRecvFrame
    from cyndilib.receiver import ReceiveFrameType

    finder = Finder()
    finder.open()
    try:
        deadline = time.monotonic() + timeout
        source = None
        while source is None and time.monotonic() < deadline:
            finder.wait_for_sources(0.5)
            for name in finder.get_source_names():
                if name.endswith(source_suffix):
                    source = finder.get_source(name)
        if source is None:
            raise TimeoutError(f"no NDI source ending in {source_suffix!r}; saw {finder.get_source_names()}")
        receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest,
                            recv_name="oscgan-test-receiver")
        vf = VideoRecvFrame()
        receiver.set_video_frame(vf)
        receiver.set_source(source)
        frames: list[dict] = []
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end or len(frames) < min_frames:
            if time.monotonic() > deadline + seconds:
                raise TimeoutError(f"connected to the NDI source but only {len(frames)} video frames arrived")
            got = receiver.receive(ReceiveFrameType.recv_video, 200)
            if not got & ReceiveFrameType.recv_video:
                continue
            w, h = vf.get_resolution()
            stride = vf.get_line_stride()
            buf = np.empty(vf.get_buffer_size(), np.uint8)
            if not vf.fill_p_data(buf):
                continue
            img = buf.reshape(h, stride)[:, : w * 4].reshape(h, w, 4)
            frames.append({"rgba": img.copy(), "size": (w, h), "fourcc": vf.get_fourcc().name,
                           "frame_rate": vf.get_frame_rate(), "t": time.monotonic()})
        receiver.disconnect()
        return source.name, frames
    finally:
        finder.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default="oscgan-test")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--dump", default=None, help="save the received and expected pictures here (.npz)")
    args = ap.parse_args()
    result: dict = {"ok": False}
    t0 = time.monotonic()

    bring_loopback_up()
    interfaces = sorted(name for _, name in socket.if_nameindex())
    result["interfaces"] = interfaces
    if interfaces != ["lo"]:
        result["error"] = f"refusing to run NDI outside an isolated namespace: interfaces {interfaces}"
        print(json.dumps(result))
        return 2

    cfg_dir = tempfile.mkdtemp(prefix="oscgan-ndi-")
    Path(cfg_dir, "ndi-config.v1.json").write_text(json.dumps(NDI_CONFIG))
    os.environ["NDI_CONFIG_DIR"] = cfg_dir  # for this receiver and the daemon alike
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    width, height = (int(v) for v in args.size.split("x"))

    daemon = Daemon(args.model, args.name, args.size, env)
    try:
        wait_for(lambda: daemon.health()["frames"] > 0, args.timeout, "the daemon's first frame")
        sinks = wait_for(lambda: (daemon.health().get("sinks") or {}).get("ndi", {}).get("state") == "open"
                         and daemon.health()["sinks"], 20, "the NDI output to open")
        result["sink_status"] = sinks["ndi"]
        result["startup_s"] = round(time.monotonic() - t0, 2)

        daemon.osc_send("/oscgan/output/paused", 1)
        time.sleep(0.5)
        ref = daemon.frame()  # the picture the daemon renders (its native 64x64)
        source_name, frames = receive_frames(f"({args.name})", seconds=1.5, timeout=20)
        ref_after = daemon.frame()
        from oscgan.sinks.base import resize_rgba

        expected = resize_rgba(ref, (width, height))  # exactly how the sink scales before sending
        last = frames[-1]
        got = last["rgba"]
        if args.dump:
            np.savez(args.dump, got=got, expected=expected, ref=ref)
        host = socket.gethostname().split(".")[0].upper()
        result.update({
            "source_name": source_name,
            "expected_source_name": f"{host} ({args.name})",
            "frames_received": len(frames),
            "size": list(last["size"]),
            "fourcc_received": last["fourcc"],
            "frame_rate": f"{last['frame_rate'].numerator}/{last['frame_rate'].denominator}",
            "reference_stable": bool(np.array_equal(ref, ref_after)),
            "reference_std": round(float(ref[..., :3].std()), 2),
            "mae": round(mae(got[..., :3], expected[..., :3]), 3),
            "psnr_db": round(psnr(got[..., :3], expected[..., :3]), 2),
            "luma_mae": round(float(np.abs(luma(got) - luma(expected)).mean()), 3),
            "mean_signed_err_rgb": [round(float(v), 2) for v in
                                    (got[..., :3].astype(float) - expected[..., :3]).mean(axis=(0, 1))],
            "max_abs_err": int(np.abs(got[..., :3].astype(int) - expected[..., :3]).max()),
            # negative controls: the same comparison against a wrong picture must fail clearly
            "psnr_flipped_db": round(psnr(got[..., :3], expected[::-1, :, :3]), 2),
            "psnr_swapped_rb_db": round(psnr(got[..., :3], expected[..., 2::-1]), 2),
        })
        checks = {
            "source name is 'HOSTNAME (name)'": source_name == result["expected_source_name"],
            "size is the configured NDI size": tuple(last["size"]) == (width, height),
            "frame rate is 30/1": last["frame_rate"] == Fraction(30, 1),
            "paused picture is stable": result["reference_stable"],
            "picture is not flat": result["reference_std"] > 10,
            # NDI is lossy: SpeedHQ 4:2:2 plus NDI's own RGB<->YUV conversion, which on its own
            # turns pure blue 255 into 240 and red 255 into 251 (measured on a flat test card).
            # So the structure (luma) must match closely and the colour within that loss.
            "luma mean abs error < 2.5": result["luma_mae"] < 2.5,
            "RGB mean abs error < 6": result["mae"] < 6.0,
            "PSNR > 28 dB": result["psnr_db"] > 28.0,
            "flipped reference does not match": result["psnr_flipped_db"] < result["psnr_db"] - 10,
            "R/B swapped reference does not match": result["psnr_swapped_rb_db"] < result["psnr_db"] - 10,
        }
        result["checks"] = checks
        result["ok"] = all(checks.values())
    except Exception as e:  # noqa: BLE001 - reported as JSON for the pytest side
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        result["daemon_rc"] = daemon.stop()
        if not result["ok"]:
            result["daemon_output"] = daemon.output()
        result["elapsed_s"] = round(time.monotonic() - t0, 2)
    print(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
