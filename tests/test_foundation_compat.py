"""The Python 3.11 compatibility hook for lava-nc 0.10.0 / lava-dl 0.6.0 (no site-packages edits)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from snndeploy import _lava_compat


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_rewrite_touches_only_bytecoder_defaults():
    source = "class A:\n    x: ByteEncoder = ByteEncoder()\n    y: int = 0\n    z: ByteEncoder=ByteEncoder()  \n"
    patched, count = _lava_compat.rewrite_var_model(source)
    assert count == 2
    assert "y: int = 0" in patched
    assert patched.count("default_factory=ByteEncoder") == 2
    assert patched.count("\n") == source.count("\n")  # line numbers unchanged for tracebacks


def test_rewrite_is_a_noop_on_fixed_source():
    source = "class A:\n    x: ByteEncoder = field(default_factory=ByteEncoder)\n"
    assert _lava_compat.rewrite_var_model(source) == (source, 0)


def test_upstream_source_still_has_exactly_the_known_defaults():
    import importlib.util

    spec = importlib.util.find_spec(_lava_compat.VAR_MODEL)
    with open(spec.origin) as handle:
        _, count = _lava_compat.rewrite_var_model(handle.read())
    assert _lava_compat.report()["lava_nc_known_affected"]
    assert count == 8


def test_plain_import_of_lava_fails_without_the_hook_on_this_python():
    if not _lava_compat.var_model_fix_needed():
        pytest.skip("the var_model fix is only needed on Python >= 3.11")
    result = run_python("import lava.magma.compiler.var_model")
    assert result.returncode != 0
    assert "mutable default" in result.stderr


def test_snndeploy_makes_slayer_and_netx_importable():
    result = run_python("""
        import json, snndeploy
        import lava.lib.dl.slayer as slayer
        from lava.lib.dl import netx
        from snndeploy import _lava_compat
        print(json.dumps(_lava_compat.report()))
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["var_model_patched"] == 8
    assert report["object_detection"] in {"real", "placeholder"}


def test_object_detection_placeholder_explains_itself():
    result = run_python("""
        import snndeploy
        from lava.lib.dl import slayer
        assert not hasattr(slayer.obd, "YOLOBase")
        try:
            slayer.obd.YOLOBase
        except AttributeError as exc:
            print(exc)
    """, SNNDEPLOY_LAVA_OBD="stub")
    assert result.returncode == 0, result.stderr
    assert "unavailable" in result.stdout and "torchvision" in result.stdout


def test_lava_imports_after_a_progress_bar_fixed_the_start_method():
    """tqdm's lock sets the multiprocessing start method; Lava's own set_start_method('fork') must not fail on it
    (an ``evaluate`` with a progress bar before the first Lava import did), and another method is still refused."""
    result = run_python("""
        import multiprocessing, tqdm
        tqdm.tqdm(range(2), disable=False).close()
        assert multiprocessing.get_start_method(allow_none=True) == "fork"
        import snndeploy
        from lava.lib.dl import netx
        from lava.magma.runtime.message_infrastructure import multiprocessing as lava_mp
        print("ok", multiprocessing.set_start_method.__module__)
    """)
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.split() == ["ok", "multiprocessing.context"]  # the original is back after the import
    refused = run_python("""
        import multiprocessing
        multiprocessing.set_start_method("spawn")
        import snndeploy
        from lava.lib.dl import netx
    """)
    assert refused.returncode != 0 and "context has already been set" in refused.stderr
