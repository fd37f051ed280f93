"""The ``snndeploy`` command: a click group whose sub-commands live beside the code they drive.

Conventions for every sub-command: ``--help``; ``--json`` prints one JSON object on stdout; bad input
raises :class:`snndeploy.errors.UserError`, shown as one line on stderr with exit code 2 (a traceback
only with ``--debug``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

import click

from snndeploy import __version__, interrupts
from snndeploy.errors import UserError

# name -> ("module:attribute", one-line help). Modules are imported only when their command runs (torch
# and lava take seconds); a command appears once its module exists, so each stage plugs in without
# editing anything but this table.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("snndeploy.doctor:doctor", "Check the installed stack, data folders, Loihi 2 support and GPU."),
    "train": ("snndeploy.train.cli:train", "Train a SLAYER network from a model spec on a local dataset."),
    "evaluate": ("snndeploy.train.cli:evaluate_command", "Test accuracy and spike rates of a trained model."),
    "prune": ("snndeploy.prune.cli:prune", "Prune (and regenerate) a model during SLAYER training."),
    "export": ("snndeploy.export.cli:export", "Export a model to NIR, Lava, netx HDF5 or ONNX, optionally verified."),
    "verify": ("snndeploy.export.cli:verify_command", "Compare a torch model and its Lava network spike for spike."),
    "estimate": ("snndeploy.hardware.cli:estimate_command",
                 "Estimate neurons, synapses, cores, energy on Loihi 2 and others."),
    "simulate": ("snndeploy.simulate_cli:simulate", "Run the exported Lava network on the CPU backend."),
    "deploy": ("snndeploy.target:deploy", "Run on Loihi 2 (lava-loihi) or write a job bundle for INRC."),
    "pipeline": ("snndeploy.pipeline:pipeline", "Train or import, prune, export, verify, simulate, estimate."),
    "compare": ("snndeploy.pipeline:compare", "Put several pipeline runs side by side."),
}


def _available(name: str) -> bool:
    module_name = COMMANDS[name][0].split(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # click's main would print a blank line and raise Abort
            raise interrupts.StopRequested(interrupts.describe(exc)) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({name for name in COMMANDS if _available(name)} | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:  # added with add_command (plugins, tests)
            return self.commands[name]
        if name not in COMMANDS or not _available(name):
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1] if name in COMMANDS else self.commands[name].get_short_help_str())
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snndeploy")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="SNNDEPLOY_DATA",
              help="Datasets folder (default: $SNNDEPLOY_DATA or ../shared/data of the checkout).")
@click.option("--fixtures-dir", type=click.Path(file_okay=False), envvar="SNNDEPLOY_FIXTURES",
              help="Trained lava-dl networks folder (default: $SNNDEPLOY_FIXTURES or ../shared/fixtures).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, data_dir: str | None, fixtures_dir: str | None) -> None:
    """snndeploy: prune spiking networks, export them through NIR to Lava, and fit them to Loihi 2."""
    import os

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if data_dir:
        os.environ["SNNDEPLOY_DATA"] = str(data_dir)
    if fixtures_dir:
        os.environ["SNNDEPLOY_FIXTURES"] = str(fixtures_dir)


BUG_REPORT = "this is a bug in snndeploy: please report it with the output of --debug"


def one_line(text: str) -> str:
    """``text`` with its lines joined: every message the CLI prints is one line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _usage_line(exc: click.UsageError) -> str:
    """click's usage error (usage text, hint, message) as one line: the command and the message."""
    where = exc.ctx.command_path if exc.ctx is not None else "snndeploy"
    return f"{where}: error: {one_line(exc.format_message())} (see {where} --help)"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: maps errors to exit codes (2 = bad input, 1 = failure, 130 = interrupted).

    Whatever goes wrong, stderr gets exactly one line (plus the traceback with ``--debug``).
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        with interrupts.as_keyboard_interrupt():
            code = cli.main(args=args, prog_name="snndeploy", standalone_mode=False)
        if isinstance(code, int):  # a command left through CommandExit (click returns its code here)
            return code
    except UserError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"snndeploy: error: {one_line(str(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(_usage_line(exc), err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"snndeploy: error: {one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except interrupts.StopRequested as exc:
        click.echo(f"snndeploy: {exc}", err=True)
        return 130
    except (click.Abort, KeyboardInterrupt) as exc:
        click.echo(f"snndeploy: {interrupts.describe(exc)}", err=True)
        return 130
    except Exception as exc:  # a bug or an environment failure, not bad input
        if debug:
            traceback.print_exc()
        first = one_line(str(exc))[:300]
        click.echo(f"snndeploy: internal error: {type(exc).__name__}: {first} ({BUG_REPORT})", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
