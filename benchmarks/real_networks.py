"""Real trained networks in, their published figures out: lava-dl's public networks through snndeploy's user path.

    .venv/bin/python benchmarks/real_networks.py [--quick] [--lava-samples 100] [--out FILE.json]

Per network: the published figure, our torch accuracy (``snndeploy evaluate`` as a user runs it: no encoding
flags, the model's recorded input pipeline), our Lava fixed_pt accuracy and spike-for-spike agreement with torch,
agreement with lava-dl's goldens (through netx file -> our import -> NIR -> our Lava build), Loihi 2 cores
(published compile / our estimate) and the seconds it took. ``--quick`` skips the whole-test-set and the long
Lava runs (the test suite runs the quick rows: tests/test_real_networks.py). Prints a Markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import snndeploy  # noqa: F401  (Lava compatibility hook first)
from snndeploy.settings import fixtures_dir

HERE = Path(__file__).resolve().parent
PILOTNET = HERE.parent / "tests" / "data" / "pilotnet_lif"
COLUMNS = ("network", "source", "published", "torch (ours)", "Lava fixed_pt (ours)", "spike agreement torch vs Lava",
           "golden agreement", "Loihi 2 cores published / estimated", "seconds")
PILOT_SDNN = HERE.parent / "tests" / "data" / "pilotnet_sdnn"
LAVA_DL = Path("/work/.mirror/lava-nc+lava-dl/repo")
SDNN_GTS = "tests/lava/lib/dl/netx/gts/pilotnet_sdnn"
PILOT_GOLDENS = ("input", "conv-0", "conv-1", "conv-2", "conv-3", "conv-4", "fc-0", "fc-1", "fc-2")


def estimated_cores(path: Path) -> int:
    from snndeploy.hardware.estimate import estimate_target
    from snndeploy.hardware.load import load_layers
    from snndeploy.hardware.profile import load_profile

    return int(estimate_target(load_layers(path), load_profile("loihi2")).cores)


def torch_accuracy(path: Path, test_subset: int | None) -> tuple[float, int, str]:
    """``snndeploy evaluate PATH --data mnist`` (no encoding flags)."""
    from snndeploy.loader import load_model
    from snndeploy.train.run import EvalJob, run_evaluation

    result = run_evaluation(path, EvalJob(data_name="mnist", test_subset=test_subset, threads=1), load=load_model)
    return result["accuracy"], result["samples"], result["feed"]


def _pct(value: float | None, samples: int | None = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f} %" + (f" ({samples:,} test digits)" if samples else "")


def bootstrap_lava(path: Path, digits: int | list[int]) -> dict:
    """Lava fixed_pt run of test digits (the first ``digits``, or these indices), each image fed as its tutorial
    does (normalised, a current into the input layer = that layer's bias), against the torch model spike for spike
    and read-out voltage for voltage. Lava is built from the netx reader (``load_net``: what ``snndeploy simulate``
    runs), torch from the netx import (``load_model``: what ``evaluate`` runs), so both readers' conventions meet
    here. Torch runs ``[x, x, ...]`` for T + 1 steps: Lava's spikes at step t are torch's at t + 1 (the bias drives
    the input layer from step 0, SLAYER delays every block's output, Lava every synapse's input), the read-out's
    voltage at t is torch's at t, x 4096 (``verify.S_SCALE``; verify's alignment, docs/export.md)."""
    import torch

    from snndeploy.data.datasets import load_arrays
    from snndeploy.export.verify import S_SCALE
    from snndeploy.loader import load_model, load_net
    from snndeploy.sim_inputs import input_current
    from snndeploy.simulate import simulate_net

    model, net = load_model(path).eval(), load_net(path)
    steps, (mean, std) = model.spec.time_steps, model.spec.io.normalize
    _, test, _ = load_arrays("mnist")
    index = np.arange(digits) if isinstance(digits, int) else np.asarray(digits)
    values = (np.asarray(test.x[index], dtype=np.float64).reshape(len(index), -1) - mean) / std
    labels = np.asarray(test.y[index])
    spiking = tuple(i for i, layer in enumerate(net.layers) if layer.neuron.spiking)
    result = simulate_net(net, np.zeros((len(index), *net.input_shape, steps), dtype=np.uint8), record=spiking,
                          input_bias=input_current(net, values))
    with torch.no_grad():
        x = torch.as_tensor(values, dtype=torch.float32)[..., None].expand(-1, -1, steps + 1)
        _, outs = model(x.contiguous(), return_all=True)
    per_digit = [all(np.array_equal(result.layer_spikes[i][k], outs[i][k, ..., 1:].numpy()) for i in spiking)
                 for k in range(len(index))]
    torch_v = outs[-1][..., :steps].double().numpy() * S_SCALE
    lava_v = result.probes[len(net.layers) - 1]["v"].reshape(torch_v.shape)
    torch_pred, lava_pred = torch_v.sum(-1).argmax(1), result.predictions()
    return {"lava_accuracy": float(np.mean(lava_pred == labels)), "samples": len(index),
            "digits_spike_exact": int(sum(per_digit)), "predictions_equal": int(np.sum(lava_pred == torch_pred)),
            "voltages_equal": int(np.sum(np.all(lava_v == torch_v, axis=(1, 2)))),
            "spikes": int(sum(result.layer_spikes[i].sum() for i in spiking)),
            "lava_predictions": lava_pred.tolist(), "torch_predictions": torch_pred.tolist()}


def if_encode(images: np.ndarray, steps: int) -> np.ndarray:
    """The netx MNIST tutorial's input encoder (``InpImgToSpk``): a deterministic integrate-and-fire neuron per
    pixel, ``v += x`` (x = the pixel in [0, 1], as ``load_arrays`` gives it), spike and reset to 0 when ``v > 1``;
    ``(N, 784, steps)``."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    v, out = np.zeros_like(x), np.zeros((*x.shape, steps), dtype=np.float32)
    for t in range(steps):
        v += x
        out[..., t] = v > 1
        v[v > 1] = 0
    return out


