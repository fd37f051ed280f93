"""Run the benchmark suite and refresh the generated index in docs/benchmarks.md.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--list]

Each benchmark is its own script (it prints its table and writes JSON/PNG under benchmarks/results/). This entry
point runs them one after another with full or ``--quick`` settings, records the exact command, wall time and
exit code of each in benchmarks/results/run_all.json, and rewrites the block between the ``run_all`` markers in
docs/benchmarks.md (the hand-written analysis sections around it are left alone).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"


@dataclass(frozen=True)
class Benchmark:
    name: str
    issue: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    outputs: tuple[str, ...]  # result files (relative to benchmarks/results)


SUITE = (
    Benchmark("train_accuracy_mlp", "#3 training", "train_accuracy.py", ("mnist_mlp",),
              ("mnist_mlp", "--epochs", "1", "--subset", "2000", "--test-subset", "500"), ("train_mnist_mlp.json",)),
    Benchmark("train_overhead", "#3 training", "train_overhead.py", (), ("--samples", "256", "--repeats", "1"),
              ("train_overhead.json",)),
    Benchmark("prune_criticality", "#4 criticality", "prune_criticality.py", (),
              ("--sparsities", "0.9", "--steps", "1", "--no-imp", "--subset", "1000", "--test-subset", "500"),
              ("prune_criticality_mlp",)),
    Benchmark("prune_gradr", "#5 Grad R", "prune_gradr.py", (), ("--subset", "1000", "--test-subset", "500",
                                                                 "--epochs", "1", "--dense-epochs", "1"),
              ("prune_gradr.json", "prune_gradr.png")),
    Benchmark("prune_sca", "#6 SCA", "prune_sca.py", (), ("--cases", "nmnist", "--keep", "0.5", "--epochs", "2",
                                                          "--dense-epochs", "1", "--subset", "200"),
              ("prune_sca.json",)),
    Benchmark("prune_pq", "#7 PQ index", "prune_pq.py", (), ("--task", "mlp", "--iterations", "2", "--epochs", "1",
                                                             "--subset", "1000"), ("prune_pq_mlp.json",)),
    Benchmark("export", "#8 export", "export_bench.py", (), ("--steps", "100", "--repeats", "1"), ("export.json",)),
    Benchmark("estimate_scaling", "#9 estimate", "estimate_scaling.py", (), ("--max", "1e6", "--repeat", "1"),
              ("estimate_scaling.json", "estimate_scaling.png")),
    Benchmark("simulate_speed", "#10/#21 simulate", "simulate_speed.py", (),
              ("--samples", "8", "--netx-samples", "1", "--batches", "4", "--cases", "mnist-mlp-128",
               "--variants", "dense"), ("simulate_speed.json", "simulate_speed.png")),
    Benchmark("mnist_testset", "#21 Lava at scale", "mnist_testset.py", (), ("--samples", "40"),
              ("mnist_testset.json",)),
    Benchmark("real_networks", "#18 real networks", "real_networks.py", (), ("--quick",), ("real_networks.json",)),
    Benchmark("sdnn_pilotnet", "#19 sigma-delta", "sdnn_pilotnet.py", (), ("--quick", "--raise"),
              ("sdnn_pilotnet.json",)),
)


def command(bench: Benchmark, quick: bool) -> list[str]:
    return [sys.executable, str(HERE / bench.script), *(bench.quick if quick else bench.full)]


def _result_files(bench: Benchmark) -> list[Path]:
    """Top-level result files and the benchmark's own output folders (never scratch folders such as runs/)."""
    files = [p for p in RESULTS.glob("*") if p.is_file()]
    for output in bench.outputs:
        if (RESULTS / output).is_dir():
            files += [p for p in (RESULTS / output).rglob("*") if p.is_file() and p.suffix != ".pt"]
    return files


def _snapshot(bench: Benchmark) -> dict[Path, tuple[float, bytes]]:
    return {p: (p.stat().st_mtime, p.read_bytes()) for p in _result_files(bench)}


def _set_aside(bench: Benchmark, before: dict[Path, tuple[float, bytes]]) -> None:
    """Move what a quick run wrote to results/quick/NAME and put the full-scale results back."""
    name = bench.name
    for path in _result_files(bench):
        old = before.get(path)
        if old is not None and old[0] == path.stat().st_mtime:
            continue
        target = RESULTS / "quick" / name / path.relative_to(RESULTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        if old is not None:
            path.write_bytes(old[1])


def run(bench: Benchmark, quick: bool) -> dict:
    cmd = command(bench, quick)
    print(f"== {bench.name}: {shlex.join(['python', *cmd[1:]])}", flush=True)
    before = _snapshot(bench) if quick else {}
    start = time.perf_counter()
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if quick:
        _set_aside(bench, before)
    return {"name": bench.name, "issue": bench.issue, "command": shlex.join(["python", str(Path(cmd[1]).relative_to(
        ROOT)), *cmd[2:]]), "quick": quick, "exit_code": code, "seconds": round(time.perf_counter() - start, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "outputs": [o for o in bench.outputs if (RESULTS / ("quick/" + bench.name if quick else "") / o).exists()]}


def index_markdown(records: list[dict]) -> str:
    lines = [BEGIN, "## Index of the last `benchmarks/run_all.py` run (generated)", "",
             "| benchmark | issue | command | exit | wall s | when | results |", "|---|---|---|---|---|---|---|"]
    for r in records:
        folder = f"benchmarks/results/quick/{r['name']}/" if r["quick"] else "benchmarks/results/"
        outputs = ", ".join(f"`{folder}{o}`" for o in r["outputs"]) or "none"
        settings = " (quick)" if r["quick"] else ""
        lines.append(f"| {r['name']}{settings} | {r['issue']} | `{r['command']}` | {r['exit_code']} | {r['seconds']} "
                     f"| {r['date']} | {outputs} |")
    lines += ["", "Quick settings only check that a benchmark runs; the figures quoted in the sections below come from "
              "the full commands given there.", END]
    return "\n".join(lines)


def update_doc(records: list[dict]) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = index_markdown(records)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        head, sep, rest = text.partition("\n")
        text = f"{head}{sep}\n{block}\n{rest}"
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(DOC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings: checks that every benchmark runs")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in SUITE])
    parser.add_argument("--list", action="store_true", help="print the suite and exit")
    args = parser.parse_args()
    chosen = [b for b in SUITE if not args.only or b.name in args.only]
    if args.list:
        for bench in chosen:
            print(f"{bench.name:<20} {bench.issue:<16} {shlex.join(['python', 'benchmarks/' + bench.script])}")
        return 0
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / ("quick/run_all.json" if args.quick else "run_all.json")
    log.parent.mkdir(exist_ok=True)
    previous = {r["name"]: r for r in json.loads(log.read_text())} if log.exists() else {}
    for bench in chosen:
        previous[bench.name] = run(bench, args.quick)
    records = [previous[b.name] for b in SUITE if b.name in previous]
    log.write_text(json.dumps(records, indent=2) + "\n")
    update_doc(records)
    print(f"\n{len(chosen)} benchmark(s) run; index in {DOC.relative_to(ROOT)}")
    return 0 if all(previous[b.name]["exit_code"] == 0 for b in chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
