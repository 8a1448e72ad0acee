"""The web monitor in a real headless Chromium, driven over the DevTools protocol: stream, sliders, live sync."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from oscgan.render.frames import Frame, LatestFrameSlot
from oscgan.sinks.web import WebServer
from oscgan.state.params import ModelInfo, ParamRegistry, build_registry

CHROMIUM = Path("/usr/bin/chromium")
MODEL = ModelInfo("stylegan2", 16, 16, 6, 32, (4, 4, 8, 8, 16, 32))
FRAME_W, FRAME_H = 64, 48


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = "needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium; make system-deps)"
    if os.environ.get("OSCGAN_REQUIRE_SYSTEM_DEPS"):
        pytest.fail(f"{reason}; OSCGAN_REQUIRE_SYSTEM_DEPS is set, so this must not skip")
    pytest.skip(reason)


def psi_to_red(psi: float) -> int:
    """The fake renderer's picture: red encodes truncation.psi over its range [-1, 2]."""
    return int(round((psi + 1.0) / 3.0 * 255))


class FakeRenderLoop:
    """Stands in for the render loop: publishes frames whose colour derives from the registry.

    Red follows ``truncation.psi`` (so a slider move changes the picture), green follows the
    frame index (so consecutive frames differ even when nothing is touched).
    """

    def __init__(self, registry: ParamRegistry, slot: LatestFrameSlot, fps: float = 30.0) -> None:
        self.registry, self.slot, self.period = registry, slot, 1.0 / fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-render", daemon=True)

    def _run(self) -> None:
        index = 0
        t0 = time.perf_counter()
        while not self._stop.is_set():
            rgba = np.empty((FRAME_H, FRAME_W, 4), np.uint8)
            rgba[...] = (psi_to_red(self.registry.get("truncation.psi")), index * 16 % 256, 100, 255)
            self.slot.put(Frame(rgba, index, time.perf_counter(), render_ms=1.5))
            index += 1
            # anchor-based pacing, like the real loop
            self._stop.wait(max(0.0, t0 + index * self.period - time.perf_counter()))

    def __enter__(self) -> FakeRenderLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


class Chromium:
    """A headless Chromium we started (and stop by its PID) with a DevTools endpoint."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.log_path = profile.parent / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.devtools_port = 0

    def start(self, timeout: float = 20.0) -> None:
        args = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--no-proxy-server",
            "--window-size=1280,800", f"--user-data-dir={self.profile}",
            "--remote-debugging-port=0", "about:blank",
        ]
        with open(self.log_path, "wb") as log:
            # Own session: its renderer/GPU children share our PID as process group id.
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}:\n{self.log()}")
            if port_file.exists():
                text = port_file.read_text().split()
                if text:
                    self.devtools_port = int(text[0])
                    return
            time.sleep(0.05)
        raise RuntimeError(f"chromium did not open its DevTools port in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftover children of *our* chromium only
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None


class Cdp:
    """Minimal Chrome DevTools Protocol client over one page's WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 15)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"DevTools connection closed during {method}: {msg}")
            data = json.loads(msg.data)
            if data.get("id") == my_id:
                if "error" in data:
                    raise RuntimeError(f"{method} failed: {data['error']}")
                return data.get("result", {})
            self.events.append(data)

    async def eval(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page JS failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression}")
            await asyncio.sleep(0.05)

    def exceptions(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]


# Reads the centre pixel of the live <img> through a canvas (same origin, so not tainted).
PIXEL_JS = """(() => {
  const img = document.getElementById('out');
  if (!img || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data);
})()"""


def set_input_js(selector: str, value: Any, events: tuple[str, ...] = ("input", "change")) -> str:
    dispatch = "".join(f"el.dispatchEvent(new Event({json.dumps(e)}, {{bubbles: true}}));" for e in events)
    return f"""(() => {{
  const el = document.querySelector({json.dumps(selector)});
  if (!el) return false;
  if (el.type === 'checkbox') el.checked = {json.dumps(bool(value))}; else el.value = {json.dumps(value)};
  {dispatch}
  return true;
}})()"""


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[tuple[ParamRegistry, WebServer, Chromium]]:
    _require_chromium()
    registry = build_registry(MODEL)
    slot = LatestFrameSlot()
    status = {"fps": 30.0, "render_ms": 1.5, "frames": 0, "dropped": 0, "errors": 0, "model": "fake"}
    server = WebServer(registry, slot, lambda: status, port=0, osc_port=9000)
    browser = Chromium(tmp_path / "profile")
    with FakeRenderLoop(registry, slot):
        server.start()
        try:
            browser.start()
            yield registry, server, browser
        finally:
            browser.stop()
            server.stop()