def netx_mnist_if_accuracy(path: Path, steps: int, test_subset: int | None = None) -> tuple[float, int]:
    """Torch accuracy of the netx MNIST network on the test set fed as its tutorial feeds it (the IF encoder, output
    spike count), through the Python API: snndeploy has no such encoder."""
    import torch

    from snndeploy.data.datasets import load_arrays
    from snndeploy.models.netx_import import import_netx

    model = import_netx(path).eval()
    _, test, _ = load_arrays("mnist")
    n = len(test.y) if test_subset is None else test_subset
    correct = 0
    with torch.no_grad():
        for start in range(0, n, 500):
            images = np.asarray(test.x[start:min(start + 500, n)])
            out = model(torch.as_tensor(if_encode(images, steps)))
            correct += int((out.sum(-1).argmax(1).numpy() == np.asarray(test.y[start:start + len(images)])).sum())
    return correct / n, n


def netx_mnist_tutorial(path: Path, samples: int = 25, steps: int = 32) -> dict:
    """The tutorial's own run: the first ``samples`` test digits, ``steps`` per digit, the first step empty (its
    encoder loads the image after step 1), IF-encoded; torch (SLAYER) and Lava fixed_pt predictions (most output
    spikes) and their agreement."""
    import torch

    from snndeploy.data.datasets import load_arrays
    from snndeploy.loader import load_net
    from snndeploy.models.netx_import import import_netx
    from snndeploy.simulate import simulate_net

    _, test, _ = load_arrays("mnist")
    labels = np.asarray(test.y[:samples])
    encoded = if_encode(np.asarray(test.x[:samples]), steps - 1)
    x = np.concatenate([np.zeros((*encoded.shape[:-1], 1), np.float32), encoded], -1)
    with torch.no_grad():
        torch_pred = import_netx(path).eval()(torch.as_tensor(x)).sum(-1).argmax(1).numpy()
    lava_pred = simulate_net(load_net(path), x.astype(np.uint8)).predictions()
    return {"samples": samples, "torch_accuracy": float(np.mean(torch_pred == labels)),
            "lava_accuracy": float(np.mean(lava_pred == labels)), "same": int(np.sum(torch_pred == lava_pred))}


