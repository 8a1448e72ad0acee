"""The mapping service without a renderer: OSC datagrams in, presets, learn with comment-keeping write-back, errors."""

from __future__ import annotations

import pytest
import yaml

from oscgan.config import ConfigError
from oscgan.mapping.learn import Binding, Learner, learned_entry, write_learned
from oscgan.mapping.presets import PresetFade, PresetStore
from oscgan.mapping.service import MappingService
from oscgan.mapping.targets import resolve_target
from oscgan.signals import names
from oscgan.signals.bus import SignalBus
from oscgan.signals.osc_protocol import encode_message, iter_messages, parse_packet
from tests.waiting import wait_for

from .conftest import write_yaml

PSI = "truncation.psi"


def datagram(service: MappingService, address: str, *args: object) -> bool:
    """Hand the service what the OSC server would: a message parsed from real bytes."""
    (msg,) = iter_messages(parse_packet(encode_message(address, args)))
    return service.on_osc(msg)


class Frames:
    """Calls pre_frame like the render loop would, on a fake clock."""

    def __init__(self, service: MappingService, fps: float = 30.0) -> None:
        self.service, self.dt, self.t = service, 1.0 / fps, 0.0

    def __call__(self, n: int = 1, dt: float | None = None) -> None:
        for _ in range(n):
            self.t += self.dt if dt is None else dt
            self.service.pre_frame(self.t, self.dt if dt is None else dt)


@pytest.fixture
def service_factory(registry):
    started: list[MappingService] = []

    def make(files=(), **kw) -> tuple[MappingService, Frames]:
        kw.setdefault("poll_interval", 0.05)
        svc = MappingService(registry, SignalBus(), files, rng_seed=0, **kw).start()
        started.append(svc)
        frames = Frames(svc)
        frames()
        return svc, frames

    yield make
    for svc in started:
        svc.stop()


# ------------------------------------------------------------------------------------------ OSC


def test_osc_sources_are_fed_from_unhandled_messages(tmp_path, registry, service_factory) -> None:
    path = write_yaml(tmp_path / "m.yaml", """
        mappings:
          - source: {type: osc, address: /td/fader1}
            filters: [{type: remap, in: [0, 1], out: [0.2, 1.2]}]
            target: truncation.psi
    """)
    svc, frames = service_factory([path])
    assert datagram(svc, "/td/fader1", 0.5) is True
    assert datagram(svc, "/td/unmapped", 0.5) is False  # stays "unknown address" for the OSC server
    frames()
    assert registry.get(PSI) == pytest.approx(0.7)
    assert datagram(svc, "/oscgan/nothing/here", 1) is False


def test_a_bad_file_at_start_raises_with_its_line(tmp_path, registry) -> None:
    path = write_yaml(tmp_path / "m.yaml", """
        mappings:
          - source: {type: osc, adress: /a}
            target: truncation.psi
    """)
    svc = MappingService(registry, SignalBus(), [path])
    with pytest.raises(ConfigError, match=r"m.yaml:2: .*did you mean 'address'"):
        svc.start()
    svc.stop()


def test_reload_swaps_at_the_frame_boundary_and_bad_edits_keep_the_old(tmp_path, registry, service_factory) -> None:
    path = write_yaml(tmp_path / "m.yaml", """
        mappings:
          - {source: {type: constant, value: 0.25}, target: mix.fine}
    """)
    errors: list[str | None] = []
    svc, frames = service_factory([path], on_error=errors.append, poll_interval=3600)
    assert registry.get("mix.fine") == 0.25
    write_yaml(path, """
        mappings:
          - {source: {type: constant, value: 0.5}, target: mix.fine}
    """)
    assert svc.reload()
    assert registry.get("mix.fine") == 0.25  # not before the next frame
    frames()
    assert registry.get("mix.fine") == 0.5
    write_yaml(path, """
        mappings:
          - {source: {type: constant, value: 0.75}, target: mix.fien}
    """)
    assert not svc.reload()
    assert errors and "did you mean 'mix.fine'" in errors[-1] and svc.error == errors[-1]
    frames()
    assert registry.get("mix.fine") == 0.5 and len(svc.engine) == 1
    write_yaml(path, """
        mappings:
          - {source: {type: constant, value: 0.75}, target: mix.fine}
    """)
    assert svc.reload()
    frames()
    assert registry.get("mix.fine") == 0.75 and errors[-1] is None and svc.error is None


# -------------------------------------------------------------------------------------- presets


