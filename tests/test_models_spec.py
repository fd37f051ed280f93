"""Model spec (YAML / dataclasses) and build_model: every example builds, every block kind runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from snndeploy.errors import UserError
from snndeploy.models.build import FloatWeights, NeuronBias, build_model
from snndeploy.models.spec import (
    BlockSpec,
    ModelSpec,
    NeuronSpec,
    load_spec,
    save_spec,
    spec_from_dict,
    spec_to_dict,
)

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


def _spikes(spec: ModelSpec, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, *spec.input_shape, spec.time_steps, generator=gen) < 0.3).float()


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"mnist_mlp", "nmnist_cnn", "fashion_cnn"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_builds_runs_and_learns(path: Path, tmp_path: Path):
    spec = load_spec(path)
    assert spec_from_dict(spec_to_dict(spec)) == spec
    save_spec(spec, tmp_path / "copy.yaml")
    assert load_spec(tmp_path / "copy.yaml") == spec
    net = build_model(spec)
    assert net.spec is spec and len(net.blocks) == len(spec.blocks)
    x = _spikes(spec)
    out, per_block = net(x, return_all=True)
    assert out.shape == (2, *spec.output_shape, spec.time_steps)
    assert [tuple(o.shape[1:-1]) for o in per_block] == spec.shapes()
    net.eval()  # no dropout: the output is a function of the input, no state kept between calls
    out = net(x)
    assert torch.equal(out, net(x))
    net.train()
    (out.sum() + sum(o.sum() for o in per_block)).backward()
    weights = [b.synapse.weight for b in net.blocks if getattr(b, "synapse", None) is not None]
    assert weights and all(w.grad is not None for w in weights)
    assert any(w.grad.abs().sum() > 0 for w in weights)
    # a fresh model takes the state dict before any forward (shapes are fixed at build time)
    fresh = build_model(spec)
    fresh.load_state_dict(net.state_dict())
    assert torch.equal(fresh.eval()(x), net.eval()(x))


def _tiny(**changes) -> ModelSpec:
    base = ModelSpec(name="t", input_shape=(2, 8, 8), time_steps=12, blocks=(
        BlockSpec("conv", out=4, kernel=3, stride=1, padding=1, delay=True, bias=True),
        BlockSpec("pool", kernel=2),
        BlockSpec("flatten"),
        BlockSpec("dense", out=6, delay=True, bias=True),
        BlockSpec("affine", out=3),
    ))
    return dataclasses.replace(base, **changes)


def test_pool_delay_bias_affine_blocks():
    spec = _tiny()
    assert spec.shapes() == [(4, 8, 8), (4, 4, 4), (64,), (6,), (3,)]
    net = build_model(spec)
    assert isinstance(net.blocks[0].neuron.norm, NeuronBias)
    assert net.blocks[0].delay is not None and net.blocks[0].delay.delay.shape == (4,)
    out = net(_spikes(spec))
    assert out.shape == (2, 3, 12)
    assert not torch.all((out == 0) | (out == 1))  # affine readout gives voltages, not spikes
    assert "blocks.3.neuron.norm.value" in net.state_dict()


def test_quantize_switches_the_weight_hook():
    quantized = build_model(_tiny())
    plain = build_model(_tiny(quantize=False))
    assert isinstance(plain.blocks[0].synapse.pre_hook_fx, FloatWeights)
    w = torch.tensor([0.0123, -0.5])
    assert torch.equal(plain.blocks[0].synapse.pre_hook_fx(w), w)
    q = quantized.blocks[0].synapse.pre_hook_fx(w, descale=True)
    assert torch.equal(q, torch.round(q)) and torch.all(q % 2 == 0)  # Loihi 8-bit: even integers


@pytest.mark.parametrize("kind", ["alif", "sigma_delta"])
def test_other_neuron_kinds(kind: str):
    neuron = NeuronSpec(kind=kind, threshold=0.5 if kind == "alif" else 0.1)
    blocks = (BlockSpec("dense", out=8), BlockSpec("dense", out=4))
    if kind == "sigma_delta":
        blocks = (BlockSpec("input"), *blocks[:1], BlockSpec("affine", out=4))
    spec = ModelSpec(name=kind, input_shape=(10,), time_steps=10, neuron=neuron, blocks=blocks)
    net = build_model(spec)
    out, per_block = net(torch.rand(3, 10, 10), return_all=True)
    assert out.shape == (3, 4, 10)
    assert spec_from_dict(spec_to_dict(spec)) == spec
    out.sum().backward()


def test_input_block_and_block_neuron_override():
    data = {"name": "o", "input_shape": [5], "neuron": {"threshold": 1.0},
            "blocks": [{"kind": "input"}, {"kind": "dense", "out": 3, "neuron": {"threshold": 2.0}}]}
    spec = spec_from_dict(data)
    assert spec.block_neuron(1).threshold == 2.0 and spec.block_neuron(0).threshold == 1.0
    assert spec_to_dict(spec)["blocks"][1]["neuron"] == {"threshold": 2.0}
    net = build_model(spec)
    assert net.blocks[1].neuron.threshold == 2.0
    assert net(torch.ones(1, 5, 4)).shape == (1, 3, 4)


def test_wrong_input_shape_is_explained():
    net = build_model(_tiny())
    with pytest.raises(ValueError, match=r"expected input \[N, 2, 8, 8, T\]"):
        net(torch.zeros(1, 128, 12))


BAD_SPECS = [
    ({"input_shape": [4], "blocks": [{"kind": "dense", "out": 2}]}, "missing 'name'"),
    ({"name": "x", "input_shape": [4], "blocks": [{"kind": "dens", "out": 2}]}, "block kind 'dens'"),
    ({"name": "x", "input_shape": [4], "blocks": [{"kind": "dense"}]}, "needs 'out'"),
    ({"name": "x", "input_shape": [2, 4, 4], "blocks": [{"kind": "dense", "out": 2}]}, "add a flatten block"),
    ({"name": "x", "input_shape": [4], "blocks": [{"kind": "dense", "out": 2, "size": 3}]}, "unknown key"),
    ({"name": "x", "input_shape": [4], "neuron": {"current_decay": 1.5},
      "blocks": [{"kind": "dense", "out": 2}]}, "current_decay must be within"),
    ({"name": "x", "input_shape": [4], "neuron": {"kind": "izhikevich"},
      "blocks": [{"kind": "dense", "out": 2}]}, "neuron kind"),
    ({"name": "x", "input_shape": [1, 3, 3], "blocks": [{"kind": "conv", "out": 2, "kernel": 5}]}, "makes the"),
    ({"name": "x", "input_shape": [4], "blocks": [{"kind": "affine", "out": 2}, {"kind": "dense", "out": 2}]},
     "only be the last"),
    ({"name": "x", "input_shape": [4], "time_steps": "ten", "blocks": [{"kind": "dense", "out": 2}]},
     "time_steps must be an integer"),
    ({"name": "x", "input_shape": [4], "blocks": [{"kind": "dense", "out": 2, "delay": "yes"}]},
     "delay must be true or false"),
    ({"name": "x", "input_shape": [4], "blocks": []}, "'blocks' is empty"),
]


@pytest.mark.parametrize(("data", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_specs_give_one_line_user_errors(data, message, tmp_path: Path):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=message) as info:
        load_spec(path)
    assert info.value.path == path and "\n" not in str(info.value)


def test_unreadable_spec_files(tmp_path: Path):
    with pytest.raises(UserError, match="model spec not found"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_spec(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must be a YAML mapping"):
        load_spec(tmp_path / "list.yaml")


def test_save_spec_refuses_to_overwrite_without_force(tmp_path: Path):
    spec = _tiny()
    save_spec(spec, tmp_path / "s.yaml")
    with pytest.raises(UserError, match="exists"):
        save_spec(spec, tmp_path / "s.yaml", force=False)
