"""Every public non-SDNN network file of lava-dl and the NIR paper through the CLI as a user runs it.

    .venv/bin/python benchmarks/public_sweep.py [--lava-dl MIRROR] [--nir MIRROR] [--out FILE.json]

Files: lava-dl's ``tutorials/lava/lib/dl/**/*.net`` and ``tests/lava/lib/dl/netx/**/*.net``, the NIR repository's
``paper/**/*.nir`` (read from git mirrors, default ``/work/.mirror/...``; ``git show HEAD:path``, so a file the
mirror stores as a Git LFS pointer is tried as the pointer it is). Sigma-delta netx files are listed and left to
their own sweep (issue 19). Each file goes through ``snndeploy estimate``, ``snndeploy export --to nir`` and
``snndeploy export --to lava`` (``snndeploy.cli.main``, as the command line runs it): a cell is ``ok`` (with the
Loihi 2 cores for estimate), or ``exit 2: <the one-line refusal>``; anything else (another exit code, a
traceback, more than one line on stderr) is a failure and the script exits 1. NIR graphs that record no time
step get ``--dt 1e-4`` (the paper's graphs' convention, stated in its README). A NIR file written by ``export
--to nir`` is read back with ``nir.read`` and ``snndeploy estimate``. Prints a Markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIRRORS = {"lava-dl": Path("/work/.mirror/lava-nc+lava-dl/repo"), "NIR": Path("/work/.mirror/neuromorphs+NIR/repo")}
PATTERNS = {"lava-dl": ("tutorials/lava/lib/dl/", "tests/lava/lib/dl/netx/"), "NIR": ("paper/",)}
SUFFIX = {"lava-dl": ".net", "NIR": ".nir"}
NIR_DT = "1e-4"


def public_files(source: str, mirror: Path) -> list[str]:
    listing = subprocess.run(["git", "-C", str(mirror), "ls-tree", "-r", "--name-only", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.split()
    return sorted(p for p in listing if p.endswith(SUFFIX[source]) and p.startswith(PATTERNS[source]))


def copy_out(mirror: Path, path: str, folder: Path) -> Path | None:
    """The file as the mirror stores it (None when the mirror lacks its blob)."""
    out = folder / path.replace("/", "__")
    blob = subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:{path}"], capture_output=True)
    if blob.returncode != 0:
        return None
    out.write_bytes(blob.stdout)
    return out


def is_sigma_delta(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return any("activation" in f[f"layer/{k}/neuron"] for k in f["layer"] if "neuron" in f[f"layer/{k}"])
    except (OSError, KeyError):
        return False


def cli(args: list[str]) -> dict:
    """One snndeploy command as ``snndeploy.cli.main`` runs it (in this process: a fresh process per command costs
    a minute of imports on the shared machine): exit code, the stderr lines, and whether it crashed (an exception
    escaping ``main``, recorded with its traceback)."""
    from snndeploy.cli import main as snndeploy_main

    start = time.perf_counter()
    out, err = io.StringIO(), io.StringIO()
    crashed = ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = snndeploy_main(args)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001  (a crash is what the sweep looks for)
            rc, crashed = 1, traceback.format_exc()
    text = err.getvalue() + crashed
    lines = [line for line in text.splitlines() if line.strip()]
    return {"args": args, "rc": rc, "stderr": lines, "stdout": out.getvalue(),
            "traceback": "Traceback" in text + out.getvalue(), "seconds": round(time.perf_counter() - start, 1)}


def cell(run: dict, ok: str = "ok") -> tuple[str, bool]:
    """(table cell, acceptable): ok, or a one-line refusal with exit 2."""
    if run["rc"] == 0 and not run["traceback"]:
        return ok, True
    refusal = [line for line in run["stderr"] if line.startswith("snndeploy: error:")]
    if run["rc"] == 2 and not run["traceback"] and len(refusal) == 1:
        return "exit 2: " + refusal[0].split("error: ", 1)[1].split(": ", 1)[-1], True
    return f"FAILED (exit {run['rc']}{', traceback' if run['traceback'] else ''}): {' | '.join(run['stderr'][-2:])}", \
        False


def read_back(nir_file: Path, dt: list[str]) -> str:
    """The exported NIR file read by ``nir.read`` and by ``snndeploy estimate``."""
    import nir

    try:
        nodes = len(nir.read(nir_file).nodes)
    except Exception as exc:  # report, not raise: the sweep names every failure
        return f"nir.read FAILED: {type(exc).__name__}: {exc}"
    text, fine = cell(cli(["estimate", str(nir_file), "--json", *dt]))
    return f"nir.read ok ({nodes} nodes), snndeploy estimate {text}" if fine else f"snndeploy estimate {text}"


def sweep_file(source: str, path: str, local: Path | None, work: Path) -> dict:
    row: dict = {"source": source, "file": path}
    if local is None:
        row.update(status="not in the mirror (blob missing)")
        return row
    if source == "lava-dl" and ("sdnn" in path or is_sigma_delta(local)):
        row.update(status="sigma-delta (issue 19)")
        return row
    dt = ["--dt", NIR_DT] if source == "NIR" else []
    estimate = cli(["estimate", str(local), "--json"])
    cores = "ok"
    if estimate["rc"] == 0:
        targets = json.loads(estimate["stdout"]).get("targets", [])
        cores = next((f"ok, {t['cores']} cores" for t in targets if t.get("target") == "loihi2"), "ok")
    out = work / (local.stem + "_out")
    to_nir, to_lava = cli(["export", str(local), "--to", "nir", "--out", f"{out}.nir", *dt]), \
        cli(["export", str(local), "--to", "lava", "--out", f"{out}_lava", *dt])
    cells = [cell(estimate, cores), cell(to_nir), cell(to_lava)]
    row.update({"estimate": cells[0][0], "export --to nir": cells[1][0], "export --to lava": cells[2][0],
                "ok": all(c[1] for c in cells), "status": "swept",
                "seconds": round(sum(r["seconds"] for r in (estimate, to_nir, to_lava)), 1)})
    if to_nir["rc"] == 0:
        row["read back"] = read_back(Path(f"{out}.nir"), [])
        row["ok"] = row["ok"] and "FAILED" not in row["read back"]
    return row


def markdown(rows: list[dict]) -> str:
    cols = ("source", "file", "estimate (Loihi 2)", "export --to nir", "export --to lava", "NIR read back")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if r["status"] != "swept":
            lines.append(f"| {r['source']} | `{r['file']}` | {r['status']} | | | |")
            continue
        lines.append(f"| {r['source']} | `{r['file']}` | {r['estimate']} | {r['export --to nir']} | "
                     f"{r['export --to lava']} | {r.get('read back', '-')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lava-dl", type=Path, default=MIRRORS["lava-dl"])
    parser.add_argument("--nir", type=Path, default=MIRRORS["NIR"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "public_sweep.json")
    args = parser.parse_args()
    mirrors = {"lava-dl": args.lava_dl, "NIR": args.nir}
    rows = []
    with tempfile.TemporaryDirectory(prefix="public_sweep_") as tmp:
        work = Path(tmp)
        for source, mirror in mirrors.items():
            for path in public_files(source, mirror):
                rows.append(sweep_file(source, path, copy_out(mirror, path, work), work))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "source"}), flush=True)
    print(markdown(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=1))
    if not all(r.get("ok", True) for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