def netx_mnist_lava(path: Path, samples: int) -> dict:
    """Lava fixed_pt on rate-coded test digits (snndeploy simulate --dataset mnist) and export verification."""
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.export.verify import verify
    from snndeploy.models.netx_import import import_netx
    from snndeploy.sim_inputs import prepare
    from snndeploy.simulate import simulate_net

    net, inputs = prepare(path, None, "mnist", samples, None)
    result = simulate_net(net, inputs.spikes)
    model = import_netx(path).eval()
    report = verify(model, from_slayer(model), inputs.spikes.astype(np.float32))
    return {"lava_accuracy": float(np.mean(result.predictions() == inputs.labels)), "samples": samples,
            "agree": bool(report.agree), "mismatches": int(sum(la.mismatches for la in report.layers))}


def golden_run(model: Path, image: np.ndarray, steps: int | None = None) -> np.lib.npyio.NpzFile:
    """``snndeploy simulate MODEL --input image.npy --out DIR --record all`` (the user's path); DIR/layers.npz."""
    from snndeploy.cli import main

    folder = Path(tempfile.mkdtemp(prefix="real_networks_"))
    np.save(folder / "image.npy", image)
    args = ["simulate", str(model), "--input", str(folder / "image.npy"), "--out", str(folder / "sim"),
            "--record", "all", "--json"] + (["--steps", str(steps)] if steps else [])
    if main(args) != 0:
        raise RuntimeError(f"snndeploy {' '.join(args)} failed")
    return np.load(folder / "sim" / "layers.npz")


def pilotnet_goldens() -> str:
    from snndeploy.export.nir_io import write_nir
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.models.netx_import import import_netx

    gold = np.load(PILOTNET / "goldens.npz")
    nir_path = write_nir(from_slayer(import_netx(PILOTNET / "network.net")),
                         Path(tempfile.mkdtemp(prefix="pilot_")) / "pilot.nir")
    layers = golden_run(nir_path, gold["image"])
    bad = [name for i, name in enumerate(PILOT_GOLDENS)
           if not np.array_equal(layers[f"spikes_{i}"].astype(bool), gold[name][..., :16])]
    spikes = sum(int(gold[name][..., :16].sum()) for name in PILOT_GOLDENS)
    return (f"{len(PILOT_GOLDENS) - len(bad)}/{len(PILOT_GOLDENS)} spiking layers exact over the 16-step sample "
            f"({spikes:,} golden spikes)" + (f"; differ: {', '.join(bad)}" if bad else "")
            + "; u, v exact except layer i's reset step i-1 and v at spikes (golden 128, Lava 0); the output "
            "layer's golden trace does not follow fc-2's golden spikes (see docs/benchmarks.md)")


def tinynet_goldens() -> str:
    gold = fixtures_dir() / "lava-dl" / "tinynet"
    layers = golden_run(gold / "tiny.net", np.load(gold / "input_bias.npy"), steps=17)
    expected = np.load(gold / "output.npy")[0].transpose(2, 1, 0, 3)
    errors = int(np.abs(layers["spikes_2"][..., 2:17] - expected[..., 1:]).sum())
    return f"{errors} output spike errors ({int(expected.sum())} golden spikes, lava-dl's alignment)"


NIR_DATA = HERE.parent / "tests" / "data" / "nir"
NORSE_LOIHI_SPIKES = (461, 511, 711, 761)  # paper/01_lif/lif_lava_loihi_fixed.csv: the real Loihi 2 trace


