"""apply, diff, passes: the graph-surgery commands."""

from __future__ import annotations

from pathlib import Path

import click

from .. import api
from ..check.checker import CheckSettings
from ..check.layers import DEFAULT_ATOL, DEFAULT_CHUNK_BYTES, DEFAULT_RTOL
from ..core import fastpath
from ..core.bounds import Bound
from ..core.dump import DumpOnFailure
from ..core.errors import CgsurgError, InputError, NumericCheckFailed
from ..core.modelio import same_file
from ..core.registry import available_passes, load_plugin
from . import EXIT_AT_ONCE, cli, tables
from . import targets as target_cli
from .options import backend_option, input_settings, json_option, plugin_option, settings_group


def _check(no_check: bool, check_each: bool, min_cos: float | None) -> CheckSettings | bool:
    return False if no_check else CheckSettings(min_cos=min_cos, each_pass=check_each)


check_settings = settings_group(
    "check", _check,
    click.option("--no-check", is_flag=True, help="Skip the numeric check in ONNX Runtime."),
    click.option("--check-each", is_flag=True, help="Check after every pass, not only at the end."),
    click.option("--min-cos", type=click.FloatRange(-1, 1),
                 help="Accuracy bar: the check fails (exit 3) when the result's cosine (mean per-pixel for images, "
                      "flat otherwise) vs the original is below this (default with --target: the target's bar, "
                      "0.99); with --report, also a gate after every pass."),
)


def _report(report_dir: str | None, min_psnr: float | None, baseline: str | None, bench: bool,
            min_cos: float | None) -> api.ReportSettings | None:
    report_only = {"--min-psnr": min_psnr, "--baseline": baseline, "--bench": bench or None}
    if not report_dir:
        used = next((k for k, v in report_only.items() if v is not None), None)
        if used:
            raise InputError(f"{used} needs --report DIR")
        return None
    return api.ReportSettings(report_dir, min_cos=min_cos, min_psnr=min_psnr, baseline=baseline, bench=bench)


report_settings = settings_group(
    "report", _report,
    click.option("--report", "report_dir", metavar="DIR",
                 help="Write a per-pass accuracy report (json, md, html) here."),
    click.option("--min-psnr", type=float, help="Report gate: fail (exit 3) when the mean PSNR drops below this."),
    click.option("--baseline", metavar="REPORT.json", help="Flag passes that got worse than in this earlier report."),
    click.option("--bench", is_flag=True, help="Add batch-1 throughput after each pass to the report."),
    reads=("min_cos",),  # the bar is a gate after every pass too
)


@cli.command(short_help="Rewrite a model with passes or a target preset, checked.")
@click.argument("model")
@click.option("-o", "--output", required=True, help="Where to write the rewritten model.")
@click.option("--passes", "pipeline", metavar="PIPELINE",
              help="Comma-separated passes with options, e.g. 'fold-constants,static-batch(batch=1)' "
                   "(with --target: run after its preset).")
@check_settings
@input_settings(data_help="Info file of preprocessed samples: the check's and the report's inputs, and int8 "
                          "calibration.",
                samples_help="Number of --data samples the check (and the report) runs on.")
@click.option("--in-place", is_flag=True, help="Allow -o to name the input file.")
@click.option("--dump-on-failure", "dump_dir", metavar="DIR",
              help="When a pass fails or leaves an invalid model: write the model it received, what it left and "
                   "the pipeline that reproduces it (reproducer.json) here.")
@plugin_option
@json_option
@report_settings
@target_cli.target_settings
def apply(model, output, pipeline, check, inputs, in_place, dump_dir, plugins, as_json, report, target):
    """Rewrite MODEL with a pipeline of passes (or a --target's preset) and write the result to -o."""
    if not pipeline and not target.name:
        raise click.UsageError("give --passes PIPELINE, --target NAME, or both")
    if same_file(model, output) and not in_place:
        raise InputError(f"-o {output} is the input file; pass --in-place to overwrite it")
    dump = [DumpOnFailure(dump_dir)] if dump_dir else []
    retained: list = []  # the fast path's working graph, left for the quick exit to drop (not freed here)
    fastpath.RETAINED = retained
    try:
        result = api.apply(model, output, pipeline, check=check, inputs=inputs, report=report, target=target,
                           plugins=plugins, in_place=in_place, instruments=dump, warn=lambda m: click.echo(m, err=True))
    except CgsurgError as exc:
        target_cli.explain_failure(exc, output)
        for dumper in dump:
            if dumper.written:
                click.echo(f"reproducer: {Path(dump_dir) / 'reproducer.json'} (and the models beside it)", err=True)
            elif dumper.error:
                click.echo(f"reproducer: not written ({dumper.error})", err=True)
        if report and not isinstance(exc, InputError) and (Path(report.out_dir) / "report.html").exists():
            click.echo(f"report: {Path(report.out_dir) / 'report.html'}", err=True)
        raise
    finally:
        fastpath.RETAINED = None
    if as_json:
        tables.echo_json({"input": model, "output": output, **result.as_dict(), **target_cli.extras(result)})
        EXIT_AT_ONCE.update(ready=True, keep=(result, retained))
        return
    tables.pass_records(result)
    if result.check is not None:
        tables.comparison(result.check, "check vs original")
    else:
        click.echo("check: skipped (--no-check)")
    if result.report_dir:
        click.echo(f"report: {result.report_dir / 'report.html'} (and report.json, report.md)")
    click.echo(f"wrote {output}")
    target_cli.after_apply(result, output)
    EXIT_AT_ONCE.update(ready=True, keep=(result, retained))


