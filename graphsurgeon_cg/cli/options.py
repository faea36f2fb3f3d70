"""Option groups shared by several commands, declared once (Polygraphy's argument groups are
the model), and the parameter types that turn command-line text into typed values.

A group made by ``settings_group`` reaches the command as one typed value (``api``'s settings
dataclasses: ``InputSettings``, ``CheckSettings``, ``ReportSettings``, ``TargetSettings``), so a
command takes a few objects and hands them to the API as they are."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..api import InputSettings
from ..check.providers import BACKENDS, PROVIDERS
from ..targets.commands import WEIGHTS

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def group(*decorators: Decorator) -> Decorator:
    """Several click options as one decorator (applied in the order listed)."""
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


def settings_group(name: str, parse: Callable[..., Any], *options: Decorator, reads: Sequence[str] = ()) -> Decorator:
    """``options`` that reach the command as one keyword argument, ``name``: ``parse`` called
    with their values by parameter name, and with the values of ``reads``, options of another
    group that this one depends on (e.g. the report's gate reads the check's ``--min-cos``).
    Errors ``parse`` raises are the command's (one line, their exit code)."""
    probe = group(*options)(lambda: None)
    names = [p.name for p in getattr(probe, "__click_params__", [])]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in names}
            shared = {k: click.get_current_context().params[k] for k in reads}
            kwargs[name] = parse(**values, **shared)
            return func(*args, **kwargs)
        return group(*options)(command)
    return decorate


class InputShape(click.ParamType):
    """``NAME:D1,D2,...`` -> ``(NAME, (D1, D2, ...))``."""

    name = "NAME:D1,D2,.."

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, tuple[int, ...]]:
        if isinstance(value, tuple):
            return value
        name, sep, dims = str(value).rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            self.fail(f"{value!r}: expected NAME:D1,D2,... with positive integers", param, ctx)
        return name, shape


class ImageSize(click.ParamType):
    """``256`` -> ``(256, 256)``; ``480,640`` -> ``(480, 640)`` (height, width)."""

    name = "SIZE|H,W"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            dims = [int(d) for d in str(value).split(",")]
        except ValueError:
            dims = []
        if len(dims) not in (1, 2) or min(dims) < 1:
            self.fail(f"{value!r}: expected SIZE or HEIGHT,WIDTH with positive integers", param, ctx)
        return (dims[0], dims[-1])


class Floats(click.ParamType):
    """``0.485,0.456,0.406`` -> ``(0.485, 0.456, 0.406)``: ``count`` numbers."""

    def __init__(self, count: int = 3, metavar: str = "R,G,B"):
        self.count, self.name = count, metavar

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            numbers = ()
        if len(numbers) != self.count:
            self.fail(f"{value!r}: expected {self.count} comma-separated numbers ({self.name})", param, ctx)
        return numbers


def deprecated_option(*decls: str, use: str, **kwargs: Any) -> Decorator:
    """An old spelling kept for one release: hidden from --help, and a warning on stderr when used."""
    def warn(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.COMMANDLINE:
            old = next(d for d in decls if d.startswith("-"))
            click.echo(f"cgsurg: warning: {old} is deprecated and goes in the next release; use {use}", err=True)
        return value
    return click.option(*decls, hidden=True, callback=warn, help=f"Deprecated: use {use}.", **kwargs)


class BatchSizes(click.ParamType):
    """``1,16`` -> ``[1, 16]``: positive integers, no empty items."""

    name = "N[,N...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[int]:
        if isinstance(value, list):
            return value
        items = str(value).split(",")
        try:
            sizes = [int(x) for x in items]
        except ValueError:
            self.fail(f"{value!r}: expected batch sizes like 1,16", param, ctx)
        if min(sizes) < 1:
            self.fail(f"{value!r}: batch sizes must be at least 1", param, ctx)
        return sizes


def shapes_of(items: tuple) -> dict[str, tuple[int, ...]]:
    return dict(items)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
plugin_option = click.option("--plugin", "plugins", multiple=True, metavar="FILE.py",
                             help="Python file that registers extra passes or targets (repeatable).")
input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, type=InputShape(),
    help="NAME:D1,D2,...: the shape to run an input with dynamic axes at (repeatable; a dynamic batch defaults to "
         "1, and infer, bench and profile take it from --batch). With --target, on lint, and for tune's "
         "candidates, the model is fixed at it (the static-shape pass).")
check_inputs = group(
    input_shape_option,
    click.option("--inputs", "inputs_dir", metavar="DIR",
                 help="Folder of .npy/.npz files or images to compare on, instead of seeded random inputs."),
    click.option("--seed", default=0, show_default=True, help="Seed of the random inputs."),
)
backend_option = click.option(
    "--backend", default="ort", show_default=True, type=click.Choice(list(BACKENDS)),
    help="Run on ONNX Runtime (ort) or compiled by OpenVINO for its CPU device (openvino; reads ONNX or an IR .xml).")
runtime_options = group(
    backend_option,
    click.option("--threads", type=click.IntRange(min=1),
                 help="Intra-op threads of ORT, or OpenVINO's INFERENCE_NUM_THREADS (default: the runtime's choice)."),
    click.option("--provider", default="cpu", show_default=True, type=click.Choice(list(PROVIDERS)),
                 help="ONNX Runtime execution provider."),
)


def data_option(required: bool = False,
                help: str = "Info file of preprocessed samples (from 'cgsurg prep').") -> Decorator:
    return click.option("--data", "info", metavar="INFO", required=required, help=help)


ray_option = click.option(
    "--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
    help="Run on Ray ([ray] extra): alone, a local Ray; 'auto', HOST:6379 or ray://HOST:10001, a cluster "
         "(files stay on this machine: Ray ships them; a lost worker node's work is re-run).")


def weights_option(where: str) -> Decorator:
    """OpenVINO's IR weight precision, one flag with one default for ``apply --target openvino``
    (its ovc script) and ``compile --target openvino`` (the IR it writes)."""
    return click.option("--weights", type=click.Choice(WEIGHTS), default=WEIGHTS[0], show_default=True,
                        help=f"{where}: fp32 (the default) keeps them as cgsurg checked them; fp16 compresses them "
                             "(ovc's own default: half the size, computed in float32 on the CPU).")


def samples_option(help: str) -> Decorator:
    return click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1), help=help)


def input_settings(data_help: str, samples_help: str) -> Decorator:
    """``--input-shape``, ``--inputs``, ``--seed``, ``--data``, ``--samples`` -> ``inputs``, an
    ``api.InputSettings``: what a command runs its models on."""
    def parse(input_shapes: tuple, inputs_dir: str | None, seed: int, info: str | None,
              samples: int) -> InputSettings:
        return InputSettings(data=info, samples=samples, shapes=shapes_of(input_shapes), inputs_dir=inputs_dir,
                             seed=seed)

    return settings_group("inputs", parse, check_inputs, data_option(help=data_help), samples_option(samples_help))