def test_preset_save_and_load_over_osc_with_a_fade(tmp_path, registry, service_factory) -> None:
    svc, frames = service_factory(presets_dir=tmp_path)
    registry.set_many([(PSI, 0.4), ("latent.seed", 5), ("noise.mode", "random")], source="osc")
    assert datagram(svc, "/oscgan/preset/save", "intro")
    store_file = tmp_path / "presets.yaml"
    wait_for(store_file.exists)
    saved = yaml.safe_load(store_file.read_text())["presets"]["intro"]
    assert saved[PSI] == 0.4 and saved["latent.seed"] == 5 and "output.fps" not in saved
    registry.set_many([(PSI, 1.4), ("latent.seed", 9), ("noise.mode", "const")], source="osc")
    assert datagram(svc, "/oscgan/preset/load", "intro", 1.0)
    frames()  # the fade starts: ints and enums switch at once, floats glide
    assert registry.get("latent.seed") == 5 and registry.get("noise.mode") == "random"
    assert registry.get(PSI) == pytest.approx(1.4)
    frames(15)
    assert registry.get(PSI) == pytest.approx(0.9, abs=1e-9)  # half way, smoothstep
    frames(15)
    assert registry.get(PSI) == pytest.approx(0.4)
    datagram(svc, "/oscgan/preset/load", "nope")  # logged, nothing happens
    datagram(svc, "/oscgan/preset/load", "intro", -1)
    frames()
    assert registry.get(PSI) == pytest.approx(0.4)


def test_preset_file_keeps_comments_and_saves_hand_set_values_under_modulation(tmp_path, registry,
                                                                              service_factory) -> None:
    path = write_yaml(tmp_path / "m.yaml", """
        mappings:
          - {source: {type: constant, value: 0.5}, target: truncation.psi, combine: add}
    """)
    svc, frames = service_factory([path])
    assert registry.get(PSI) == pytest.approx(1.2)
    svc.save_preset("a")
    store = tmp_path / "presets.yaml"
    assert yaml.safe_load(store.read_text())["presets"]["a"][PSI] == pytest.approx(0.7)  # not 1.2
    store.write_text(store.read_text().replace("\npresets:", "\n# my own note\npresets:  # looks", 1))
    svc.save_preset("b")
    text = store.read_text()
    assert "# my own note" in text and "# looks" in text
    assert set(yaml.safe_load(text)["presets"]) == {"a", "b"}
    assert PresetStore(store).names() == ["a", "b"]


def test_preset_trigger_from_a_mapping(tmp_path, registry, service_factory) -> None:
    path = write_yaml(tmp_path / "m.yaml", """
        mappings:
          - source: {type: midi_note, channel: 1, note: 36, mode: trigger}
            filters: [{type: trigger, preset: dark}]
    """)
    (tmp_path / "presets.yaml").write_text("presets:\n  dark: {truncation.psi: 0.1, mix.seed: 3, bogus.path: 1}\n")
    svc, frames = service_factory([path])
    svc.bus.write(names.midi_note(1, 36), 127)
    frames(2)
    assert registry.get(PSI) == pytest.approx(0.1) and registry.get("mix.seed") == 3


def test_preset_fade_alone(registry) -> None:
    fade = PresetFade("x", registry, {"latent.z": tuple([1.0] * 4), PSI: 1.7}, duration=2.0)
    first = dict(fade.step(0.0))
    assert first[PSI] == pytest.approx(0.7) and first["latent.z"][:4] == (0.0,) * 4
    mid = dict(fade.step(1.0))
    assert mid[PSI] == pytest.approx(1.2) and mid["latent.z"][0] == pytest.approx(0.5)
    assert mid["latent.z"][4:] == (0.0,) * 12  # a shorter vector is a prefix
    fade.step(1.0)
    assert fade.done


# ---------------------------------------------------------------------------------------- learn


def test_learner_binds_what_moves() -> None:
    lr = Learner()
    assert lr.observe([("midi/cc/1/7", 64)]) is None  # not armed
    lr.arm("truncation.psi")
    assert lr.observe([("midi/cc/1/7", 64), ("midi/cc/1/7", 64)]) is None  # a steady value is not a move
    b = lr.observe([("midi/cc/1/7", 65)])
    assert b == Binding("midi_cc", (1, 7), 65)
    lr.arm("x")
    assert lr.observe([("midi/note/2/36", 0)]) is None  # a note off
    assert lr.observe([("midi/note/2/36", 90)]).fields == (2, 36)
    lr.arm("x")
    assert lr.observe([("osc/td/fader9", (0.3,))]).fields == ("/td/fader9",)
    lr.arm("x")
    assert lr.observe([("midi/cc/1/20", 1)] * 3).kind == "midi_cc"  # an encoder repeats its step


def test_learned_entries_fit_the_target(registry) -> None:
    psi = resolve_target(PSI, registry)
    cc = learned_entry(Binding("midi_cc", (1, 7), 3), psi)
    assert cc["source"] == {"type": "midi_cc", "channel": 1, "cc": 7}
    assert cc["filters"] == [{"type": "remap", "in": [0, 127], "out": [-1, 2]}] and cc["target"] == PSI
    seed = learned_entry(Binding("midi_note", (1, 36), 100), resolve_target("latent.seed", registry))
    assert seed["source"]["mode"] == "trigger" and seed["filters"] == [{"type": "trigger", "action": "next_seed"}]
    pause = learned_entry(Binding("midi_note", (1, 1), 100), resolve_target("output.paused", registry))
    assert pause["source"]["mode"] == "toggle" and "filters" not in pause


