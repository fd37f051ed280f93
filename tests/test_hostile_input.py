"""Hostile and careless input, every command: one error line naming the culprit, exit 2, the output untouched.

The corpus (bad files behind every model suffix, bad values and graphs, bad options and output paths) is made
by ``tests/hostile_corpus.py``; nothing binary is committed. Cases run in-process through ``snndeploy.cli.main``,
whose exit codes and stderr are the console script's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import hostile_corpus as corpus
import pytest

from snndeploy.cli import main

CASES = corpus.cases()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    corpus.base(folder)
    return folder


def snapshot(path: Path):
    """What is at ``path`` (content hashes of a file or of every file in a folder), to compare before/after."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return sorted((str(p.relative_to(path)), snapshot(p)) for p in path.rglob("*"))
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: corpus.Case, root: Path, capsys, monkeypatch):
    monkeypatch.chdir(root)  # a command's default output folder lands in the corpus folder
    case.make(root)
    out = root / case.out if case.out else None
    before = snapshot(out) if out else None
    siblings = sorted(p.name for p in root.iterdir())
    code = main(corpus.render(case.argv, root))
    captured = capsys.readouterr()
    assert not (root / "PAYLOAD_RAN").exists(), "a pickle payload ran"
    if case.code == 0:
        assert code == 0, captured.err
        return
    lines = captured.err.strip().splitlines()
    assert code == case.code, captured.err
    assert len(lines) == 1, captured.err
    assert case.culprit in lines[0]
    assert captured.out == ""
    if out is not None:
        assert snapshot(out) == before, f"{case.out} changed"
    left = sorted(p.name for p in root.iterdir())
    assert [n for n in left if n not in siblings and n.startswith(".")] == [], "temporary files left behind"


def test_the_corpus_covers_every_command_and_about_200_cases():
    commands = {c.argv[0] for c in CASES}
    assert {"export", "verify", "estimate", "simulate", "deploy", "train", "evaluate", "prune", "pipeline",
            "compare"} <= commands
    assert len(CASES) >= 180