def _cli(*args: str) -> dict:
    """``snndeploy ARGS --json`` in this process (the user's path); its JSON result."""
    import contextlib
    import io

    from snndeploy.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"])
    if code != 0:
        raise RuntimeError(f"snndeploy {' '.join(args)} exited {code}")
    return json.loads(out.getvalue())


def norse_lif_input() -> np.ndarray:
    """The NIR paper's LIF input (paper/01_lif/lif_lava.ipynb ``load_data``): 100 spikes or gaps from its
    inter-spike intervals, each followed by 9 empty steps; ``(1, 1000)``."""
    isis = [6, 15, 4, 3, 0, 2, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 14]
    d1 = np.concatenate([[0] * isi + [1] for isi in isis])[:100]
    return np.stack([d1] + [np.zeros_like(d1)] * 9, -1).reshape(1, -1)


def norse_lif() -> str:
    """``snndeploy export lif_norse.nir --to nir --quantize --dt 1e-4`` then ``snndeploy simulate --input``."""
    folder = Path(tempfile.mkdtemp(prefix="norse_"))
    _cli("export", str(NIR_DATA / "lif_norse.nir"), "--to", "nir", "--quantize", "--dt", "1e-4", "--out",
         str(folder / "q.nir"))
    np.save(folder / "x.npy", norse_lif_input())
    _cli("simulate", str(folder / "q.nir"), "--input", str(folder / "x.npy"), "--out", str(folder / "sim"))
    steps = tuple(int(t) for t in np.flatnonzero(np.load(folder / "sim" / "output.npy").reshape(-1)))
    same = "identical to" if steps == NORSE_LOIHI_SPIKES else "differs from"
    loihi = ", ".join(map(str, NORSE_LOIHI_SPIKES))
    return f"spikes at steps {', '.join(map(str, steps))}: {same} the Loihi 2 trace ({loihi})"


def sinabs_cnn(samples: int) -> tuple[float, int, int]:
    """``snndeploy export cnn_sinabs.nir --to nir --quantize`` then ``snndeploy simulate --dataset nmnist-small``
    (at the steps the import records: the paper's 1 ms frames, 300 per digit; ``nir_io.PUBLISHED_NIR``)."""
    folder = Path(tempfile.mkdtemp(prefix="sinabs_"))
    _cli("export", str(NIR_DATA / "cnn_sinabs.nir"), "--to", "nir", "--quantize", "--out", str(folder / "q.nir"))
    result = _cli("simulate", str(folder / "q.nir"), "--dataset", "nmnist-small", "--samples", str(samples),
                  "--out", str(folder / "sim"))
    return float(result["accuracy"]), int(result["samples"]), int(result["steps_per_sample"])


def braille_cells(name: str) -> dict:
    """The table cells of one Braille graph from benchmarks/braille_snntorch.py's JSON (run it first)."""
    path = HERE / "results" / "braille_snntorch.json"
    if not path.exists():
        return {"spike agreement torch vs Lava": "not measured: run benchmarks/braille_snntorch.py"}
    sys.path.insert(0, str(HERE))
    from braille_snntorch import summary

    data = json.loads(path.read_text())
    result = next(r for r in data["results"] if r["graph"] == name)
    n, steps = data["samples"], data["steps"]
    cells = {"torch (ours)": f"vs snnTorch: {summary(result, 'torch')}",
             "Lava fixed_pt (ours)": f"vs snnTorch, after --quantize: {summary(result, 'lava_fixed_pt')}",
             "spike agreement torch vs Lava": f"Lava floating_pt vs snnTorch: {summary(result, 'lava_floating_pt')} "
             f"({n} samples x {steps} steps per input set)"}
    if "snntorch_subtract_vs_zero" in next(iter(result["inputs"].values())):
        cells["golden agreement"] = ("snnTorch with the reset by subtraction it was trained with vs the reset to "
                                     f"zero the file records: {summary(result, 'snntorch_subtract_vs_zero')}")
    return cells


