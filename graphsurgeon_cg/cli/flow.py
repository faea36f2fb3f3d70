"""export, run, demo: getting a model in, and the whole flow in one command."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.errors import InputError
from . import cli


@cli.command(short_help="Export a CycleGAN/pix2pix checkpoint to ONNX, verified.")
@click.argument("checkpoint", required=False)
@click.option("-o", "--output", required=True,
              help="Output .onnx file; with --g-a/--g-b, the folder for model_Ga.onnx and model_Gb.onnx.")
@click.option("--g-a", "g_a", metavar="PTH",
              help="G_A checkpoint (satellite -> map): model_Ga.onnx, img_sat_maps -> maps.")
@click.option("--g-b", "g_b", metavar="PTH",
              help="G_B checkpoint (map -> satellite): model_Gb.onnx, img_maps_sat -> sat.")
@click.option("--opset", default=11, show_default=True, type=click.IntRange(7, 23),
              help="ONNX opset (the vendor compiler expects 11).")
@click.option("--input-name", help="Input name (default: input, or the vendor guide's for --g-a/--g-b).")
@click.option("--output-name", help="Output name (default: output, or the vendor guide's for --g-a/--g-b).")
@click.option("--batch", type=click.IntRange(min=1), help="Fix the batch size (default: dynamic batch axis only).")
@click.option("--dynamic-batch", is_flag=True, help="Keep axis 0 dynamic (the default).")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Image height and width of the export.")
@click.option("--arch", help="Force the architecture: resnet_9blocks, resnet_6blocks, unet_256, unet_128 ...")
@click.option("--ngf", type=click.IntRange(min=1), help="Force the number of filters of the first conv.")
@click.option("--norm", type=click.Choice(["instance", "instance_affine", "batch", "none"]),
              help="Force the norm layer.")
@click.option("--dropout/--no-dropout", default=None, help="Force dropout in the ResNet blocks.")
def export(checkpoint, output, g_a, g_b, opset, input_name, output_name, batch, dynamic_batch, size, arch, ngf,
           norm, dropout):
    """Export an official CycleGAN/pix2pix generator checkpoint to ONNX, verified against PyTorch."""
    from ..export import export_checkpoint, export_pair

    if batch is not None and dynamic_batch:
        raise InputError("give --batch N or --dynamic-batch, not both")
    if bool(checkpoint) == bool(g_a or g_b):
        raise InputError("give either one CHECKPOINT or --g-a/--g-b")
    options = dict(opset=opset, batch=batch, size=size, arch=arch, ngf=ngf, norm=norm, use_dropout=dropout)
    if checkpoint:
        paths = [export_checkpoint(checkpoint, output, input_name=input_name or "input",
                                   output_name=output_name or "output", notice=click.echo, **options)]
    else:
        paths = export_pair(g_a, g_b, output, notice=click.echo, input_name=input_name, output_name=output_name,
                            **options)
    for path in paths:
        click.echo(f"wrote {path}")


@cli.command("run", short_help="Run the whole flow from a YAML/JSON config.")
@click.argument("config")
@click.option("-o", "--output", help="Output folder (default: the config's 'output').")
def run_command(config, output):
    """Run export -> apply (with report) -> prep -> infer -> eval -> bench from a YAML/JSON CONFIG."""
    from ..workflows.flow import FlowConfig, run_flow

    summary = run_flow(FlowConfig.load(config), output, echo=click.echo)
    click.echo((Path(summary["output"]) / "summary.md").read_text().rstrip())


@cli.command(short_help="The whole flow on a bundled trained model.")
@click.option("-o", "--output", default="cgsurg-demo", show_default=True, help="Output folder.")
@click.option("--style", default=19, show_default=True, type=click.IntRange(0, 25),
              help="Which of the trained model's 26 styles to freeze.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=8),
              help="Image size (a multiple of 8).")
@click.option("--ngf", default=64, show_default=True, type=click.IntRange(min=1),
              help="Width of the seeded generator of the export step (64: the reference size).")
@click.option("--blocks", default=9, show_default=True, type=click.IntRange(min=1),
              help="Residual blocks of the seeded generator of the export step (9: resnet_9blocks).")
@click.option("--rounds", default=20, show_default=True, type=click.IntRange(min=1),
              help="Benchmark rounds.")
def demo(output, style, size, ngf, blocks, rounds):
    """The whole flow on a trained style-transfer generator and bundled photos: an exact and the
    vendor's lossy pipeline side by side, with per-pass reports (export shown on a seeded one)."""
    from ..workflows.demo import demo as run_demo

    summary = run_demo(output, ngf=ngf, blocks=blocks, size=size, rounds=rounds, style=style, echo=click.echo)
    click.echo((Path(summary["output"]) / "summary.md").read_text().rstrip())
