"""Tests for the daemon config file: validation, errors with file and line, size and HOST:PORT parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from oscgan.config import ConfigError, DaemonConfig, load_daemon_config, parse_host_port, parse_size


def write(tmp_path: Path, text: str, name: str = "oscgan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_daemon_config(path)
    return info.value


def test_a_valid_file(tmp_path: Path) -> None:
    path = write(tmp_path, """\
model: models/faces.pkl
device: cpu
fps: 60
size: [1280, 720]
fit: letterbox
osc:
  host: 0.0.0.0
  port: 9100
  allow_from: [192.168.1.0/24]
  out: 127.0.0.1:9001
http:
  port: 8081
  zeroconf: true
params:
  truncation.psi: 0.5
  latent.seed: 42
""")
    cfg = load_daemon_config(path)
    assert cfg.model == "models/faces.pkl" and cfg.device == "cpu"
    assert cfg.fps == 60.0 and cfg.size == (1280, 720) and cfg.fit == "letterbox"
    assert (cfg.osc.host, cfg.osc.port, cfg.osc.allow_from, cfg.osc.out) == (
        "0.0.0.0", 9100, ["192.168.1.0/24"], "127.0.0.1:9001")
    assert (cfg.http.host, cfg.http.port, cfg.http.zeroconf) == ("127.0.0.1", 8081, True)
    assert cfg.params == {"truncation.psi": 0.5, "latent.seed": 42}


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_file_gives_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_daemon_config(write(tmp_path, text)) == DaemonConfig()


def test_size_as_a_string(tmp_path: Path) -> None:
    assert load_daemon_config(write(tmp_path, "size: 1280x720\n")).size == (1280, 720)
    assert load_daemon_config(write(tmp_path, "size: '512'\n")).size == (512, 512)


def test_unknown_key_names_its_line_and_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "fps: 30\nosc:\n  host: 0.0.0.0\n  prot: 9000\n")
    e = error_of(path)
    assert e.line == 4 and e.path == path
    assert str(e).startswith(f"{path}:4: osc.prot:")
    assert "did you mean 'port'?" in str(e)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "model: builtin:sg2-256\n\nmodle: x.pkl\n"))
    assert e.line == 3
    assert "modle" in str(e) and "did you mean 'model'?" in str(e)


def test_unknown_key_without_a_near_miss_lists_the_allowed_ones(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "http:\n  xyzzy: 1\n"))
    assert e.line == 2
    assert "allowed: host, port, zeroconf" in str(e)


def test_bad_value_names_its_line(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "model: a.pkl\nosc:\n  port: 70000\n"))
    assert e.line == 3 and "osc.port" in str(e)
    e = error_of(write(tmp_path, "fps: 30\nfit: crop\n"))
    assert e.line == 2 and "fit" in str(e)
    e = error_of(write(tmp_path, "osc:\n  out: nowhere\n"))
    assert e.line == 2 and "HOST:PORT" in str(e)
    e = error_of(write(tmp_path, "\nsize: huge\n"))
    assert e.line == 2 and "1280x720" in str(e)


def test_duplicate_keys_are_rejected_with_both_lines(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "fps: 30\nmodel: a.pkl\nfps: 60\n"))
    assert e.line == 3
    assert "duplicate key 'fps'" in str(e) and "first defined on line 1" in str(e)


def test_nested_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "osc:\n  port: 9000\n  host: 0.0.0.0\n  port: 9001\n"))
    assert e.line == 4 and "first defined on line 2" in str(e)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "fps: 30\nosc:\n  port: [9000\nhttp: {}\n"))
    assert e.line is not None and e.line >= 3
    assert str(e).startswith(f"{tmp_path / 'oscgan.yaml'}:{e.line}: ")


def test_tab_indentation_error_has_its_line(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "fps: 30\nosc:\n\tport: 9000\n"))
    assert e.line == 3


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    e = error_of(write(tmp_path, text))
    assert e.line == 1 and "must be a mapping" in str(e)


def test_a_missing_file(tmp_path: Path) -> None:
    e = error_of(tmp_path / "nope.yaml")
    assert e.line is None and "cannot read" in str(e) and "nope.yaml" in str(e)


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "model: !!python/object/apply:os.system ['echo hi']\n"))
    assert e.line == 1


# -- parse_size / parse_host_port ------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("512", (512, 512)), ("1280x720", (1280, 720)), ("1920X1080", (1920, 1080)),
    (" 640*480 ", (640, 480)), ("8x8192", (8, 8192)),
])
def test_parse_size(text: str, expected: tuple[int, int]) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "big", "1280x", "x720", "1280x720x3", "4x4", "9000x100", "-512"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:9001", ("127.0.0.1", 9001)), ("localhost:1", ("localhost", 1)),
    ("[::1]:9001", ("::1", 9001)), ("show-pc.local:65535", ("show-pc.local", 65535)),
])
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":9001", "host:", "host:0", "host:65536", "host:abc"])
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port(text)
