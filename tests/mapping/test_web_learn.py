"""POST /api/learn on the web server arms learn in the mapping service; /health carries mapping_error."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from oscgan.mapping.service import MappingService
from oscgan.render.frames import LatestFrameSlot
from oscgan.signals.bus import SignalBus
from oscgan.sinks.web import WebServer


def post(url: str, body: object, content_type: str = "application/json") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def stack(tmp_path, registry):
    service = MappingService(registry, SignalBus(), learn_file=tmp_path / "learned.yaml").start()
    web = WebServer(registry, LatestFrameSlot(), lambda: {"mapping_error": service.error}, port=0,
                    learn=service.arm_learn)
    web.start()
    yield service, web
    web.stop()
    service.stop()


def test_learn_endpoint(stack) -> None:
    service, web = stack
    base = f"http://127.0.0.1:{web.port}"
    status, body = post(base + "/api/learn", {"target": "latent.z.3"})
    assert status == 200 and body["armed"] == "latent.z.3" and body["file"].endswith("learned.yaml")
    assert service.learner.target == "latent.z.3"
    status, body = post(base + "/api/learn", {"target": "truncation.spi"})
    assert status == 400 and "did you mean 'truncation.psi'" in body["error"]
    status, body = post(base + "/api/learn", {"nope": 1})
    assert status == 400
    status, body = post(base + "/api/learn", {"target": "x"}, content_type="text/plain")
    assert status == 415
    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        assert json.loads(r.read())["mapping_error"] is None


def test_monitor_page_offers_learn_and_shows_mapping_errors(stack) -> None:
    _, web = stack
    base = f"http://127.0.0.1:{web.port}"
    with urllib.request.urlopen(base + "/static/monitor.js", timeout=5) as r:
        js = r.read().decode()
    assert "/api/learn" in js and "mapping_error" in js
    req = urllib.request.Request(base + "/monitor", headers={"Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert 'id="mapping-error"' in r.read().decode()
