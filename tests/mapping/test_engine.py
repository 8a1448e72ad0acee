"""The engine on a fake clock: combine modes, base tracking, slices, events within a frame, triggers, reload state."""

from __future__ import annotations

import numpy as np
import pytest

from oscgan.config import ConfigError
from oscgan.mapping.engine import MappingEngine
from oscgan.mapping.schema import load_mapping_file
from oscgan.signals import names

from .conftest import Rig, mappings_from, write_yaml

PSI = "truncation.psi"


def osc(address: str, *args: object) -> tuple[str, tuple]:
    return names.osc(address), tuple(args)


def test_set_is_latest_wins_like_a_fader(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: osc, address: /f}, target: truncation.psi}
    """), registry)
    rig.frame()
    assert registry.get(PSI) == 0.7  # no value from the source yet: untouched
    rig.frame([osc("/f", 0.4)])
    assert registry.get(PSI) == 0.4
    rig.external(PSI, 1.5)  # OSC or the web page moves it
    assert rig.frame() == [] and registry.get(PSI) == 1.5  # the mapping does not fight back ...
    rig.frame([osc("/f", 0.9)])
    assert registry.get(PSI) == 0.9  # ... until its control moves


def test_add_and_multiply_modulate_the_hand_set_value(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: constant, value: 0.2}, target: truncation.psi, combine: add}
          - {source: {type: osc, address: /gain}, target: truncation.psi, combine: multiply}
          - {source: {type: osc, address: /f}, target: truncation.psi}
    """), registry)
    rig.frame()
    assert registry.get(PSI) == pytest.approx(0.9)  # 0.7 + 0.2
    for _ in range(5):
        rig.frame()
    assert registry.get(PSI) == pytest.approx(0.9)  # no creep: the base stays 0.7
    rig.external(PSI, 0.5)
    rig.frame()
    assert registry.get(PSI) == pytest.approx(0.7)  # 0.5 + 0.2
    rig.frame([osc("/gain", 2.0), osc("/f", 0.1)])
    assert registry.get(PSI) == pytest.approx((0.1 + 0.2) * 2.0)  # set, then add, then multiply
    rig.frame([osc("/gain", 100.0)])
    assert registry.get(PSI) == 2.0  # clamped into range like any other write
    assert rig.frame() == []  # and not re-written every frame


def test_writes_only_on_change(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: osc, address: /f}, target: truncation.psi}
          - {source: {type: constant, value: 0.1}, target: mix.fine, combine: add}
    """), registry)
    first = rig.frame([osc("/f", 0.3)])
    assert dict(first) == {PSI: 0.3, "mix.fine": 0.1}
    assert rig.frame() == [] and rig.frame([osc("/f", 0.3)]) == []  # same value again: nothing to send
    assert rig.frame([osc("/f", 0.31)]) == [(PSI, 0.31)]


def test_slices_broadcast_and_vector_sources(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: constant, value: 1.0}, target: "latent.z[0:4]", combine: add}
          - {source: {type: constant, value: [1, 2, 3, 4]}, target: "latent.z[4:8]"}
          - {source: {type: osc, address: /e}, target: latent.z.15}
          - {source: {type: constant, value: 0.5}, target: "mix.layer[-2:]"}
    """), registry)
    rig.frame([osc("/e", -2.0)])
    z = registry.get("latent.z")
    assert z[:8] == (1, 1, 1, 1, 1, 2, 3, 4) and z[15] == -2.0 and z[8:15] == (0.0,) * 7
    assert registry.get("mix.layer")[-3:] == (0.0, 0.5, 0.5)


