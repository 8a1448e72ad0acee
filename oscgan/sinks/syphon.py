"""Syphon output (macOS): frames become a Syphon server other apps read as a GPU texture.

Uses ``syphon-python`` (its Metal server), imported lazily. Each frame is copied into a Metal
texture in Syphon's own wire format (``MTLPixelFormatBGRA8Unorm``), so Syphon publishes it
with a plain blit instead of a conversion render pass.
"""

from __future__ import annotations

import logging
from typing import Any

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkUnavailable
from oscgan.sinks.spout import current_platform, platform_name

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'oscgan[syphon]' (or: pip install syphon-python)"


class SyphonSink(FrameSink):
    """Publish frames as a Syphon (Metal) server.

    Args:
        server: the Syphon server name receivers pick (TouchDesigner Syphon Spout In TOP,
            Resolume Sources > Syphon, OBS Syphon Client); default ``oscgan``.
        flip: True = ask Syphon to flip vertically. Metal textures, like our frames, start at the
            top row, so leave this off unless a receiver shows the picture upside down.
        name, size, fit, alpha, alpha_channel: see :class:`FrameSink` (frames are sent as BGRA).
    """

    def __init__(self, server: str = "oscgan", *, flip: bool = False, name: str | None = None,
                 size: tuple[int, int] | None = None, fit: Any = "stretch", alpha: Any = "none",
                 alpha_channel: Any = "a") -> None:
        if not server or not server.strip():
            raise ValueError("Syphon server name must not be empty")
        super().__init__(name or "syphon", size=size, fit=fit, pixel_format="BGRA", alpha=alpha,
                         alpha_channel=alpha_channel)
        self.server_name = server
        self.flip = bool(flip)
        self._server: Any = None
        self._texture: Any = None
        self._texture_size: tuple[int, int] | None = None  # (width, height)
        self._copy: Any = None     # syphon.utils.numpy.copy_image_to_mtl_texture
        self._create: Any = None   # syphon.utils.raw.create_mtl_texture
        self._bgra: int = 0        # Metal.MTLPixelFormatBGRA8Unorm

    @classmethod
    def from_config(cls, cfg: Any, ctx: Any) -> SyphonSink:
        opts = cfg.output_options()
        opts.pop("pixel_format", None)
        return cls(cfg.server or cfg.name or "oscgan", flip=cfg.flip, **opts)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if current_platform() != "darwin":
            return False, (f"Syphon is macOS-only; this is {platform_name()}. Use NDI here "
                           "(--ndi NAME), or Spout on Windows")
        try:
            import Metal  # noqa: F401
            import syphon  # noqa: F401
        except ImportError as e:
            return False, f"Syphon needs the syphon-python package ({e}); {INSTALL_HINT}"
        return True, ""

    # -- FrameSink ---------------------------------------------------------------------------
    def open(self) -> None:
        ok, why = self.is_available()
        if not ok:
            raise SinkUnavailable(why)
        import Metal
        import syphon
        from syphon.utils.numpy import copy_image_to_mtl_texture
        from syphon.utils.raw import create_mtl_texture

        self._copy, self._create, self._bgra = copy_image_to_mtl_texture, create_mtl_texture, \
            Metal.MTLPixelFormatBGRA8Unorm
        server = syphon.SyphonMetalServer(self.server_name)
        if server.device is None:
            server.stop()
            raise SinkUnavailable("no Metal device on this Mac; Syphon's Metal server cannot run")
        self._server = server
        log.info("Syphon server %r ready", self.server_name)

    def send(self, frame: Frame) -> None:
        server = self._server
        if server is None:
            raise RuntimeError("Syphon server is not open")
        size = (frame.width, frame.height)
        if self._texture is None or self._texture_size != size:
            self._texture = self._create(server.device, size[0], size[1], self._bgra)
            self._texture_size = size
        self._copy(frame.rgba, self._texture)  # [H, W, 4] BGRA, top row first
        server.publish_frame_texture(self._texture, is_flipped=self.flip)

    def close(self) -> None:
        server, self._server = self._server, None
        self._texture, self._texture_size = None, None
        if server is not None:
            server.stop()

    def describe(self) -> dict[str, Any]:
        return {"syphon_server": self.server_name}
