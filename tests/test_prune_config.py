"""Method configs: defaults from the spec, clear one-line errors for bad files; method registry and round plans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from snndeploy.errors import UserError
from snndeploy.prune import config as cfglib
from snndeploy.prune.methods import METHODS, Method, Round, register
from snndeploy.prune.registry import find_method


def test_criticality_defaults_are_the_spec_proposals():
    cfg = cfglib.CriticalityConfig()
    assert (cfg.kernel, cfg.alpha, cfg.delta, cfg.steps, cfg.epochs_per_step, cfg.schedule) == \
        ("atan", 2.0, 0.5, 5, 40, "cubic")
    assert (cfg.regen, cfg.regrow_init, cfg.calib_batches) == ("criticality", "restore", 10)


def test_config_file_is_read_and_validated(tmp_path):
    good = tmp_path / "crit.yaml"
    good.write_text("steps: 3\nepochs_per_step: 1\nregen: gradient\nexclude: [blocks.0]\nalpha: 4\n")
    cfg = cfglib.load_config(cfglib.CriticalityConfig, good)
    assert (cfg.steps, cfg.regen, cfg.exclude, cfg.alpha) == (3, "gradient", ("blocks.0",), 4.0)
    assert cfglib.load_config(cfglib.GMPConfig, None) == cfglib.GMPConfig()


@pytest.mark.parametrize("text,needle", [
    ("stepz: 3\n", "unknown method config key(s) stepz"),
    ("regen: magic\n", "'regen' must be one of criticality, gradient, random, none"),
    ("steps: 2.5\n", "'steps' must be an integer"),
    ("delta: -1\n", "'delta' must be within"),
    ("exclude_first: yes please\n", "'exclude_first' must be true or false"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("steps: [\n", "not valid YAML"),
    ("kernel: 3\n", "'kernel' must be one of atan, sigmoid, gaussian"),
])
def test_bad_configs_get_a_clear_error(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        cfglib.load_config(cfglib.CriticalityConfig, path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="method config not found"):
        cfglib.load_config(cfglib.IMPConfig, tmp_path / "nope.yaml")


def test_registry_and_round_plans():
    assert {"criticality", "magnitude", "gmp", "imp", "random", "slimming", "l1filter"} <= set(METHODS)
    with pytest.raises(UserError, match="unknown pruning method"):
        find_method("nope")
    imp = find_method("imp")
    rounds = imp.rounds(cfglib.IMPConfig(), 0.9)
    # round 0 trains densely from init (the rewind point), then 11 rounds of 20 % with rewinding
    assert len(rounds) == 12 and not rounds[0].rewind and all(r.rewind for r in rounds[1:])
    assert rounds[-1].target == pytest.approx(0.9)
    slim = find_method("slimming").rounds(cfglib.SlimmingConfig(), 0.5)
    assert not slim[0].prune and slim[0].l1 == pytest.approx(1e-4) and slim[-1].target == 0.5
    crit = find_method("criticality").rounds(cfglib.CriticalityConfig(), 0.9)
    assert len(crit) == 5 and sum(r.epochs for r in crit) == 200


def test_methods_register_without_editing_anything():
    @register
    class Halve(Method):
        name = "test-halve"

        def rounds(self, config, target):
            return [Round(0, target / 2, 0)]

    try:
        assert find_method("test-halve").rounds(cfglib.PruneConfig(), 0.8)[0].target == pytest.approx(0.4)
    finally:
        METHODS.pop("test-halve")


def test_cli_choices_and_readme_come_from_the_one_registry():
    from snndeploy.prune.cli import prune
    from snndeploy.prune.registry import method_names

    shipped = {name for name, m in METHODS.items() if type(m).__module__.startswith("snndeploy.")}
    assert shipped <= set(method_names())
    choices = next(p for p in prune.params if p.name == "method_name").type.choices
    assert set(choices) & shipped == shipped
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "snndeploy prune MODEL" in line)
    assert set(re.findall(r"`(\w+)`", row.split("methods:")[1].split(";")[0])) == shipped