def sdnn_golden() -> str:
    """lava-dl test_pilotnet_sdnn: ``snndeploy simulate network.net --input input.npy --steps 9 --out DIR``."""
    from snndeploy.cli import main

    folder = Path(tempfile.mkdtemp(prefix="real_networks_sdnn_"))
    args = ["simulate", str(PILOT_SDNN / "network.net"), "--input", str(PILOT_SDNN / "input.npy"), "--steps", "9",
            "--out", str(folder / "sim"), "--json"]
    if main(args) != 0:
        raise RuntimeError(f"snndeploy {' '.join(args)} failed")
    diff = np.abs(np.load(folder / "sim" / "output.npy")[0] - np.load(PILOT_SDNN / "output.npy")).sum()
    return f"read-out over 9 steps: sum of absolute differences {diff:g}"


def sdnn_mirror_file(name: str) -> Path:
    """A file of lava-dl's PilotNet SDNN test folder, copied out of the lava-dl mirror."""
    import subprocess

    out = Path(tempfile.mkdtemp(prefix="real_networks_sdnn_")) / name
    out.write_bytes(subprocess.run(["git", "-C", str(LAVA_DL), "show", f"HEAD:{SDNN_GTS}/{name}"], check=True,
                                   capture_output=True).stdout)
    return out


def square_sigma_goldens(square: Path) -> str:
    """lava-dl test_pilotnet_sdnn_square: act0[:33, :33] into the first conv (input layer skipped), every conv
    layer's sigma at every step against ``sigma<k>_square.npy``."""
    from snndeploy.export.netx_io import read_netx
    from snndeploy.simulate_sd import simulate_sd

    net = read_netx(square)
    net = net.with_layers(net.layers[1:])
    act0 = np.load(sdnn_mirror_file("act0.npy"))[:33, :33]
    result = simulate_sd(net, act0.transpose(2, 1, 0, 3)[None], probe=(0, 1, 2, 3))
    equal = []
    for k in range(4):
        golden = np.load(sdnn_mirror_file(f"sigma{k + 1}_square.npy")).transpose(2, 1, 0, 3)
        equal.append(int(np.sum(np.all(result.probes[k]["sigma"][0] == golden, axis=(0, 1, 2)))))
    return (f"sigma of the 4 conv layers equal at {', '.join(map(str, equal))} of {result.steps} steps "
            "(lava-dl checks step 5)")


