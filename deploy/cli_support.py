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


class CommandExit(click.exceptions.Exit):
    """Leave a command with a meaningful exit code after its result has been printed."""


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Print ``result`` as JSON or through ``human``."""
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=to_jsonable) + "\n")
    else:
        click.echo(human(result))
