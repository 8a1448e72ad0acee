"""Wires config -> objects (model, registry, render loop, OSC, web) with a start / stop lifecycle."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from typing import Any

import torch

from oscgan.allocator import keep_freed_memory
from oscgan.config import DaemonConfig, parse_host_port
from oscgan.devices import resolve_device
from oscgan.mapping.service import MappingService
from oscgan.models.loader import load_generator
from oscgan.render.loop import RenderLoop
from oscgan.render.renderer import Renderer
from oscgan.signals.bus import SignalBus
from oscgan.signals.names import tempo_from
from oscgan.signals.osc import STATUS_PREFIX, OscSender, OscServer, OscTelemetry
from oscgan.sinks.base import SinkManager
from oscgan.sinks.fanout import FrameFanout
from oscgan.sinks.registry import SinkContext, create_sink
from oscgan.sinks.web import WebServer
from oscgan.state.params import ModelInfo, ParamRegistry, UnknownParameter, ParamValueError, build_registry

log = logging.getLogger(__name__)

STATUS_INTERVAL = 1.0  # seconds between OSC status messages


def model_info(G: Any) -> ModelInfo:
    """What the parameter set needs from a generator."""
    return ModelInfo(architecture=G.architecture, z_dim=G.z_dim, w_dim=G.w_dim, num_ws=G.num_ws,
                     img_resolution=G.img_resolution,
                     layer_resolutions=tuple(layer.resolution for layer in G.layers()))


class Daemon:
    """The running engine. ``start()`` brings everything up, ``stop()`` tears it down in reverse.

    Attributes (valid after start): registry, loop, fanout, osc (OscServer), web (WebServer),
    telemetry (OscTelemetry or None).
    """

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.registry: ParamRegistry | None = None
        self.loop: RenderLoop | None = None
        self.fanout = FrameFanout()
        self.osc: OscServer | None = None
        self.web: WebServer | None = None
        self.telemetry: OscTelemetry | None = None
        self._sender: OscSender | None = None
        self.sinks: SinkManager | None = None
        self.control_recorder: Any = None  # render.session.ControlRecorder with --record-control
        self.bus = SignalBus()  # inputs (MIDI, ...) write raw events here; mappings read them per frame
        self.midi: Any = None  # signals.midi.MidiInput when MIDI inputs are configured
        self.mapping: MappingService | None = None  # mapping files, presets, learn
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.model_name = config.model
        self.device = None
        self.out_size: tuple[int, ...] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        t0 = time.perf_counter()
        if cfg.midi.enabled:
            from oscgan.signals.midi import check_available

            check_available(cfg.midi.api)  # missing packages fail now, not after loading the model
        self.device = resolve_device(cfg.device)
        keep_freed_memory()  # before the render thread exists; see oscgan/allocator.py
        if self.device.type == "cpu":
            # Leave a core for the OSC, web and output threads: oversubscribed OpenMP threads
            # spin against them and the frame time can grow several-fold.
            torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 2) - 1))
        G = load_generator(cfg.model, device=self.device)
        info = model_info(G)
        self.registry = build_registry(info)
        self.registry.set("output.fps", cfg.fps, source="config")
        self._apply_initial_params(cfg.params)
        self.out_size = tuple(cfg.size) if cfg.size else None  # (width, height) or the model's own
        renderer = Renderer(G, self.device, out_size=self.out_size, fit=cfg.fit)
        self.loop = RenderLoop(self.registry, renderer, self.fanout, info, noise_seed=cfg.noise_seed,
                               tempo=self.tempo_bpm)
        try:
            self._start_outputs(info)
            if cfg.midi.enabled:
                from oscgan.signals.midi import MidiInput

                self.midi = MidiInput(self.bus, cfg.midi.inputs, virtual=cfg.midi.virtual,
                                      virtual_name=cfg.midi.virtual_name, api=cfg.midi.api).start()
            # Mapping files load before the loop starts (a broken file stops start-up with its line);
            # they run as a pre-frame hook and see OSC addresses that are no parameter.
            self.mapping = MappingService(self.registry, self.bus, cfg.mappings, presets_dir=cfg.presets,
                                          tempo_bpm=cfg.tempo_bpm, on_error=self._on_mapping_error).start()
            self.loop.pre_frame.append(self.mapping.pre_frame)
            self.osc = OscServer(self.registry, host=cfg.osc.host, port=cfg.osc.port,
                                 allow_from=cfg.osc.allow_from, on_unhandled=self.mapping.on_osc).start()
            # First hook: OSC input lands right before the mappings and the frame's snapshot.
            self.loop.pre_frame.insert(0, self.osc.drain)
            if cfg.osc.out:
                host, port = parse_host_port(cfg.osc.out)
                self._sender = OscSender(host, port)
                self.telemetry = OscTelemetry(self.registry, self._sender)
            self.web = WebServer(self.registry, self.fanout.latest, self.status, host=cfg.http.host,
                                 port=cfg.http.port, osc_port=self.osc.address[1], zeroconf=cfg.http.zeroconf,
                                 learn=self.mapping.arm_learn)
            self.web.start()
            self.loop.start()
        except BaseException:
            self.stop()
            raise
        self._status_thread = threading.Thread(target=self._status_run, name="oscgan-status", daemon=True)
        self._status_thread.start()
        log.info("oscgan serving %s (%s, %dpx) on %s; OSC udp://%s:%d; web %s (started in %.1f s)",
                 cfg.model, info.architecture, info.img_resolution, self.device, cfg.osc.host,
                 self.osc.address[1], self.web.url, time.perf_counter() - t0)

    def _start_outputs(self, info: ModelInfo) -> None:
        """Sinks and the control recorder, started before the loop so they see frame 0."""
        cfg = self.config
        assert self.loop is not None and self.registry is not None
        self.sinks = SinkManager(self.fanout, fps=cfg.fps)
        frame_size = self.out_size or (info.img_resolution, info.img_resolution)
        ctx = SinkContext(fps=cfg.fps, frame_size=frame_size, model=cfg.model)  # type: ignore[arg-type]
        for sink_cfg in cfg.sinks:
            if sink_cfg.enabled:
                self.sinks.add(create_sink(sink_cfg, ctx))
        self.sinks.start()
        if cfg.record_control:
            from oscgan.render.session import ControlRecorder, session_header

            header = session_header(cfg.model, info, cfg.fps, self.out_size,  # type: ignore[arg-type]
                                    cfg.fit, str(self.device), cfg.noise_seed)
            self.control_recorder = ControlRecorder(cfg.record_control, self.registry, header)
            self.control_recorder.attach(self.loop)

    def _apply_initial_params(self, params: dict[str, Any]) -> None:
        assert self.registry is not None
        for path, value in params.items():
            try:
                self.registry.set(path, value, source="config")
            except (UnknownParameter, ParamValueError) as e:
                raise ValueError(f"config params.{path}: {e}") from None

    def stop(self) -> None:
        """Stop everything this daemon started (idempotent)."""
        self._status_stop.set()
        if self._status_thread is not None:
            self._status_thread.join(2)
        # Outputs after the loop: the recorder then flushes every frame the loop published.
        for name, part in (("render loop", self.loop), ("outputs", self.sinks),
                           ("control recorder", self.control_recorder), ("web server", self.web),
                           ("OSC input", self.osc), ("MIDI input", self.midi), ("mappings", self.mapping)):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("stopping the %s failed", name)
        if self.telemetry is not None:
            self.telemetry.close()
        if self._sender is not None:
            self._sender.close()
        self._stopped.set()

    def run_until_signal(self) -> int:
        """Start, serve until SIGINT/SIGTERM, stop; returns the exit code."""
        def on_signal(signum: int, frame: Any) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            self._stopped.set()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            self._stopped.wait()
        finally:
            self.stop()
            for s, h in old.items():
                signal.signal(s, h)
        return 0

    def _on_mapping_error(self, error: str | None) -> None:
        """A mapping file failed to reload (or was fixed): tell OSC out; /health shows it too."""
        if self._sender is not None:
            self._sender.send(STATUS_PREFIX + "/mapping_error", error or "")

    def tempo_bpm(self) -> float:
        """The tempo beat-synced travel follows: MIDI clock when it runs, else the configured one."""
        return tempo_from(self.bus, self.config.tempo_bpm)

    # -- status ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """JSON-able engine status for /health and OSC telemetry."""
        st = self.loop.stats if self.loop else None
        osc = self.osc.stats if self.osc else None
        return {
            "ok": bool(self.loop and self.loop.running),
            "model": self.model_name,
            "device": str(self.device),
            "fps": round(st.fps, 2) if st else 0.0,
            "target_fps": float(self.registry.get("output.fps")) if self.registry else None,
            "render_ms": round(st.render_ms, 2) if st else 0.0,
            "frames": st.frames if st else 0,
            "renders": st.renders if st else 0,
            "errors": st.errors if st else 0,
            "last_error": st.last_error if st else None,
            "late_frames": st.late_frames if st else 0,
            "dropped": sum(self.fanout.dropped().values()),
            "uptime_s": round(time.time() - st.started, 1) if st else 0.0,
            "osc": dataclasses.asdict(osc) if osc is not None else None,
            "sinks": self.sinks.status() if self.sinks is not None else {},
            "control_recording": self.control_recorder.status() if self.control_recorder is not None else None,
            "midi": self.midi.stats() if self.midi is not None else None,
            "mapping_error": self.mapping.error if self.mapping is not None else None,
            "mappings": self.mapping.status() if self.mapping is not None else None,
        }

    def _status_run(self) -> None:
        while not self._status_stop.wait(STATUS_INTERVAL):
            if self.telemetry is None or self.loop is None:
                continue
            st = self.loop.stats
            try:
                self.telemetry.send_status(st.fps, st.render_ms, sum(self.fanout.dropped().values()), st.errors)
            except Exception:  # noqa: BLE001
                log.debug("status send failed", exc_info=True)
