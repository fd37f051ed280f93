"""Hardware profiles: every shipped number is sourced, unknowns stay unknown, bad files get one-line errors."""

from __future__ import annotations

import copy
from importlib import resources

import pytest
import yaml

from snndeploy.errors import UserError
from snndeploy.hardware.budget import parse_budget
from snndeploy.hardware.profile import builtin_names, load_profile, profile_from_dict

SHIPPED = ("akida", "loihi1", "loihi2", "speck", "spinnaker2", "truenorth", "xylo", "xylo_audio3", "xylo_imu")


def raw(name: str) -> dict:
    text = (resources.files("snndeploy.hardware") / "profiles" / f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def test_all_targets_ship_and_every_known_number_has_a_source():
    assert set(SHIPPED) <= set(builtin_names())
    for name in SHIPPED:
        profile = load_profile(name)
        quantities = [q for items in profile.sections.values() for q in items.values()]
        quantities += [q for items in profile.systems.values() for q in items.values()]
        for q in quantities:
            if q.known:
                cited = [s.strip().split()[0] for s in q.source.replace(";", ",").split(",")]
                assert all(c in profile.sources or c == "derived" for c in cited), (name, q)
            else:
                assert q.confidence == "unknown", (name, q)


def test_loihi2_boards_and_unknowns_are_reported_as_such():
    p = load_profile("loihi2")
    assert {k: int(v["chips"].value) for k, v in p.systems.items()} == {"oheo_gulch": 1, "kapoho_point": 8,
                                                                         "hala_point": 1152}
    assert p.value("core.synmem_units") == 12000 and p.value("chip.cores") == 120
    for key in ("energy_pj.synaptic_op", "energy_pj.neuron_update", "core.memory_kb", "core.axon_mem"):
        assert key in p.unknowns() and p.value(key) is None


def _error(doc) -> str:
    with pytest.raises(UserError) as info:
        profile_from_dict(doc, "bad.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("bad.yaml: hardware profile:")
    return message


def test_missing_required_field_is_named():
    doc = raw("loihi2")
    del doc["core"]["synmem_units"]
    assert "core.synmem_units is missing" in _error(doc)


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["core"].update(neurons={"value": -5, "source": "S7", "confidence": "med"}), "must not be negative"),
    (lambda d: d["core"].update(neurons={"value": "many", "source": "S7", "confidence": "med"}),
     "must be a positive integer"),
    (lambda d: d["core"].update(neurons={"value": 40.5, "source": "S7", "confidence": "med"}),
     "must be a positive integer"),
    (lambda d: d["packing"].update(dense_slots_per_unit={"value": [4, 2], "source": "S7", "confidence": "med"}),
     "[low, high]"),
    (lambda d: d["core"].update(neurons={"value": 4095, "source": "S99", "confidence": "med"}), "'S99'"),
    (lambda d: d["core"].update(neurons={"value": 4095, "confidence": "med"}), "has no source"),
    (lambda d: d["core"].update(neurons={"value": 4095, "source": "S7", "confidence": "sure"}), "confidence"),
    (lambda d: d["core"].update(neurons={"value": None}), "is null (unknown)"),
    (lambda d: d.update(model="gpu"), "model must be one of"),
    (lambda d: d.update(colour="blue"), "unknown top-level"),
    (lambda d: d.update(schema=7), "schema must be 1"),
])
def test_nonsense_fields_get_a_clear_error(mutate, expected):
    doc = copy.deepcopy(raw("loihi2"))
    mutate(doc)
    assert expected in _error(doc)


def test_user_profile_file_loads_and_unknown_target_is_an_error(tmp_path):
    doc = raw("loihi2")
    doc["name"], doc["core"]["neurons"] = "my-loihi", {"value": 1000, "confidence": "user"}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_profile(path).value("core.neurons") == 1000
    with pytest.raises(UserError, match="unknown target"):
        load_profile("gpu9000")
    bad = tmp_path / "broken.yaml"
    bad.write_text("core: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_profile(bad)


def test_budgets_inline_and_from_file(tmp_path):
    assert parse_budget("cores=64,chips=1").cores == 64
    path = tmp_path / "edge.yaml"
    path.write_text("name: my box\ncores: 32\nsource: lab allocation\n")
    budget = parse_budget(str(path))
    assert (budget.name, budget.cores, budget.basis) == ("my box", 32, "lab allocation")
    for text, expected in (("cores=0", "positive integer"), ("cores=lots", "positive integer"),
                           ("watts=3", "unknown budget field")):
        with pytest.raises(UserError, match=expected):
            parse_budget(text)
