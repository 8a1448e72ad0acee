"""Faithful stand-ins for SpoutGL (Windows), syphon-python + PyObjC Metal (macOS) and pyvirtualcam.

Each fake mirrors the real library's Python surface as read from its source:

* SpoutGL 0.1.x (jlai/Python-SpoutGL ``src/PySpoutGL.cpp``, Spout 2.007): pybind11 methods
  without ``py::arg`` names, so every argument is positional and required;
  ``sendImage(buffer, width, height, glFormat, invert, hostFbo)`` demands a C-contiguous buffer
  of at least width*height*bytes-per-pixel (else ``BufferError``) and, like Spout's OpenSpout,
  fails (returns False) when no OpenGL context is current on the calling thread;
  ``createOpenGL`` makes a hidden context current on *this* thread only.
* syphon-python 0.2 (cansik/syphon-python ``syphon/server.py``, ``syphon/utils/raw.py``,
  ``syphon/utils/numpy.py``): ``SyphonMetalServer(name, device=None, command_queue=None)``,
  ``publish_frame_texture(texture, region=None, size=None, is_flipped=False, ...)``, ``stop()``;
  ``create_mtl_texture(device, width, height, pixel_format=MTLPixelFormatRGBA8Unorm)``;
  ``copy_image_to_mtl_texture(image, texture)`` asserting an (m, n, 4) image. The Syphon
  framework's wire format is BGRA8Unorm; other formats or ``flipped`` take a render pass.
* pyvirtualcam 0.15: ``Camera(width, height, fps, *, fmt=PixelFormat.RGB, device=None,
  backend=None, print_fps=False)``; ``send`` wants uint8 of shape (h, w, 3) for RGB.

Every fake records what a receiving application would see (top row first, RGBA) and every
protocol violation, so tests can assert both the pixels and the call sequence.
"""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# -- SpoutGL -----------------------------------------------------------------------------------

GL_RGB, GL_RGBA, GL_BGR_EXT, GL_BGRA_EXT = 0x1907, 0x1908, 0x80E0, 0x80E1
_GL_BPP = {GL_RGBA: 4, GL_BGRA_EXT: 4, GL_RGB: 3, GL_BGR_EXT: 3}


