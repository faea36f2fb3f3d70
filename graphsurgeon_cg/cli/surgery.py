"""apply, diff, passes: the graph-surgery commands."""

from __future__ import annotations

from pathlib import Path

import click

from .. import api
from ..core.bounds import Bound
from ..core.dump import DumpOnFailure
from ..core.errors import CgsurgError, InputError, NumericCheckFailed
from ..core.modelio import same_file
from ..core.registry import available_passes, load_plugin
from . import EXIT_AT_ONCE, cli, tables
from . import targets as target_cli
from .options import backend_option, check_inputs, data_option, group, json_option, plugin_option, shapes_of

report_options = group(
    click.option("--report", "report_dir", metavar="DIR",
                 help="Write a per-pass accuracy report (json, md, html) here."),
    click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1),
                 help="Number of --data samples the check (and the report) runs on."),
    click.option("--min-cos", type=click.FloatRange(-1, 1),
                 help="Accuracy bar: the check fails (exit 3) when the result's cosine (mean per-pixel for images, "
                      "flat otherwise) vs the original is below this (default with --target: the target's bar, "
                      "0.99); with --report, also a gate after every pass."),
    click.option("--min-psnr", type=float, help="Report gate: fail (exit 3) when the mean PSNR drops below this."),
    click.option("--baseline", metavar="REPORT.json", help="Flag passes that got worse than in this earlier report."),
    click.option("--bench", is_flag=True, help="Add batch-1 throughput after each pass to the report."),
)


def _report_settings(report_dir, info, samples, min_cos, min_psnr, baseline, bench) -> api.ReportSettings | None:
    report_only = {"--min-psnr": min_psnr, "--baseline": baseline, "--bench": bench or None}
    if not report_dir:
        used = next((k for k, v in report_only.items() if v is not None), None)
        if used:
            raise InputError(f"{used} needs --report DIR")
        return None
    return api.ReportSettings(report_dir, data=info, samples=samples, min_cos=min_cos, min_psnr=min_psnr,
                              baseline=baseline, bench=bench)


@cli.command(short_help="Rewrite a model with passes or a target preset, checked.")
@click.argument("model")
@click.option("-o", "--output", required=True, help="Where to write the rewritten model.")
@click.option("--passes", "pipeline", metavar="PIPELINE",
              help="Comma-separated passes with options, e.g. 'fold-constants,static-batch(batch=1)' "
                   "(with --target: run after its preset).")
@click.option("--no-check", is_flag=True, help="Skip the numeric check in ONNX Runtime.")
@click.option("--check-each", is_flag=True, help="Check after every pass, not only at the end.")
@check_inputs
@click.option("--in-place", is_flag=True, help="Allow -o to name the input file.")
@click.option("--dump-on-failure", "dump_dir", metavar="DIR",
              help="When a pass fails or leaves an invalid model: write the model it received, what it left and "
                   "the pipeline that reproduces it (reproducer.json) here.")
@plugin_option
@json_option
@data_option(help="Info file of preprocessed samples: report inputs and int8 calibration.")
@report_options
@target_cli.target_options
def apply(model, output, pipeline, no_check, check_each, input_shapes, inputs_dir, seed, in_place, dump_dir, plugins,
          as_json, info, report_dir, samples, min_cos, min_psnr, baseline, bench, target, lossy, aipp, weights,
          min_shapes, opt_shapes, max_shapes):
    """Rewrite MODEL with a pipeline of passes (or a --target's preset) and write the result to -o."""
    if not pipeline and not target:
        raise click.UsageError("give --passes PIPELINE, --target NAME, or both")
    report = _report_settings(report_dir, info, samples, min_cos, min_psnr, baseline, bench)
    if same_file(model, output) and not in_place:
        raise InputError(f"-o {output} is the input file; pass --in-place to overwrite it")
    dump = [DumpOnFailure(dump_dir)] if dump_dir else []
    try:
        result = api.apply(model, output, pipeline, check=not no_check, check_each=check_each,
                           shapes=shapes_of(input_shapes), inputs_dir=inputs_dir, seed=seed, in_place=in_place,
                           plugins=plugins, report=report, data=info, warn=lambda m: click.echo(m, err=True),
                           instruments=dump,
                           target=target, lossy=lossy, aipp=aipp, min_cos=min_cos, samples=samples,
                           compile_settings=target_cli.compile_settings(weights, min_shapes, opt_shapes, max_shapes))
    except CgsurgError as exc:
        target_cli.explain_failure(exc, output)
        for dumper in dump:
            if dumper.written:
                click.echo(f"reproducer: {Path(dump_dir) / 'reproducer.json'} (and the models beside it)", err=True)
            elif dumper.error:
                click.echo(f"reproducer: not written ({dumper.error})", err=True)
        if report_dir and not isinstance(exc, InputError) and (Path(report_dir) / "report.html").exists():
            click.echo(f"report: {Path(report_dir) / 'report.html'}", err=True)
        raise
    if as_json:
        tables.echo_json({"input": model, "output": output, **result.as_dict(), **target_cli.extras(result)})
        EXIT_AT_ONCE["ready"] = True
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
    EXIT_AT_ONCE["ready"] = True


@cli.command(short_help="Compare two models' outputs on the same inputs.")
@click.argument("model_a")
@click.argument("model_b")
@check_inputs
@click.option("--atol", type=float, help="Fail (exit 3) when any |A - B| exceeds this.")
@click.option("--min-cos", type=click.FloatRange(-1, 1),
              help="Fail (exit 3) when an output's cosine (per-pixel for images, flat otherwise) is below this.")
@json_option
@backend_option
@data_option(help="Info file of preprocessed samples to compare on (the first --samples), instead of --inputs.")
@click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1),
              help="How many --data samples to compare on.")
def diff(model_a, model_b, input_shapes, inputs_dir, seed, atol, min_cos, as_json, backend, info, samples):
    """Compare the outputs of MODEL_B against MODEL_A on the same inputs (MODEL_B on --backend)."""
    bound = Bound(max_abs=atol, min_cos=min_cos) if atol is not None or min_cos is not None else None
    result = api.diff(model_a, model_b, shapes=shapes_of(input_shapes), inputs_dir=inputs_dir, seed=seed, bound=bound,
                      warn=lambda m: click.echo(m, err=True), backend=backend, data=info, samples=samples)
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        on = " on OpenVINO" if backend == "openvino" else ""
        tables.comparison(result, f"{model_b}{on} vs {model_a}")
    if not result.ok:
        raise NumericCheckFailed(result.violations[0])


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
