"""The hostile-input corpus: bad files, options and output paths for every command, generated (no binaries).

Each :class:`Case` names a command line (``{...}`` fields are files it makes in a corpus folder), the text its
one error line must contain (the culprit: a file name, an option, a tensor and index), and the output path that
must be left exactly as it was. ``python tests/hostile_corpus.py DIR`` writes the corpus and prints the command
lines, to try them by hand; ``tests/test_hostile_input.py`` runs every case through the CLI.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 460272\n")
SPEC = {"name": "tiny", "input_shape": [64], "time_steps": 4, "quantize": True,
        "blocks": [{"kind": "dense", "out": 12}, {"kind": "dense", "out": 10}]}
MODEL_SUFFIXES = (".pt", ".net", ".nir", ".yaml", ".h5")


@dataclass
class Case:
    name: str
    argv: list[str]
    culprit: str  # text the error line must contain (the file, option or tensor at fault)
    make: Callable[[Path], None] = field(default=lambda root: None, repr=False)
    out: str | None = None  # output path (under the corpus folder) that must be left as it was
    code: int = 2


# --------------------------------------------------------------------------------------------- base files


def fixtures_dir() -> Path:
    from snndeploy import settings

    return settings.fixtures_dir() / "lava-dl"


def base(root: Path) -> Path:
    """Valid model files every mutation starts from (made once per corpus folder)."""
    folder = root / "base"
    if (folder / "done").exists():
        return folder
    from snndeploy.export.netx_io import write_netx
    from snndeploy.export.nir_io import write_nir
    from snndeploy.export.slayer_io import from_slayer
    from snndeploy.loader import load_model
    from snndeploy.models.build import build_model
    from snndeploy.models.checkpoint import make_checkpoint, save_checkpoint
    from snndeploy.models.spec import save_spec, spec_from_dict

    folder.mkdir(parents=True, exist_ok=True)
    spec = spec_from_dict(SPEC)
    save_spec(spec, folder / "tiny.yaml")
    import torch

    torch.manual_seed(0)
    model = build_model(spec)
    save_checkpoint(folder / "tiny.pt", make_checkpoint(model))
    net = from_slayer(model)
    write_nir(net, folder / "tiny.nir")
    shutil.copy(fixtures_dir() / "mnist-mlp-128" / "network.net", folder / "mlp128.net")
    write_nir(from_slayer(load_model(folder / "mlp128.net")), folder / "mlp128.nir")
    write_netx(net, folder / "tiny.net")
    rng = np.random.default_rng(0)
    np.save(folder / "spikes.npy", (rng.random((1, 64, 4)) < 0.3).astype(np.float32))
    (folder / "done").write_text("")
    return folder


def _copy(name: str, dest: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        shutil.copy(base(root) / name, root / dest)
    return make


def _write(dest: str, data: bytes) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / dest).write_bytes(data)
    return make


def _edit_h5(src: str, dest: str, edit: Callable) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        import h5py

        shutil.copy(base(root) / src, root / dest)
        with h5py.File(root / dest, "r+") as f:
            edit(f)
    return make


def _set(key: str, index, value) -> Callable:
    def edit(f) -> None:
        data = f[key][()].astype(np.float64)
        data[index] = value
        del f[key]
        f.create_dataset(key, data=data)
    return edit


def _replace(key: str, value) -> Callable:
    def edit(f) -> None:
        del f[key]
        f.create_dataset(key, data=value)
    return edit


def _huge(key: str) -> Callable:
    def edit(f) -> None:  # declared, never written: the file stays small, reading it whole would not
        del f[key]
        f.create_dataset(key, shape=(200_000, 200_000), dtype="f4", chunks=(1000, 1000))
    return edit


def _nir_graph(dest: str, build: Callable) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        import nir

        nir.write(root / dest, build(nir))
    return make


def _lif(nir, n: int, **kw):
    args = {"tau_syn": np.full(n, 2e-3), "tau_mem": np.full(n, 2e-3), "r": np.ones(n), "v_leak": np.zeros(n),
            "v_threshold": np.ones(n)}
    args.update(kw)
    return nir.CubaLIF(**args)


def _cycle_graph(nir):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "w1": nir.Linear(weight=np.ones((4, 4))), "lif1": _lif(nir, 4),
             "w2": nir.Linear(weight=np.ones((4, 4))), "lif2": _lif(nir, 4),
             "w3": nir.Linear(weight=np.ones((4, 4))),
             "output": nir.Output(output_type={"output": np.array([4])})}
    edges = [("input", "w1"), ("w1", "lif1"), ("lif1", "w2"), ("w2", "lif2"), ("lif2", "w3"), ("w3", "lif1"),
             ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)


def _chain(nir, weight, **lif):
    n = weight.shape[0]
    return nir.NIRGraph.from_list(nir.Input(input_type={"input": np.array([weight.shape[1]])}),
                                  nir.Linear(weight=weight), _lif(nir, n, **lif),
                                  nir.Output(output_type={"output": np.array([n])}))


def _missing_edge(nir):
    graph = _chain(nir, np.ones((4, 4)))
    return nir.NIRGraph(nodes=graph.nodes, edges=[*graph.edges, ("cubalif", "ghost")], metadata={}, type_check=False)


def _checkpoint(dest: str, edit: Callable) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        import torch

        data = torch.load(base(root) / "tiny.pt", weights_only=True)
        edit(data)
        torch.save(data, root / dest)
    return make


def _nan_weight(data) -> None:
    key = next(k for k in data["state_dict"] if k.endswith("weight"))
    data["state_dict"][key].view(-1)[3] = float("nan")


class _Payload:
    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.sentinel}",)


def _payload_checkpoint(dest: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        import torch

        torch.save({"spec": _Payload(str(root / "PAYLOAD_RAN")), "state_dict": {}}, root / dest)
    return make


def _npy(dest: str, array) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        np.save(root / dest, array)
    return make


def _huge_npy(dest: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:  # a header declaring 4e10 floats, followed by almost nothing
        header = {"descr": "<f4", "fortran_order": False, "shape": (1, 64, 2_000_000_000)}
        with open(root / dest, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(b"\0" * 64)
    return make


def _all(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        for m in makers:
            m(root)
    return make


def _precious(dest: str, folder: bool = False) -> Callable[[Path], None]:
    """An existing output the user cares about: a bad command must leave it exactly as it was."""
    def make(root: Path) -> None:
        path = root / dest
        if folder:
            path.mkdir(parents=True, exist_ok=True)
            (path / "result.json").write_text('{"precious": true}\n')
        else:
            path.write_text("precious\n")
    return make


# ------------------------------------------------------------------------------------------------- cases


def _bad_file_kinds() -> list[tuple[str, str, Callable[[Path], None], str]]:
    """(case suffix, file name, maker, culprit) for damaged files behind every model suffix."""
    rows = []
    for suffix in MODEL_SUFFIXES:
        stem = suffix.lstrip(".")
        rows += [
            (f"missing{suffix}", f"missing{suffix}", lambda root: None, "not found"),
            (f"empty{suffix}", f"empty{suffix}", _write(f"empty{suffix}", b""), "empty"),
            (f"lfs{suffix}", f"lfs{suffix}", _write(f"lfs{suffix}", LFS_POINTER), "Git LFS pointer"),
            (f"random{suffix}", f"random{suffix}",
             _write(f"random{suffix}", np.random.default_rng(1).bytes(3000)), f"random{suffix}"),
        ]
        if suffix in (".pt", ".net", ".nir"):
            src = {"pt": "tiny.pt", "net": "mlp128.net", "nir": "tiny.nir"}[stem]
            rows.append((f"truncated{suffix}", f"truncated{suffix}", _truncated(src, f"truncated{suffix}"),
                         f"truncated{suffix}"))
    rows.append(("folder.net", "folder.net", lambda root: (root / "folder.net").mkdir(exist_ok=True), "folder"))
    rows.append(("nosuffix", "model", _copy("tiny.pt", "model"), "unknown model file type"))
    return rows


def _truncated(src: str, dest: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        data = (base(root) / src).read_bytes()
        (root / dest).write_bytes(data[: len(data) // 3])
    return make


def _bad_networks() -> list[tuple[str, str, Callable[[Path], None], str]]:
    """(case suffix, file name, maker, culprit) for well-formed files with bad values or structure."""
    nan, inf = float("nan"), float("inf")
    return [
        ("netx-nan-weight", "nanw.net", _edit_h5("mlp128.net", "nanw.net", _set("layer/1/weight", (3, 5), nan)),
         "layer/1/weight[3, 5] is nan"),
        ("netx-inf-weight", "infw.net", _edit_h5("mlp128.net", "infw.net", _set("layer/2/weight", (0, 0), inf)),
         "layer/2/weight[0, 0] is inf"),
        ("netx-weight-5000", "w5000.net",
         _edit_h5("mlp128.net", "w5000.net", _set("layer/1/weight", (2, 7), 5000)), "layer/1/weight[2, 7] = 5000"),
        ("netx-nan-threshold", "nanth.net",
         _edit_h5("mlp128.net", "nanth.net", _replace("layer/1/neuron/vThMant", np.float64(nan))),
         "layer/1/neuron/vThMant is nan"),
        ("netx-decay-range", "decay.net",
         _edit_h5("mlp128.net", "decay.net", _replace("layer/0/neuron/vDecay", np.int64(9999))),
         "layer/0/neuron/vDecay = 9999"),
        ("netx-huge-dataset", "huge.net", _edit_h5("mlp128.net", "huge.net", _huge("layer/1/weight")),
         "dataset 'layer/1/weight' declares shape (200000, 200000)"),
        ("netx-no-layers", "nolayer.net", _edit_h5("mlp128.net", "nolayer.net", lambda f: f.__delitem__("layer")),
         "no 'layer' group"),
        ("nir-nan-weight", "nanw.nir", _nir_graph("nanw.nir", lambda nir: _chain(nir, _with(np.ones((4, 4)), nan))),
         "node 'linear' weight[0, 1] is nan"),
        ("nir-inf-weight", "infw.nir", _nir_graph("infw.nir", lambda nir: _chain(nir, _with(np.ones((4, 4)), inf))),
         "node 'linear' weight[0, 1] is inf"),
        ("nir-nan-threshold", "nanth.nir",
         _nir_graph("nanth.nir", lambda nir: _chain(nir, np.ones((4, 4)), v_threshold=np.array([1, nan, 1, 1.]))),
         "node 'cubalif' v_threshold[1] is nan"),
        ("nir-zero-size", "zero.nir", _nir_graph("zero.nir", lambda nir: _chain(nir, np.ones((0, 4)))),
         "zero-size"),
        ("nir-cycle", "cycle.nir", _nir_graph("cycle.nir", _cycle_graph), "cycle"),
        ("nir-missing-node", "ghost.nir", _nir_graph("ghost.nir", _missing_edge), "'ghost'"),
        ("nir-unknown-type", "unknown.nir",
         _edit_h5("tiny.nir", "unknown.nir", _replace_type("Bogus")), "unknown NIR node type"),
        ("nir-huge-dataset", "huge.nir", _edit_h5("mlp128.nir", "huge.nir", _huge_nir), "declares shape (200000"),
        ("pt-nan-weight", "nanw.pt", _checkpoint("nanw.pt", _nan_weight), "synapse.weight[0, 3, 0, 0, 0] is nan"),
        ("pt-quantized-clipped", "clipq.pt", _checkpoint("clipq.pt", _big_quantized_weight),
         "synapse.weight[0, 0, 0, 0, 0] = 10 is outside the 8-bit weight range"),
        ("pt-payload", "payload.pt", _payload_checkpoint("payload.pt"), "asks to run code"),
        ("pt-not-checkpoint", "list.pt", _checkpoint_obj("list.pt", [1, 2, 3]), "not an snndeploy checkpoint"),
        ("yaml-enormous-layer", "huge.yaml", _spec("huge.yaml", out=10**9), "huge.yaml"),
        ("yaml-zero-layer", "zero.yaml", _spec("zero.yaml", out=0), "zero.yaml"),
        ("yaml-binary", "binary.yaml", _write("binary.yaml", b"\x00\x01\x02" * 100), "binary.yaml"),
        ("yaml-broken", "broken.yaml", _write("broken.yaml", b"name: [unclosed\n  blocks: {"), "broken.yaml"),
    ]


def _with(arr: np.ndarray, value: float) -> np.ndarray:
    arr = arr.astype(np.float64)
    arr[0, 1] = value
    return arr


def _replace_type(new: str) -> Callable:
    def edit(f) -> None:
        key = next(f"node/nodes/{k}/type" for k in f["node/nodes"] if k not in ("input", "output"))
        del f[key]
        f.create_dataset(key, data=new.encode())
    return edit


def _huge_nir(f) -> None:
    key = next(f"node/nodes/{k}/weight" for k in f["node/nodes"] if "weight" in f[f"node/nodes/{k}"])
    _huge(key)(f)


def _checkpoint_obj(dest: str, obj) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        import torch

        torch.save(obj, root / dest)
    return make


def _spec(dest: str, out: int) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        text = json.dumps({**SPEC, "blocks": [{"kind": "dense", "out": out}, {"kind": "dense", "out": 10}]})
        (root / dest).write_text(text)  # JSON is YAML
    return make


MODEL_COMMANDS = {  # command -> argv after the model (out is the output path the case must leave alone)
    "export": (["--to", "nir", "--out", "{out}"], "exported.nir"),
    "export-verify": (["--to", "netx", "--verify", "--out", "{out}"], "verified.net"),
    "estimate": (["--plot", "{out}"], "estimate.png"),
    "simulate": (["--input", "{base}/spikes.npy", "--out", "{out}"], "simulated"),
    "deploy": (["--samples", "1", "--steps", "4", "--out", "{out}"], "bundle"),
    "evaluate": (["--data", "uci-digits", "--test-subset", "4", "--threads", "1"], None),
    "train": (["--data", "uci-digits", "--epochs", "1", "--subset", "8", "--threads", "1", "--out", "{out}"], "run"),
    "prune": (["--method", "magnitude", "--sparsity", "0.5", "--data", "uci-digits", "--out", "{out}"], "pruned"),
    "verify": (["{base}/tiny.nir"], None),
}


def _argv(command: str, model: str, rest: list[str]) -> list[str]:
    name = "export" if command == "export-verify" else command
    return [name, model, *rest]


def _model_cases() -> list[Case]:
    cases = []
    rows = _bad_file_kinds() + _bad_networks()
    for command, (rest, out) in MODEL_COMMANDS.items():
        for tag, file, make, culprit in rows:
            if not _applies(command, tag):
                continue
            out_name = f"{command}-{tag}-{out}" if out else None
            argv = _argv(command, "{root}/" + file, [a.replace("{out}", "{root}/" + (out_name or "")) for a in rest])
            cases.append(Case(f"{command}:{tag}", argv, culprit, make, out=out_name))
    return cases


# every command reads every file kind; the value and structure cases run where the reader differs
VALUE_CASES_FOR = {
    "export": None,  # all
    "export-verify": ("netx-nan-weight", "netx-weight-5000", "nir-nan-threshold", "nir-cycle", "pt-nan-weight"),
    "estimate": ("pt-quantized-clipped", "netx-nan-weight", "netx-inf-weight", "nir-nan-weight",
                 "nir-nan-threshold", "nir-cycle", "nir-unknown-type", "nir-huge-dataset", "netx-huge-dataset",
                 "pt-nan-weight", "pt-payload"),
    "simulate": ("pt-quantized-clipped", "netx-nan-weight", "netx-weight-5000", "netx-nan-threshold",
                 "nir-nan-weight", "nir-cycle", "nir-zero-size", "pt-nan-weight"),
    "deploy": ("pt-quantized-clipped", "netx-nan-weight", "netx-weight-5000", "nir-nan-threshold", "pt-nan-weight"),
    "evaluate": ("pt-quantized-clipped", "netx-nan-weight", "pt-nan-weight", "pt-payload", "yaml-enormous-layer"),
    "train": ("netx-nan-weight", "pt-nan-weight", "pt-payload", "yaml-enormous-layer", "yaml-zero-layer",
              "yaml-broken"),
    "prune": ("netx-nan-weight", "pt-nan-weight", "yaml-enormous-layer"),
    "verify": ("netx-nan-weight", "nir-nan-weight", "pt-payload"),
}
FILE_CASES_FOR = {  # commands that take every damaged-file case (others take a sample)
    "export": None, "estimate": None, "simulate": None, "verify": None, "deploy": None,
    "export-verify": ("empty.pt", "lfs.net", "random.nir", "truncated.net"),
    "evaluate": ("empty.pt", "lfs.pt", "random.net", "truncated.pt", "lfs.yaml", "folder.net"),
    "train": ("empty.pt", "lfs.net", "random.yaml", "truncated.pt", "missing.yaml", "lfs.nir"),
    "prune": ("empty.net", "lfs.pt", "random.pt", "truncated.net"),
}


def _applies(command: str, tag: str) -> bool:
    values = {t for t, *_ in _bad_networks()}
    table = VALUE_CASES_FOR if tag in values else FILE_CASES_FOR
    chosen = table.get(command, ())
    if command in ("simulate", "deploy", "verify", "export-verify") and tag.endswith((".yaml", ".h5")) \
            and tag.startswith("missing"):
        return False
    return chosen is None or tag in chosen


def _option_cases() -> list[Case]:
    m, spikes = "{base}/tiny.pt", "{base}/spikes.npy"
    pre = _precious
    c = [
        # usage errors (click): unknown command/option, missing argument, bad choice, not a number, out of range
        Case("usage:unknown-command", ["exportt", m], "exportt"),
        Case("usage:unknown-option", ["export", m, "--to", "nir", "--out", "{root}/o1.nir", "--fast"], "--fast",
             out="o1.nir"),
        Case("usage:missing-argument", ["verify", m], "EXPORTED"),
        Case("usage:missing-option", ["export", m, "--to", "nir"], "--out"),
        Case("usage:bad-choice", ["export", m, "--to", "tflite", "--out", "{root}/o2"], "--to", out="o2"),
        Case("usage:not-a-number", ["simulate", m, "--samples", "many"], "--samples"),
        Case("usage:folder-for-file", ["export", "{root}", "--to", "nir", "--out", "{root}/o3.nir"], "directory",
             out="o3.nir"),
        Case("usage:bad-precision", ["simulate", m, "--precision", "double"], "--precision"),
        # option ranges, every command
        Case("simulate:steps-0", ["simulate", m, "--steps", "0"], "--steps"),
        Case("simulate:steps-neg", ["simulate", m, "--steps", "-1"], "--steps"),
        Case("simulate:samples-0", ["simulate", m, "--samples", "0", "--out", "{root}/s0"], "--samples", out="s0"),
        Case("simulate:timeout-0", ["simulate", m, "--timeout", "0"], "--timeout"),
        Case("simulate:chunk-0", ["simulate", m, "--chunk-steps", "0"], "--chunk-steps"),
        Case("simulate:max-rate", ["simulate", m, "--dataset", "uci-digits", "--max-rate", "2"], "--max-rate"),
        Case("simulate:dataset", ["simulate", m, "--dataset", "imagenet"], "imagenet"),
        Case("simulate:workers-0", ["simulate", m, "--input", spikes, "--workers", "0"], "--workers"),
        Case("simulate:copies-0", ["simulate", m, "--input", spikes, "--copies", "0"], "--copies"),
        Case("verify:workers-0", ["verify", m, "{base}/tiny.nir", "--workers", "0"], "--workers"),
        Case("simulate:probe", ["simulate", m, "--input", spikes, "--probe", "layer99"], "layer99"),
        Case("deploy:samples-0", ["deploy", m, "--samples", "0", "--out", "{root}/d0"], "--samples", out="d0"),
        Case("deploy:steps-neg", ["deploy", m, "--steps", "-1", "--out", "{root}/d1"], "--steps", out="d1"),
        Case("deploy:timeout-neg", ["deploy", m, "--timeout", "-5", "--out", "{root}/d2"], "--timeout", out="d2"),
        Case("deploy:dataset", ["deploy", m, "--dataset", "cifar", "--out", "{root}/d3"], "cifar", out="d3"),
        Case("deploy:target", ["deploy", m, "--target", "loihi3"], "--target"),
        Case("verify:samples-0", ["verify", m, "{base}/tiny.nir", "--samples", "0"], "--samples"),
        Case("verify:steps-0", ["verify", m, "{base}/tiny.nir", "--steps", "0"], "--steps"),
        Case("verify:rate", ["verify", m, "{base}/tiny.nir", "--rate", "1.5"], "--rate"),
        Case("verify:dt", ["verify", m, "{base}/tiny.nir", "--dt", "0"], "--dt"),
        Case("export:sparse-below", ["export", m, "--to", "lava", "--out", "{root}/e1", "--sparse-below", "-1"],
             "--sparse-below", out="e1"),
        Case("train:epochs-0", ["train", m, "--data", "uci-digits", "--epochs", "0", "--out", "{root}/t0"],
             "--epochs", out="t0"),
        Case("train:epochs-neg", ["train", m, "--data", "uci-digits", "--epochs", "-3", "--out", "{root}/t1"],
             "--epochs", out="t1"),
        Case("train:threads-0", ["train", m, "--data", "uci-digits", "--epochs", "1", "--threads", "0", "--out",
                                 "{root}/t2"], "--threads", out="t2"),
        Case("train:batch-0", ["train", m, "--data", "uci-digits", "--epochs", "1", "--batch-size", "0", "--out",
                               "{root}/t3"], "--batch-size", out="t3"),
        Case("train:subset-0", ["train", m, "--data", "uci-digits", "--epochs", "1", "--subset", "0", "--out",
                                "{root}/t4"], "--subset", out="t4"),
        Case("train:val-fraction", ["train", m, "--data", "uci-digits", "--epochs", "1", "--val-fraction", "1.5",
                                    "--out", "{root}/t5"], "--val-fraction", out="t5"),
        Case("train:lr-0", ["train", m, "--data", "uci-digits", "--epochs", "1", "--lr", "0", "--out", "{root}/t6"],
             "--lr", out="t6"),
        Case("train:true-rate", ["train", m, "--data", "uci-digits", "--epochs", "1", "--true-rate", "3", "--out",
                                 "{root}/t7"], "--true-rate", out="t7"),
        Case("train:dataset", ["train", m, "--data", "imagenet", "--epochs", "1", "--out", "{root}/t8"], "imagenet",
             out="t8"),
        Case("train:max-rate", ["train", m, "--data", "uci-digits", "--epochs", "1", "--max-rate", "-1", "--out",
                                "{root}/t9"], "--max-rate", out="t9"),
        Case("train:non-empty-out", ["train", m, "--data", "uci-digits", "--epochs", "1", "--out", "{root}/t10"],
             "not empty", pre("t10", folder=True), out="t10"),
        Case("evaluate:threads-0", ["evaluate", m, "--data", "uci-digits", "--threads", "0"], "--threads"),
        Case("evaluate:test-subset-0", ["evaluate", m, "--data", "uci-digits", "--test-subset", "0"],
             "--test-subset"),
        Case("evaluate:dataset", ["evaluate", m, "--data", "mnist2"], "mnist2"),
        Case("prune:sparsity-high", ["prune", m, "--method", "magnitude", "--sparsity", "1.5", "--data",
                                     "uci-digits", "--out", "{root}/p0"], "--sparsity", out="p0"),
        Case("prune:sparsity-neg", ["prune", m, "--method", "magnitude", "--sparsity", "-0.1", "--data",
                                    "uci-digits", "--out", "{root}/p1"], "--sparsity", out="p1"),
        Case("prune:method", ["prune", m, "--method", "magnitudee", "--sparsity", "0.5", "--out", "{root}/p2"],
             "--method", out="p2"),
        Case("prune:dataset", ["prune", m, "--method", "magnitude", "--sparsity", "0.5", "--data", "imagenet",
                               "--out", "{root}/p3"], "imagenet", out="p3"),
        Case("prune:batch-0", ["prune", m, "--method", "magnitude", "--sparsity", "0.5", "--data", "uci-digits",
                               "--batch-size", "0", "--out", "{root}/p4"], "--batch-size", out="p4"),
        Case("prune:keep-channels", ["prune", m, "--method", "l1filter", "--keep-channels", "0", "--data",
                                     "uci-digits", "--out", "{root}/p5"], "--keep-channels", out="p5"),
        Case("estimate:target", ["estimate", m, "--target", "loihi9"], "loihi9"),
        Case("estimate:budget", ["estimate", m, "--budget", "cores=-1"], "cores=-1"),
        Case("estimate:budget-file", ["estimate", m, "--budget", "{root}/budget.yaml"], "budget.yaml",
             _write("budget.yaml", b"\x00\xff\xfe binary")),
        Case("estimate:activity", ["estimate", m, "--activity", "{root}/act.json"], "act.json",
             _write("act.json", b"{not json")),
        Case("estimate:activity-nan", ["estimate", m, "--activity", "{root}/actnan.json"], "input.spikes",
             _write("actnan.json", json.dumps({"schema": "snndeploy-activity/1", "source": "lava", "samples": 1,
                                               "time_steps": 4, "input": {"neurons": 64, "spikes": float("nan")},
                                               "layers": [{"neurons": 12, "spikes": 1}, {"neurons": 10,
                                                                                         "spikes": 1}]}).encode())),
        Case("pipeline:missing-config", ["pipeline", "{root}/nope.yaml"], "nope.yaml"),
        Case("pipeline:until", ["pipeline", "--until", "deploy"], "--until"),
        Case("pipeline:lfs-config", ["pipeline", "{root}/plfs.yaml", "--out", "{root}/prun1"], "Git LFS pointer",
             _write("plfs.yaml", LFS_POINTER), out="prun1"),
        Case("pipeline:binary-config", ["pipeline", "{root}/pbin.yaml", "--out", "{root}/prun2"], "pbin.yaml",
             _write("pbin.yaml", b"\x00\x01\x02binary"), out="prun2"),
        Case("pipeline:broken-config", ["pipeline", "{root}/pbroken.yaml", "--out", "{root}/prun3"],
             "not valid YAML", _write("pbroken.yaml", b"name: [unclosed\n"), out="prun3"),
        Case("pipeline:empty-config", ["pipeline", "{root}/pempty.yaml", "--out", "{root}/prun4"], "pempty.yaml",
             _write("pempty.yaml", b""), out="prun4"),
        Case("pipeline:folder-config", ["pipeline", "{root}", "--out", "{root}/prun5"], "directory", out="prun5"),
        Case("pipeline:fit-syntax", ["pipeline", "--fit", "loihi2cores", "--out", "{root}/prun6"], "loihi2cores",
             out="prun6"),
        Case("prune:config-lfs", ["prune", m, "--method", "gmp", "--sparsity", "0.5", "--data", "uci-digits",
                                  "--config", "{root}/mlfs.yaml", "--out", "{root}/p6"], "Git LFS pointer",
             _write("mlfs.yaml", LFS_POINTER), out="p6"),
        Case("estimate:profile-lfs", ["estimate", m, "--target", "{root}/tlfs.yaml"], "tlfs.yaml",
             _write("tlfs.yaml", LFS_POINTER)),
        Case("compare:no-runs", ["compare", "{root}/norun1", "{root}/norun2"], "norun1"),
        # input spike files
        Case("verify:nan-spikes", ["verify", m, "{base}/tiny.nir", "--inputs", "{root}/nan.npy"],
             "input spikes[0, 0, 1] is nan", _npy("nan.npy", _spikes_with(float("nan")))),
        Case("verify:negative-spikes", ["verify", m, "{base}/tiny.nir", "--inputs", "{root}/neg.npy"],
             "input spikes[0, 0, 1] = -1 is out of range (must be >= 0)", _npy("neg.npy", _spikes_with(-1.0))),
        Case("verify:huge-npy", ["verify", m, "{base}/tiny.nir", "--inputs", "{root}/huge.npy"], "huge.npy",
             _huge_npy("huge.npy")),
        Case("verify:object-npy", ["verify", m, "{base}/tiny.nir", "--inputs", "{root}/obj.npy"], "obj.npy",
             _write("obj.npy", _object_npy())),
        Case("verify:lfs-npy", ["verify", m, "{base}/tiny.nir", "--inputs", "{root}/lfs.npy"], "Git LFS pointer",
             _write("lfs.npy", LFS_POINTER)),
        Case("verify:shape-npy", ["verify", m, "{base}/tiny.nir", "--inputs", "{root}/shape.npy"], "shape.npy",
             _npy("shape.npy", np.zeros((1, 7, 4), np.float32))),
        Case("simulate:nan-spikes", ["simulate", m, "--input", "{root}/snan.npy", "--out", "{root}/sim-nan"],
             "input spikes[0, 0, 1] is nan", _npy("snan.npy", _spikes_with(float("nan"))), out="sim-nan"),
        Case("simulate:huge-npy", ["simulate", m, "--input", "{root}/shuge.npy"], "shuge.npy",
             _huge_npy("shuge.npy")),
        Case("deploy:negative-spikes", ["deploy", m, "--input", "{root}/dneg.npy", "--out", "{root}/d-neg"],
             "input spikes[0, 0, 1] = -1", _npy("dneg.npy", _spikes_with(-1.0)), out="d-neg"),
        # output paths
        Case("export:out-under-file", ["export", m, "--to", "nir", "--out", "{root}/afile/x.nir"], "afile",
             _precious("afile"), out="afile"),
        Case("export:out-exists", ["export", m, "--to", "nir", "--out", "{root}/keep.nir"], "--force",
             _precious("keep.nir"), out="keep.nir"),
        Case("export:out-is-folder", ["export", m, "--to", "nir", "--out", "{root}/keepdir", "--force"], "folder",
             _precious("keepdir", folder=True), out="keepdir"),
        Case("simulate:out-under-file", ["simulate", m, "--out", "{root}/sfile/run"], "sfile", _precious("sfile"),
             out="sfile"),
        Case("train:out-under-file", ["train", m, "--data", "uci-digits", "--epochs", "1", "--out",
                                      "{root}/tfile/run"], "tfile", _precious("tfile"), out="tfile"),
        Case("prune:out-under-file", ["prune", m, "--method", "magnitude", "--sparsity", "0.5", "--data",
                                      "uci-digits", "--out", "{root}/pfile/run"], "pfile", _precious("pfile"),
             out="pfile"),
        Case("estimate:plot-under-file", ["estimate", m, "--plot", "{root}/efile/p.png"], "efile",
             _precious("efile"), out="efile"),
        Case("deploy:out-exists", ["deploy", m, "--out", "{root}/dkeep"], "--force", _precious("dkeep", True),
             out="dkeep"),
    ]
    # --force with a bad input never replaces what is there
    for tag, file, make, culprit in _bad_networks()[:6]:
        out = f"force-{tag}.nir"
        c.append(Case(f"export:force-{tag}", ["export", "{root}/" + file, "--to", "nir", "--out", "{root}/" + out,
                                              "--force"], culprit, _all(make, _precious(out)), out=out))
        folder = f"force-{tag}-lava"
        c.append(Case(f"export-lava:force-{tag}", ["export", "{root}/" + file, "--to", "lava", "--out",
                                                   "{root}/" + folder, "--force"], culprit,
                      _all(make, _precious(folder, folder=True)), out=folder))
    c.append(Case("export:clip-weights-accepted", ["export", "{root}/w5000c.net", "--to", "nir", "--out",
                                                   "{root}/clipped.nir", "--clip-weights"], "",
                  _edit_h5("mlp128.net", "w5000c.net", _set("layer/1/weight", (2, 7), 5000)), code=0))
    c.append(Case("export:quantized-clipped-accepted", ["export", "{root}/clipq2.pt", "--to", "nir", "--out",
                                                        "{root}/clipq2.nir", "--clip-weights"], "",
                  _checkpoint("clipq2.pt", _big_quantized_weight), code=0))
    c.append(Case("export:netx-out-of-range", ["export", "{root}/big.pt", "--to", "netx", "--out", "{root}/big.net"],
                  "weight[0, 0] = 640", _checkpoint("big.pt", _big_weight), out="big.net"))
    c.append(Case("export:netx-clipped", ["export", "{root}/big.pt", "--to", "netx", "--out", "{root}/bigc.net",
                                          "--clip-weights"], "", _checkpoint("big.pt", _big_weight), code=0))
    return c


def _big_quantized_weight(data) -> None:
    key = next(k for k in data["state_dict"] if k.endswith("weight"))
    data["state_dict"][key].view(-1)[0] = 10.0  # lava-dl's 8-bit pre-hook would run it as about 4


def _big_weight(data) -> None:
    key = next(k for k in data["state_dict"] if k.endswith("weight"))
    data["state_dict"][key].view(-1)[0] = 10.0  # 640 in Loihi integers: beyond 8 bits
    data["spec"]["quantize"] = False  # a float model (a quantized one computes with SLAYER's clipped weights)


def _spikes_with(value: float) -> np.ndarray:
    x = np.zeros((1, 64, 4), np.float64)
    x[0, 0, 1] = value
    return x


def _object_npy() -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    return buf.getvalue() + b"\x80\x04N."


def cases() -> list[Case]:
    return _model_cases() + _option_cases()


def render(argv: list[str], root: Path) -> list[str]:
    return [a.replace("{root}", str(root)).replace("{base}", str(root / "base")) for a in argv]


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "hostile-corpus").resolve()
    root.mkdir(parents=True, exist_ok=True)
    base(root)
    for case in cases():
        case.make(root)
        print(f"{case.name}\texit {case.code}\tsnndeploy {' '.join(render(case.argv, root))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