def timed(fn: Callable[[], dict]) -> dict:
    start = time.perf_counter()
    row = fn()
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def rows(quick: bool, lava_samples: int, pilotnet_run: bool = True, only: tuple[str, ...] = ()) -> list[dict]:
    fx = fixtures_dir() / "lava-dl"
    boot, small = fx / "mnist-mlp-512" / "network.net", fx / "mnist-mlp-128" / "network.net"
    subset = 500 if quick else None
    lava_n = min(lava_samples, 5) if quick else lava_samples

    def bootstrap() -> dict:
        acc, n, feed = torch_accuracy(boot, subset)
        lava = bootstrap_lava(boot, lava_n)
        return {"network": "bootstrap MNIST 784-512-512-10", "source": "lava-dl tutorials/lava/lib/dl/bootstrap/mnist",
                "published": "99.15 % test accuracy (tutorial)", "torch (ours)": _pct(acc, n), "feed": feed,
                "Lava fixed_pt (ours)": _pct(lava["lava_accuracy"], lava["samples"]),
                "spike agreement torch vs Lava": f"{lava['digits_spike_exact']}/{lava['samples']} digits spike for "
                f"spike in every spiking layer; {lava['predictions_equal']}/{lava['samples']} predictions equal",
                "golden agreement": "- (no goldens published)",
                "Loihi 2 cores published / estimated": f"- / {estimated_cores(boot)}", "raw": lava}

    def netx_mnist() -> dict:
        acc, n, feed = torch_accuracy(small, subset)
        if_acc, if_n = netx_mnist_if_accuracy(small, 20, subset)
        tutorial = netx_mnist_tutorial(small)
        lava = netx_mnist_lava(small, lava_n)
        return {"network": "netx MNIST 784-128-64-10", "source": "lava-dl tutorials/lava/lib/dl/netx/mnist",
                "published": "'Accuracy on Loihi Board: 1.0' on the first 25 test digits (tutorial, IF encoder, "
                "32 steps); no test-set figure",
                "torch (ours)": f"{_pct(acc, n)} (`snndeploy evaluate`: Bernoulli rate spikes, T = 25); "
                f"{_pct(if_acc, if_n)} with the tutorial's IF encoder (T = 20, the training length); the tutorial's "
                f"25 digits: {_pct(tutorial['torch_accuracy'])}", "feed": feed,
                "Lava fixed_pt (ours)": f"the tutorial's 25 digits: {_pct(tutorial['lava_accuracy'])} "
                f"({tutorial['same']}/25 predictions = torch); rate-coded: "
                f"{_pct(lava['lava_accuracy'], lava['samples'])}",
                "spike agreement torch vs Lava": f"{'exact' if lava['agree'] else 'differs'} ({lava['mismatches']} "
                f"mismatches, {lava['samples']} digits)", "golden agreement": "- (no goldens published)",
                "Loihi 2 cores published / estimated": f"5 / {estimated_cores(small)}",
                "raw": {**lava, "tutorial": tutorial, "if_accuracy": if_acc}}

    def pilotnet() -> dict:
        golden = pilotnet_goldens() if pilotnet_run and not quick else \
            "not run here (--quick or --no-pilotnet): tests/test_simulate_golden.py (slow)"
        return {"network": "PilotNet LIF (regression)", "source": "lava-dl tests/lava/lib/dl/netx/gts/pilotnet_lif "
                "= tutorials/.../netx/pilotnet_snn/network.net", "published": "per-layer goldens; 74 cores",
                "torch (ours)": "- (no dataset here)", "Lava fixed_pt (ours)": "runs (golden input)",
                "spike agreement torch vs Lava": "-", "golden agreement": golden,
                "Loihi 2 cores published / estimated": f"74 / {estimated_cores(PILOTNET / 'network.net')}"}

    def tinynet() -> dict:
        return {"network": "tinynet 3x16x16 conv", "source": "lava-dl tests/lava/lib/dl/netx/tiny.net",
                "published": "golden output spikes", "torch (ours)": "-", "Lava fixed_pt (ours)": "runs",
                "spike agreement torch vs Lava": "exact (tests/test_export_verify.py)",
                "golden agreement": tinynet_goldens(),
                "Loihi 2 cores published / estimated": f"- / {estimated_cores(fx / 'tinynet' / 'tiny.net')}"}

    def braille(name: str, published: str) -> Callable[[], dict]:
        def row() -> dict:  # named braille_bias_zero / braille_subtract below (--only)
            cells = braille_cells(name)
            return {"network": f"NIR paper Braille RNN ({name.split('_', 2)[2]})",
                    "source": f"NIR paper/03_rnn/{name}.nir (snnTorch)", "published": published,
                    "Loihi 2 cores published / estimated": f"- / {estimated_cores(NIR_DATA / f'{name}.nir')}",
                    "golden agreement": "- (test data not public)", **cells}
        row.__name__ = "braille_" + ("subtract" if name.endswith("subtract") else "bias_zero")
        return row

    def sinabs() -> dict:
        acc, n, steps = sinabs_cnn(10 if quick else 100)
        return {"network": "NIR paper sinabs CNN", "source": "NIR paper/02_cnn/cnn_sinabs.nir",
                "published": "0.9815 (paper, Lava, full N-MNIST test set)",
                "Lava fixed_pt (ours)": f"{acc:.2f} on {n} nmnist-small test samples after --quantize "
                                        f"({steps} steps of 1 ms, the paper's binning)",
                "Loihi 2 cores published / estimated": f"- / {estimated_cores(NIR_DATA / 'cnn_sinabs.nir')}"}

    def norse() -> dict:
        return {"network": "NIR paper norse LIF", "source": "NIR paper/01_lif/lif_norse.nir",
                "published": "Loihi 2 trace: spikes at 461, 511, 711, 761",
                "Lava fixed_pt (ours)": norse_lif(), "golden agreement": "see Lava fixed_pt"}

    def sdnn_gts() -> dict:
        return {"network": "PilotNet SDNN (reduced, 3x33x100)", "source": f"lava-dl {SDNN_GTS}/network.net",
                "published": "golden read-out", "torch (ours)": "- (no dataset here)", "Lava fixed_pt (ours)": "runs",
                "spike agreement torch vs Lava": "exact, graded outputs of every layer and step (verify; slow test)",
                "golden agreement": sdnn_golden() if not quick else "not run here (--quick): tests/test_sdnn.py",
                "Loihi 2 cores published / estimated": f"- / {estimated_cores(PILOT_SDNN / 'network.net')}"}

    def sdnn_tutorial() -> dict:
        return {"network": "PilotNet SDNN", "source": "lava-dl tutorials/lava/lib/dl/netx/pilotnet_sdnn/network.net",
                "published": "61 cores (benchmark.ipynb)", "torch (ours)": "- (no dataset here)",
                "Lava fixed_pt (ours)": "not run (no input published)", "spike agreement torch vs Lava": "-",
                "golden agreement": "- (none published)",
                "Loihi 2 cores published / estimated": f"61 / {estimated_cores(PILOT_SDNN / 'tutorial_network.net')}"}

    def sdnn_square() -> dict:
        if not LAVA_DL.is_dir():
            return {"network": "square_network SDNN", "golden agreement": "not run (lava-dl mirror absent)"}
        square = sdnn_mirror_file("square_network.net")
        golden = square_sigma_goldens(square) if not quick else "not run here (--quick): tests/test_sdnn.py (slow)"
        return {"network": "square_network SDNN", "source": f"lava-dl {SDNN_GTS}/square_network.net",
                "published": "sigma goldens of 4 conv layers", "torch (ours)": "-", "Lava fixed_pt (ours)": "runs",
                "spike agreement torch vs Lava": "-", "golden agreement": golden,
                "Loihi 2 cores published / estimated": f"- / {estimated_cores(square)}"}

    braille_bias_zero = braille("braille_noDelay_bias_zero", "snnTorch 0.95, Lava 0.4857 (paper, test set)")
    braille_subtract = braille("braille_noDelay_noBias_subtract", "snnTorch 0.9214 (paper, test set)")
    every = (pilotnet, tinynet, netx_mnist, bootstrap, sdnn_gts, sdnn_tutorial, sdnn_square, norse, sinabs,
             braille_bias_zero, braille_subtract)
    return [timed(fn) for fn in every if not only or fn.__name__ in only]


def markdown(table: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row.get(c, "-")) for c in COLUMNS) + " |" for row in table]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 test digits, 5 Lava digits, no PilotNet run")
    parser.add_argument("--lava-samples", type=int, default=100)
    parser.add_argument("--no-pilotnet", action="store_true", help="skip the PilotNet golden run (~10 min)")
    parser.add_argument("--only", nargs="+", default=(), metavar="ROW",
                        help="only these rows: pilotnet tinynet netx_mnist bootstrap sdnn_gts sdnn_tutorial "
                        "sdnn_square norse sinabs braille_bias_zero braille_subtract")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "real_networks.json")
    args = parser.parse_args()
    table = rows(args.quick, args.lava_samples, not args.no_pilotnet, tuple(args.only))
    print(markdown(table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"quick": args.quick, "rows": table}, indent=1, default=str))


if __name__ == "__main__":
    main()
