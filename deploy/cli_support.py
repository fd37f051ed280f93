"""Shared pieces of the sub-commands: the ``--json`` option and result output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from snndeploy.atomic import to_jsonable

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")


class CommandExit(click.exceptions.Exit):
    """Leave a command with a meaningful exit code after its result has been printed."""


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Print ``result`` as JSON or through ``human``."""
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=to_jsonable) + "\n")
    else:
        click.echo(human(result))
