"""Activity files: a Lava run and a torch run of the same network record the same counts in one schema."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from snndeploy.hardware.activity import (
    SCHEMA,
    activity_from_dict,
    activity_from_spikes,
    activity_from_torch,
    workload_metrics,
)
from snndeploy.hardware.load import graph_of, layers_from_nir

DATA = Path(__file__).parent / "data" / "nir"


@pytest.fixture(scope="module")
def mnist_input():
    from snndeploy.data.datasets import make_splits

    splits = make_splits("mnist", time_steps=16, encoding="rate", subset=1, test_subset=2, input_shape=(784,))
    return np.stack([splits.test[i][0].numpy() for i in range(2)])  # (2, 784, 16)


@pytest.mark.lava
def test_lava_and_torch_runs_give_the_same_activity(fixtures_dir, mnist_input, no_lava_leftovers):
    from snndeploy.export.lava_net import simulate_lava
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model

    torch.set_num_threads(1)
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    net = load_model(path)
    ir = from_slayer(net)
    runs = [simulate_lava(ir, sample) for sample in mnist_input]  # one Lava run per sample
    lava_layers = [np.stack([run.spikes[i] for run in runs]) for i in range(len(ir.layers))]
    from_lava = activity_from_spikes(mnist_input, lava_layers, source="lava", model="mnist-mlp-128")
    from_torch = activity_from_torch(net, torch.tensor(mnist_input).float(), model="mnist-mlp-128")
    assert [a.spikes for a in from_lava.layers] == [a.spikes for a in from_torch.layers]
    assert [a.spikes_per_neuron for a in from_lava.layers] == [a.spikes_per_neuron for a in from_torch.layers]
    # the file round-trips through JSON and drives the same workload metrics
    again = activity_from_dict(json.loads(json.dumps(from_lava.to_dict())))
    layers = layers_from_nir(graph_of(path))
    assert workload_metrics(layers, again)["synops_effective"] == workload_metrics(layers, from_torch)[
        "synops_effective"]


def test_recurrent_layer_synapses_and_synops_are_counted():
    one = np.ones(3)
    w = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # 3 neurons from 2 inputs
    r = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # a ring
    nodes = {"input": nir.Input({"input": np.array([2])}), "w": nir.Linear(w),
             "n": nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one),
             "rec": nir.Linear(r), "output": nir.Output({"output": np.array([3])})}
    edges = [("input", "w"), ("w", "n"), ("n", "rec"), ("rec", "n"), ("n", "output")]
    layer = layers_from_nir(nir.NIRGraph(nodes, edges, type_check=False))[0]
    assert layer.recurrent and layer.axons_in == 5
    assert (layer.synapses, layer.synapses_nonzero) == (6 + 9, 4 + 3)
    activity = activity_from_dict({"schema": SCHEMA, "samples": 1, "time_steps": 5,
                                   "input": {"neurons": 2, "spikes": 3, "spikes_per_neuron": [1, 2]},
                                   "layers": [{"neurons": 3, "spikes": 4, "spikes_per_neuron": [4, 0, 0]}]})
    # input: 1 spike x 2 targets + 2 spikes x 2 targets; recurrent: 4 spikes of neuron 0 x 1 target
    assert workload_metrics((layer,), activity)["synops_effective"] == 6 + 4


def test_synaptic_bias_axon_is_an_input_axon_with_a_synapse_per_neuron_spiking_every_step():
    """A synaptic bias into a neuron with current memory runs as one always-on input axon (``Layer.syn_bias``):
    the estimator counts that axon, its synapses and its synaptic operations (one per non-zero bias per step)."""
    one = np.ones(3)
    w = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    neuron = nir.CubaLIF(tau_syn=2 * one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one)  # current memory
    nodes = {"input": nir.Input({"input": np.array([2])}), "w": nir.Affine(w, np.array([0.5, 0.0, -1.0])),
             "n": neuron, "output": nir.Output({"output": np.array([3])})}
    graph = nir.NIRGraph(nodes, [("input", "w"), ("w", "n"), ("n", "output")], type_check=False)
    layer = layers_from_nir(graph)[0]
    assert (layer.axons_in, layer.bias_axons, layer.bias_fanout) == (2 + 1, 1, 2)
    assert (layer.synapses, layer.synapses_nonzero, layer.fan_in_max) == (6 + 3, 4 + 2, 2 + 1)
    activity = activity_from_dict({"schema": SCHEMA, "samples": 1, "time_steps": 5,
                                   "input": {"neurons": 2, "spikes": 3, "spikes_per_neuron": [1, 2]},
                                   "layers": [{"neurons": 3, "spikes": 4, "spikes_per_neuron": [4, 0, 0]}]})
    # input: 1 spike x 2 targets + 2 spikes x 2 targets; the bias axon: 5 steps x 2 non-zero synapses
    assert workload_metrics((layer,), activity)["synops_effective"] == 6 + 10
    # a neuron without current memory (tau_syn = the recorded dt) takes the bias as its own voltage bias: no axon
    nodes["n"] = nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one)
    timed = nir.NIRGraph(nodes, graph.edges, metadata={"snndeploy": {"dt": 1.0}}, type_check=False)
    assert layers_from_nir(timed)[0].bias_axons == 0


def test_braille_synaptic_biases_are_counted_alike_from_the_graph_and_from_the_ir():
    """The NIR paper's snnTorch Braille RNN: fc1's and the recurrent Affine's biases into lif1 are one axon, fc2's
    into lif2 another; the estimator's NIR route and the IR (``from_nir``) count the same."""
    from snndeploy.export.nir_io import from_nir, read_graph
    from snndeploy.hardware.layers import layers_from_ir

    graph = read_graph(DATA / "braille_noDelay_bias_zero.nir")
    walked, from_ir = layers_from_nir(graph), layers_from_ir(from_nir(graph, dt=1e-4))
    assert [lay.bias_axons for lay in walked] == [1, 1]
    for a, b in zip(walked, from_ir, strict=True):
        assert (a.axons_in, a.synapses, a.synapses_nonzero, a.bias_fanout, a.fan_in_max) == \
            (b.axons_in, b.synapses, b.synapses_nonzero, b.bias_fanout, b.fan_in_max)
        assert a.axons_in == a.in_neurons + (a.neurons if a.recurrent else 0) + 1
    assert [lay.bias_axons for lay in layers_from_nir(read_graph(DATA / "braille_noDelay_noBias_subtract.nir"))] \
        == [0, 0]
    # simulate's measured synops count the axon too: silent input and layers, 10 steps
    from snndeploy.sim_activity import ActivityCounter

    net = from_nir(graph, dt=1e-4)
    counter = ActivityCounter(net)
    counter.add(np.zeros(walked[0].in_neurons), [np.zeros(lay.neurons) for lay in walked], steps=10)
    assert [act.synops for act in counter.layers] == [10 * lay.bias_fanout for lay in walked] != [0, 0]


