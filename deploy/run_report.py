"""A pipeline run's report: PNG plots and one self-contained ``report.html``; and the comparison of several runs."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from snndeploy.atomic import write_json, write_text
from snndeploy.errors import UserError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return str(path)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


# ------------------------------------------------------------------------------------------------------ plots
def accuracy_points(results: dict) -> list[tuple[float, float, str]]:
    """(sparsity, accuracy, label): the dense model, every pruning round, and the Lava run of the final model."""
    points = []
    if "model" in results:
        points.append((0.0, results["model"]["accuracy"], "dense"))
    prune = results.get("prune")
    for entry in (prune or {}).get("history", []):
        if entry.get("accuracy") is not None:
            points.append((entry["sparsity"], entry["accuracy"], f"round {entry['round'] + 1}"))
    if prune and results.get("simulate", {}).get("accuracy") is not None:
        final = prune["sparsity"]["channels" if prune["structured"] else "weights"]
        points.append((final, results["simulate"]["accuracy"], "Lava fixed_pt"))
    return points


def plot_accuracy(results: dict, path: Path) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    points = accuracy_points(results)
    torch_pts = [(s, a) for s, a, label in points if label != "Lava fixed_pt"]
    ax.plot([s for s, _ in torch_pts], [100 * a for _, a in torch_pts], "o-", label="torch (SLAYER)")
    for s, a, label in points:
        if label == "Lava fixed_pt":
            ax.plot([s], [100 * a], "s", color="tab:red", markersize=9, label="Lava fixed_pt (test samples)")
    if points:
        ax.axhline(100 * points[0][1], color="grey", ls="--", lw=1, label="dense model")
    structured = results.get("prune", {}).get("structured")
    ax.set_xlabel("channel sparsity" if structured else "weight sparsity")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs sparsity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_layers(results: dict, path: Path) -> str | None:
    prune = results.get("prune")
    if not prune:
        return None
    plt = _pyplot()
    rows = prune["sparsity"]["per_layer"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r["layer"] for r in rows]
    if prune["structured"]:
        ax.bar(names, [r["channels"] for r in rows], color="lightgrey", label="before")
        ax.bar(names, [r["live_channels"] for r in rows], color="tab:blue", label="after")
        ax.set_ylabel("channels / neurons")
        ax.set_title("Width per layer")
        ax.legend(fontsize=8)
    else:
        ax.bar(names, [100 * r["sparsity"] for r in rows], color="tab:blue")
        ax.set_ylabel("weight sparsity (%)")
        ax.set_ylim(0, 100)
        ax.set_title("Sparsity per layer")
    return _save(fig, path)


def plot_activity(results: dict, path: Path) -> str | None:
    sim = results.get("simulate")
    if not sim:
        return None
    plt = _pyplot()
    steps = max(1, sim["samples"] * sim["steps_per_sample"])
    rows = sim["layers"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["name"] for r in rows], [r["spikes"] / (r["neurons"] * steps) for r in rows], color="tab:orange")
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title(f"Spike activity on Lava ({sim['samples']} test samples)")
    return _save(fig, path)


def plot_cores(results: dict, path: Path) -> str | None:
    estimate = results.get("estimate")
    if not estimate or not estimate["targets"]:
        return None
    target = estimate["targets"][0]
    plt = _pyplot()
    layers = target["layers"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [str(layer["layer"]) for layer in layers]
    cores = [layer.get("cores") or 0 for layer in layers]
    low = [c - (layer["cores_range"][0] or c) for c, layer in zip(cores, layers, strict=True)]
    high = [(layer["cores_range"][1] or c) - c for c, layer in zip(cores, layers, strict=True)]
    ax.bar(names, cores, color="tab:green", yerr=[low, high], capsize=6, label="cores per layer (range)")
    ax.legend(fontsize=8, loc="upper left")
    total, budget = target["cores"], target["budget"].get("cores")
    ax.set_ylabel("cores")
    ax.set_title(f"{target['title']}: {total} cores in all ({target['verdict']})")
    if budget:
        ax.text(0.98, 0.95, f"budget {budget} cores", transform=ax.transAxes, ha="right", va="top")
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------------- html
def _img(path: str | None, alt: str) -> str:
    if not path or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f"{html.escape(alt)}</figcaption></figure>"


def _table(header: list[str] | None, rows: list[list[Any]]) -> str:
    head = "" if header is None else "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}.grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:520px}
.ok{color:#07702a;font-weight:bold}.bad{color:#b00020;font-weight:bold}figcaption{font-size:.85em;color:#555}"""


