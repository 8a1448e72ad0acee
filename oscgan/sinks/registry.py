"""Output types for the daemon config's ``sinks:`` list: type name -> (pydantic config, lazy factory).

A config entry looks like ``- {type: record, path: out.mp4, crf: 18}``; pydantic picks the model
by its ``type`` field (a discriminated union built from :data:`SINK_TYPES`), so a typo in a
field name fails at startup with the file and line.

To add an output type (NDI, Spout, ...):

1. subclass :class:`SinkConfigBase` with ``type: Literal["ndi"] = "ndi"`` plus your fields
   (here, or in your module as long as importing it does not import the backend library);
2. add ``"ndi": SinkType(NdiSinkConfig, "oscgan.sinks.ndi:NdiSink.from_config", "NDI video")``
   to :data:`SINK_TYPES`. The factory is imported only when such an output is configured and is
   called as ``factory(config, context)`` returning a :class:`~oscgan.sinks.base.FrameSink`.

This module imports only pydantic: ``config.py`` (and the JSON Schema export) depend on it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from oscgan.sinks.base import FrameSink


class SinkConfigBase(BaseModel):
    """Options every output shares (see ``FrameSink`` for their meaning)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    type: str = Field(description="output type")
    name: str | None = Field(None, description="unique label in logs and /health (default: the type)")
    enabled: bool = Field(True, description="false = keep the entry but do not start it")
    size: tuple[int, int] | None = Field(None, description="output [width, height] or 'WxH'; default: "
                                         "the render size")
    fit: Literal["stretch", "letterbox"] = Field("stretch", description="aspect handling when size differs")
    pixel_format: Literal["RGBA", "BGRA"] | None = Field(None, description="byte order sent to the "
                                                          "backend (default: the backend's preferred one)")
    alpha: Literal["none", "opaque", "luma", "channel"] = Field(
        "none", description="alpha source: none = as rendered, opaque, luma = brightness (for keying), "
        "channel = copy of alpha_channel")
    alpha_channel: Literal["r", "g", "b", "a"] = Field("a", description="source channel for alpha: channel")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, str):
            from oscgan.config import parse_size

            return parse_size(v)
        return v

    def label(self) -> str:
        return self.name or self.type

    def output_options(self) -> dict[str, Any]:
        """Keyword arguments for ``FrameSink.__init__`` (pixel_format only when set)."""
        opts: dict[str, Any] = {"name": self.label(), "size": self.size, "fit": self.fit,
                                "alpha": self.alpha, "alpha_channel": self.alpha_channel}
        if self.pixel_format is not None:
            opts["pixel_format"] = self.pixel_format
        return opts


class RecordSinkConfig(SinkConfigBase):
    """H.264 MP4 recording of every published frame (PyAV)."""

    type: Literal["record"] = "record"
    path: str = Field(description="output file (.mp4, .mkv or .mov)")
    crf: int = Field(18, ge=0, le=51, description="H.264 quality: 0 lossless .. 51 worst; 18 looks clean")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                    "veryslow"] = Field("veryfast", description="x264 speed/size trade-off")
    codec: str = Field("libx264", description="PyAV/FFmpeg encoder name")
    threads: int = Field(0, ge=0, le=64, description="encoder threads (0 = let FFmpeg choose)")
    queue_seconds: float = Field(2.0, gt=0, le=60, description="frames buffered before the recorder drops")


# -- live outputs to other apps (oscgan/sinks/ndi.py, spout.py, syphon.py, webcam.py, stream.py) --

class NdiSinkConfig(SinkConfigBase):
    """NDI® source on the LAN (cyndilib). Receivers list it as ``HOSTNAME (source)``."""

    type: Literal["ndi"] = "ndi"
    source: str | None = Field(None, min_length=1, description="NDI source name (default: name, else oscgan)")
    fps: float | str | None = Field(None, description="frame rate announced to receivers: 30, 29.97 or "
                                    "30000/1001 (default: the daemon's fps)")
    pixel_format: Literal["BGRA", "RGBA", "BGRX", "RGBX"] | None = Field(  # type: ignore[assignment]
        None, description="NDI FourCC (default BGRA); BGRX/RGBX drop alpha and save bandwidth")
    groups: str = Field("", description="NDI groups to announce in (comma-separated; empty = default)")

    @field_validator("fps")
    @classmethod
    def _fps(cls, v: Any) -> Any:
        if v is not None:
            from oscgan.sinks.ndi import parse_frame_rate

            parse_frame_rate(v)
        return v


class SpoutSinkConfig(SinkConfigBase):
    """Spout sender (Windows, SpoutGL)."""

    type: Literal["spout"] = "spout"
    sender: str | None = Field(None, min_length=1, description="Spout sender name (default: name, else oscgan)")
    flip: bool = Field(False, description="flip vertically (only if a receiver shows it upside down)")


