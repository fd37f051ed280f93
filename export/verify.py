"""Verification as a feature: run the torch (SLAYER) model and the Lava network on the same inputs and compare
spikes, and optionally current ``u`` and voltage ``v``, layer by layer and step by step.

Alignment (docs/export.md): SLAYER's ``delay_shift`` delays each block's *output* by one step, while each Lava
synapse delays its layer's *input* by one step. Both agree once SLAYER sees one extra zero step at the start:
with ``x_ext = [0, x]``, Lava layer i's spikes at step t equal SLAYER block i's output at step t + 1, and its
internal states (``u``; ``v`` where no spike reset it; a non-spiking read-out's voltage) at step t equal SLAYER's
at step t (states are not delay-shifted).
In ``fixed_pt`` the comparison is exact (Loihi integers: ``u`` and ``v`` are SLAYER values x 4096); in
``floating_pt`` spikes are counted and the voltage compared with a tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from snndeploy import validate
from snndeploy.atomic import atomic_path
from snndeploy.errors import UserError
from snndeploy.export.ir import LoihiNet, is_sigma_delta
from snndeploy.export.lava_net import (
    DEFAULT_SPARSE_BELOW,
    build_lava,
    import_lava,
    netx_layout_to_ir,
    run_lava,
    sd_payload,
    synapse_kinds,
)
from snndeploy.export.sdnn_ref import sd_reference

S_SCALE = 4096  # SLAYER state scale: Loihi u, v = SLAYER u, v * 4096
VERIFY_PART = 500  # samples compared at a time (bounds the memory of a whole-test-set verification)


@dataclass(frozen=True)
class Divergence:
    """The first disagreement: sample, layer, time step, neuron index (C[, H, W]), variable, both values."""

    sample: int
    layer: int
    layer_name: str
    step: int
    neuron: tuple[int, ...]
    variable: str
    torch_value: float
    lava_value: float


@dataclass(frozen=True)
class LayerAgreement:
    name: str
    variable: str
    torch_spikes: float
    lava_spikes: float
    mismatches: int
    compared: int


@dataclass(frozen=True)
class VerifyReport:
    agree: bool
    precision: str  # Lava's fixed_pt or floating_pt (one spelling across CLI, configs and JSON)
    samples: int
    steps: int
    layers: list[LayerAgreement]
    first: Divergence | None
    alignment: str = ("SLAYER input gets one leading zero step; Lava spikes of layer i at step t == SLAYER block i "
                      "at t+1; u, v and read-out voltage at t == SLAYER's at t")
    synapses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def sample_inputs(shape: tuple[int, ...], steps: int, samples: int, rate: float, seed: int) -> np.ndarray:
    """Bernoulli spike inputs ``(samples, *shape, steps)``."""
    rng = np.random.default_rng(seed)
    return (rng.random((samples, *shape, steps)) < rate).astype(np.float32)


def load_inputs(path, shape: tuple[int, ...], *, graded: bool = False) -> np.ndarray:
    """Spike inputs (``graded``: a sigma-delta network's integers, netx's image layout accepted) from a ``.npy``
    file: ``(*shape, T)`` or ``(N, *shape, T)``."""
    from pathlib import Path

    path = Path(path)
    validate.check_npy(path)
    try:
        x = validate.check_spikes(np.load(path, allow_pickle=False), path, signed=graded)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read input spikes ({exc.__class__.__name__})", path) from None
    x = netx_layout_to_ir(x, shape)
    if tuple(x.shape[:-1]) == tuple(shape):
        x = x[None]
    if tuple(x.shape[1:-1]) != tuple(shape):
        raise UserError(f"input of shape {x.shape} does not fit the model input {shape} (+ time last)", path)
    return x.astype(np.float32)


def torch_reference(model, x: np.ndarray, probe: bool = False):
    """Per exported layer: SLAYER outputs on ``[0, x]`` and, with ``probe``, SLAYER current and voltage."""
    spikes, currents, voltages = torch_reference_batch(model, np.asarray(x)[None], probe)
    return [a[0] for a in spikes], [a[0] for a in currents], [a[0] for a in voltages]


def torch_reference_batch(model, x: np.ndarray, probe: bool = False, currents: np.ndarray | None = None):
    """:func:`torch_reference` of every sample of ``x`` ``(N, *shape, T)`` in one pass (arrays ``(N, ...)``).
    ``currents`` ``(N, *shape)``: the samples are these values held over every step instead (a current, which
    Lava feeds as the input layer's bias from step 0: its outputs align with the spike-fed case)."""
    from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator
    from lava.lib.dl.slayer.utils import quantize

    x = np.asarray(x, dtype=np.float32)  # spikes may come as bool/uint8 (datasets); the torch model computes in float
    if currents is None:
        x_ext = np.concatenate([np.zeros_like(x[..., :1]), x], axis=-1)
    else:
        x_ext = np.repeat(np.asarray(currents, dtype=np.float32)[..., None], x.shape[-1] + 1, axis=-1)
    with torch.no_grad():
        inp = torch.as_tensor(x_ext)
        _, outs = model(inp, return_all=True)
        spikes, currents, voltages = [], [], []
        prev = inp
        for bspec, block, out in zip(model.spec.blocks, model.blocks, outs, strict=True):
            if bspec.kind == "flatten" or (bspec.kind == "input" and block.neuron is None):
                prev = out
                continue
            spikes.append(out.numpy())
            if probe:
                neuron = block.neuron
                if bspec.kind == "input":  # the export moves the input bias to the voltage (iDecay 4096 only)
                    z = prev * block.pre_hook_fx(block.weight) if block.weight is not None else prev
                else:
                    z = block.synapse(prev)
                current = leaky_integrator.dynamics(z, quantize(neuron.current_decay), torch.zeros(1),
                                                    neuron.s_scale)
                if bspec.kind == "input":
                    biased = current + block.pre_hook_fx(block.bias) if block.bias is not None else current
                else:
                    biased = neuron.norm(current) if getattr(neuron, "norm", None) is not None else current
                voltage = leaky_integrator.dynamics(
                    biased, quantize(neuron.voltage_decay), torch.zeros(1), neuron.s_scale,
                    neuron.threshold + neuron.threshold_eps if bspec.kind != "affine" else None)
                currents.append(current.numpy())
                voltages.append(voltage.numpy())
            prev = out
    return spikes, currents, voltages


def delayed(spikes: np.ndarray, delay: np.ndarray | None) -> np.ndarray:
    """A layer's spikes as SLAYER reports them after its axonal delay (Lava applies it in the next synapse)."""
    if delay is None or not np.any(delay):
        return spikes
    d = np.asarray(delay, dtype=np.int64).reshape(-1)
    flat = spikes.reshape(-1, spikes.shape[-1]) if d.size > 1 else spikes.reshape(1, -1)
    if d.size != flat.shape[0] and d.size * (flat.shape[0] // max(d.size, 1)) == flat.shape[0]:
        d = np.repeat(d, flat.shape[0] // d.size)  # per-channel delays of a conv layer
    out = np.zeros_like(flat)
    for n in range(flat.shape[0]):
        k = int(d[n] if d.size > 1 else d[0])
        out[n, k:] = flat[n, :flat.shape[1] - k]
    return out.reshape(spikes.shape)


def _first_mismatch(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[int, ...] | None:
    bad = np.argwhere(np.abs(a - b) > tol)
    if bad.size == 0:
        return None
    keys = [bad[:, k] for k in range(bad.shape[1] - 2, -1, -1)] + [bad[:, -1]]  # time is the primary key
    return tuple(int(i) for i in bad[np.lexsort(keys)[0]])


def sample_sd_inputs(shape: tuple[int, ...], steps: int, samples: int, seed: int) -> np.ndarray:
    """Graded inputs for a sigma-delta network: one random integer frame in [-64, 64] per sample, held for
    ``steps`` steps (a still image, as lava-dl's PilotNet test input)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(-64, 65, size=(samples, *shape, 1))
    return np.repeat(frames, steps, axis=-1).astype(np.float64)


def verify_sd(reference: LoihiNet, net: LoihiNet, inputs: np.ndarray, *, mode: str = "fixed_pt",
              probe: bool = False, sparse_below: float = DEFAULT_SPARSE_BELOW,
              progress: bool = False, rasters: list | None = None) -> VerifyReport:
    """Sigma-delta: the torch reference of ``reference`` (:mod:`snndeploy.export.sdnn_ref`) against the Lava run
    of ``net``, every layer's graded outputs (and with ``probe`` its sigma) at every step, in payload units.

    fixed_pt is exact; floating_pt allows 1e-6 of each layer's largest value (float64 sums in another order).
    ``rasters``: if a list, it receives every layer's graded outputs of sample 0 (a message = a non-zero value).
    """
    import_lava()
    exact = mode == "fixed_pt"
    stats = [[0.0, 0.0, 0, 0] for _ in net.layers]
    first: Divergence | None = None
    synapses: list[str] = []
    for s in tqdm(range(inputs.shape[0]), desc="verify", disable=not progress, unit="sample"):
        lava = build_lava(net, inputs[s], mode=mode, sparse_below=sparse_below)
        synapses = [layer.synapse_kind for layer in lava.layers]
        run = run_lava(lava, probe=(), sigma=probe)
        ref_out, ref_sigma = sd_reference(reference, inputs[s], mode)
        for i, layer in enumerate(net.layers):
            checks = [("spikes", ref_out[i], sd_payload(run.spikes[i], layer, mode))]
            if rasters is not None and s == 0:
                rasters.append((layer.name, "spikes", *checks[0][1:]))
            if probe and layer.op != "input":
                checks.append(("sigma", ref_sigma[i], sd_payload(run.sigma[i], layer, mode, state=True)))
            for var, ref, got in checks:
                tol = 0.0 if exact else 1e-6 * max(float(np.abs(ref).max(initial=0.0)), 1.0)
                if var == "spikes":
                    st = stats[i]
                    st[0] += float(np.count_nonzero(ref))
                    st[1] += float(np.count_nonzero(got))
                    st[2] += int(np.sum(np.abs(ref - got) > tol))
                    st[3] += int(ref.size)
                where = _first_mismatch(ref, got, tol)
                if where is not None and (first is None or (s, where[-1], i) < (first.sample, first.step,
                                                                                 first.layer)):
                    first = Divergence(s, i, layer.name, where[-1], where[:-1], var, float(ref[where]),
                                       float(got[where]))
    layers = [LayerAgreement(layer.name, "graded", *stats[i]) for i, layer in enumerate(net.layers)]
    return VerifyReport(agree=first is None, precision=mode, samples=int(inputs.shape[0]), steps=int(inputs.shape[-1]),
                        layers=layers, first=first, synapses=synapses,
                        alignment="graded outputs (Loihi payload units) of every layer at the same step: the torch "
                                  "reference delays each synapse by one step as Lava does")


def verify(model, net: LoihiNet, inputs: np.ndarray, *, mode: str = "fixed_pt", probe: bool = False,
           sparse_below: float = DEFAULT_SPARSE_BELOW, progress: bool = False,
           rasters: list | None = None, workers: int = 1, part: int = VERIFY_PART,
           currents: np.ndarray | None = None) -> VerifyReport:
    """Compare ``model`` (SlayerNet) with the Lava network of ``net`` on ``inputs`` ``(N, *shape, T)``.

    Every layer of every sample is compared (spikes; a read-out's voltage; with ``probe`` also ``u`` and ``v``).
    Lava runs ``part`` samples at a time through ``snndeploy.simulate.simulate_net`` (many samples per build,
    ``workers`` runtimes; each sample's values equal those of a run of it alone), the torch model on the same
    part in one batch. ``currents`` ``(N, *shape)``: the samples are these values fed as a current (the model's
    recorded input pipeline, bootstrap MNIST): Lava gets them as the input layer's bias
    (:func:`snndeploy.sim_inputs.input_current`), torch held over the steps. ``rasters``: if a list, it receives
    ``(layer name, variable, torch values, Lava values)`` of sample 0. A sigma-delta ``net`` is checked by
    :func:`verify_sd` against the reference of ``model`` (its LoihiNet).
    """
    if is_sigma_delta(net):
        return verify_sd(model if isinstance(model, LoihiNet) else net, net, inputs, mode=mode, probe=probe,
                         sparse_below=sparse_below, progress=progress, rasters=rasters)
    from snndeploy.sim_inputs import input_current
    from snndeploy.simulate import simulate_net

    bias = None if currents is None else input_current(net, np.asarray(currents, dtype=np.float64))
    import_lava()  # before the first progress bar (see import_lava)
    model = model.eval()
    n_layers = len(net.layers)
    samples, steps = int(inputs.shape[0]), int(inputs.shape[-1])
    exact = mode == "fixed_pt"
    tally = _Tally(net, exact)
    readouts = tuple(i for i, layer in enumerate(net.layers) if not layer.neuron.spiking)
    probes = tuple(range(n_layers)) if probe else readouts
    bar = tqdm(total=samples, desc="verify", disable=not progress, unit="sample")
    done = 0

    def advance(count: int) -> None:
        bar.update(done + count - bar.n)

    try:
        for start in range(0, samples, part):
            x = np.asarray(inputs[start:start + part])
            run = simulate_net(net, x, mode=mode, probe=probes, record=tuple(range(n_layers)),
                               sparse_below=sparse_below, workers=workers, on_sample=advance,
                               input_bias=None if bias is None else bias[start:start + part])
            t_spk, t_cur, t_volt = torch_reference_batch(
                model, x, probe=probe, currents=None if currents is None else currents[start:start + part])
            if len(t_spk) != n_layers:
                raise UserError(f"the model has {len(t_spk)} neuron layers but the exported network has {n_layers}")
            for i in range(n_layers):
                for var, ref, got, var_tol in _checks(net, i, run, t_spk, t_cur, t_volt, probe, steps, exact,
                                                      states=currents is None or i > 0):
                    if rasters is not None and start == 0 and var == tally.variables[i]:
                        rasters.append((net.layers[i].name, var, ref[0], got[0]))
                    tally.add(start, i, var, ref, got, var_tol)
            done += x.shape[0]
            bar.update(done - bar.n)
    finally:
        bar.close()
    layers = [LayerAgreement(layer.name, tally.variables[i], *tally.stats[i]) for i, layer in enumerate(net.layers)]
    agree = tally.first is None if exact else all(la.mismatches == 0 for la in layers if la.variable == "spikes")
    return VerifyReport(agree=agree, precision=mode, samples=samples, steps=steps, layers=layers, first=tally.first,
                        synapses=synapse_kinds(net, sparse_below, copies=1, mode=mode))


def _checks(net: LoihiNet, i: int, run, t_spk, t_cur, t_volt, probe: bool, steps: int, exact: bool,
            states: bool = True):
    """(variable, torch values, Lava values, tolerance) of layer i for a batch of samples ``(N, ..., T)``.
    ``states`` False: the layer's input is a current that Lava holds in its bias, rounded to the bias mantissa
    grid (its ``u`` stays 0, its ``v`` moves in steps of 64), where torch integrates the unrounded current; only
    its spikes are compared."""
    tol = 0.0 if exact else 1e-3
    scale = S_SCALE if exact else 1.0
    checks = []
    if net.layers[i].neuron.spiking:
        lava_spikes = np.stack([delayed(s, net.layers[i].delay) for s in run.layer_spikes[i]])
        checks.append(("spikes", t_spk[i][..., 1:], lava_spikes, 0.0))
    else:
        checks.append(("v", t_spk[i][..., :steps] * scale, run.probes[i]["v"], tol * scale))
    if probe and states:
        u, v = run.probes[i]["u"], run.probes[i]["v"]
        checks.append(("u", t_cur[i][..., :steps] * scale, u, tol * scale))  # states are not delay-shifted
        if net.layers[i].neuron.spiking:  # Lava's v is after the reset; compare where nothing spiked
            volt = np.where(run.layer_spikes[i] > 0, v, t_volt[i][..., :steps] * scale)
            checks.append(("v", volt, v, tol * scale))
    return checks


class _Tally:
    """Per layer: torch spikes, Lava spikes, mismatches, values compared; and the first divergence (sample-major,
    then time step, then layer)."""

    def __init__(self, net: LoihiNet, exact: bool):
        self.net, self.exact = net, exact
        self.variables = ["spikes" if layer.neuron.spiking else "v" for layer in net.layers]
        self.stats = [[0.0, 0.0, 0, 0] for _ in net.layers]
        self.first: Divergence | None = None

    def add(self, offset: int, i: int, var: str, ref: np.ndarray, got: np.ndarray, tol: float) -> None:
        if var == self.variables[i]:
            st = self.stats[i]
            st[0] += float(np.sum(ref)) if var == "spikes" else 0.0
            st[1] += float(np.sum(got)) if var == "spikes" else 0.0
            st[2] += int(np.sum(np.abs(ref - got) > (tol if self.exact or var == "spikes" else 1e-2)))
            st[3] += int(ref.size)
        if not self.exact and var != "spikes":
            return  # floating_pt: SLAYER rounds its states to 1/4096 every step, Lava floats do not
        bad = (np.abs(ref - got) > tol).reshape(ref.shape[0], -1).any(axis=1)
        if not bad.any():
            return
        k = int(np.argmax(bad))
        where = _first_mismatch(ref[k], got[k], tol)
        sample = offset + k
        if self.first is None or (sample, where[-1], i) < (self.first.sample, self.first.step, self.first.layer):
            self.first = Divergence(sample, i, self.net.layers[i].name, where[-1], where[:-1], var,
                                    float(ref[k][where]), float(got[k][where]))


def describe(report: VerifyReport) -> str:
    """A short human-readable verdict."""
    lines = [f"{'AGREE' if report.agree else 'DIVERGE'}: torch vs Lava {report.precision}, {report.samples} sample(s) "
             f"x {report.steps} steps"]
    for la, syn in zip(report.layers, report.synapses or [""] * len(report.layers), strict=False):
        lines.append(f"  {la.name:<16} {syn:<12} {la.variable:<6} torch {la.torch_spikes:>9.0f}  "
                     f"lava {la.lava_spikes:>9.0f}  mismatches {la.mismatches}/{la.compared}")
    if report.first is not None:
        d = report.first
        lines.append(f"  first divergence: sample {d.sample}, layer {d.layer} ({d.layer_name}), step {d.step}, "
                     f"neuron {d.neuron}, {d.variable}: torch {d.torch_value:g} vs lava {d.lava_value:g}")
    return "\n".join(lines)


def plot_rasters(rasters: list, path) -> None:
    """Per layer, sample 0: torch spikes (grey), Lava spikes (black dots) and disagreements (red), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, axes = plt.subplots(len(rasters), 1, figsize=(9, 2.2 * len(rasters)), squeeze=False)
    for ax, (name, var, ref, got) in zip(axes[:, 0], rasters, strict=True):
        ref2, got2 = ref.reshape(-1, ref.shape[-1]), got.reshape(-1, got.shape[-1])
        if var == "spikes":
            for arr, style in ((ref2, dict(marker="s", s=14, c="0.75")), (got2, dict(marker=".", s=3, c="k"))):
                n, t = np.nonzero(arr)
                ax.scatter(t, n, **style)
            n, t = np.nonzero(ref2 != got2)
            ax.scatter(t, n, marker="x", s=20, c="red")
            ax.set_ylabel("neuron")
        else:
            ax.plot(ref2.T[:, :8], c="0.7")
            ax.plot(got2.T[:, :8], c="k", lw=0.8, ls="--")
            ax.set_ylabel("voltage")
        ax.set_xlim(-0.5, ref.shape[-1] - 0.5)
        ax.set_title(f"{name}: {var} (grey torch, black Lava, red x disagreement)", fontsize=9)
    axes[-1, 0].set_xlabel("Lava time step")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
