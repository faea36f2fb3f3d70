"""lint, targets, and what ``apply --target`` adds to apply: compiler targets on the command line."""

from __future__ import annotations

import click

from .. import api
from ..core.errors import CgsurgError
from ..core.records import PipelineResult
from ..core.registry import load_plugin
from ..targets import CompileSettings, LintResult, TargetCheckFailed, available_targets
from ..targets.commands import PROFILE_BATCH, PROFILE_KINDS, PROFILE_SIDE
from . import cli, tables
from .options import (
    InputShape,
    input_shape_option,
    json_option,
    plugin_option,
    settings_group,
    shapes_of,
    weights_option,
)


def _target(target: str | None, lossy: bool, aipp: bool, weights: str, min_shapes: tuple, opt_shapes: tuple,
            max_shapes: tuple) -> api.TargetSettings:
    return api.TargetSettings(target, lossy=lossy, aipp=aipp,
                              compile=compile_settings(weights, min_shapes, opt_shapes, max_shapes))


target_settings = settings_group(
    "target", _target,
    click.option("--target", metavar="NAME[:VERSION]",
                 help="Compiler target (see 'cgsurg targets'): run its preset before --passes, lint the result "
                      "(errors: exit 3, nothing written), write the compile command next to -o."),
    click.option("--lossy", is_flag=True, help="With --target: the target's lossy preset (e.g. reflect2const)."),
    click.option("--aipp", is_flag=True,
                 help="With --target ascend: also write OUT.aipp.cfg (the [-1, 1] normalisation done by AIPP on the "
                      "chip) and pass it to atc; the model keeps its float input."),
    weights_option("With --target openvino, the weights the ovc script keeps (--compress_to_fp16)"),
    *(click.option(f"--{kind}-shapes", f"{kind}_shapes", multiple=True, type=InputShape(),
                   help=f"With --target tensorrt: the {what} shape of a dynamic input in trtexec's profile "
                        f"(repeatable; default batch {batch}, other dynamic axes {side}).")
      for kind, what, batch, side in zip(PROFILE_KINDS, ("smallest", "tuned-for", "largest"), PROFILE_BATCH,
                                         PROFILE_SIDE)),
)


def compile_settings(weights: str, min_shapes: tuple, opt_shapes: tuple, max_shapes: tuple) -> CompileSettings:
    """The ``CompileSettings`` of ``target_settings``' values."""
    return CompileSettings(weights=weights, min_shapes=dict(min_shapes), opt_shapes=dict(opt_shapes),
                           max_shapes=dict(max_shapes))


@cli.command(short_help="Check a model against what a compiler accepts.")
@click.argument("model")
@click.option("--target", required=True, metavar="NAME[:VERSION]", help="e.g. ascend, ascend:cann5, tensorrt:8.0.")
@plugin_option
@input_shape_option
@click.option("--data", metavar="INFO", help="Predict the compiled model's accuracy on these samples (an info file of "
                                             "'cgsurg prep') at the precision the compiler computes in.")
@click.option("--precision", metavar="P", help="With --data: the precision to predict instead of the compiler's "
                                               "default: fp32, fp16, bf16 or the compiler's option (ascend: "
                                               "allow_mix_precision, must_keep_origin_dtype; tensorrt: fp16, best; "
                                               "openvino: f32, bf16, f16).")
@click.option("--samples", default=4, show_default=True, help="With --data: how many samples.")
@json_option
def lint(model, target, plugins, input_shapes, data, precision, samples, as_json):
    """Check MODEL against what a compiler accepts. Exit 0 clean, 4 warnings only, 5 errors."""
    result = api.lint(model, target, plugins=plugins, shapes=shapes_of(input_shapes), data=data,
                      precision=precision, samples=samples)
    if as_json:
        tables.echo_json({"model": model, **result.as_dict()})
    else:
        tables.lint(result, model)
        if result.prediction is not None:
            tables.prediction(result.prediction)
    click.get_current_context().exit(result.exit_code)


@cli.command("targets", short_help="List the compiler targets: versions, rules, presets.")
@plugin_option
@json_option
def list_targets(plugins, as_json):
    """List the compiler targets: versions, rules, presets."""
    for plugin in plugins:
        load_plugin(plugin)
    rows = []
    for name, cls in available_targets().items():
        versions = {}
        for version, release in cls.versions.items():
            target = cls(version)
            versions[version] = {"release": release, "preset": str(target.preset()),
                                 "lossy_preset": str(target.preset(True)),
                                 "rules": [{"id": r.id, "summary": r.summary} for r in target.rules()]}
        rows.append({"name": name, "summary": cls.summary, "tool": cls.tool, "default_version": cls.default_version,
                     "module": cls.__module__, "versions": versions})
    if as_json:
        tables.echo_json(rows)
    else:
        tables.targets(rows)


def explain_failure(exc: CgsurgError, output: str) -> None:
    """Before the one-line error of a target apply that left errors: the findings, naming what
    was linted (the rewritten model in memory), since ``output`` is not written."""
    if isinstance(exc, TargetCheckFailed):
        tables.lint(exc.lint, f"the rewritten model (not written to {output})", err=True)


def extras(result: PipelineResult) -> dict:
    """``apply --json`` additions: the lint and the compile step."""
    out = {}
    if result.lint is not None:
        out["lint"] = result.lint.as_dict()
    if result.compile is not None:
        out["compile"] = result.compile.as_dict()
    return out


def after_apply(result: PipelineResult, output: str) -> None:
    """Lint warnings left after a target apply, then the compile command and the files written."""
    lint = result.lint
    if not isinstance(lint, LintResult):  # None without a target (the core types it by a protocol)
        return
    if lint.warnings:
        tables.lint(lint, output)
    else:
        click.echo(f"{lint.target}: no errors or warnings in {output}")
    step = result.compile
    if step is None:
        return
    if step.command is None:
        click.echo(f"{lint.target}: no compile step (the runtime loads {output} itself)")
    else:
        click.echo(step.command.line)
    for path in step.files:
        click.echo(f"wrote {path}")
