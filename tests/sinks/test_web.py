"""Web/OSCQuery server on a real ephemeral port: JSON tree, API, stills, MJPEG, WebSocket LISTEN, lifecycle."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from oscgan.render.frames import Frame, LatestFrameSlot
from oscgan.signals import oscquery
from oscgan.sinks.web import MJPEG_BOUNDARY, WebServer, WebServerError
from oscgan.state.params import ModelInfo, build_registry

MODEL = ModelInfo("stylegan2", 16, 16, 6, 32, (4, 4, 8, 8, 16, 32))
STATUS = {"fps": 29.5, "render_ms": 12.25, "frames": 10, "dropped": 1, "errors": 0, "model": "test"}

# urllib honours *_proxy variables; the server is local, so never use a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture()
def registry():
    return build_registry(MODEL)


@pytest.fixture()
def slot() -> LatestFrameSlot:
    return LatestFrameSlot()


@pytest.fixture()
def server(registry, slot) -> Iterator[WebServer]:
    srv = WebServer(registry, slot, lambda: dict(STATUS), port=0, osc_port=9000, name="oscgan-test")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def http(
    srv: WebServer, path: str, *, body: Any = None, headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = content_type
    req = urllib.request.Request(srv.url + path, data=data, headers=hdrs)
    try:
        with _OPENER.open(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(srv: WebServer, path: str, **kw: Any) -> tuple[int, Any]:
    status, _, raw = http(srv, path, **kw)
    return status, (json.loads(raw) if raw else None)


def make_frame(index: int, color: tuple[int, int, int] = (10, 20, 30), shape=(24, 40)) -> Frame:
    rgba = np.zeros((*shape, 4), np.uint8)
    rgba[..., :3] = color
    rgba[..., 3] = 255
    rgba[0, 0] = (index % 256, 255 - index % 256, 7, 128)  # a lossless marker for PNG checks
    return Frame(rgba, index, time.perf_counter(), render_ms=1.0)


# --------------------------------------------------------------------------------------
# OSCQuery over HTTP
# --------------------------------------------------------------------------------------


def test_root_is_the_namespace(server, registry):
    status, tree = get_json(server, "/")
    assert status == 200
    assert tree == json.loads(json.dumps(oscquery.build_namespace(registry, name="oscgan-test")))
    status, headers, _ = http(server, "/", headers={"Accept": "application/json"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert headers.get("Access-Control-Allow-Origin") == "*"


def test_paths_and_attributes(server, registry):
    registry.set("truncation.psi", 0.5)
    status, node = get_json(server, "/oscgan/truncation/psi")
    assert status == 200 and node["FULL_PATH"] == "/oscgan/truncation/psi" and node["VALUE"] == [0.5]
    assert get_json(server, "/oscgan/truncation/psi?VALUE") == (200, {"VALUE": [0.5]})
    assert get_json(server, "/oscgan/truncation/psi?TYPE") == (200, {"TYPE": "f"})
    assert get_json(server, "/oscgan/truncation/psi?RANGE") == (200, {"RANGE": [{"MIN": -1.0, "MAX": 2.0}]})
    assert get_json(server, "/oscgan/truncation?TYPE") == (200, {})
    status, container = get_json(server, "/oscgan/truncation/")
    assert status == 200 and set(container["CONTENTS"]) == {"psi", "cutoff"}
    travel = get_json(server, "/oscgan/latent/travel")[1]
    assert travel["TYPE"] == "f" and "speed" in travel["CONTENTS"]
    assert http(server, "/oscgan/truncation?VALUE")[0] == 204
    status, err = get_json(server, "/oscgan/truncation/psi?BOGUS")
    assert status == 400 and "BOGUS" in err["error"]
    status, err = get_json(server, "/oscgan/nothing/here")
    assert status == 404 and "/oscgan/nothing/here" in err["error"]


def test_host_info(server):
    status, info = get_json(server, "/?HOST_INFO")
    assert status == 200
    assert info["NAME"] == "oscgan-test" and info["OSC_PORT"] == 9000 and info["OSC_TRANSPORT"] == "UDP"
    assert info["EXTENSIONS"]["LISTEN"] is True and info["EXTENSIONS"]["VALUE"] is True
    assert get_json(server, "/oscgan/truncation/psi?HOST_INFO")[1] == info  # path is irrelevant


def test_browser_gets_the_page(server):
    status, headers, body = http(server, "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/static/monitor.js" in body and b"/stream.mjpg" in body
    for path in ("/monitor", "/oscgan?HTML"):
        status, headers, body = http(server, path, headers={"Accept": "*/*"})
        assert status == 200 and headers["Content-Type"].startswith("text/html"), path
    status, headers, body = http(server, "/static/monitor.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and b"/api/set" in body
    status, headers, _ = http(server, "/static/monitor.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert http(server, "/static/nope.js")[0] == 404


# --------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------


def test_api_params(server, registry):
    registry.set("noise.mode", "random")
    status, items = get_json(server, "/api/params")
    assert status == 200
    by_path = {p["path"]: p for p in items}
    assert list(by_path) == [s.path for s in registry.specs()]
    psi = by_path["truncation.psi"]
    assert psi["kind"] == "float" and psi["min"] == -1.0 and psi["max"] == 2.0
    assert psi["osc_address"] == "/oscgan/truncation/psi" and psi["group"] == "truncation"
    assert by_path["noise.mode"]["value"] == "random" and by_path["noise.mode"]["choices"]
    assert by_path["latent.z"]["value"] == [0.0] * MODEL.z_dim and by_path["latent.z"]["length"] == MODEL.z_dim
    assert by_path["latent.keyframes"]["element_kind"] == "int"


def test_api_set(server, registry):
    status, res = get_json(server, "/api/set", body={"path": "truncation.psi", "value": 0.5})
    assert status == 200 and res == {"path": "truncation.psi", "value": 0.5, "clamped": False}
    assert registry.get("truncation.psi") == 0.5
    status, res = get_json(server, "/api/set", body={"path": "truncation.psi", "value": 9})
    assert status == 200 and res["clamped"] is True and registry.get("truncation.psi") == 2.0
    get_json(server, "/api/set", body={"path": "output.paused", "value": True})
    get_json(server, "/api/set", body={"path": "noise.mode", "value": "none"})
    get_json(server, "/api/set", body={"path": "latent.z", "value": [1.0] * MODEL.z_dim})
    get_json(server, "/api/set", body={"path": "latent.z.2", "value": -1.5})
    assert registry.get("output.paused") is True and registry.get("noise.mode") == "none"
    assert registry.get("latent.z")[:3] == (1.0, 1.0, -1.5)


@pytest.mark.parametrize(
    "body, status, needle",
    [
        ({"path": "truncation.psy", "value": 1}, 400, "did you mean 'truncation.psi'"),
        ({"path": "noise.mode", "value": "loud"}, 400, "const, random, none"),
        ({"path": "truncation.psi", "value": "high"}, 400, "expects a number"),
        ({"path": "truncation.psi"}, 400, '"path"'),
        ({"path": 3, "value": 1}, 400, "must be a string"),
        (b"{not json", 400, '"path"'),
    ],
)
def test_api_set_errors(server, registry, body, status, needle):
    got, err = get_json(server, "/api/set", body=body)
    assert got == status and needle in err["error"], err
    assert registry.get("truncation.psi") == pytest.approx(0.7)


def test_api_set_needs_json_content_type(server, registry):
    got, err = get_json(server, "/api/set", body={"path": "truncation.psi", "value": 0.1}, content_type="text/plain")
    assert got == 415 and "application/json" in err["error"]
    assert registry.get("truncation.psi") == pytest.approx(0.7)


def test_health(server, slot):
    status, h = get_json(server, "/health")
    assert status == 200 and {k: h[k] for k in STATUS} == STATUS
    assert h["web"]["frame_index"] is None
    slot.put(make_frame(4))
    h = get_json(server, "/health")[1]
    assert h["web"]["frame_index"] == 4 and h["web"]["frame_size"] == [40, 24]


def test_health_survives_a_failing_provider(registry, slot):
    def broken() -> dict:
        raise RuntimeError("renderer gone")

    with WebServer(registry, slot, broken, port=0) as srv:
        status, h = get_json(srv, "/health")
    assert status == 200 and "renderer gone" in h["status_error"]


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------


def test_stills(server, slot):
    for path in ("/frame.png", "/frame.jpg"):
        status, headers, body = http(server, path)
        assert status == 503 and "no frame" in json.loads(body)["error"]
    frame = make_frame(3, (200, 100, 50))
    slot.put(frame)
    status, headers, body = http(server, "/frame.png")
    assert status == 200 and headers["Content-Type"] == "image/png" and headers["X-Frame-Index"] == "3"
    png = np.asarray(Image.open(io.BytesIO(body)))
    assert png.shape == (24, 40, 4) and np.array_equal(png, frame.rgba)
    status, headers, body = http(server, "/frame.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    jpg = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    assert jpg.shape == (24, 40, 3) and np.abs(jpg[8:, 8:] - (200, 100, 50)).max() <= 6


def test_one_encode_per_frame_for_many_viewers(server, slot):
    slot.put(make_frame(1))

    async def fetch_many() -> list[bytes]:
        async with aiohttp.ClientSession() as s:
            async def one() -> bytes:
                async with s.get(server.url + "/frame.png") as r:
                    assert r.status == 200
                    return await r.read()
            return await asyncio.gather(*(one() for _ in range(12)))

    before = server.encodes
    bodies = asyncio.run(fetch_many())
    assert len(set(bodies)) == 1 and server.encodes - before == 1
    slot.put(make_frame(2))
    assert http(server, "/frame.png")[0] == 200 and server.encodes - before == 2


async def _read_mjpeg(url: str, count: int) -> list[tuple[int, np.ndarray]]:
    frames = []
    async with aiohttp.ClientSession() as s:
        async with s.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}"
            while len(frames) < count:
                line = (await r.content.readline()).strip()
                if line != f"--{MJPEG_BOUNDARY}".encode():
                    continue
                headers = {}
                while (line := (await r.content.readline()).strip()):
                    k, _, v = line.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                assert headers["content-type"] == "image/jpeg"
                data = await r.content.readexactly(int(headers["content-length"]))
                img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                frames.append((int(headers["x-frame-index"]), img))
    return frames


def test_mjpeg_stream_yields_new_frames(server, slot):
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            slot.put(make_frame(i, (i * 40 % 256, 80, 160)))
            i += 1
            time.sleep(0.02)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        frames = asyncio.run(_read_mjpeg(server.url + "/stream.mjpg", 4))
    finally:
        stop.set()
        producer.join(2)
    indices = [i for i, _ in frames]
    assert indices == sorted(indices) and len(set(indices)) == 4
    for index, img in frames:
        assert img.shape == (24, 40, 3)
        assert abs(int(img[12, 20, 0]) - index * 40 % 256) <= 6  # the picture of that frame


class CountingSlot(LatestFrameSlot):
    """Counts how often the server waits for a frame (each wait wakes a thread per frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait_newer(self, index: int, timeout: float | None = None) -> Frame | None:
        self.waits += 1
        return super().wait_newer(index, timeout)


def test_no_frame_wake_ups_while_nobody_watches(registry):
    """Regression: the server woke a thread and its event loop for every rendered frame even
    with no viewer, which cost the render thread half a millisecond of GIL time per frame."""
    slot = CountingSlot()
    srv = WebServer(registry, slot, lambda: dict(STATUS), port=0, osc_port=9000, name="oscgan-test")
    srv.start()
    try:
        def publish(first: int, n: int) -> None:
            for i in range(first, first + n):
                slot.put(make_frame(i))
                time.sleep(0.01)

        publish(0, 30)
        assert slot.waits == 0
        producer = threading.Thread(target=publish, args=(30, 60), daemon=True)
        producer.start()
        frames = asyncio.run(_read_mjpeg(srv.url + "/stream.mjpg", 3))
        producer.join(5)
        assert len({i for i, _ in frames}) == 3  # a viewer is served frame by frame
        time.sleep(0.5)  # the closed stream's last wait ends
        waits = slot.waits
        publish(90, 30)
        assert slot.waits - waits <= 3  # a closing stream may ask once or twice more; not 30 times
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------
# WebSocket LISTEN / IGNORE
# --------------------------------------------------------------------------------------


async def _wait_until(cond, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _no_message(ws: aiohttp.ClientWebSocketResponse, wait: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.receive(), wait)


def test_ws_listen_and_ignore(server, registry):
    spec = registry.spec("truncation.psi")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(server.url.replace("http", "ws") + "/") as ws:
            await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/oscgan/truncation/psi"}))
            await _wait_until(lambda: server.listen_count == 1)
            registry.set("truncation.psi", 0.5, source="test")
            msg = await asyncio.wait_for(ws.receive(), 3)
            assert msg.type == aiohttp.WSMsgType.BINARY
            assert msg.data == oscquery.value_message(spec, 0.5)
            registry.set("truncation.cutoff", 2)  # not listened: nothing arrives
            await _no_message(ws)
            await ws.send_str(json.dumps({"COMMAND": "IGNORE", "DATA": "/oscgan/truncation/psi"}))
            await _wait_until(lambda: server.listen_count == 0)
            registry.set("truncation.psi", 0.25)
            await _no_message(ws)

    asyncio.run(scenario())


def test_ws_vector_element_bool_enum(server, registry):
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(server.url + "/") as ws:
            for address in ("/oscgan/latent/z", "/oscgan/output/paused", "/oscgan/noise/mode"):
                await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": address}))
            await _wait_until(lambda: server.listen_count == 3)
            registry.set("latent.z.5", 1.25)
            msg = await asyncio.wait_for(ws.receive(), 3)
            expected = [0.0] * MODEL.z_dim
            expected[5] = 1.25
            assert msg.data == oscquery.value_message(registry.spec("latent.z"), expected)
            registry.set("output.paused", True)
            assert (await asyncio.wait_for(ws.receive(), 3)).data.endswith(b",T\x00\x00")
            registry.set("noise.mode", "none")
            assert (await asyncio.wait_for(ws.receive(), 3)).data.endswith(b",s\x00\x00none\x00\x00\x00\x00")

    asyncio.run(scenario())


def test_ws_bad_commands_keep_the_connection(server, registry, caplog):
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(server.url + "/") as ws:
            await ws.send_str("not json")
            await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/oscgan/nope"}))
            await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": 5}))
            await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/oscgan/truncation/psi"}))
            await _wait_until(lambda: server.listen_count == 1)
            registry.set("truncation.psi", 1.0)
            assert (await asyncio.wait_for(ws.receive(), 3)).type == aiohttp.WSMsgType.BINARY
        await _wait_until(lambda: server.listen_count == 0)  # disconnect drops the LISTENs

    with caplog.at_level(logging.WARNING, logger="oscgan.sinks.web"):
        asyncio.run(scenario())
    assert "no OSC method at '/oscgan/nope'" in caplog.text


def test_ws_binary_osc_sets_parameters(server, registry, caplog):
    from oscgan.signals.osc_protocol import OscMessage, encode_bundle, encode_message

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(server.url + "/") as ws:
            await ws.send_bytes(encode_message("/oscgan/truncation/psi", [0.5]))
            await ws.send_bytes(b"\x00\x01")  # not OSC: logged, connection stays
            await ws.send_bytes(encode_message("/oscgan/nope", [1.0]))
            await ws.send_bytes(encode_bundle([
                OscMessage("/oscgan/latent/z/2", (1.25,)), OscMessage("/oscgan/noise/mode", ("none",)),
            ]))
            await _wait_until(lambda: registry.get("noise.mode") == "none")
            assert registry.get("truncation.psi") == 0.5 and registry.get("latent.z.2") == 1.25
            assert not ws.closed

    with caplog.at_level(logging.WARNING, logger="oscgan.sinks.web"):
        asyncio.run(scenario())
    assert "bad OSC packet" in caplog.text and "'nope'" in caplog.text


def test_slow_listener_gets_latest_value(server, registry):
    spec = registry.spec("truncation.psi")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(server.url + "/") as ws:
            await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": spec.osc_address}))
            await _wait_until(lambda: server.listen_count == 1)
            for i in range(200):
                registry.set("truncation.psi", i / 200)
            last = None
            while True:
                try:
                    last = (await asyncio.wait_for(ws.receive(), 0.5)).data
                except asyncio.TimeoutError:
                    break
            assert last == oscquery.value_message(spec, 199 / 200)

    asyncio.run(scenario())


# --------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------


def test_stop_closes_streams_and_port_quickly(registry, slot):
    srv = WebServer(registry, slot, None, port=0)
    srv.start()
    port = srv.port
    slot.put(make_frame(0))

    async def scenario() -> float:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(srv.url + "/")
            stream = await s.get(srv.url + "/stream.mjpg")
            await stream.content.readline()
            await _wait_until(lambda: len(srv._streams) == 1)
            t0 = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, srv.stop)
            elapsed = time.monotonic() - t0
            msg = await asyncio.wait_for(ws.receive(), 2)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
            stream.close()
            return elapsed

    elapsed = asyncio.run(scenario())
    assert elapsed < 2.0 and not srv.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_restart_after_stop(registry, slot):
    srv = WebServer(registry, slot, None, port=0)
    for _ in range(2):
        srv.start()
        slot.put(make_frame(slot.latest().index + 1 if slot.latest() else 0))
        assert http(srv, "/frame.png")[0] == 200
        srv.stop()
        assert not srv.running


def test_health_nan_becomes_null(registry, slot):
    with WebServer(registry, slot, lambda: {"fps": float("nan"), "render_ms": 3.0}, port=0) as srv:
        status, _, raw = http(srv, "/health")
    assert status == 200 and b"NaN" not in raw
    assert json.loads(raw)["fps"] is None and json.loads(raw)["render_ms"] == 3.0


def test_busy_port_is_a_clear_error(registry, slot):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        srv = WebServer(registry, slot, None, port=busy.getsockname()[1])
        with pytest.raises(WebServerError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
            srv.start()
        assert not srv.running


def test_zeroconf_missing_is_reported_not_fatal(registry, slot, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "zeroconf", None)  # makes `import zeroconf` raise ImportError
    with caplog.at_level(logging.WARNING, logger="oscgan.sinks.web"):
        with WebServer(registry, slot, None, port=0, zeroconf=True) as srv:
            assert get_json(srv, "/?HOST_INFO")[0] == 200
            assert not srv.zeroconf_active
    assert "pip install zeroconf" in caplog.text


def test_bad_arguments():
    reg, slot = build_registry(MODEL), LatestFrameSlot()
    with pytest.raises(ValueError, match="jpeg_quality"):
        WebServer(reg, slot, None, jpeg_quality=0)
    with pytest.raises(ValueError, match="port"):
        WebServer(reg, slot, None, port=70000)
    with pytest.raises(RuntimeError, match="after start"):
        WebServer(reg, slot, None).port
