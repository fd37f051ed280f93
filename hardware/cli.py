"""``snndeploy estimate``: neurons, synapses, cores, chips, energy and latency against hardware budgets."""

from __future__ import annotations

import click

from snndeploy.cli_support import CommandExit, emit, json_option


@click.command("estimate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", "-t", "targets", multiple=True, default=("loihi2",), show_default=True,
              help="Target name (akida, loihi1, loihi2, speck, spinnaker2, truenorth, xylo, xylo_audio3, xylo_imu) "
                   "or a profile YAML; repeat to compare targets side by side.")
@click.option("--budget", help="Budget to fit: a YAML file (cores, chips, neurons, synapses) or inline "
              "cores=N[,chips=M].")
@click.option("--system", help="Fit a named system of the target instead of one chip (e.g. kapoho_point).")
@click.option("--activity", type=click.Path(dir_okay=False), help="Activity JSON of a recorded run "
              "(snndeploy-activity/1) for SynOps, NeuroBench workload metrics, energy and latency.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of cores and utilization.")
@click.option("--force", is_flag=True, help="Overwrite an existing --plot file.")
@json_option
def estimate(model: str, targets: tuple[str, ...], budget: str | None, system: str | None, activity: str | None,
             plot_path: str | None, force: bool, as_json: bool) -> None:
    """Estimate MODEL (.nir, netx .net/.h5, checkpoint .pt or spec .yaml) on one or more targets.

    Exit code 0: fits every target's budget (or the fit is unknown, for targets that publish no per-core
    capacity); 1: does not fit at least one target; 2: bad input.
    """
    from snndeploy.atomic import check_output
    from snndeploy.errors import UserError
    from snndeploy.hardware import estimate_model
    from snndeploy.hardware.estimate import NO_FIT
    from snndeploy.hardware.report import plot, render

    if plot_path:
        check_output(plot_path, force=force)
    if budget and system:
        raise UserError("give either --budget or --system, not both")
    result = estimate_model(model, targets, budget, activity, system)
    verdicts = [t["verdict"] for t in result["targets"]]
    if plot_path:
        result["plot"] = str(plot(result, plot_path, force=force))
    emit(result, as_json, render)
    if NO_FIT in verdicts:
        raise CommandExit(1)