class _GLState:
    """Which hidden GL context (if any) is current on each thread, like wglGetCurrentContext."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.next_id = 1

    def current(self) -> int | None:
        return getattr(self.local, "ctx", None)


@dataclass
class SpoutWorld:
    """Everything the fake SpoutGL saw (shared by all senders of one fake module)."""

    calls: list[tuple[str, int, tuple]] = field(default_factory=list)   # (method, thread id, args)
    violations: list[str] = field(default_factory=list)
    received: list[np.ndarray] = field(default_factory=list)   # RGBA, top row first, as receivers see it
    senders: dict[str, tuple[int, int]] = field(default_factory=dict)   # live sender name -> (w, h)
    release_takes_msec: bool = True   # Spout 2.007 binds ReleaseSender(DWORD dwMsec)


class FakeSpoutSender:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError("SpoutSender(): incompatible constructor arguments")
        self._world: SpoutWorld = type(self)._world
        self._gl: _GLState = type(self)._gl
        self._name: str | None = None
        self._own_ctx: int | None = None
        self._own_thread: int | None = None

    def _log(self, method: str, args: tuple) -> None:
        self._world.calls.append((method, threading.get_ident(), args))

    @staticmethod
    def _positional(method: str, kwargs: dict, args: tuple, n: int) -> None:
        # pybind11 methods bound without py::arg accept neither keywords nor missing arguments.
        if kwargs or len(args) != n:
            raise TypeError(f"{method}(): incompatible function arguments ({len(args)} positional, "
                            f"keywords {sorted(kwargs)}; expected exactly {n} positional)")

    def __enter__(self) -> FakeSpoutSender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release()

    def createOpenGL(self, *args: Any, **kwargs: Any) -> bool:  # noqa: N802 - real name
        self._positional("createOpenGL", kwargs, args, 0)
        self._log("createOpenGL", ())
        if self._gl.current() is None:
            ctx = self._gl.next_id
            self._gl.next_id += 1
            self._gl.local.ctx = ctx
            self._own_ctx, self._own_thread = ctx, threading.get_ident()
        return True

    def closeOpenGL(self, *args: Any, **kwargs: Any) -> bool:  # noqa: N802
        self._positional("closeOpenGL", kwargs, args, 0)
        self._log("closeOpenGL", ())
        if self._own_ctx is None:
            return True
        if self._own_thread != threading.get_ident():
            self._world.violations.append("closeOpenGL called on a thread that does not own the context")
            return False
        self._gl.local.ctx = None
        self._own_ctx = self._own_thread = None
        return True

    def setSenderName(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self._positional("setSenderName", kwargs, args, 1)
        if not isinstance(args[0], str):
            raise TypeError("setSenderName(): expected str")
        self._log("setSenderName", args)
        self._name = args[0]

    def sendImage(self, *args: Any, **kwargs: Any) -> bool:  # noqa: N802
        self._positional("sendImage", kwargs, args, 6)
        buf, width, height, gl_format, invert, host_fbo = args
        for label, v in (("width", width), ("height", height), ("glFormat", gl_format), ("hostFbo", host_fbo)):
            if isinstance(v, (bool, float)) or not hasattr(v, "__index__"):
                raise TypeError(f"sendImage(): {label} must be an int, got {type(v).__name__}")
        if not isinstance(invert, (bool, np.bool_)):
            raise TypeError(f"sendImage(): invert must be a bool, got {type(invert).__name__}")
        self._log("sendImage", (int(width), int(height), int(gl_format), bool(invert), int(host_fbo)))
        if gl_format not in _GL_BPP:
            raise ValueError("Unknown GL format")  # std::invalid_argument -> ValueError
        view = memoryview(buf)  # TypeError for objects without the buffer protocol, like pybind11
        bpp = _GL_BPP[gl_format]
        if view.nbytes < width * height * bpp:
            raise BufferError("Buffer not large enough")
        if not view.c_contiguous:
            raise BufferError("Buffer must be contiguous")
        if self._gl.current() is None:
            # spoutGL::OpenSpout: "Cannot get GL device context" -> SendImage returns false.
            self._world.violations.append("sendImage without a current OpenGL context on this thread")
            return False
        if self._name is None:
            self._world.violations.append("sendImage before setSenderName (Spout would use the exe name)")
        raw = np.frombuffer(view.cast("B"), np.uint8, count=width * height * bpp).reshape(height, width, bpp)
        if gl_format in (GL_BGRA_EXT, GL_BGR_EXT):
            raw = raw[..., [2, 1, 0] + ([3] if bpp == 4 else [])]
        img = raw if bpp == 4 else np.concatenate([raw, np.full((height, width, 1), 255, np.uint8)], axis=2)
        # Pixel rows go in top row first; bInvert flips them for receivers.
        self._world.received.append(np.array(img[::-1] if invert else img))
        self._world.senders[self._name or "python"] = (int(width), int(height))
        return True

    def setFrameSync(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self._positional("setFrameSync", kwargs, args, 1)
        self._log("setFrameSync", args)
        if args[0] != self._name:
            self._world.violations.append(f"setFrameSync({args[0]!r}) does not name this sender ({self._name!r})")

    def releaseSender(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self._positional("releaseSender", kwargs, args, 1 if self._world.release_takes_msec else 0)
        self._release()

    def _release(self) -> None:
        self._log("releaseSender", ())
        if self._name is not None:
            self._world.senders.pop(self._name, None)


def make_spoutgl(world: SpoutWorld | None = None) -> tuple[types.ModuleType, SpoutWorld]:
    """A ``SpoutGL`` module object (with ``enums`` and ``helpers``) backed by ``world``."""
    world = world or SpoutWorld()
    mod = types.ModuleType("SpoutGL")
    sender_cls = type("SpoutSender", (FakeSpoutSender,), {"_world": world, "_gl": _GLState()})
    mod.SpoutSender = sender_cls
    enums = types.ModuleType("SpoutGL.enums")
    enums.GL_RGBA, enums.GL_BGRA_EXT, enums.GL_RGB, enums.GL_BGR_EXT = GL_RGBA, GL_BGRA_EXT, GL_RGB, GL_BGR_EXT
    helpers = types.ModuleType("SpoutGL.helpers")

    def get_bytes_per_pixel(fmt: int) -> int:
        if fmt not in _GL_BPP:
            raise ValueError("Unknown GL format")
        return _GL_BPP[fmt]

    helpers.getBytesPerPixel = get_bytes_per_pixel
    mod.enums, mod.helpers = enums, helpers
    mod.__version__ = "0.1.1-fake"
    return mod, world


# -- Metal + syphon-python ---------------------------------------------------------------------

MTLPixelFormatRGBA8Unorm = 70
MTLPixelFormatBGRA8Unorm = 80


@dataclass
class SyphonWorld:
    calls: list[tuple[str, int, tuple]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    received: list[np.ndarray] = field(default_factory=list)   # RGBA as Syphon clients see it
    blits: int = 0          # frames published through Syphon's fast path (BGRA8, unflipped)
    render_passes: int = 0  # frames that needed Syphon's conversion render pass
    servers: dict[str, Any] = field(default_factory=dict)


class FakeMTLTexture:
    def __init__(self, device: FakeMTLDevice, pixel_format: int, width: int, height: int) -> None:
        self._device, self._fmt, self._w, self._h = device, pixel_format, width, height
        self.data = np.zeros((height, width, 4), np.uint8)
        self.framebufferOnly = False

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def pixelFormat(self) -> int:  # noqa: N802
        return self._fmt

    def device(self) -> FakeMTLDevice:
        return self._device

    def replaceRegion_mipmapLevel_withBytes_bytesPerRow_(self, region: Any, level: int, data: Any,  # noqa: N802
                                                         bytes_per_row: int) -> None:
        (x, y, _), (w, h, _) = region
        if (x, y, w, h) != (0, 0, self._w, self._h) or level != 0 or bytes_per_row != self._w * 4:
            raise ValueError(f"fake Metal: unexpected region {region} level {level} row {bytes_per_row}")
        view = memoryview(data).cast("B")
        self.data[...] = np.frombuffer(view, np.uint8, count=w * h * 4).reshape(h, w, 4)


class FakeMTLDevice:
    def newTextureWithDescriptor_(self, desc: dict) -> FakeMTLTexture:  # noqa: N802
        return FakeMTLTexture(self, desc["pixel_format"], desc["width"], desc["height"])

    def newCommandQueue(self) -> object:  # noqa: N802
        return object()


def make_metal() -> types.ModuleType:
    mod = types.ModuleType("Metal")
    mod.MTLPixelFormatRGBA8Unorm = MTLPixelFormatRGBA8Unorm
    mod.MTLPixelFormatBGRA8Unorm = MTLPixelFormatBGRA8Unorm
    device = FakeMTLDevice()
    mod.MTLCreateSystemDefaultDevice = lambda: device

    class MTLTextureDescriptor:
        @staticmethod
        def texture2DDescriptorWithPixelFormat_width_height_mipmapped_(fmt: int, w: int, h: int,  # noqa: N802
                                                                        mip: bool) -> dict:
            return {"pixel_format": fmt, "width": w, "height": h, "mipmapped": mip}

    mod.MTLTextureDescriptor = MTLTextureDescriptor
    mod.MTLRegionMake2D = lambda x, y, w, h: ((x, y, 0), (w, h, 1))
    mod.MTLRegion = lambda origin, size: (tuple(origin), tuple(size))
    return mod


def make_syphon(metal: types.ModuleType, world: SyphonWorld | None = None) -> tuple[dict[str, types.ModuleType], SyphonWorld]:
    """``syphon``, ``syphon.utils``, ``syphon.utils.raw``, ``syphon.utils.numpy`` module objects."""
    world = world or SyphonWorld()

    class SyphonMetalServer:
        def __init__(self, name: str, device: Any = None, command_queue: Any = None) -> None:
            self.name = name
            self.device = device if device is not None else metal.MTLCreateSystemDefaultDevice()
            self.command_queue = command_queue if command_queue is not None else self.device.newCommandQueue()
            self.context = object()
            self._stopped = False
            if name in world.servers:
                world.violations.append(f"a second live Syphon server named {name!r}")
            world.servers[name] = self
            world.calls.append(("SyphonMetalServer", threading.get_ident(), (name,)))

        def publish_frame_texture(self, texture: Any, region: Any = None, size: Any = None,
                                  is_flipped: bool = False, command_buffer: Any = None,
                                  auto_commit: bool = True) -> None:
            world.calls.append(("publish_frame_texture", threading.get_ident(), (is_flipped,)))
            if self._stopped:
                world.violations.append("publish_frame_texture after stop()")
                return
            if not isinstance(texture, FakeMTLTexture):
                raise TypeError("publish_frame_texture expects an MTLTexture")
            if texture.device() is not self.device:
                world.violations.append("texture was created on another Metal device than the server's")
            img = texture.data
            if texture.pixelFormat() == MTLPixelFormatBGRA8Unorm:
                img = img[..., [2, 1, 0, 3]]
            if texture.pixelFormat() == MTLPixelFormatBGRA8Unorm and not is_flipped and not texture.framebufferOnly:
                world.blits += 1
            else:
                world.render_passes += 1
            world.received.append(np.array(img[::-1] if is_flipped else img))

        def publish(self) -> None:
            world.calls.append(("publish", threading.get_ident(), ()))

        def stop(self) -> None:
            world.calls.append(("stop", threading.get_ident(), ()))
            self._stopped = True
            if world.servers.get(self.name) is self:
                del world.servers[self.name]

        @property
        def has_clients(self) -> bool:
            return False

    def create_mtl_texture(device: Any, width: int, height: int,
                           pixel_format: int = metal.MTLPixelFormatRGBA8Unorm) -> Any:
        desc = metal.MTLTextureDescriptor.texture2DDescriptorWithPixelFormat_width_height_mipmapped_(
            pixel_format, width, height, False)
        return device.newTextureWithDescriptor_(desc)

    def copy_bytes_to_mtl_texture(data: Any, texture: Any) -> None:
        view = memoryview(data)
        if not view.c_contiguous:
            raise ValueError("Buffer must be C-contiguous")
        view = view.cast("B")
        w, h = texture.width(), texture.height()
        if view.nbytes < w * h * 4:
            raise ValueError(f"Buffer is too small (expected at least: {w * h * 4}, actual: {view.nbytes})")
        texture.replaceRegion_mipmapLevel_withBytes_bytesPerRow_(metal.MTLRegionMake2D(0, 0, w, h), 0, view, w * 4)

    def copy_image_to_mtl_texture(image: np.ndarray, texture: Any) -> None:
        assert len(image.shape) == 3, "Image has to be of shape (m, n, 4)"
        assert image.shape[2] == 4, "Image has to be of shape (m, n, 4)"
        borrow = type(image) is np.ndarray and image.dtype == np.uint8 and image.flags.c_contiguous
        copy_bytes_to_mtl_texture(memoryview(image) if borrow else image.tobytes(), texture)

    syphon = types.ModuleType("syphon")
    syphon.SyphonMetalServer = SyphonMetalServer
    utils = types.ModuleType("syphon.utils")
    raw = types.ModuleType("syphon.utils.raw")
    raw.create_mtl_texture, raw.copy_bytes_to_mtl_texture = create_mtl_texture, copy_bytes_to_mtl_texture
    npmod = types.ModuleType("syphon.utils.numpy")
    npmod.copy_image_to_mtl_texture = copy_image_to_mtl_texture
    syphon.utils, utils.raw, utils.numpy = utils, raw, npmod
    return {"syphon": syphon, "syphon.utils": utils, "syphon.utils.raw": raw, "syphon.utils.numpy": npmod}, world


# -- pyvirtualcam ------------------------------------------------------------------------------

@dataclass
class CameraWorld:
    opened: list[dict] = field(default_factory=list)
    received: list[np.ndarray] = field(default_factory=list)
    closed: int = 0
    violations: list[str] = field(default_factory=list)


def make_pyvirtualcam(world: CameraWorld | None = None, device: str = "/dev/video10") -> tuple[types.ModuleType, CameraWorld]:
    """A ``pyvirtualcam`` module whose Camera enforces the real constructor and ``send`` contract."""
    import enum

    world = world or CameraWorld()

    class PixelFormat(enum.Enum):
        RGB = "raw "
        BGR = "24BG"
        RGBA = "ABGR"
        GRAY = "J400"

    shapes = {PixelFormat.RGB: 3, PixelFormat.BGR: 3, PixelFormat.RGBA: 4}

    class Camera:
        def __init__(self, width: int, height: int, fps: float, *, fmt: PixelFormat = PixelFormat.RGB,
                     device: str | None = None, backend: str | None = None, print_fps: bool = False,
                     **kw: Any) -> None:
            if not isinstance(fmt, PixelFormat):
                raise TypeError(f"fmt must be a pyvirtualcam.PixelFormat, got {fmt!r}")
            if fmt is not PixelFormat.RGB:
                # v4l2loopback backend: RGBA/GRAY input is refused.
                raise RuntimeError("'v4l2loopback' backend: Unsupported image format.")
            self.width, self.height, self.fps, self.fmt = int(width), int(height), float(fps), fmt
            self._device = device or default_device
            self.backend = backend or "v4l2loopback"
            self._closed = False
            self.frames_sent = 0
            world.opened.append({"width": self.width, "height": self.height, "fps": self.fps,
                                 "device": self._device, "backend": self.backend})

        @property
        def device(self) -> str:
            return self._device

        def send(self, frame: np.ndarray) -> None:
            if self._closed:
                world.violations.append("send after close")
                raise RuntimeError("camera closed")
            if frame.dtype != np.uint8:
                raise TypeError(f"unexpected frame dtype: {frame.dtype} != uint8")
            expected = (self.height, self.width, shapes[self.fmt])
            if frame.shape != expected:
                raise ValueError(f"unexpected frame shape: {frame.shape} != {expected}")
            self.frames_sent += 1
            world.received.append(np.array(frame))

        def sleep_until_next_frame(self) -> None:
            pass

        def close(self) -> None:
            if not self._closed:
                self._closed = True
                world.closed += 1

        def __enter__(self) -> Camera:
            return self

        def __exit__(self, *exc: Any) -> bool:
            self.close()
            return False

    default_device = device
    mod = types.ModuleType("pyvirtualcam")
    mod.Camera, mod.PixelFormat = Camera, PixelFormat
    return mod, world
