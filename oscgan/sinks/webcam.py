"""Virtual webcam output: frames become a camera that Zoom, OBS or a browser can open (pyvirtualcam).

On Linux the camera is a v4l2loopback device (``/dev/videoN``); on Windows and macOS it is the
OBS Virtual Camera. pyvirtualcam is imported lazily.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from typing import Any

import numpy as np

from oscgan.render.frames import Frame
from oscgan.sinks.base import FrameSink, SinkUnavailable

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'oscgan[webcam]' (or: pip install pyvirtualcam)"
V4L2LOOPBACK_HINT = ("load the v4l2loopback kernel module: sudo apt-get install v4l2loopback-dkms && "
                     "sudo modprobe v4l2loopback exclusive_caps=1 card_label=oscgan")


def v4l2loopback_devices(sysfs: str = "/sys/devices/virtual/video4linux") -> list[str]:
    """``/dev/videoN`` nodes that belong to v4l2loopback (they are the only *virtual* video devices)."""
    return sorted(f"/dev/{os.path.basename(p)}" for p in glob.glob(os.path.join(sysfs, "video*")))


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] uint8 -> [H, W, 3] uint8 C-contiguous (alpha dropped: cameras carry no alpha)."""
    return np.ascontiguousarray(rgba[..., :3])


class WebcamSink(FrameSink):
    """Send frames to a virtual camera.

    Args:
        device: camera to use (``/dev/video10`` on Linux, ``OBS Virtual Camera`` elsewhere);
            None = the first free one.
        fps: the camera's advertised frame rate.
        backend: pyvirtualcam backend (``v4l2loopback``, ``obs``, ``unitycapture``); None = any.
        name, size, fit, alpha, alpha_channel: see :class:`FrameSink`. Width and height should be
            even (cameras carry YUV 4:2:0 / 4:2:2).
    """

    def __init__(self, device: str | None = None, *, fps: float = 30.0, backend: str | None = None,
                 name: str | None = None, size: tuple[int, int] | None = None, fit: Any = "stretch",
                 alpha: Any = "none", alpha_channel: Any = "a") -> None:
        super().__init__(name or "webcam", size=size, fit=fit, pixel_format="RGBA", alpha=alpha,
                         alpha_channel=alpha_channel)
        if not fps > 0:
            raise ValueError(f"webcam fps must be positive, got {fps}")
        self.device, self.fps, self.backend = device, float(fps), backend
        self._cam: Any = None

    @classmethod
    def from_config(cls, cfg: Any, ctx: Any) -> WebcamSink:
        opts = cfg.output_options()
        opts.pop("pixel_format", None)
        return cls(cfg.device, fps=cfg.fps or ctx.fps, backend=cfg.backend, **opts)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError as e:
            return False, f"the virtual webcam needs the pyvirtualcam package ({e}); {INSTALL_HINT}"
        if sys.platform.startswith("linux") and not v4l2loopback_devices():
            return False, f"no v4l2loopback video device (/dev/videoN) exists; {V4L2LOOPBACK_HINT}"
        return True, ""

    # -- FrameSink ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError as e:
            raise SinkUnavailable(f"the virtual webcam needs pyvirtualcam ({e}); {INSTALL_HINT}") from None
        if self.size is not None:
            self._start(*self.size)
        # else: the camera is opened on the first frame, when the render size is known

    def send(self, frame: Frame) -> None:
        if self._cam is None or (self._cam.width, self._cam.height) != (frame.width, frame.height):
            self._stop_cam()
            self._start(frame.width, frame.height)
        self._cam.send(rgba_to_rgb(frame.rgba))
        # No sleep_until_next_frame(): the render loop paces frames; sleeping here would only
        # make this worker miss the next one.

    def close(self) -> None:
        self._stop_cam()

    def describe(self) -> dict[str, Any]:
        cam = self._cam
        return {"device": cam.device if cam is not None else self.device,
                "backend": cam.backend if cam is not None else self.backend}

    # -- internals ---------------------------------------------------------------------------
    def _start(self, width: int, height: int) -> None:
        import pyvirtualcam

        try:
            cam = pyvirtualcam.Camera(width, height, self.fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                      device=self.device, backend=self.backend)
        except RuntimeError as e:
            hint = f"; {V4L2LOOPBACK_HINT}" if sys.platform.startswith("linux") else \
                "; install OBS Studio and start its Virtual Camera once"
            raise RuntimeError(f"cannot open a virtual camera {width}x{height}: {e}{hint}") from None
        self._cam = cam
        log.info("virtual camera %s (%s) up: %dx%d @ %g fps", cam.device, cam.backend, width, height, self.fps)

    def _stop_cam(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()
