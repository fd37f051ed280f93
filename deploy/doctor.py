"""``snndeploy doctor``: is the stack installed and working on this machine?"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import time
from typing import Any

import click

from snndeploy import _lava_compat, lava_runner, settings
from snndeploy.cli_support import CommandExit, emit, json_option
from snndeploy.loihi import lava_loihi_available

PACKAGES = ("torch", "numpy", "lava-nc", "lava-dl", "nir", "nirtorch", "onnx", "onnxruntime", "h5py", "scipy")
LAVA_MODULES = ("lava.magma.core.process.process", "lava.proc.lif.process",
                "lava.lib.dl.slayer", "lava.lib.dl.netx")
DATASETS = ("mnist", "fashion-mnist", "nmnist-small", "mnist1d", "uci-digits")


def versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **{p: _lava_compat.installed_version(p) for p in PACKAGES}}


def check_imports() -> dict[str, str]:
    """'ok' or the import error for each Lava module the product needs."""
    result = {}
    for name in LAVA_MODULES:
        try:
            importlib.import_module(name)
            result[name] = "ok"
        except Exception as exc:  # report, never crash the doctor
            result[name] = f"{type(exc).__name__}: {exc}"
    return result


def lava_smoke_run(steps: int = 8) -> dict[str, Any]:
    """Run a 4-process fixed-point Lava network through the safe runner and count what is left behind."""
    import numpy as np
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF


    start = time.perf_counter()
    spikes_in = np.ones((2, steps), dtype=np.int32)
    source = Source(data=spikes_in)
    dense = Dense(weights=np.full((3, 2), 100, dtype=np.int32))
    lif = LIF(shape=(3,), du=4095, dv=0, vth=150, bias_mant=0)
    sink = Sink(shape=(3,), buffer=steps)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    with lava_runner.lava_session(sink):
        lava_runner.run_steps(sink, steps, Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=60,
                              stop_after=False, what="doctor smoke run")
        out = sink.data.get()
    return {"ok": bool(out.sum() > 0), "spikes": int(out.sum()), "seconds": round(time.perf_counter() - start, 3),
            "workers_left": len(lava_runner.lava_worker_processes())}


def folders() -> dict[str, Any]:
    data, fixtures = settings.data_dir(), settings.fixtures_dir()
    return {"data_dir": str(data), "data_found": data.is_dir(),
            "datasets": [d for d in DATASETS if (data / d).is_dir()],
            "fixtures_dir": str(fixtures), "fixtures_found": (fixtures / "lava-dl").is_dir()}


def gpu() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        return {"available": True, "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    return {"available": False}


def diagnose() -> dict[str, Any]:
    report: dict[str, Any] = {"versions": versions(), "imports": check_imports()}
    report["compat"] = _lava_compat.report()
    problems = [f"cannot import {m}: {e}" for m, e in report["imports"].items() if e != "ok"]
    numpy_version = report["versions"]["numpy"] or "0"
    if int(numpy_version.split(".")[0]) >= 2:
        problems.append(f"numpy {numpy_version} breaks lava-nc 0.10 (reshape ports hang); install numpy 1.26.4")
    if not problems:
        try:
            report["lava_run"] = lava_smoke_run()
        except Exception as exc:
            report["lava_run"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if not report["lava_run"]["ok"]:
            problems.append(f"Lava smoke run failed: {report['lava_run'].get('error', 'no output spikes')}")
        elif report["lava_run"]["workers_left"]:
            problems.append(f"{report['lava_run']['workers_left']} Lava worker processes left after the run")
    report["folders"] = folders()
    loihi_ok, loihi_note = lava_loihi_available()
    report["loihi2"] = {"available": loihi_ok, "note": loihi_note}
    report["gpu"] = gpu()
    report["problems"] = problems
    report["ok"] = not problems
    return report


def _human(report: dict[str, Any]) -> str:
    lines = ["versions:"]
    lines += [f"  {k:12s} {v or 'not installed'}" for k, v in report["versions"].items()]
    compat = report["compat"]
    lines.append("compatibility fixes:")
    lines.append("  var_model dataclass defaults: "
                 + (f"{compat['var_model_patched']} rewritten" if compat["var_model_fix_needed"]
                    else "not needed on this Python"))
    lines.append(f"  lava-dl object_detection: {compat['object_detection'] or 'not imported'}"
                 + (f" ({compat['object_detection_reason']})" if compat["object_detection_reason"] else ""))
    lines.append("lava imports:")
    lines += [f"  {k}: {v}" for k, v in report["imports"].items()]
    if "lava_run" in report:
        run = report["lava_run"]
        lines.append(f"lava fixed_pt smoke run: {'ok' if run['ok'] else 'FAILED'}"
                     + (f" ({run['spikes']} spikes, {run['seconds']} s, {run['workers_left']} workers left)"
                        if run["ok"] else f" ({run.get('error', '')})"))
    f = report["folders"]
    lines.append(f"data: {f['data_dir']} ({', '.join(f['datasets']) or 'NOT FOUND'})")
    lines.append(f"fixtures: {f['fixtures_dir']} ({'found' if f['fixtures_found'] else 'NOT FOUND'})")
    lines.append(f"loihi 2: {report['loihi2']['note']}")
    lines.append(f"gpu: {report['gpu'].get('name', 'none visible')}")
    lines.append("stack: OK" if report["ok"] else "stack: BROKEN\n  " + "\n  ".join(report["problems"]))
    return "\n".join(lines)


@click.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check the installed stack (torch, Lava, lava-dl, NIR), data folders, Loihi 2 support and GPU."""
    report = diagnose()
    emit(report, as_json, _human)
    if not report["ok"]:
        raise CommandExit(1)