def test_energy_and_latency_ranges_by_hand():
    from snndeploy.hardware.estimate import estimate_target
    from snndeploy.hardware.profile import load_profile

    one = np.ones(3)
    w = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    nodes = {"input": nir.Input({"input": np.array([2])}), "w": nir.Linear(w),
             "n": nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one),
             "output": nir.Output({"output": np.array([3])})}
    layers = layers_from_nir(nir.NIRGraph(nodes, [("input", "w"), ("w", "n"), ("n", "output")], type_check=False))
    activity = activity_from_dict({"schema": SCHEMA, "samples": 1, "time_steps": 10,
                                   "input": {"neurons": 2, "spikes": 5, "spikes_per_neuron": [2, 3]},
                                   "layers": [{"neurons": 3, "spikes": 4}]})
    profile = load_profile("loihi1")
    est = estimate_target(layers, profile, activity=activity)
    synops, updates, spikes = 2 * 2 + 3 * 2, 3 * 10, 4  # input spikes x non-zero fan-out; 3 neurons x 10 steps
    e_syn, e_neu, e_spk = (profile.value(f"energy_pj.{k}") for k in ("synaptic_op", "neuron_update", "spike_out"))
    t_syn, t_neu, t_bar = (profile.value(f"timing_ns.{k}") for k in ("synaptic_op", "neuron_update", "barrier"))
    p_static = profile.value("power_w.static_per_chip")
    for end in (0, 1):
        dynamic_pj = synops * e_syn[end] + updates * e_neu[end] + spikes * e_spk[end]
        step_ns = synops / 10 * t_syn[end] + 3 * t_neu[end] + t_bar[end]  # one core holds the layer
        latency_ms = 10 * step_ns * 1e-6
        assert est.energy["latency_ms"][end] == pytest.approx(latency_ms)
        assert est.energy["energy_uj"][end] == pytest.approx(dynamic_pj * 1e-6 + p_static * latency_ms * 1e3)
    assert est.energy["note"].startswith("estimates")
    unknown = estimate_target(layers, load_profile("speck"), activity=activity).energy
    assert unknown["energy_uj"] is None and any("not published" in u for u in unknown["unknown"])
