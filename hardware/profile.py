"""Hardware profiles: sourced numbers in YAML, loaded into small frozen dataclasses and validated.

Every number in a profile is a :class:`Quantity` with a source ID (resolved in the profile's ``sources``)
and a confidence. ``value: null`` means *unknown*: it is reported as unknown and never filled in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from snndeploy.errors import UserError
from snndeploy.yaml_io import read_yaml

SCHEMA = 1
CONFIDENCE = ("high", "med", "low", "unknown", "user")
SECTIONS = ("chip", "core", "packing", "limits", "energy_pj", "timing_ns", "power_w", "measured")
TOP_KEYS = {"schema", "name", "title", "vendor", "model", "sources", "systems", "notes", *SECTIONS}
QUANTITY_KEYS = {"value", "source", "confidence", "note", "unit"}
MODELS = ("loihi2", "loihi1", "truenorth", "speck", "xylo", "spinnaker2", "akida")

# model -> {"section.key": kind}; kinds: posint, pos, range (two positives, lo <= hi), list (positive numbers)
REQUIRED: dict[str, dict[str, str]] = {
    "loihi2": {"core.neurons": "posint", "core.neuron_groups": "posint", "core.axons_in": "posint",
               "core.synmem_units": "posint", "chip.cores": "posint", "packing.dense_slots_per_unit": "range",
               "packing.dense_slots_point": "pos", "packing.dense_overpartition": "range",
               "packing.dense_split_max_neurons": "posint", "packing.conv_word_bits": "posint",
               "packing.weight_bits_max": "posint"},
    "loihi1": {"core.compartments": "posint", "core.axons_in": "posint", "core.axons_out": "posint",
               "core.synapse_bits": "posint", "chip.cores": "posint", "packing.block_synapses": "posint",
               "packing.block_header_bits": "posint", "packing.word_bits": "posint",
               "packing.weight_bits_allowed": "list", "packing.index_bits_max": "posint"},
    "truenorth": {"core.neurons": "posint", "core.axons": "posint", "chip.cores": "posint"},
    "speck": {"core.kernel_memory": "list", "core.neuron_memory": "list", "core.bias_memory": "posint",
              "limits.max_channels": "posint", "limits.max_kernel": "posint", "limits.weight_bits": "posint"},
    "xylo": {"limits.input_channels": "posint", "limits.hidden_neurons": "posint", "limits.output_neurons": "posint",
             "limits.max_fanout": "posint"},
    "spinnaker2": {"chip.cores": "posint", "core.sram_kb": "pos"},
    "akida": {"chip.cores": "posint", "limits.fc_max_inputs": "posint", "limits.fc_weight_bits_max": "posint"},
}


@dataclass(frozen=True)
class Quantity:
    """One sourced number (or list, or range); ``value is None`` means unknown."""

    value: Any
    source: str | None
    confidence: str
    note: str = ""
    unit: str = ""

    @property
    def known(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "confidence": self.confidence, "note": self.note}


@dataclass(frozen=True)
class Profile:
    """A hardware target: per-core and per-chip budgets, systems (boards), energy/timing per operation."""

    name: str
    title: str
    model: str
    sources: dict[str, str]
    sections: dict[str, dict[str, Quantity]]
    systems: dict[str, dict[str, Quantity]] = field(default_factory=dict)
    path: str = ""
    notes: str = ""

    def q(self, key: str) -> Quantity | None:
        """Quantity at ``"section.name"`` or None if the profile lacks it."""
        section, _, name = key.partition(".")
        return self.sections.get(section, {}).get(name)

    def value(self, key: str, default: Any = None) -> Any:
        quantity = self.q(key)
        return default if quantity is None or quantity.value is None else quantity.value

    def cite(self, key: str) -> str:
        """``source (confidence)`` text for a quantity, for basis strings."""
        quantity = self.q(key)
        if quantity is None or quantity.value is None:
            return "unknown"
        return f"{quantity.source} ({quantity.confidence})"

    def unknowns(self) -> list[str]:
        out = [f"{s}.{k}" for s, items in self.sections.items() for k, v in items.items() if v.value is None]
        out += [f"systems.{s}.{k}" for s, items in self.systems.items() for k, v in items.items() if v.value is None]
        return out


def _fail(problem: str, path: str | Path | None) -> UserError:
    return UserError(f"hardware profile: {problem}", path)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_number_tree(where: str, value: Any, path) -> None:
    if value is None or isinstance(value, str):
        return
    if _is_number(value):
        if value < 0:
            raise _fail(f"{where} must not be negative, got {value!r}", path)
        return
    if isinstance(value, list) and value and all(_is_number(v) and v >= 0 for v in value):
        return
    raise _fail(f"{where} must be a number, a list of non-negative numbers, a string or null, got {value!r}", path)


def _quantity(where: str, raw: Any, sources: dict[str, str], path) -> Quantity:
    if not isinstance(raw, dict):
        raw = {"value": raw}
    unknown = set(raw) - QUANTITY_KEYS
    if unknown:
        raise _fail(f"{where} has unknown field(s) {sorted(unknown)}", path)
    if "value" not in raw:
        raise _fail(f"{where} has no 'value' (write value: null for an unknown number)", path)
    value = raw["value"]
    _check_number_tree(where, value, path)
    confidence = raw.get("confidence", "unknown" if value is None else None)
    if confidence not in CONFIDENCE:
        raise _fail(f"{where}.confidence must be one of {list(CONFIDENCE)}, got {confidence!r}", path)
    source = raw.get("source")
    if value is not None and confidence != "user":
        if not source:
            raise _fail(f"{where} = {value!r} has no source", path)
        for part in str(source).replace(";", ",").split(","):
            ident = part.strip().split()[0] if part.strip() else ""
            if ident not in sources and ident != "derived":
                raise _fail(f"{where} cites source {ident!r}, which is not in the profile's 'sources'", path)
    return Quantity(value, None if source is None else str(source), confidence, str(raw.get("note", "")),
                    str(raw.get("unit", "")))


def _check_kind(key: str, quantity: Quantity | None, kind: str, path) -> None:
    if quantity is None:
        raise _fail(f"required field {key} is missing", path)
    value = quantity.value
    if value is None:
        raise _fail(f"required field {key} is null (unknown); this target's packing model needs it", path)
    ok = {
        "posint": lambda v: _is_number(v) and v > 0 and float(v).is_integer(),
        "pos": lambda v: _is_number(v) and v > 0,
        "range": lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(x) and x > 0 for x in v)
        and v[0] <= v[1],
        "list": lambda v: isinstance(v, list) and len(v) > 0 and all(_is_number(x) and x >= 0 for x in v),
    }[kind](value)
    if not ok:
        words = {"posint": "a positive integer", "pos": "a positive number",
                 "range": "[low, high] with 0 < low <= high", "list": "a non-empty list of non-negative numbers"}[kind]
        raise _fail(f"{key} must be {words}, got {value!r}", path)


def profile_from_dict(raw: Any, path: str | Path | None = None) -> Profile:
    """Validate a parsed profile document; any problem raises a one-line :class:`UserError`."""
    if not isinstance(raw, dict):
        raise _fail("the file must hold a mapping (name, model, sources, core, chip, ...)", path)
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise _fail(f"unknown top-level field(s) {sorted(unknown)}", path)
    if raw.get("schema") != SCHEMA:
        raise _fail(f"schema must be {SCHEMA}, got {raw.get('schema')!r}", path)
    for key in ("name", "model"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            raise _fail(f"'{key}' must be a non-empty string", path)
    if raw["model"] not in MODELS:
        raise _fail(f"model must be one of {list(MODELS)}, got {raw['model']!r}", path)
    sources = raw.get("sources") or {}
    if not isinstance(sources, dict) or not all(isinstance(v, str) and v for v in sources.values()):
        raise _fail("'sources' must map source IDs to citation strings", path)
    sections: dict[str, dict[str, Quantity]] = {}
    for section in SECTIONS:
        items = raw.get(section) or {}
        if not isinstance(items, dict):
            raise _fail(f"'{section}' must be a mapping", path)
        sections[section] = {str(k): _quantity(f"{section}.{k}", v, sources, path) for k, v in items.items()}
    systems: dict[str, dict[str, Quantity]] = {}
    for sys_name, items in (raw.get("systems") or {}).items():
        if not isinstance(items, dict) or "chips" not in items:
            raise _fail(f"systems.{sys_name} must be a mapping with at least 'chips'", path)
        systems[str(sys_name)] = {str(k): _quantity(f"systems.{sys_name}.{k}", v, sources, path)
                                  for k, v in items.items()}
        _check_kind(f"systems.{sys_name}.chips", systems[sys_name]["chips"], "posint", path)
    profile = Profile(raw["name"], str(raw.get("title", raw["name"])), raw["model"], dict(sources), sections,
                      systems, "" if path is None else str(path), str(raw.get("notes") or ""))
    for key, kind in REQUIRED[profile.model].items():
        _check_kind(key, profile.q(key), kind, path)
    return profile


def builtin_names() -> list[str]:
    folder = resources.files("snndeploy.hardware") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``loihi2``) or a user's YAML file."""
    text_path = str(name_or_path)
    if text_path in builtin_names():
        resource = resources.files("snndeploy.hardware") / "profiles" / f"{text_path}.yaml"
        return profile_from_dict(yaml.safe_load(resource.read_text()), f"profiles/{text_path}.yaml")
    missing = f"unknown target; shipped targets: {', '.join(builtin_names())}, or give a profile YAML file"
    raw = read_yaml(text_path, "hardware profile", missing=missing)
    return profile_from_dict(raw, Path(text_path))