def _headline(results: dict) -> list[list[Any]]:
    rows = [["dense accuracy (torch)", _pct(results.get("model", {}).get("accuracy"))]]
    prune = results.get("prune")
    if prune:
        rows += [["method", f"{prune['method']} ({'structured' if prune['structured'] else 'unstructured'})"],
                 ["pruned accuracy (torch)", _pct(prune["accuracy_after"])],
                 ["weight sparsity", f"{prune['sparsity']['weights']:.3f}"],
                 ["channel sparsity", f"{prune['sparsity']['channels']:.3f}"],
                 ["live weights", f"{prune['model']['live_weights']} of {prune['model']['weights']}"],
                 ["SynOps per sample (torch)", f"{prune['synops_per_sample']['total']:.0f}"]]
    if "simulate" in results:
        sim = results["simulate"]
        if sim.get("torch_accuracy") is not None:
            rows.append([f"on the same {sim['samples']} test samples: torch / Lava fixed_pt",
                         f"{_pct(sim['torch_accuracy'])} / {_pct(sim.get('accuracy'))}"])
        else:
            rows.append(["accuracy on Lava fixed_pt", f"{_pct(sim.get('accuracy'))} ({sim['samples']} test samples)"])
    for t in results.get("estimate", {}).get("targets", []):
        rows.append([f"{t['title']}", f"{t['verdict']}: {t['cores']} cores (range {t['cores_range']}), "
                                      f"{t['chips']} chip(s)"])
    return rows


def _verify_html(verify: dict | None) -> str:
    if not verify:
        return ""
    precision = verify.get("precision", verify.get("mode"))  # "mode" in runs written before the rename
    graded = any(lay["variable"] == "graded" for lay in verify["layers"])  # a sigma-delta network
    what = ("the torch reference's graded outputs at every layer and step" if graded else
            "the torch model spike for spike")
    verdict = (f'<p class="ok">The Lava network built from the NIR file reproduces {what} '
               f"({verify['samples']} test samples x {verify['steps']} steps, {precision}).</p>"
               if verify["agree"] else
               f'<p class="bad">Lava and torch diverge: first at {html.escape(json.dumps(verify["first"]))}</p>')
    rows = [[lay["name"], lay["variable"], lay["torch_spikes"], lay["lava_spikes"], lay["mismatches"],
             lay["compared"]] for lay in verify["layers"]]
    return verdict + _table(["layer", "variable", "torch spikes", "Lava spikes", "mismatches", "compared"], rows) + \
        f"<p>Alignment: {html.escape(verify['alignment'])}</p>" + _img(verify.get("plot"), "torch vs Lava rasters")


def _cost_html(results: dict) -> str:
    prune = results.get("prune")
    stage_rows = [[name, res.get("seconds")] for name, res in results.items() if name != "report"]
    out = ""
    if prune:
        cost = prune["cost"]
        out += _table(["epochs", "optimizer steps", "calibration batches", "wall time (s)"],
                      [[cost["epochs"], cost["optimizer_steps"], cost["calibration_batches"],
                        f"{cost['wall_s']:.1f}"]])
    return out + "<p>Seconds per stage of this run:</p>" + _table(["stage", "seconds"], stage_rows)


def _estimate_html(estimate: dict | None) -> str:
    if not estimate:
        return ""
    rows = []
    for t in estimate["targets"]:
        for check in t["checks"]:
            rows.append([t["target"], check["limit"], check["need"], check["have"], check["fits"], check["basis"]])
    return _table(["target", "limit", "need", "have", "fits", "basis"], rows)


