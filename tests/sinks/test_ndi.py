"""NDI output: unit checks, and the real thing end to end inside a loopback-only network namespace.

The end-to-end test runs ``tests/sinks/ndi_loopback_check.py`` under ``unshare -n`` (or
``unshare -rn`` when not root): that process is an NDI receiver (cyndilib Finder + Receiver)
and starts the real daemon with ``--ndi`` as its child, so both share a namespace whose only
interface is ``lo``; NDI is further pinned to 127.0.0.1 by ``NDI_CONFIG_DIR``. Nothing leaves
the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from importlib import resources
from pathlib import Path

import pytest

from oscgan.sinks.ndi import NdiSink, ndi_source_name, parse_frame_rate

HERE = Path(__file__).parent
CHECK = HERE / "ndi_loopback_check.py"
MODEL = HERE.parent / "fixtures" / "stylegan" / "sg2_64.pkl"


def _missing(reason: str) -> None:
    if os.environ.get("OSCGAN_REQUIRE_SYSTEM_DEPS"):
        pytest.fail(f"{reason}; OSCGAN_REQUIRE_SYSTEM_DEPS is set, so this must not skip")
    pytest.skip(reason)


def _unshare_prefix() -> list[str] | None:
    """The first ``unshare`` invocation that can create a network namespace here, or None."""
    exe = shutil.which("unshare")
    if exe is None:
        return None
    tries = [[exe, "-n", "--"], [exe, "-rn", "--"]] if os.geteuid() == 0 else [[exe, "-rn", "--"]]
    for prefix in tries:
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


# -- units -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (30, Fraction(30)), (25.0, Fraction(25)), ("60", Fraction(60)), (29.97, Fraction(30000, 1001)),
    (59.94, Fraction(60000, 1001)), (23.976, Fraction(24000, 1001)), ("30000/1001", Fraction(30000, 1001)),
    (12.5, Fraction(25, 2)),
])
def test_parse_frame_rate(value, expected):
    assert parse_frame_rate(value) == expected


@pytest.mark.parametrize("bad", ["abc", "1/0", 0, -30, "nan", 5000])
def test_parse_frame_rate_rejects(bad):
    with pytest.raises(ValueError):
        parse_frame_rate(bad)


def test_source_name_and_fourcc_mapping():
    assert ndi_source_name("oscgan", "studio-pc") == "STUDIO-PC (oscgan)"
    assert NdiSink("a").pixel_format == "BGRA"
    assert NdiSink("a", fourcc="RGBX").pixel_format == "RGBA"
    with pytest.raises(ValueError):
        NdiSink("a", fourcc="UYVY")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NdiSink(" ")


def test_config_entry_builds_the_sink():
    from oscgan.config import DaemonConfig
    from oscgan.sinks.registry import SinkContext, create_sink

    cfg = DaemonConfig.model_validate({"sinks": [{"type": "ndi", "name": "oscgan", "size": "320x240",
                                                  "fps": 30, "pixel_format": "BGRX"}]})
    sink = create_sink(cfg.sinks[0], SinkContext(fps=60))
    assert isinstance(sink, NdiSink)
    assert (sink.name, sink.source, sink.size, sink.fourcc, sink.pixel_format) == \
        ("oscgan", "oscgan", (320, 240), "BGRX", "BGRA")
    assert sink.frame_rate == 30
    sink = create_sink(DaemonConfig.model_validate({"sinks": [{"type": "ndi"}]}).sinks[0], SinkContext(fps=59.94))
    assert sink.source == "oscgan" and sink.frame_rate == Fraction(60000, 1001)


def test_serve_flags_add_an_ndi_entry():
    from oscgan.cli import build_parser
    from oscgan.daemon_cli import config_from_args

    args = build_parser().parse_args(["serve", "--ndi", "stage", "--ndi-size", "640x360",
                                      "--stream", "udp://127.0.0.1:5000", "--webcam"])
    cfg = config_from_args(args)
    by_type = {s.type: s for s in cfg.sinks}
    assert by_type["ndi"].source == "stage" and by_type["ndi"].size == (640, 360)
    assert by_type["udp_stream"].url == "udp://127.0.0.1:5000"
    assert by_type["webcam"].device is None


def test_unavailable_without_cyndilib(monkeypatch):
    monkeypatch.setitem(sys.modules, "cyndilib", None)
    ok, why = NdiSink.is_available()
    assert not ok and "cyndilib" in why and "pip install" in why


def test_ndi_notice_ships_with_the_package():
    text = resources.files("oscgan.sinks").joinpath("NDI_NOTICE.txt").read_text(encoding="utf-8")
    assert "NDI® is a registered trademark of Vizrt NDI AB" in text
    assert "https://ndi.video" in text
    assert "http://ndi.link/ndisdk_license" in text


# -- end to end --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(150)
def test_daemon_ndi_source_is_received_on_loopback():
    """The daemon's NDI frames, received by another process, match its /frame.png within NDI's loss."""
    try:
        import cyndilib  # noqa: F401
    except ImportError:
        _missing("needs cyndilib (pip install 'oscgan[ndi]'; `make test` installs it)")
    prefix = _unshare_prefix()
    if prefix is None:
        _missing("needs `unshare` able to create a network namespace (util-linux; root or "
                 "unprivileged user namespaces)")
    proc = subprocess.run([*prefix, sys.executable, str(CHECK), "--model", str(MODEL), "--name", "oscgan-test",
                           "--size", "320x240"], capture_output=True, text=True, timeout=140,
                          cwd=HERE.parent.parent)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result from the loopback check (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1])
    print(json.dumps({k: v for k, v in result.items() if k != "daemon_output"}, indent=1))
    assert result["interfaces"] == ["lo"]
    assert result.get("ok"), json.dumps(result, indent=1)
    assert proc.returncode == 0
    assert result["size"] == [320, 240] and result["frame_rate"] == "30/1"
    assert result["frames_received"] >= 5
