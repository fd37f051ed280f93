"""SLAYER -> NIR -> SLAYER is exact on the lava-dl fixtures; files open in nir and nirtorch; bad files fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snndeploy  # noqa: F401
from snndeploy.errors import UserError
from snndeploy.export.ir import first_difference
from snndeploy.export.nir_io import from_nir, read_nir, to_nir, write_nir
from snndeploy.export.slayer_io import from_slayer, to_slayer

NETX = {"tinynet": "tiny.net", "oxford": "network.net", "mnist-mlp-128": "network.net",
        "mnist-mlp-512": "network.net"}


def load_fixture(fixtures_dir, name):
    from snndeploy.models.netx_import import import_netx

    return import_netx(fixtures_dir / name / NETX[name]).eval()


def fixture_input(fixtures_dir, name, shape, steps, samples=2, rate=0.4, seed=0) -> torch.Tensor:
    """Oxford's own input spikes (the dense-cuba golden input is its first layer's); random spikes otherwise."""
    if name == "oxford":
        x = torch.as_tensor(np.load(fixtures_dir / "dense-cuba" / "in.npy")[:, 200:200 + steps], dtype=torch.float32)
        return x[None].repeat(samples, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(samples, *shape, steps, generator=gen) < rate).float()


def assert_same_net(a, b):
    assert first_difference(a, b) is None, first_difference(a, b)


@pytest.mark.parametrize("name", sorted(NETX))
def test_slayer_nir_slayer_round_trip_is_exact(fixtures_dir, tmp_path, name):
    torch.manual_seed(0)
    model = load_fixture(fixtures_dir, name)
    net = from_slayer(model)
    path = write_nir(net, tmp_path / f"{name}.nir")
    back = read_nir(path)
    assert_same_net(net, back)
    rebuilt = to_slayer(back).eval()
    x = fixture_input(fixtures_dir, name, net.input_shape, 60)
    with torch.no_grad():
        _, ref = model(x, return_all=True)
        _, got = rebuilt(x, return_all=True)
    assert len(ref) == len(got)
    assert sum(float(o.abs().sum()) for o in ref) > 0
    for r, g in zip(ref, got, strict=True):
        assert torch.equal(r, g)


def test_non_square_kernels_round_trip_where_nir_infers_a_wrong_width(tmp_path):
    """nir infers a Conv2d's output from the kernel height on both axes; the reader must use its own shapes."""
    import nir

    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    spec = spec_from_dict({"name": "tall", "input_shape": [1, 8, 5], "time_steps": 6, "blocks": [
        {"kind": "conv", "out": 2, "kernel": [3, 2], "stride": 2, "dilation": 2},
        {"kind": "conv", "out": 3, "kernel": [3, 2], "padding": [1, 0]},
        {"kind": "flatten"}, {"kind": "dense", "out": 4}]})
    torch.manual_seed(0)
    model = build_model(spec).eval()
    net = from_slayer(model)
    path = write_nir(net, tmp_path / "tall.nir")
    written = nir.read(path, type_check=False).nodes["b1_conv_syn"].output_type["output"]
    assert list(written) == [3, 2, 0]  # nir's own inference: the width is wrong (the layer is 3x2x1)
    back = read_nir(path)
    assert_same_net(net, back)
    assert back.layers[1].out_shape == (3, 2, 1)
    x = (torch.rand(2, 1, 8, 5, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.no_grad():
        assert torch.equal(model(x), to_slayer(back).eval()(x))


def test_a_conv_that_empties_its_input_is_named(tmp_path):
    import nir

    conv = nir.Conv2d(input_shape=(2, 2), weight=np.ones((1, 1, 3, 3), dtype=np.float32), stride=1, padding=0,
                      dilation=1, groups=1, bias=np.zeros(1))
    graph = nir.NIRGraph({"input": nir.Input(input_type={"input": np.array([1, 2, 2])}), "conv": conv,
                          "lif": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
                          "output": nir.Output(output_type={"output": np.array([1])})},
                         [("input", "conv"), ("conv", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(UserError, match="'conv': Conv2d with a 3x3 kernel makes the 2x2 input empty"):
        from_nir(graph, dt=1.0)


def test_dense_cuba_round_trip_through_nir(fixtures_dir, tmp_path):
    from snndeploy.export.ir import Layer, LoihiNet, Neuron

    weight = np.load(fixtures_dir / "dense-cuba" / "weight.npy") / 64
    neuron = Neuron(i_decay=np.array(4096), v_decay=np.array(415), threshold=np.array(6 / 64))
    net = LoihiNet("dense-cuba", (200,), (Layer("dense", "dense", (200,), (256,), neuron, weight),))
    assert_same_net(net, read_nir(write_nir(net, tmp_path / "d.nir")))


def test_files_open_in_nir_and_nirtorch(fixtures_dir, tmp_path):
    import nir
    import nirtorch

    net = from_slayer(load_fixture(fixtures_dir, "tinynet"))
    path = write_nir(net, tmp_path / "tiny.nir")
    graph = nir.read(path)  # nir's own type check passes
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Input", "Conv2d", "CubaLIF", "Output"} <= kinds
    assert graph.metadata["snndeploy"]["dt"] == 1.0

    class Cuba(torch.nn.Module):  # a caller-side neuron map, as nirtorch requires
        def __init__(self, node):
            super().__init__()
            self.threshold = float(np.asarray(node.v_threshold).reshape(-1)[0])

        def forward(self, x, state=None):
            return (x > self.threshold).float(), state

    module = nirtorch.nir_to_torch(graph, node_map={nir.CubaLIF: Cuba})
    out = module(torch.ones(1, 3, 16, 16))
    out = out[0] if isinstance(out, tuple) else out
    assert tuple(out.shape[-3:]) == (36, 1, 1)


def test_foreign_nir_nodes_are_mapped_or_named():
    import nir

    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([4])}),
               "fc": nir.Affine(weight=np.ones((3, 4)) * 0.5, bias=np.zeros(3)),
               "lif": nir.LIF(tau=np.full(3, 2e-4), r=np.full(3, 2.0), v_leak=np.zeros(3),
                              v_threshold=np.ones(3)),
               "out": nir.Output(output_type={"output": np.array([3])})},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")])
    net = from_nir(graph, dt=1e-4)
    layer = net.layers[0]
    assert layer.op == "dense" and int(layer.neuron.i_decay) == 4096 and int(layer.neuron.v_decay) == 2048
    assert np.allclose(layer.weight, 0.5)  # r * dt / tau = 1
    graph.nodes["lif"] = nir.Threshold(threshold=np.ones(3))  # memoryless: no current or voltage kept
    neuron = from_nir(graph).layers[0].neuron
    assert int(neuron.i_decay) == int(neuron.v_decay) == 4096 and float(neuron.threshold) == 1.0
    graph.nodes["lif"] = nir.Conv1d(None, np.ones((3, 3, 1)), 1, 0, 1, 1, np.zeros(3))
    with pytest.raises(UserError, match="Conv1d is not supported"):
        from_nir(graph)


def test_corrupt_nir_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF garbage")
    with pytest.raises(UserError, match="is not a nir file: its content is unrecognised binary data, expected HDF5"):
        read_nir(bad)


def test_to_nir_records_loihi_metadata(fixtures_dir):
    net = from_slayer(load_fixture(fixtures_dir, "mnist-mlp-128"))
    graph = to_nir(net)
    meta = graph.nodes[f"{net.layers[0].name}_syn"].metadata["snndeploy"]
    assert meta["w_scale"] == 64 and meta["on_grid"] == 1 and meta["weight_int"].dtype == np.int32
    lif = graph.nodes[f"{net.layers[0].name}_lif"].metadata["snndeploy"]
    assert int(lif["i_decay"]) == 410 and int(lif["vth_mant"]) == 64


def test_unsupported_slayer_neurons_are_named():
    from snndeploy.models.build import build_model
    from snndeploy.models.spec import spec_from_dict

    spec = spec_from_dict({"name": "adaptive", "input_shape": [8], "time_steps": 5, "neuron": {"kind": "alif"},
                           "blocks": [{"kind": "dense", "out": 4}]})
    with pytest.raises(UserError, match=r"block 0 \(dense\).*alif.*no Loihi CUBA mapping"):
        from_slayer(build_model(spec))


def _foreign(neuron, n_out: int = 3, weight=None):
    import nir

    weight = np.ones((n_out, 4)) * 0.5 if weight is None else weight
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}), "fc": nir.Linear(weight=weight),
             "out": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("in", "fc"), ("fc", "out")]
    if neuron is not None:
        nodes["n"] = neuron
        edges = [("in", "fc"), ("fc", "n"), ("n", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_per_neuron_input_gains_fold_into_the_rows_of_a_dense_weight():
    import nir

    tau = np.array([1e-4, 2e-4, 4e-4])  # dt / tau = 1, 1/2, 1/4: one gain per neuron
    lif = nir.LIF(tau=tau, r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    layer = from_nir(_foreign(lif), dt=1e-4).layers[0]
    assert np.allclose(layer.weight, 0.5 * np.array([1, 0.5, 0.25])[:, None])
    assert list(np.asarray(layer.neuron.v_decay)) == [4096, 2048, 1024]


def test_integrators_read_out_and_a_bare_synapse_is_read_as_it_is():
    import nir

    li = from_nir(_foreign(nir.LI(tau=np.full(3, 2e-4), r=np.ones(3), v_leak=np.zeros(3))), dt=1e-4).layers[0]
    assert not li.neuron.spiking and int(li.neuron.v_decay) == 2048 and int(li.neuron.i_decay) == 4096
    bare = from_nir(_foreign(None)).layers[0]  # Linear -> Output: u = v = the synaptic input, every step
    assert not bare.neuron.spiking and int(bare.neuron.i_decay) == int(bare.neuron.v_decay) == 4096
    assert np.allclose(bare.weight, 0.5)


def test_structure_only_keeps_sparse_weights_and_ignores_dynamics_it_cannot_run():
    import nir
    import scipy.sparse as sparse

    weight = sparse.random(30, 4, density=0.3, format="csr", random_state=0)
    lif = nir.LIF(tau=np.full(30, 2e-4), r=np.ones(30), v_leak=np.zeros(30), v_threshold=np.ones(30),
                  v_reset=np.full(30, 0.5), metadata={"reset_mechanism": "subtract"})
    graph = _foreign(lif, 30, weight)
    with pytest.raises(UserError, match="time step"):
        from_nir(graph)
    layer = from_nir(graph, structure_only=True).layers[0]
    assert sparse.issparse(layer.weight) and layer.weight.nnz == weight.nnz
    assert np.array_equal(layer.dense_weight(), weight.toarray())
