"""Shared pieces of the sub-commands: the ``--json`` option and result output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from snndeploy.atomic import to_jsonable

# Option value ranges shared by the commands: click refuses a value outside them in one line (exit 2) before
# the command starts.
COUNT = click.IntRange(min=1)  # steps, samples, epochs, batch sizes, threads, subsets
PROBABILITY = click.FloatRange(0, 1)  # rates, spike probabilities
FRACTION = click.FloatRange(0, 1, max_open=True)  # shares held out (1 would leave nothing)
POSITIVE = click.FloatRange(min=0, min_open=True)  # seconds, learning rates

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")


ALL_SAMPLES = sys.maxsize  # ``--samples all``


class SampleCount(click.ParamType):
    """A positive number of samples, or ``all`` (:data:`ALL_SAMPLES`: every sample there is)."""

    name = "N|all"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            count = value
        elif str(value).strip().lower() == "all":
            return ALL_SAMPLES
        else:
            try:
                count = int(str(value))
            except ValueError:
                self.fail(f"{value!r} is neither a number nor 'all'", param, ctx)
        if count < 1:
            self.fail(f"must be at least 1 (or 'all'), got {count}", param, ctx)
        return count


class CommandExit(click.exceptions.Exit):
    """Leave a command with a meaningful exit code after its result has been printed."""


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Print ``result`` as JSON or through ``human``."""
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=to_jsonable) + "\n")
    else:
        click.echo(human(result))
