"""Packaging: every code sub-package is shipped in the wheel, and the package imports only as snndeploy.*."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared_package_folders() -> dict[str, Path]:
    """Import name -> folder, for every folder with an __init__.py under the mapped code folders."""
    mapping = pyproject()["tool"]["setuptools"]["package-dir"]
    found = {}
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *relative.parts]) if relative.parts else package
            if not any(part.startswith((".", "__")) for part in relative.parts):
                found[name] = init.parent
    return found


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    missing = {name for name in declared_package_folders() if name not in listed}
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_wheel_contains_every_module(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("snndeploy-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in declared_package_folders().items():
        for module in folder.glob("*.py"):
            assert f"{package.replace('.', '/')}/{module.name}" in names
    assert "snndeploy/cli.py" in names
    mapping = pyproject()["tool"]["setuptools"]["package-dir"]
    for package, folder in mapping.items():  # data the code reads at run time: configs, profiles, templates
        for data in (ROOT / folder).rglob("*"):
            if data.suffix in (".yaml", ".tmpl") and "__pycache__" not in data.parts:
                assert f"{package.replace('.', '/')}/{data.relative_to(ROOT / folder)}" in names, data
    # A normal install (the unpacked wheel first on the path) imports every sub-package from the wheel.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    packages = sorted(declared_package_folders())
    code = (f"import importlib, snndeploy; assert snndeploy.__file__.startswith({str(site)!r}), snndeploy.__file__; "
            f"[importlib.import_module(p) for p in {packages!r}]; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "ok", result.stderr


def test_code_folders_are_not_importable_by_their_folder_names():
    folders = ('models', 'data', 'train', 'prune', 'export', 'hardware', 'deploy')
    code = f"import importlib.util as u; print([n for n in {folders!r} if u.find_spec(n)])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert result.stdout.strip() == "[]"