def test_vector_base_tracks_elements_changed_by_others(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: lfo, shape: square, rate_hz: 1}, target: "latent.z[0:2]", combine: add}
    """), registry)
    rig.frame()
    rig.external("latent.z.5", 0.7)
    rig.external("latent.z.0", 0.5)
    rig.frame()
    z = registry.get("latent.z")
    assert z[0] == pytest.approx(1.5) and z[1] == pytest.approx(1.0) and z[5] == 0.7
    for _ in range(20):
        rig.frame()  # the square wave flips to -1 after half a second
    z = registry.get("latent.z")
    assert z[0] == pytest.approx(-0.5) and z[1] == pytest.approx(-1.0) and z[5] == 0.7


def test_every_event_of_a_frame_counts(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - source: {type: midi_note, channel: 1, note: 36, mode: trigger}
            filters: [{type: trigger, action: next_seed}]
          - source: {type: midi_cc, channel: 1, cc: 20, mode: relative_binary_offset}
            target: mix.seed
          - source: {type: midi_cc, channel: 1, cc: 1, mode: 14bit}
            filters: [{type: remap, in: [0, 16383], out: [0, 1]}]
            target: mix.fine
    """), registry)
    note, enc = names.midi_note(1, 36), names.midi_cc(1, 20)
    rig.frame([(note, 127), (note, 0), (note, 100), (note, 0), (note, 90)])  # three hits in one frame
    assert registry.get("latent.seed") == 3
    rig.frame([(enc, 65)] * 5 + [(enc, 63)])  # five steps up, one down
    assert registry.get("mix.seed") == 4
    rig.frame([(names.midi_cc(1, 1), 127), (names.midi_cc(1, 33), 127)])
    assert registry.get("mix.fine") == 1.0
    rig.frame([(note, 127)])
    assert registry.get("latent.seed") == 4


def test_seed_and_keyframe_actions(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: osc, address: /next}, filters: [{type: trigger, action: next_seed, step: 10}]}
          - {source: {type: osc, address: /prev}, filters: [{type: trigger, action: prev_seed}]}
          - {source: {type: osc, address: /rnd}, filters: [{type: trigger, action: random_seed}], target: mix.seed}
          - {source: {type: osc, address: /kf}, filters: [{type: trigger, action: next_keyframe}]}
          - {source: {type: osc, address: /kb}, filters: [{type: trigger, action: prev_keyframe}]}
          - {source: {type: osc, address: /p}, filters: [{type: trigger, preset: intro, fade: 3}]}
    """), registry)
    rig.frame([osc("/next", 1), osc("/next", 0), osc("/next", 1)])
    assert registry.get("latent.seed") == 20
    rig.frame([osc("/prev", 1.0)])
    assert registry.get("latent.seed") == 19
    rig.frame([osc("/rnd", 1)])
    assert registry.get("mix.seed") != 1
    rig.frame([osc("/kf", 1)])
    assert registry.get("latent.travel") == 0.0  # count 1: travel is off, nothing to move
    rig.external("latent.keyframes.count", 4)
    rig.frame([osc("/kf", 0)])
    rig.frame([osc("/kf", 1)])
    assert registry.get("latent.travel") == pytest.approx(1 / 3)
    rig.frame([osc("/kb", 1)])
    rig.frame([osc("/kb", 0)])
    rig.frame([osc("/kb", 1)])
    assert registry.get("latent.travel") == pytest.approx(1.0)  # wraps from the first to the last
    rig.frame([osc("/p", 1)])
    (fired,) = rig.fired
    assert fired.params.preset == "intro" and fired.params.fade == 3


def test_bool_and_enum_targets(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: midi_note, channel: 2, note: 1, mode: toggle}, target: output.paused}
          - {source: {type: osc, address: /mode}, target: noise.mode}
    """), registry)
    rig.frame([(names.midi_note(2, 1), 127), (names.osc("/mode"), (1.8,))])
    assert registry.get("output.paused") is True and registry.get("noise.mode") == "none"
    rig.frame([(names.midi_note(2, 1), 0), (names.midi_note(2, 1), 127), (names.osc("/mode"), (1,))])
    assert registry.get("output.paused") is False and registry.get("noise.mode") == "random"