async def _drive(registry: ParamRegistry, server: WebServer, browser: Chromium) -> None:
    base = f"http://127.0.0.1:{browser.devtools_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 << 20) as ws:
            cdp = Cdp(ws)
            await cdp.call("Runtime.enable")
            await cdp.call("Page.enable")
            await cdp.call("Page.navigate", url=server.url + "/monitor")
            await cdp.wait_for("document.body && document.body.dataset.ready === '1'", what="controls built")

            # The page lists every parameter as a control.
            paths = await cdp.eval("Array.from(document.querySelectorAll('#groups .param')).map(e => e.dataset.path)")
            assert {s.path for s in registry.specs()} <= set(paths)
            assert await cdp.eval("document.querySelector('input[data-path=\"truncation.psi\"]').type") == "range"
            assert await cdp.eval("document.querySelector('select[data-path=\"noise.mode\"]').options.length") == 3

            # The live image arrives and keeps changing (green encodes the frame index).
            await cdp.wait_for(f"document.getElementById('out').naturalWidth === {FRAME_W}", what="first frame")
            first = await cdp.wait_for(PIXEL_JS, what="pixel")
            await asyncio.sleep(0.3)
            second = await cdp.wait_for(PIXEL_JS, what="pixel")
            assert first[1] != second[1], f"image did not update: {first} -> {second}"
            assert abs(first[0] - psi_to_red(0.7)) <= 8

            # Moving the psi slider sets the registry and changes the rendered picture.
            assert await cdp.eval(set_input_js('input[data-path="truncation.psi"]', "1.7"))
            deadline = time.monotonic() + 5
            while abs(registry.get("truncation.psi") - 1.7) > 1e-6:
                assert time.monotonic() < deadline, f"slider did not reach the registry: {registry.get('truncation.psi')}"
                await asyncio.sleep(0.02)
            await cdp.wait_for(
                f"(() => {{ const p = {PIXEL_JS}; return p && Math.abs(p[0] - {psi_to_red(1.7)}) <= 8; }})()",
                what="frame to follow the slider",
            )
            readout = await cdp.eval(
                "document.querySelector('.param[data-path=\"truncation.psi\"] .readout').textContent"
            )
            assert readout == "1.700"

            # Checkbox, select and vector randomise reach the registry too.
            assert await cdp.eval(set_input_js('input[data-path="output.paused"]', True, ("change",)))
            assert await cdp.eval(set_input_js('select[data-path="noise.mode"]', "none", ("change",)))
            assert await cdp.eval(
                "(() => { document.querySelector('button[data-action=\"randomise\"][data-path=\"latent.z\"]')"
                ".click(); return true; })()"
            )
            deadline = time.monotonic() + 5
            while not (
                registry.get("output.paused") is True
                and registry.get("noise.mode") == "none"
                and any(registry.get("latent.z"))
            ):
                assert time.monotonic() < deadline, "checkbox/select/randomise did not reach the registry"
                await asyncio.sleep(0.02)

            # A change from elsewhere (OSC, a mapping) moves the slider via OSCQuery LISTEN.
            registry.set("truncation.psi", -0.5, source="osc")
            await cdp.wait_for(
                "Math.abs(parseFloat(document.querySelector('input[data-path=\"truncation.psi\"]').value) + 0.5) < 1e-6",
                what="slider to follow a remote change",
            )
            registry.set("noise.mode", "random", source="osc")
            await cdp.wait_for(
                "document.querySelector('select[data-path=\"noise.mode\"]').value === 'random'",
                what="select to follow a remote change",
            )

            # What is on screen: the stats are filled in and the image shows the new colour.
            await cdp.wait_for("document.getElementById('stat-fps').textContent === '30.0'", what="health stats")
            await cdp.wait_for(
                f"(() => {{ const p = {PIXEL_JS}; return p && Math.abs(p[0] - {psi_to_red(-0.5)}) <= 8; }})()",
                what="frame to follow the remote change",
            )
            rect = await cdp.eval(
                "(() => { const r = document.getElementById('out').getBoundingClientRect();"
                " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
            )
            shot = await cdp.call("Page.captureScreenshot", format="png")
            img = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
            scale = img.width / await cdp.eval("window.innerWidth")
            pixel = img.getpixel((int(rect[0] * scale), int(rect[1] * scale)))
            assert abs(pixel[0] - psi_to_red(-0.5)) <= 10 and abs(pixel[2] - 100) <= 10, pixel

            assert not cdp.exceptions(), cdp.exceptions()


def test_monitor_page_in_chromium(stack) -> None:
    registry, server, browser = stack
    try:
        asyncio.run(asyncio.wait_for(_drive(registry, server, browser), 45))
    except (AssertionError, RuntimeError, asyncio.TimeoutError) as exc:
        raise AssertionError(f"{exc!r}\n--- chromium log ---\n{browser.log()}") from exc
