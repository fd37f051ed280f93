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

# Lava's precisions, spelled as Lava's run configs and the pipeline config spell them.
PRECISIONS = ("fixed_pt", "floating_pt")
OLD_PRECISIONS = {"fixed": "fixed_pt", "float": "floating_pt"}  # simulate's spelling until 0.1


def precision_option(f):
    """``--precision fixed_pt|floating_pt``, also accepting the old ``--precision fixed|float`` and ``--mode``."""
    f = click.option("--mode", "old_mode", type=click.Choice(PRECISIONS), default=None, hidden=True,
                     help="Deprecated spelling of --precision.")(f)
    return click.option("--precision", type=click.Choice([*PRECISIONS, *OLD_PRECISIONS]), default="fixed_pt",
                        show_default=True, help="Lava precision: fixed_pt (Loihi bit-accurate integers) or "
                                                "floating_pt.")(f)


reset_option = click.option(
    "--reset", type=click.Choice(("zero", "subtract")), default=None,
    help="Reset mechanism of a NIR graph's neurons where the graph does not record it (NIR 1.0 cannot): 'zero' "
         "accepts reset to zero knowingly; 'subtract' is refused by name (no Lava neuron model subtracts).")


def resolve_precision(precision: str, old_mode: str | None) -> str:
    """The precision the user asked for; old spellings work with a deprecation note on stderr."""
    if old_mode is not None:
        click.echo(f"note: --mode is deprecated; use --precision {old_mode}", err=True)
        return old_mode
    if precision in OLD_PRECISIONS:
        click.echo(f"note: --precision {precision} is deprecated; use --precision {OLD_PRECISIONS[precision]}",
                   err=True)
        return OLD_PRECISIONS[precision]
    return precision


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
