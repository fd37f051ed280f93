"""The one place that lists the pruning methods: importing a method module registers its methods
(:func:`snndeploy.prune.methods.register`); the CLI choices, the pipeline check and the docs derive from here."""

from __future__ import annotations

from snndeploy.errors import UserError
from snndeploy.prune import deepr, gradr, methods, pq, sca, set_rigl  # noqa: F401  (each registers its methods)
from snndeploy.prune.methods import METHODS, Method


def method_names() -> tuple[str, ...]:
    """Every registered method, in registration order (the CLI's ``--method`` choices)."""
    return tuple(METHODS)


def find_method(name: str) -> Method:
    """The method called ``name``; an unknown name is a one-line error listing the choices."""
    if name not in METHODS:
        raise UserError(f"unknown pruning method {name!r}; choose one of {', '.join(method_names())}")
    return METHODS[name]