class SyphonSinkConfig(SinkConfigBase):
    """Syphon server (macOS, syphon-python, Metal)."""

    type: Literal["syphon"] = "syphon"
    server: str | None = Field(None, min_length=1, description="Syphon server name (default: name, else oscgan)")
    flip: bool = Field(False, description="flip vertically (only if a receiver shows it upside down)")
    pixel_format: Literal["BGRA"] | None = Field(  # type: ignore[assignment]
        None, description="always BGRA (Syphon's own format)")


class WebcamSinkConfig(SinkConfigBase):
    """Virtual webcam (pyvirtualcam: v4l2loopback on Linux, OBS Virtual Camera elsewhere)."""

    type: Literal["webcam"] = "webcam"
    device: str | None = Field(None, description="camera device, e.g. /dev/video10 (default: first free)")
    fps: float | None = Field(None, gt=0, le=240, description="advertised frame rate (default: the daemon's)")
    backend: str | None = Field(None, description="pyvirtualcam backend: v4l2loopback, obs, unitycapture")
    pixel_format: Literal["RGBA"] | None = Field(  # type: ignore[assignment]
        None, description="frames go to the camera as RGB")


class UdpStreamSinkConfig(SinkConfigBase):
    """H.264 in MPEG-TS over UDP (or SRT where FFmpeg has libsrt), via PyAV."""

    type: Literal["udp_stream"] = "udp_stream"
    url: str = Field(description="udp://HOST:PORT (unicast or multicast) or srt://HOST:PORT")
    fps: float | None = Field(None, gt=0, le=240, description="stream frame rate (default: the daemon's)")
    codec: str = Field("libx264", description="PyAV/FFmpeg H.264 encoder (libx264, h264_nvenc)")
    preset: str = Field("ultrafast", description="encoder preset; ultrafast/superfast for live use")
    crf: int = Field(20, ge=0, le=51, description="constant quality when bitrate is not set")
    bitrate: int | None = Field(None, gt=0, description="target bits/s for a capped stream (e.g. 6000000)")
    keyframe_s: float = Field(1.0, gt=0, le=10, description="seconds between keyframes (late joiners wait "
                              "at most this long)")
    pixel_format: Literal["RGBA"] | None = Field(  # type: ignore[assignment]
        None, description="frames are encoded as YUV 4:2:0")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from oscgan.sinks.stream import stream_url

        stream_url(v)
        return v


@dataclasses.dataclass(frozen=True)
class SinkContext:
    """What a factory may need from the daemon besides the entry itself."""

    fps: float                              # the daemon's target frame rate
    frame_size: tuple[int, int] | None = None  # (width, height) of published frames, if known
    model: str = ""


@dataclasses.dataclass(frozen=True)
class SinkType:
    """One output type: its config model, its factory ("module:attr" imported lazily), a blurb."""

    config: type[SinkConfigBase]
    factory: str | Callable[[Any, SinkContext], FrameSink]
    description: str = ""

    def load_factory(self) -> Callable[[Any, SinkContext], FrameSink]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def sink_class(self) -> type[FrameSink] | None:
        """The FrameSink class behind the factory (a class, or a classmethod such as
        ``NdiSink.from_config``), e.g. to ask ``is_available()``; None for a plain function.
        Imports the backend module (which must itself import its library lazily)."""
        from oscgan.sinks.base import FrameSink

        f = self.load_factory()
        owner = getattr(f, "__self__", f)
        return owner if isinstance(owner, type) and issubclass(owner, FrameSink) else None


SINK_TYPES: dict[str, SinkType] = {
    "record": SinkType(RecordSinkConfig, "oscgan.sinks.record:RecordSink.from_config",
                       "H.264 video file of every frame"),
    "ndi": SinkType(NdiSinkConfig, "oscgan.sinks.ndi:NdiSink.from_config", "NDI® video source on the LAN"),
    "spout": SinkType(SpoutSinkConfig, "oscgan.sinks.spout:SpoutSink.from_config", "Spout sender (Windows)"),
    "syphon": SinkType(SyphonSinkConfig, "oscgan.sinks.syphon:SyphonSink.from_config", "Syphon server (macOS)"),
    "webcam": SinkType(WebcamSinkConfig, "oscgan.sinks.webcam:WebcamSink.from_config", "virtual webcam"),
    "udp_stream": SinkType(UdpStreamSinkConfig, "oscgan.sinks.stream:StreamSink.from_config",
                           "H.264 MPEG-TS stream over UDP/SRT"),
}


def _union() -> Any:
    models = tuple(t.config for t in SINK_TYPES.values())
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - built at runtime


if TYPE_CHECKING:  # type checkers see the common base; pydantic sees the real union
    SinkConfig = SinkConfigBase
else:
    SinkConfig = _union()
"""The config type of one ``sinks:`` entry (a discriminated union over :data:`SINK_TYPES`)."""


def create_sink(cfg: SinkConfigBase, ctx: SinkContext) -> FrameSink:
    """Build the FrameSink for one validated entry (imports its backend module now)."""
    try:
        kind = SINK_TYPES[cfg.type]
    except KeyError:
        raise ValueError(f"unknown output type {cfg.type!r}; known: {', '.join(SINK_TYPES)}") from None
    return kind.load_factory()(cfg, ctx)