@cli.command(short_help="Compare two models' outputs (or every layer) on the same inputs.")
@click.argument("model_a")
@click.argument("model_b")
@input_settings(data_help="Info file of preprocessed samples to compare on (the first --samples), instead of "
                          "--inputs.",
                samples_help="How many --data samples to compare on.")
@click.option("--atol", type=click.FloatRange(min=0),
              help="Fail (exit 3) when any |A - B| exceeds this. With --layers: a tensor diverges where "
                   f"|B - A| > atol + rtol·|A| (default {DEFAULT_ATOL:g}).")
@click.option("--rtol", type=click.FloatRange(min=0),
              help=f"With --layers: the relative part of the per-tensor tolerance (default {DEFAULT_RTOL:g}).")
@click.option("--min-cos", type=click.FloatRange(-1, 1),
              help="Fail (exit 3) when an output's cosine (per-pixel for images, flat otherwise) is below this.")
@click.option("--layers", is_flag=True,
              help="Compare every intermediate tensor both models compute (matched by name, else by the node that "
                   "produced it), in A's topological order, and name the first that diverges (exit 3).")
@click.option("--chunk-mb", type=click.IntRange(min=1), default=DEFAULT_CHUNK_BYTES >> 20, show_default=True,
              help="With --layers: mark at most this many MiB of tensors per run of each model.")
@json_option
@backend_option
def diff(model_a, model_b, inputs, atol, rtol, min_cos, layers, chunk_mb, as_json, backend):
    """Compare the outputs of MODEL_B against MODEL_A on the same inputs (MODEL_B on --backend)."""
    if layers:
        return _diff_layers(model_a, model_b, inputs, atol, rtol, min_cos, chunk_mb, as_json, backend)
    if rtol is not None:
        raise click.UsageError("--rtol needs --layers")
    bound = Bound(max_abs=atol, min_cos=min_cos) if atol is not None or min_cos is not None else None
    result = api.diff(model_a, model_b, shapes=inputs.shapes, inputs_dir=inputs.inputs_dir, seed=inputs.seed,
                      bound=bound, warn=lambda m: click.echo(m, err=True), backend=backend, data=inputs.data,
                      samples=inputs.samples)
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        on = " on OpenVINO" if backend == "openvino" else ""
        tables.comparison(result, f"{model_b}{on} vs {model_a}")
    if not result.ok:
        raise NumericCheckFailed(result.violations[0])


def _diff_layers(model_a, model_b, inputs, atol, rtol, min_cos, chunk_mb, as_json, backend):
    if min_cos is not None:
        raise click.UsageError("--min-cos judges outputs; with --layers, tensors are judged by --atol/--rtol")
    result = api.diff_layers(model_a, model_b, shapes=inputs.shapes, inputs_dir=inputs.inputs_dir, seed=inputs.seed,
                             backend=backend, data=inputs.data, samples=inputs.samples,
                             atol=DEFAULT_ATOL if atol is None else atol, rtol=DEFAULT_RTOL if rtol is None else rtol,
                             chunk_bytes=chunk_mb << 20, warn=lambda m: click.echo(m, err=True))
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        on = " on OpenVINO" if backend == "openvino" else ""
        tables.layer_diff(result, f"{model_b}{on} vs {model_a}")
    first = result.first_divergence
    if first is not None:
        raise NumericCheckFailed(f"first diverging tensor: '{first.name}' (made by {first.op} node '{first.node}'), "
                                 f"{first.mismatched} of {first.elements} elements beyond {result.tolerance()}"
                                 + (f": {first.note}" if first.note else ""))


@cli.command("passes", short_help="List the registered passes and their options.")
@plugin_option
@json_option
def list_passes(plugins, as_json):
    """List the registered passes with their options."""
    for plugin in plugins:
        load_plugin(plugin)
    rows = [{"name": name, "exact": cls.exact, "bound": cls().bound().describe(), "summary": cls.summary,
             "module": cls.__module__, "options": {k: o.describe() for k, o in cls.options.items()}}
            for name, cls in available_passes().items()]
    if as_json:
        tables.echo_json(rows)
    else:
        tables.passes(rows)