def test_smoothing_keeps_moving_without_new_events(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - source: {type: osc, address: /f}
            filters: [{type: smooth, method: exponential, time_constant: 0.1}]
            target: truncation.psi
    """), registry)
    rig.frame([osc("/f", 0.0)])
    rig.frame([osc("/f", 1.0)])
    values = []
    for _ in range(10):
        rig.frame()
        values.append(registry.get(PSI))
    assert values == sorted(values) and values[-1] > 0.95


def test_reload_keeps_state_of_unchanged_mappings_and_restores_removed_modulation(tmp_path, registry) -> None:
    text = """
        mappings:
          - source: {type: osc, address: /f}
            filters: [{type: smooth, method: slew, rate: 1.0}]
            target: truncation.psi
          - {source: {type: constant, value: 0.3}, target: mix.fine, combine: add}
    """
    rig = Rig(mappings_from(tmp_path, registry, text), registry)
    rig.frame([osc("/f", 0.0)])
    rig.frame([osc("/f", 1.0)], dt=0.25)
    assert registry.get(PSI) == pytest.approx(0.25)
    assert registry.get("mix.fine") == pytest.approx(0.3)
    # Same first mapping, the add mapping removed: built elsewhere, attached at a frame boundary.
    new = MappingEngine(mappings_from(tmp_path, registry, """
        mappings:
          - source: {type: osc, address: /f}
            filters: [{type: smooth, method: slew, rate: 1.0}]
            target: truncation.psi
    """, name="b.yaml"), registry)
    new.attach(rig.engine)
    rig.engine = new
    rig.frame(dt=0.25)
    assert registry.get(PSI) == pytest.approx(0.5)  # the slew goes on from where it was
    assert registry.get("mix.fine") == 0.0  # the removed modulation is taken off again


def test_unknown_target_is_refused_at_load_with_a_hint(tmp_path, registry) -> None:
    path = write_yaml(tmp_path / "bad.yaml", """
        mappings:
          - source: {type: osc, address: /f}
            target: truncation.pси
          - source: {type: osc, address: /g}
            target: truncation.spi
    """)
    with pytest.raises(ConfigError) as e:
        load_mapping_file(path, registry)
    assert ":3:" in str(e.value)


def test_unknown_target_hint_and_slice_errors(tmp_path, registry) -> None:
    for target, line_text in [("truncation.spi", "did you mean 'truncation.psi'"),
                              ("latent.z.99", "has 16 elements"),
                              ("truncation.psi[0:2]", "not a vector"),
                              ("latent.z[20:30]", "selects no element")]:
        path = write_yaml(tmp_path / "bad.yaml", f"""
            # a comment line
            mappings:
              - source: {{type: osc, address: /f}}
                target: "{target}"
        """)
        with pytest.raises(ConfigError) as e:
            load_mapping_file(path, registry)
        assert str(e.value).startswith(f"{path}:4: mappings.0.target:"), str(e.value)
        assert line_text in str(e.value)


def test_width_mismatch_is_refused(tmp_path, registry) -> None:
    with pytest.raises(ConfigError, match="gives 3 values but target latent.z\\[0:4\\] has 4"):
        mappings_from(tmp_path, registry, """
            mappings:
              - {source: {type: constant, value: [1, 2, 3]}, target: "latent.z[0:4]"}
        """)
    with pytest.raises(ConfigError, match="takeover needs a single-value target"):
        mappings_from(tmp_path, registry, """
            mappings:
              - {source: {type: osc, address: /a}, filters: [{type: takeover}], target: "latent.z[0:4]"}
        """)


def test_banks_group_same_shaped_chains(tmp_path, registry) -> None:
    text = "mappings:\n" + "".join(
        f"  - {{source: {{type: osc, address: /f{i}}}, filters: [{{type: remap, in: [0, 1], out: [0, {i + 1}]}}, "
        f"{{type: smooth, method: one_euro}}], target: latent.z.{i}}}\n" for i in range(16))
    rig = Rig(mappings_from(tmp_path, registry, text), registry)
    assert len(rig.engine.banks) == 1 and rig.engine.banks[0].chain.rows == 16
    rig.frame([osc(f"/f{i}", 1.0) for i in range(16)])
    np.testing.assert_allclose(registry.get("latent.z"), np.clip(np.arange(1, 17), -4, 4))


def test_an_edited_mapping_keeps_its_input_and_shows_the_edit_at_once(tmp_path, registry) -> None:
    rig = Rig(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: osc, address: /f}, filters: [{type: remap, in: [0, 1], out: [0, 1]}], target: mix.fine}
    """), registry)
    rig.frame([osc("/f", 0.5)])
    assert registry.get("mix.fine") == 0.5
    new = MappingEngine(mappings_from(tmp_path, registry, """
        mappings:
          - {source: {type: osc, address: /f}, filters: [{type: remap, in: [0, 1], out: [0, 0.5]}], target: mix.fine}
    """, name="b.yaml"), registry)
    new.attach(rig.engine)
    rig.engine = new
    rig.frame()  # no new OSC message: the held input goes through the new remap
    assert registry.get("mix.fine") == 0.25
