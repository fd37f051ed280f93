"""The budget a network must fit: a target's default (one chip), a named system, or the user's own numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from snndeploy.errors import UserError
from snndeploy.hardware.profile import Profile
from snndeploy.yaml_io import read_yaml

KEYS = ("cores", "chips", "neurons", "synapses")


@dataclass(frozen=True)
class Budget:
    """Limits on totals; ``None`` = not limited. ``basis`` says where the numbers come from."""

    name: str
    cores: int | None = None
    chips: int | None = None
    neurons: int | None = None
    synapses: int | None = None
    basis: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "cores": self.cores, "chips": self.chips, "neurons": self.neurons,
                "synapses": self.synapses, "basis": self.basis}


def _positive_int(key: str, value, where: str | Path) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"budget {key} must be a positive integer, got {value!r}", where) from None
    if not math.isfinite(number) or number <= 0 or not number.is_integer():
        raise UserError(f"budget {key} must be a positive integer, got {value!r}", where)
    return int(number)


def budget_from_mapping(raw, where: str | Path, name: str = "user budget") -> Budget:
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"a budget must be a mapping with some of {list(KEYS)}", where)
    extra = set(raw) - set(KEYS) - {"name", "source"}
    if extra:
        raise UserError(f"unknown budget field(s) {sorted(extra)}; use {list(KEYS)}", where)
    limits = {k: _positive_int(k, raw[k], where) for k in KEYS if raw.get(k) is not None}
    if not limits:
        raise UserError(f"a budget needs at least one of {list(KEYS)}", where)
    basis = str(raw.get("source") or f"user budget ({where})")
    return Budget(str(raw.get("name", name)), basis=basis, **limits)


def parse_budget(text: str) -> Budget:
    """``--budget``: a YAML file, or inline ``cores=64`` / ``cores=64,chips=1``."""
    path = Path(text)
    if "=" in text and not path.is_file():
        pairs = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise UserError(f"budget {text!r}: write key=value pairs such as cores=64,chips=1")
            pairs[key.strip()] = value.strip()
        return budget_from_mapping(pairs, text, name=text)
    raw = read_yaml(path, "budget", missing="budget file not found (or write cores=N inline)")
    return budget_from_mapping(raw, path, name=path.stem)


def default_budget(profile: Profile, system: str | None = None) -> Budget:
    """One chip of the target, or a named system (board) from the profile."""
    per_chip = profile.value("chip.cores")
    if system is not None:
        if system not in profile.systems:
            known = ", ".join(profile.systems) or "none"
            raise UserError(f"target {profile.name} has no system {system!r} (known: {known})")
        chips = int(profile.systems[system]["chips"].value)
        cores = None if per_chip is None else chips * int(per_chip)
        return Budget(system, cores=cores, chips=chips,
                      basis=f"{system}: {chips} chip(s) [{profile.systems[system]['chips'].source}]")
    return Budget("1 chip", cores=None if per_chip is None else int(per_chip), chips=1,
                  basis=f"one {profile.title} chip [{profile.cite('chip.cores')}]")
