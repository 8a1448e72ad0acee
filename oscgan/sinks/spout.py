"""Spout output (Windows): frames become a Spout sender other apps read as a GPU texture.

Uses the ``SpoutGL`` package (Python-SpoutGL, Spout 2.007), imported lazily. Spout shares an
OpenGL texture through DirectX interop, so the sender needs an OpenGL context current on the
thread that sends: the sink asks Spout for a hidden one (``createOpenGL``) on its worker thread
and releases it there (``closeOpenGL``).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkUnavailable

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'oscgan[spout]' (or: pip install SpoutGL)"


def current_platform() -> str:
    """``sys.platform`` (a function so tests can pretend to be another OS)."""
    return sys.platform


def platform_name(platform: str | None = None) -> str:
    """'Linux', 'macOS', 'Windows' or the raw ``sys.platform`` value."""
    p = platform or current_platform()
    if p.startswith("linux"):
        return "Linux"
    return {"darwin": "macOS", "win32": "Windows", "cygwin": "Windows (Cygwin)"}.get(p, p)


class SpoutSink(FrameSink):
    """Publish frames as a Spout sender.

    Args:
        sender: the Spout sender name receivers pick (TouchDesigner Syphon Spout In TOP, Resolume
            Sources > Spout, OBS Spout2 Capture); default ``oscgan``.
        flip: True = flip vertically. Frames are sent top row first, which is what Spout
            expects for pixel buffers (``bInvert`` false), so leave this off unless a receiver
            shows the picture upside down.
        name, size, fit, pixel_format, alpha, alpha_channel: see :class:`FrameSink`
            (``RGBA`` = ``GL_RGBA``, ``BGRA`` = ``GL_BGRA_EXT``).
    """

    def __init__(self, sender: str = "oscgan", *, flip: bool = False, name: str | None = None,
                 size: tuple[int, int] | None = None, fit: Any = "stretch", pixel_format: Any = "RGBA",
                 alpha: Any = "none", alpha_channel: Any = "a") -> None:
        if not sender or not sender.strip():
            raise ValueError("Spout sender name must not be empty")
        super().__init__(name or "spout", size=size, fit=fit, pixel_format=pixel_format, alpha=alpha,
                         alpha_channel=alpha_channel)
        self.sender_name = sender
        self.flip = bool(flip)
        self._sender: Any = None
        self._gl_format: int = 0
        self._gl_thread: int | None = None  # thread that owns the hidden GL context

    @classmethod
    def from_config(cls, cfg: Any, ctx: Any) -> SpoutSink:
        return cls(cfg.sender or cfg.name or "oscgan", flip=cfg.flip, **cfg.output_options())

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if current_platform() != "win32":
            return False, (f"Spout is Windows-only; this is {platform_name()}. Use NDI here "
                           "(--ndi NAME), or Syphon on macOS")
        try:
            import SpoutGL  # noqa: F401
        except ImportError as e:
            return False, f"Spout needs the SpoutGL package ({e}); {INSTALL_HINT}"
        return True, ""

    # -- FrameSink ---------------------------------------------------------------------------
    def open(self) -> None:
        ok, why = self.is_available()
        if not ok:
            raise SinkUnavailable(why)
        import SpoutGL
        from SpoutGL import enums

        sender = SpoutGL.SpoutSender()
        # Spout 2.007 refuses to send without a current OpenGL context; ask it for a hidden one
        # (an invisible window it owns). It is current on this thread only, so open, send and
        # close must all run here, which the sink worker guarantees.
        if not sender.createOpenGL():
            raise RuntimeError("Spout could not create an OpenGL context (is an OpenGL driver installed?)")
        self._gl_thread = threading.get_ident()
        sender.setSenderName(self.sender_name)
        self._gl_format = enums.GL_BGRA_EXT if self.pixel_format == "BGRA" else enums.GL_RGBA
        self._sender = sender
        log.info("Spout sender %r ready", self.sender_name)

    def send(self, frame: Frame) -> None:
        sender = self._sender
        if sender is None:
            raise RuntimeError("Spout sender is not open")
        # Positional only (pybind11 binding): buffer, width, height, GL format, invert, host FBO.
        if not sender.sendImage(frame.rgba, frame.width, frame.height, self._gl_format, self.flip, 0):
            raise RuntimeError("Spout sendImage failed (DirectX 11 / OpenGL interop unavailable?)")
        sender.setFrameSync(self.sender_name)  # wake receivers waiting for a new frame

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is None:
            return
        try:
            sender.releaseSender()
        except TypeError:  # Spout 2.007 binds ReleaseSender(DWORD dwMsec) without a default
            sender.releaseSender(0)
        if self._gl_thread == threading.get_ident():
            sender.closeOpenGL()
        else:
            # A GL context can only be released by the thread it is current on; this happens
            # only after a hung send was abandoned, and the driver frees it with that thread.
            log.debug("Spout: close() on another thread than open(); leaving the GL context")
        self._gl_thread = None

    def describe(self) -> dict[str, Any]:
        return {"spout_sender": self.sender_name}