USER_FILE = """\
# yaml-language-server: $schema=schema.json
# My show. Fader 1 is the hero control.
mappings:
  # --- the hero fader ---
  - source: {type: midi_cc, channel: 1, cc: 0}   # fader 1
    filters: [{type: remap, in: [0, 127], out: [0, 1.5]}]
    target: truncation.psi   # variety
  - source: {type: midi_cc, channel: 1, cc: 1}   # fader 2, will be re-learned
    target: mix.coarse
"""


def test_write_back_keeps_comments_and_rebinds_a_control(tmp_path, registry) -> None:
    path = tmp_path / "show.yaml"
    path.write_text(USER_FILE)
    entry = learned_entry(Binding("midi_cc", (1, 1), 5), resolve_target("mix.fine", registry))
    write_learned(path, entry)
    text = path.read_text()
    for comment in ("# My show. Fader 1 is the hero control.", "# --- the hero fader ---", "# fader 1",
                    "# variety", "$schema=schema.json"):
        assert comment in text, text
    data = yaml.safe_load(text)["mappings"]
    assert [m["target"] for m in data] == [PSI, "mix.fine"]  # cc 1 moved from mix.coarse to mix.fine
    assert "{type: midi_cc, channel: 1, cc: 1}" in text  # written in the same compact style
    from oscgan.mapping.schema import load_mapping_file

    assert len(load_mapping_file(path, registry)) == 2


def test_learn_over_osc_writes_the_file_and_reloads(tmp_path, registry, service_factory) -> None:
    path = tmp_path / "show.yaml"
    path.write_text(USER_FILE)
    svc, frames = service_factory([path])
    assert datagram(svc, "/oscgan/learn", "const.corruption")
    assert svc.learner.target == "const.corruption"
    bus = svc.bus
    for v in (10, 11, 12):
        bus.write(names.midi_cc(3, 40), v)
    frames()
    assert svc.learner.target is None and svc.last_learned == "MIDI ch 3 CC 40 -> const.corruption"
    wait_for(lambda: (frames(), len(svc.engine) == 3)[1])
    assert "# My show." in path.read_text()
    bus.write(names.midi_cc(3, 40), 127)
    frames()
    assert registry.get("const.corruption") == pytest.approx(10.0)


def test_learn_an_osc_address(tmp_path, registry, service_factory) -> None:
    path = tmp_path / "learned.yaml"
    svc, frames = service_factory(learn_file=path)
    svc.arm_learn("mix.middle")
    assert datagram(svc, "/touch/xy1", 0.25, 0.5)  # accepted while learn is armed
    frames()
    wait_for(lambda: (frames(), len(svc.engine) == 1)[1])
    assert path.read_text().startswith("# yaml-language-server: $schema=")
    datagram(svc, "/touch/xy1", 0.5)
    frames()
    assert registry.get("mix.middle") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="did you mean 'mix.middle'"):
        svc.arm_learn("mix.midle")


def test_tempo_from_midi_clock_and_transport_start(tmp_path, registry, service_factory) -> None:
    path = write_yaml(tmp_path / "m.yaml", """
        mappings:
          - source: {type: lfo, shape: saw, rate_beats: 0.25, phase: 0.5}   # -1 at each bar start
            filters: [{type: remap, in: [-1, 1], out: [0, 1]}]
            target: mix.fine
    """)
    svc, frames = service_factory([path], tempo_bpm=120)
    frames(30)  # one second at 120 bpm: two beats, half a bar
    assert registry.get("mix.fine") == pytest.approx(0.5, abs=0.02)
    svc.bus.write(names.MIDI_CLOCK_BPM, 60.0)
    frames(30)  # one more second, now at 60 bpm: one beat
    assert registry.get("mix.fine") == pytest.approx(0.75, abs=0.02)
    svc.bus.write(names.MIDI_TRANSPORT, "start")
    frames(1)
    assert registry.get("mix.fine") == pytest.approx(0.0, abs=0.02)  # back to the top of the bar


def test_serve_flags_and_config_paths(tmp_path) -> None:
    from oscgan.cli import build_parser
    from oscgan.daemon_cli import config_from_args

    cfg_file = tmp_path / "show" / "show.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("mappings: [a.yaml, sub/b.yaml]\npresets: looks\ntempo_bpm: 90\n")
    args = build_parser().parse_args(["serve", "--config", str(cfg_file)])
    cfg = config_from_args(args)
    assert cfg.mappings == [str(cfg_file.parent / "a.yaml"), str(cfg_file.parent / "sub" / "b.yaml")]
    assert cfg.presets == str(cfg_file.parent / "looks") and cfg.tempo_bpm == 90
    args = build_parser().parse_args(["serve", "--config", str(cfg_file), "--mapping", "x.yaml",
                                      "--mapping", "y.yaml", "--presets", "p", "--tempo", "128"])
    cfg = config_from_args(args)
    assert cfg.mappings == ["x.yaml", "y.yaml"] and cfg.presets == "p" and cfg.tempo_bpm == 128
