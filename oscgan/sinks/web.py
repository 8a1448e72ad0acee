"""One HTTP port for OSCQuery (JSON + WebSocket LISTEN) and the browser monitor (MJPEG, stills, sliders)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import WSMsgType, web

from oscgan.render.frames import Frame, LatestFrameSlot
from oscgan.signals import osc_protocol, oscquery

if TYPE_CHECKING:  # duck-typed at runtime: sinks stay downstream of the state package
    from oscgan.state.params import ParamRegistry, ParamSpec

log = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]

MJPEG_BOUNDARY = "oscganframe"
_STATIC_FILES = {
    "index.html": "text/html",
    "monitor.js": "text/javascript",
    "monitor.css": "text/css",
}


class WebServerError(RuntimeError):
    """The web/OSCQuery server could not start (port taken, bad host, …)."""


def encode_image(rgba: np.ndarray, fmt: str, quality: int = 85) -> bytes:
    """Encode a [H, W, 4] uint8 frame as ``png`` (RGBA, lossless) or ``jpeg`` (RGB)."""
    from PIL import Image  # Pillow is a core dependency; imported here to keep import time low

    buf = io.BytesIO()
    if fmt == "png":
        # compress_level=1: a live preview wants speed, not the smallest file.
        Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, format="PNG", compress_level=1)
    elif fmt == "jpeg":
        rgb = np.ascontiguousarray(rgba[:, :, :3])  # [H, W, 3]
        Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(quality))
    else:
        raise ValueError(f"unknown image format {fmt!r}; use 'png' or 'jpeg'")
    return buf.getvalue()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _finite(obj: Any) -> Any:
    # JSON has no NaN/Infinity (browsers' JSON.parse rejects them): send null instead.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, default=_json_default, allow_nan=False)
    except ValueError:  # a NaN somewhere (e.g. fps before the first frame); rare, so fix up lazily
        return json.dumps(_finite(json.loads(json.dumps(obj, default=_json_default))))


def _json(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps, headers=headers)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def spec_json(spec: ParamSpec, value: Any) -> dict[str, Any]:
    """A parameter spec plus its current value, as served by ``GET /api/params``."""
    return {
        "path": spec.path,
        "kind": spec.kind,
        "default": spec.default,
        "min": spec.minimum,
        "max": spec.maximum,
        "length": spec.length,
        "element_kind": getattr(spec, "element_kind", "float"),
        "choices": list(spec.choices),
        "description": spec.description,
        "unit": spec.unit,
        "group": spec.group,
        "osc_address": spec.osc_address,
        "value": value,
    }


def _load_static() -> dict[str, bytes]:
    root = resources.files("oscgan.sinks") / "web_static"
    files: dict[str, bytes] = {}
    for name in _STATIC_FILES:
        try:
            files[name] = (root / name).read_bytes()
        except (FileNotFoundError, OSError) as exc:
            raise WebServerError(
                f"web monitor asset oscgan/sinks/web_static/{name} is missing ({exc}); "
                "reinstall oscgan (the package data was not installed)"
            ) from exc
    return files


def _wants_html(request: web.Request) -> bool:
    # Rule: `/` answers the OSCQuery JSON tree unless the client explicitly accepts text/html
    # (browsers do; OSCQuery clients send application/json, */* or nothing).
    return "text/html" in request.headers.get("Accept", "")


@dataclass(eq=False)
class _WsClient:
    """One WebSocket peer: the OSC addresses it LISTENs to and its latest-wins outbox."""

    ws: web.WebSocketResponse
    listening: set[str] = field(default_factory=set)
    outbox: dict[str, bytes] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class WebServer:
    """OSCQuery + web monitor on one port, served by aiohttp on its own thread and event loop.

    Endpoints:
        ``GET /``, ``GET /oscgan/...``: OSCQuery JSON (``?ATTRIBUTE``, ``?HOST_INFO``); ``/`` with
        ``Accept: text/html`` (a browser) or ``?HTML`` gets the monitor page instead.
        WebSocket upgrade at ``/``: OSCQuery ``LISTEN`` / ``IGNORE``; values stream as binary OSC,
        and binary OSC from a client (``/oscgan/truncation/psi 0.5``) sets parameters.
        ``GET /monitor``: the control page. ``GET /stream.mjpg``: MJPEG. ``GET /frame.png``,
        ``GET /frame.jpg``: latest still (503 before the first frame). ``GET /health``: status.
        ``GET /api/params``: specs + values. ``POST /api/set``: ``{"path", "value"}``.
        ``POST /api/learn``: ``{"target"}`` arms MIDI/OSC learn (when ``learn`` is given).

    Args:
        registry: the parameter registry every control reads and writes.
        frame_slot: where the render loop publishes frames; read-only here.
        status_provider: returns the daemon status for ``/health`` (fps, render_ms, …); may be None.
        host: interface to bind; ``127.0.0.1`` for local only, ``0.0.0.0`` for the booth LAN.
        port: TCP port; 0 picks a free one (read it back from :attr:`port` after :meth:`start`).
        osc_port: the UDP port of the OSC input, announced in ``HOST_INFO`` (None: not announced).
        name: service name shown in ``HOST_INFO`` and the zeroconf advertisement.
        zeroconf: advertise ``_oscjson._tcp`` via mDNS (needs the optional ``zeroconf`` package).
        osc_ip: OSC input address for ``HOST_INFO``; None means "same host as this server".
        jpeg_quality: JPEG quality 1-95 for the stream and ``/frame.jpg``.
        mjpeg_max_fps: upper bound on frames per second sent to each MJPEG viewer.
        learn: arms learn for a target path and returns what was armed (ValueError if the target
            is unknown); used by the page's L buttons. None: ``POST /api/learn`` answers 404.
    """

    def __init__(
        self,
        registry: ParamRegistry,
        frame_slot: LatestFrameSlot,
        status_provider: StatusProvider | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        osc_port: int | None = None,
        name: str = "oscgan",
        zeroconf: bool = False,
        *,
        osc_ip: str | None = None,
        jpeg_quality: int = 85,
        mjpeg_max_fps: float = 60.0,
        learn: Callable[[str], Mapping[str, Any]] | None = None,
    ) -> None:
        if not 1 <= int(jpeg_quality) <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {jpeg_quality}")
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.registry = registry
        self.frame_slot = frame_slot
        self.status_provider = status_provider
        self.host = host
        self.requested_port = int(port)
        self.osc_port = osc_port
        self.osc_ip = osc_ip
        self.name = name
        self.zeroconf_enabled = bool(zeroconf)
        self.learn = learn  # arms MIDI/OSC learn for a target (POST /api/learn); None: not offered
        self.jpeg_quality = int(jpeg_quality)
        self.mjpeg_min_interval = 1.0 / mjpeg_max_fps if mjpeg_max_fps > 0 else 0.0
        self._static = _load_static()

        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._closing = False
        self._started_at = 0.0

        # Loop-thread state (only touched on the event loop).
        self._clients: set[_WsClient] = set()
        self._streams: set[web.StreamResponse] = set()
        self._frame_waiter: asyncio.Future[None] | None = None
        self._frame_wanted: asyncio.Event | None = None  # set while a viewer waits for a frame
        self._watch_task: asyncio.Task[None] | None = None
        self._encode_cache: dict[tuple[str, int], tuple[Frame, asyncio.Future[bytes]]] = {}
        self._namespace_cache: tuple[Any, dict[str, Any]] | None = None
        self._by_path: dict[str, ParamSpec] = {}
        self._by_address: dict[str, ParamSpec] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._listen_count = 0  # read from any thread to skip work when nobody listens
        self._zc: Any = None
        self._zc_info: Any = None

        self.encodes = 0  # images encoded so far (many viewers of one frame cost one encode)

    # -----------------------------------------------------------------------------------
    # lifecycle
    # -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (valid after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("WebServer.port is only known after start()")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. ``http://127.0.0.1:8080``."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def listen_count(self) -> int:
        """Number of (WebSocket client, OSC address) LISTEN registrations right now."""
        return self._listen_count

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve on a background thread; returns once the socket is listening.

        Raises:
            WebServerError: the port could not be bound (or startup failed otherwise).
        """
        if self._thread is not None:
            raise RuntimeError("WebServer.start() called twice")
        self._closing = False
        self._started.clear()
        self._thread = threading.Thread(target=self._run, name="oscgan-web", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise WebServerError(f"web server did not start within {timeout:.0f} s")
        if self._start_error is not None:
            self._thread.join(2.0)
            self._thread = None
            err = self._start_error
            self._start_error = None
            if isinstance(err, WebServerError):
                raise err
            raise WebServerError(f"web server failed to start: {err}") from err
        log.info("web monitor at %s/monitor, OSCQuery at %s/", self.url, self.url)

    def stop(self, timeout: float = 2.0) -> None:
        """Close every socket (HTTP, WebSocket, streams) and join the server thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout)
            except Exception as exc:  # a stuck client must not keep the daemon from exiting
                log.warning("web server shutdown was not clean: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("web server thread did not exit within %.1f s", timeout)
        self._thread = None

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # report to start(), which raises in the caller's thread
            self._start_error = exc
            try:
                loop.run_until_complete(self._cleanup_runner())
            finally:
                loop.close()
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            if self._executor is not None:
                # Not waiting: a worker may sit in its 0.25 s wait_newer poll; it touches
                # nothing but the slot and ends on its own, so stop() need not pay for it.
                self._executor.shutdown(wait=False, cancel_futures=True)

    def _bind(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self.host, self.requested_port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise WebServerError(f"web server: cannot resolve host {self.host!r}: {exc}") from exc
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if sys.platform != "win32":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise WebServerError(
                f"web server: cannot listen on {self.host}:{self.requested_port} ({exc.strerror or exc}); "
                "choose another port (port 0 picks a free one) or stop the program using it"
            ) from exc
        sock.setblocking(False)
        return sock

    async def _startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="oscgan-web")
        # Fresh loop-bound state: start() may follow an earlier stop().
        self._frame_waiter = loop.create_future()
        self._frame_wanted = asyncio.Event()
        self._encode_cache.clear()
        self._clients.clear()
        self._streams.clear()
        self._listen_count = 0
        app = web.Application(client_max_size=1 << 20)
        app.add_routes(
            [
                web.get("/monitor", self._handle_monitor),
                web.get("/static/{name}", self._handle_static),
                web.get("/stream.mjpg", self._handle_mjpeg),
                web.get("/frame.png", self._handle_still),
                web.get("/frame.jpg", self._handle_still),
                web.get("/health", self._handle_health),
                web.get("/api/params", self._handle_params),
                web.post("/api/set", self._handle_set),
                web.post("/api/learn", self._handle_learn),
                web.get("/{tail:.*}", self._handle_oscquery),
            ]
        )
        # access_log=None: a 60 fps MJPEG viewer would otherwise flood the log.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = self._bind()
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._port = int(sock.getsockname()[1])
        self._started_at = time.monotonic()
        self._refresh_tables()
        self._unsubscribe = self.registry.subscribe(self._on_param_change)
        self._watch_task = loop.create_task(self._watch_frames())
        if self.zeroconf_enabled:
            await loop.run_in_executor(self._executor, self._advertise)

    async def _shutdown(self) -> None:
        self._closing = True
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:  # the registry may already be gone at daemon exit
                log.debug("registry unsubscribe failed", exc_info=True)
            self._unsubscribe = None
        self._wake_frame_waiters()
        if self._watch_task is not None:
            self._watch_task.cancel()
        for client in self._clients:
            if client.task is not None:
                client.task.cancel()
        await asyncio.gather(
            *(c.ws.close(code=1001, message=b"server shutting down") for c in list(self._clients)),
            return_exceptions=True,
        )
        if self._zc is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._unadvertise)
        await self._cleanup_runner()

    async def _cleanup_runner(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -----------------------------------------------------------------------------------
    # zeroconf
    # -----------------------------------------------------------------------------------

    def _advertise(self) -> None:
        try:
            import zeroconf  # optional dependency
        except ImportError:
            log.warning(
                "zeroconf advertisement requested, but the 'zeroconf' package is not installed "
                "(pip install zeroconf); OSCQuery clients must be pointed at %s by hand",
                self.url,
            )
            return
        addresses = self._advertised_addresses()
        info = zeroconf.ServiceInfo(
            "_oscjson._tcp.local.",
            f"{self.name}._oscjson._tcp.local.",
            addresses=[socket.inet_aton(a) for a in addresses],
            port=self.port,
            properties={"txtvers": "1"},
            server=f"{socket.gethostname().split('.')[0]}.local.",
        )
        try:
            zc = zeroconf.Zeroconf()
            zc.register_service(info, allow_name_change=True)
        except Exception as exc:
            log.warning("zeroconf advertisement failed (%s); OSCQuery still served at %s", exc, self.url)
            return
        self._zc, self._zc_info = zc, info
        log.info("advertising _oscjson._tcp '%s' on %s port %d", self.name, ", ".join(addresses), self.port)

    def _advertised_addresses(self) -> list[str]:
        if self.host not in ("0.0.0.0", "", "::"):
            return [socket.gethostbyname(self.host)]
        try:
            found = {
                info[4][0]
                for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
                if not str(info[4][0]).startswith("127.")
            }
        except OSError:
            found = set()
        return sorted(found) or ["127.0.0.1"]

    def _unadvertise(self) -> None:
        try:
            self._zc.unregister_service(self._zc_info)
            self._zc.close()
        except Exception:
            log.debug("zeroconf unregister failed", exc_info=True)
        self._zc = self._zc_info = None

    @property
    def zeroconf_active(self) -> bool:
        """True while the ``_oscjson._tcp`` service is registered."""
        return self._zc is not None

    # -----------------------------------------------------------------------------------
    # OSCQuery
    # -----------------------------------------------------------------------------------

    def _refresh_tables(self) -> None:
        specs = list(self.registry.specs())
        self._by_path = {s.path: s for s in specs}
        self._by_address = oscquery.address_table(specs)

    def _spec_by_path(self, path: str) -> ParamSpec | None:
        if path not in self._by_path:
            self._refresh_tables()  # parameters may have been added since the last lookup
        return self._by_path.get(path)

    def _namespace(self) -> dict[str, Any]:
        version = getattr(self.registry, "version", None)
        cached = self._namespace_cache
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        ns = oscquery.build_namespace(self.registry, name=self.name)
        self._namespace_cache = (version, ns)
        return ns

    async def _handle_oscquery(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if request.path != "/":
                return _error(404, f"WebSocket endpoint is '/', not {request.path!r}")
            return await self._handle_ws(request)
        attribute = request.query_string.split("&", 1)[0].split("=", 1)[0]
        if attribute == "HOST_INFO":  # path is irrelevant for HOST_INFO (spec)
            return _json(oscquery.host_info(self.name, self.osc_port, self.osc_ip), headers=_CORS)
        if attribute == "HTML" or (request.path == "/" and not attribute and _wants_html(request)):
            return self._page()
        path = request.path.rstrip("/") or "/"
        node = oscquery.node_for_path(self._namespace(), path)
        if node is None:
            return _json({"error": f"no OSC container or method at {path!r}"}, 404, _CORS)
        if not attribute:
            return _json(node, headers=_CORS)
        try:
            return _json(oscquery.attribute_of(node, attribute), headers=_CORS)
        except oscquery.OSCQueryError as exc:
            if exc.status == 204:
                return web.Response(status=204, headers=_CORS)
            return _json({"error": str(exc)}, exc.status, _CORS)

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        # timeout: how long close() waits for the peer's close frame; short so stop() stays quick.
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 16, timeout=1.0)
        await ws.prepare(request)
        client = _WsClient(ws)
        client.task = asyncio.get_running_loop().create_task(self._ws_sender(client))
        self._clients.add(client)
        log.debug("OSCQuery WebSocket client %s connected", request.remote)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._ws_command(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._ws_osc(msg.data)
        finally:
            self._clients.discard(client)
            self._listen_count -= len(client.listening)
            client.listening.clear()
            if client.task is not None:
                client.task.cancel()
            log.debug("OSCQuery WebSocket client %s disconnected", request.remote)
        return ws

    def _ws_command(self, client: _WsClient, text: str) -> None:
        try:
            msg = json.loads(text)
            command, data = msg["COMMAND"], msg.get("DATA")
        except (ValueError, KeyError, TypeError):
            log.warning("OSCQuery WebSocket: expected {\"COMMAND\": ..., \"DATA\": ...}, got %.200r", text)
            return
        if command not in ("LISTEN", "IGNORE"):
            log.debug("OSCQuery WebSocket: unsupported COMMAND %r", command)
            return
        if not isinstance(data, str):
            log.warning("OSCQuery WebSocket: %s needs DATA to be an OSC address string, got %r", command, data)
            return
        if command == "LISTEN":
            if data not in self._by_address:
                self._refresh_tables()
            if data not in self._by_address:
                log.warning("OSCQuery LISTEN: no OSC method at %r", data)
                return
            if data not in client.listening:
                client.listening.add(data)
                self._listen_count += 1
        elif data in client.listening:
            client.listening.discard(data)
            self._listen_count -= 1

    async def _ws_osc(self, data: bytes) -> None:
        """Binary OSC from a client (spec: OSC packets may flow both ways) sets parameters."""
        try:
            messages = osc_protocol.iter_messages(osc_protocol.parse_packet(data))
        except osc_protocol.OscParseError as exc:
            log.warning("OSCQuery WebSocket: bad OSC packet from client: %s", exc)
            return
        items: list[tuple[str, Any]] = []
        for m in messages:
            path = oscquery.path_for_address(m.address)
            if path is None or not m.args:
                log.warning("OSCQuery WebSocket: ignoring %s %r (expected /oscgan/<parameter> <value>)",
                            m.address, m.args)
                continue
            items.append((path, m.args[0] if len(m.args) == 1 else tuple(m.args)))
        if not items:
            return

        def apply() -> None:
            self.registry.set_many(items, source="oscquery")  # a bundle lands atomically

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, apply)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("OSCQuery WebSocket: %s", exc)

    def _on_param_change(self, path: str, value: Any, source: str) -> None:
        # Called on whichever thread set the value (OSC, MIDI, render loop). It may run under
        # the registry's lock, so it must not call back into the registry: hop to the loop.
        if self._listen_count <= 0 or self._closing:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._fan_out_change, path, value)
            except RuntimeError:  # loop closed between the check and the call
                pass

    def _resolve_spec(self, path: str, value: Any) -> tuple[ParamSpec, Any] | None:
        base, _, element = path.rpartition(".")
        vector = self._by_path.get(base) if element.isdigit() else None
        if vector is not None and vector.kind == "vector" and path not in self._by_path:
            # An element write ("latent.z.5"): LISTENers get the whole vector message.
            return vector, self.registry.get(base)
        spec = self._spec_by_path(path)
        return None if spec is None else (spec, value)

    def _fan_out_change(self, path: str, value: Any) -> None:
        resolved = self._resolve_spec(path, value)
        if resolved is None:
            return
        spec, value = resolved
        address = spec.osc_address
        targets = [c for c in self._clients if address in c.listening]
        if not targets:
            return
        try:
            packet = oscquery.value_message(spec, value)
        except (ValueError, TypeError) as exc:
            log.warning("cannot encode %s=%r as OSC: %s", address, value, exc)
            return
        for client in targets:
            client.outbox[address] = packet  # latest wins: a slow client skips stale values
            client.wake.set()

    async def _ws_sender(self, client: _WsClient) -> None:
        try:
            while not client.ws.closed:
                await client.wake.wait()
                client.wake.clear()
                outbox, client.outbox = client.outbox, {}
                for packet in outbox.values():
                    await client.ws.send_bytes(packet)
        except ConnectionError:
            pass  # peer went away; the receive loop cleans up
        except Exception:
            log.debug("OSCQuery WebSocket sender stopped", exc_info=True)

    # -----------------------------------------------------------------------------------
    # monitor page and API
    # -----------------------------------------------------------------------------------

    def _page(self) -> web.Response:
        return web.Response(
            body=self._static["index.html"], content_type="text/html", charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def _handle_monitor(self, request: web.Request) -> web.Response:
        return self._page()

    async def _handle_static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static or name == "index.html":
            return _error(404, f"no static file {name!r}")
        return web.Response(
            body=self._static[name], content_type=_STATIC_FILES[name], charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def _handle_params(self, request: web.Request) -> web.Response:
        def collect() -> list[dict[str, Any]]:
            return [spec_json(s, self.registry.get(s.path)) for s in self.registry.specs()]

        items = await asyncio.get_running_loop().run_in_executor(self._executor, collect)
        return _json(items)

    async def _handle_set(self, request: web.Request) -> web.Response:
        # Requiring a JSON content type forces a CORS preflight for cross-site scripts, so a
        # random web page open in the booth cannot move the visuals.
        if request.content_type != "application/json":
            return _error(415, "POST /api/set needs Content-Type: application/json")
        try:
            body = await request.json()
            path, value = body["path"], body["value"]
        except (ValueError, KeyError, TypeError):
            return _error(400, 'POST /api/set expects JSON {"path": "truncation.psi", "value": 0.5}')
        if not isinstance(path, str):
            return _error(400, f"'path' must be a string like 'truncation.psi', got {path!r}")
        if isinstance(value, list):
            value = tuple(value)

        def apply() -> Any:
            return self.registry.set(path, value, source="web")

        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, apply)
        except KeyError as exc:  # UnknownParameter subclasses KeyError; its str() is the message
            return _error(400, str(exc) if type(exc) is not KeyError else f"unknown parameter {path!r}")
        except (ValueError, TypeError) as exc:  # ParamValueError subclasses ValueError
            return _error(400, f"bad value for {path!r}: {exc}")
        return _json({"path": result.path, "value": result.value, "clamped": bool(result.clamped)})

    async def _handle_learn(self, request: web.Request) -> web.Response:
        if self.learn is None:
            return _error(404, "learn is not available (no mapping service)")
        if request.content_type != "application/json":
            return _error(415, "POST /api/learn needs Content-Type: application/json")
        try:
            target = (await request.json())["target"]
        except (ValueError, KeyError, TypeError):
            return _error(400, 'POST /api/learn expects JSON {"target": "truncation.psi"}')
        if not isinstance(target, str):
            return _error(400, f"'target' must be a parameter path such as 'truncation.psi', got {target!r}")
        try:
            armed = self.learn(target)
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(dict(armed))

    async def _handle_health(self, request: web.Request) -> web.Response:
        status: dict[str, Any] = {}
        if self.status_provider is not None:
            try:
                provided = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.status_provider
                )
                status.update(provided or {})
            except Exception as exc:
                log.warning("status provider failed: %r", exc)
                status["status_error"] = repr(exc)
        frame = self.frame_slot.latest()
        status["web"] = {
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "ws_clients": len(self._clients),
            "ws_listens": self._listen_count,
            "stream_viewers": len(self._streams),
            "encodes": self.encodes,
            "frame_index": None if frame is None else frame.index,
            "frame_size": None if frame is None else [frame.width, frame.height],
        }
        return _json(status, headers={"Cache-Control": "no-store"})

    # -----------------------------------------------------------------------------------
    # frames
    # -----------------------------------------------------------------------------------

    async def _watch_frames(self) -> None:
        """Turn the slot's blocking ``wait_newer`` into an awaitable for every viewer (one thread).

        Idle while no viewer waits: waking an executor thread and this loop for every frame
        nobody looks at took half a millisecond of GIL time from each 7 ms render.
        """
        loop = asyncio.get_running_loop()
        wanted = self._frame_wanted
        assert wanted is not None
        last = -1
        while not self._closing:
            if not wanted.is_set():
                try:
                    await asyncio.wait_for(wanted.wait(), 0.25)
                except asyncio.TimeoutError:
                    continue
            current = self.frame_slot.latest()
            if current is not None and current.index < last:
                last = -1  # the render loop restarted its counter
            frame = await loop.run_in_executor(self._executor, self.frame_slot.wait_newer, last, 0.25)
            if frame is None:
                continue
            last = frame.index
            # No await between these two: a viewer that starts waiting after the clear gets the
            # new future and sets the event again.
            wanted.clear()
            self._wake_frame_waiters()

    def _wake_frame_waiters(self) -> None:
        waiter = self._frame_waiter
        if self._loop is not None:
            self._frame_waiter = self._loop.create_future()
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _frame_after(self, frame: Frame | None, timeout: float) -> Frame | None:
        """The latest frame if it differs from ``frame``, else wait up to ``timeout`` for one."""
        latest = self.frame_slot.latest()
        if latest is not None and latest is not frame:
            return latest
        waiter = self._frame_waiter
        if waiter is None or self._frame_wanted is None:
            return None
        self._frame_wanted.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            return None
        latest = self.frame_slot.latest()
        return latest if latest is not frame else None

    async def _encoded(self, frame: Frame, fmt: str) -> bytes:
        """Encoded bytes of ``frame``, computed once per frame and format however many ask."""
        quality = self.jpeg_quality if fmt == "jpeg" else 0
        key = (fmt, quality)
        cached = self._encode_cache.get(key)
        if cached is not None and cached[0] is frame:
            return await asyncio.shield(cached[1])
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, encode_image, frame.rgba, fmt, quality)
        self.encodes += 1
        self._encode_cache[key] = (frame, fut)
        return await asyncio.shield(fut)

    async def _handle_still(self, request: web.Request) -> web.Response:
        fmt, ctype = ("png", "image/png") if request.path.endswith(".png") else ("jpeg", "image/jpeg")
        frame = self.frame_slot.latest()
        if frame is None:
            return _json(
                {"error": "no frame rendered yet; is the render loop running?"}, 503,
                {"Retry-After": "1"},
            )
        body = await self._encoded(frame, fmt)
        return web.Response(
            body=body, content_type=ctype,
            headers={"Cache-Control": "no-store", "X-Frame-Index": str(frame.index)},
        )

    async def _handle_mjpeg(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                "Cache-Control": "no-store, no-cache, must-revalidate",
                "Pragma": "no-cache",
                "Connection": "close",
            }
        )
        await resp.prepare(request)
        self._streams.add(resp)
        frame: Frame | None = None
        next_time = 0.0
        try:
            while not self._closing:
                newer = await self._frame_after(frame, timeout=1.0)
                if newer is None:
                    continue
                frame = newer
                jpg = await self._encoded(frame, "jpeg")
                head = (
                    f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpg)}\r\nX-Frame-Index: {frame.index}\r\n\r\n"
                ).encode("ascii")
                await resp.write(head + jpg + b"\r\n")
                if self.mjpeg_min_interval:
                    now = time.monotonic()
                    next_time = max(next_time + self.mjpeg_min_interval, now)
                    if next_time > now:
                        await asyncio.sleep(next_time - now)
        except ConnectionError:
            pass  # viewer went away
        finally:
            self._streams.discard(resp)
        return resp


_CORS = {"Access-Control-Allow-Origin": "*"}