def write_run_report(config, results: dict, folder: Path) -> dict:
    """Plots and ``report.html`` for one run; returns their paths."""
    plots = {"accuracy": plot_accuracy(results, folder / "accuracy_vs_sparsity.png"),
             "layers": plot_layers(results, folder / "layers.png"),
             "activity": plot_activity(results, folder / "activity.png"),
             "cores": plot_cores(results, folder / "cores.png")}
    name = html.escape(config.name)
    fit = results.get("fit")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>snndeploy: {name}</title>"
             f"<style>{CSS}</style></head><body><h1>snndeploy run: {name}</h1>",
             f"<p>Data: {html.escape(config.data)}. Flow: model &rarr; prune &rarr; NIR &rarr; Lava / estimate.</p>",
             _table(None, _headline(results))]
    if fit:
        parts.append(f"<h2>Fit to budget</h2><p>{html.escape(fit['summary'])}</p>" + _table(
            ["sparsity", "cores", "verdict"], [[t["sparsity"], t["cores"], t["verdict"]] for t in fit["trials"]]))
    parts += ["<h2>Accuracy and structure</h2><div class='grid'>", _img(plots["accuracy"], "accuracy vs sparsity"),
              _img(plots["layers"], "per-layer sparsity / width"), "</div>",
              "<h2>Verification on Lava</h2>", _verify_html(results.get("verify")),
              "<h2>Activity and hardware</h2><div class='grid'>", _img(plots["activity"], "spike activity per layer"),
              _img(plots["cores"], "Loihi 2 cores per layer"),
              _img(results.get("estimate", {}).get("plot"), "cores and per-core utilization, every target"), "</div>",
              _estimate_html(results.get("estimate")),
              "<p>Energy and latency in estimate/estimate.json are ranges from published per-operation figures "
              "(Loihi 2 uses Loihi 1 figures as a labelled proxy), not measurements.</p>",
              "<h2>Pruning cost</h2>", _cost_html(results), "</body></html>"]
    page = write_text(folder / "report.html", "\n".join(parts))
    return {"html": str(page), "plots": {k: v for k, v in plots.items() if v}}


# ---------------------------------------------------------------------------------------------------- compare
def _load_run(folder: Path) -> dict:
    summary = folder / "summary.json"
    if not summary.is_file():
        raise UserError("not a finished pipeline run (no summary.json)", folder)
    results = {}
    for marker in folder.glob("*/stage.json"):
        try:
            data = json.loads(marker.read_text())
        except json.JSONDecodeError:
            raise UserError("corrupt stage record", marker) from None
        results[data["stage"]] = data["result"]
    return {"folder": str(folder), "summary": json.loads(summary.read_text()), "results": results}


def write_comparison(folders: list[Path], out: Path) -> dict:
    """A table, an accuracy-vs-sparsity plot of all runs, and ``compare.html`` in ``out``."""
    runs = [_load_run(f) for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    header = ["run", "method", "sparsity", "dense acc", "pruned acc", "Lava acc", "verified", "Loihi 2 cores",
              "prune epochs", "prune wall s"]
    rows = []
    for run in runs:
        r, s = run["results"], run["summary"]
        prune = r.get("prune", {})
        loihi = next((t for t in s["targets"] if t["target"].startswith("loihi2")), {})
        rows.append([s["name"], prune.get("method", "none"),
                     f"{prune['sparsity']['weights']:.3f}" if prune else "0",
                     _pct(s["dense_accuracy"]), _pct(s["pruned_accuracy"]), _pct(s["lava_accuracy"]),
                     s["verified"], loihi.get("cores"), prune.get("cost", {}).get("epochs"),
                     prune.get("cost", {}).get("wall_s")])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run in runs:
        pts = [(sp, acc) for sp, acc, label in accuracy_points(run["results"]) if label != "Lava fixed_pt"]
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", label=run["summary"]["name"])
    ax.set_xlabel("sparsity")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    png = _save(fig, out / "compare.png")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>snndeploy compare</title><style>{CSS}</style>"
            f"</head><body><h1>snndeploy: {len(runs)} runs side by side</h1>{_table(header, rows)}"
            f"{_img(png, 'accuracy vs sparsity of every run')}</body></html>")
    html_path = write_text(out / "compare.html", page)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows])
    result = {"runs": [r["folder"] for r in runs], "header": header, "rows": rows, "html": str(html_path),
              "plot": png, "text": text}
    write_json(out / "compare.json", result)
    return result
