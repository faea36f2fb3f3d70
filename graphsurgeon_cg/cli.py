"""The ``cgsurg`` command line: a thin layer over the Python API in ``graphsurgeon_cg.api``."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from . import api
from .errors import CgsurgError, InputError, NumericCheckFailed
from .numeric import Bound, Comparison
from .registry import available_passes, load_plugin

_plugin_option = click.option("--plugin", "plugins", multiple=True, metavar="FILE.py",
                              help="Python file that registers extra passes (repeatable).")
_input_shape_option = click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME:D1,D2,..",
                                   help="Shape for an input with dynamic axes (default: batch 1).")
_inputs_option = click.option("--inputs", "inputs_dir", metavar="DIR",
                              help="Folder of .npy/.npz files or images to compare on, instead of random inputs.")
_seed_option = click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")


def _friendly_errors(func):
    """One line on stderr and the error's exit code, never a traceback (CGSURG_DEBUG=1 shows it)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:  # e.g. piped into head: not an error of ours
            sys.stderr.close()
            sys.exit(0)
        except CgsurgError as exc:
            if os.environ.get("CGSURG_DEBUG"):
                raise
            click.echo(f"cgsurg: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # a bug of ours: still one line, with a way to see more
            if os.environ.get("CGSURG_DEBUG"):
                raise
            message = str(exc).strip().splitlines()
            click.echo(f"cgsurg: internal error: {type(exc).__name__}: {message[0] if message else ''} "
                       "(set CGSURG_DEBUG=1 for the traceback)", err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cgsurg")
def cli() -> None:
    """Pluggable ONNX graph surgery for image generators, every rewrite checked numerically."""


@cli.command()
@click.argument("model")
@click.option("-o", "--output", required=True, help="Where to write the rewritten model.")
@click.option("--passes", "pipeline", required=True, metavar="PIPELINE",
              help="Comma-separated passes with options, e.g. 'fold-constants,static-batch(batch=1)'.")
@click.option("--no-check", is_flag=True, help="Skip the numeric check in ONNX Runtime.")
@click.option("--check-each", is_flag=True, help="Check after every pass, not only at the end.")
@_input_shape_option
@_inputs_option
@_seed_option
@click.option("--in-place", is_flag=True, help="Allow -o to name the input file.")
@_plugin_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--report", "report_dir", metavar="DIR", help="Write a per-pass accuracy report (json, md, html) here.")
@click.option("--data", "info", metavar="INFO",
              help="Preprocessed samples (an info file): report inputs and int8 calibration.")
@click.option("--samples", default=4, show_default=True, help="Number of report inputs.")
@click.option("--min-cos", type=float, help="Report gate: fail (exit 3) when the mean pixel cosine drops below.")
@click.option("--min-psnr", type=float, help="Report gate: fail (exit 3) when the mean PSNR drops below.")
@click.option("--baseline", metavar="REPORT.json", help="Flag passes that got worse than in this earlier report.")
@click.option("--bench", is_flag=True, help="Add batch-1 throughput after each pass to the report.")
@_friendly_errors
def apply(model, output, pipeline, no_check, check_each, input_shapes, inputs_dir, seed, in_place, plugins, as_json,
          report_dir, info, samples, min_cos, min_psnr, baseline, bench):
    """Rewrite MODEL with a pipeline of passes and write the result to -o."""
    report_only = {"--min-cos": min_cos, "--min-psnr": min_psnr, "--baseline": baseline,
                   "--bench": bench or None}
    if not report_dir and any(v is not None for v in report_only.values()):
        used = next(k for k, v in report_only.items() if v is not None)
        raise InputError(f"{used} needs --report DIR")
    report = api.ReportSettings(report_dir, data=info, samples=samples, min_cos=min_cos, min_psnr=min_psnr,
                                baseline=baseline, bench=bench) if report_dir else None
    try:
        result = api.apply(model, output, pipeline, check=not no_check, check_each=check_each,
                           input_shapes=input_shapes, inputs_dir=inputs_dir, seed=seed, in_place=in_place,
                           plugins=plugins, report=report, data=info)
    except CgsurgError:
        if report_dir and (Path(report_dir) / "report.html").exists():
            click.echo(f"report: {Path(report_dir) / 'report.html'}", err=True)
        raise
    if as_json:
        click.echo(json.dumps({"input": model, "output": output, **result.as_dict()}, indent=2))
        return
    click.echo(f"pipeline: {result.pipeline}")
    width = max(len(r.spec) for r in result.records)
    click.echo(f"  {'pass':<{width}}  {'rewrites':>8}  {'nodes':>13}  {'time':>7}  {'pixel_cos':>9}  op delta")
    for r in result.records:
        delta = ", ".join(f"{op} {d:+d}" for op, d in r.op_delta.items()) or "-"
        nodes = f"{r.nodes_before} -> {r.nodes_after}"
        cos = f"{min(m.pixel_cos for m in r.check.outputs):.6f}" if r.check and r.check.outputs else "-"
        click.echo(f"  {r.spec:<{width}}  {r.rewrites:>8}  {nodes:>13}  {r.seconds:>6.2f}s  {cos:>9}  {delta}")
        if not r.rewrites:
            for reason in r.reasons[:5]:
                click.echo(f"  {'':<{width}}  why not: {reason}")
    if result.check is not None:
        _print_comparison(result.check, f"check vs original ({result.bound.describe()})")
    else:
        click.echo("check: skipped (--no-check)")
    if result.report_dir:
        click.echo(f"report: {result.report_dir / 'report.html'} (and report.json, report.md)")
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("model_a")
@click.argument("model_b")
@_input_shape_option
@_inputs_option
@_seed_option
@click.option("--atol", type=float, help="Fail (exit 3) when any |A - B| exceeds this.")
@click.option("--min-cos", type=float, help="Fail (exit 3) when the pixel cosine of an output is below this.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@_friendly_errors
def diff(model_a, model_b, input_shapes, inputs_dir, seed, atol, min_cos, as_json):
    """Compare the outputs of MODEL_B against MODEL_A on the same inputs."""
    bound = Bound(max_abs=atol, min_pixel_cos=min_cos) if atol is not None or min_cos is not None else None
    comparison = api.diff(model_a, model_b, input_shapes=input_shapes, inputs_dir=inputs_dir, seed=seed, bound=bound)
    if as_json:
        click.echo(json.dumps(comparison.as_dict(), indent=2))
    else:
        _print_comparison(comparison, f"{model_b} vs {model_a}" + (f" ({bound.describe()})" if bound else ""))
    if not comparison.ok:
        click.echo(f"cgsurg: error: {comparison.violations[0]}", err=True)
        sys.exit(3)


@cli.command("passes")
@_plugin_option
@click.option("--json", "as_json", is_flag=True, help="Print the passes as JSON.")
@_friendly_errors
def list_passes(plugins, as_json):
    """List the registered passes with their options."""
    for plugin in plugins:
        load_plugin(plugin)
    passes = available_passes()
    rows = [{"name": name, "exact": cls.exact, "bound": cls().bound.describe(), "summary": cls.summary,
             "module": cls.__module__,
             "options": {k: {"type": o.type.__name__, "default": list(o.default) if isinstance(o.default, tuple) else o.default,
                             "help": o.help, **({"choices": list(o.choices)} if o.choices else {})}
                         for k, o in cls.options.items()}}
            for name, cls in passes.items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        kind = "exact" if row["exact"] else f"lossy, {row['bound']}"
        click.echo(f"{row['name']:<16} [{kind}] {row['summary']}")
        for key, opt in row["options"].items():
            click.echo(f"{'':<18}{key}: {opt['type']} = {opt['default']!r}  {opt['help']}")


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("-o", "--output", required=True,
              help="Output .onnx file; with --g-a/--g-b, the folder for model_Ga.onnx and model_Gb.onnx.")
@click.option("--g-a", "g_a", metavar="PTH", help="G_A checkpoint (satellite -> map): model_Ga.onnx, img_sat_maps -> maps.")
@click.option("--g-b", "g_b", metavar="PTH", help="G_B checkpoint (map -> satellite): model_Gb.onnx, img_maps_sat -> sat.")
@click.option("--opset", default=11, show_default=True, help="ONNX opset (the vendor compiler expects 11).")
@click.option("--input-name", help="Input name (default: input, or the vendor guide's for --g-a/--g-b).")
@click.option("--output-name", help="Output name (default: output, or the vendor guide's for --g-a/--g-b).")
@click.option("--batch", type=int, help="Fix the batch size (default: dynamic batch axis only).")
@click.option("--dynamic-batch", is_flag=True, help="Keep axis 0 dynamic (the default).")
@click.option("--size", default=256, show_default=True, help="Image height and width of the export.")
@click.option("--arch", help="Force the architecture: resnet_9blocks, resnet_6blocks, unet_256, unet_128 ...")
@click.option("--ngf", type=int, help="Force the number of filters of the first conv.")
@click.option("--norm", type=click.Choice(["instance", "instance_affine", "batch", "none"]), help="Force the norm layer.")
@click.option("--dropout/--no-dropout", default=None, help="Force dropout in the ResNet blocks.")
@_friendly_errors
def export(checkpoint, output, g_a, g_b, opset, input_name, output_name, batch, dynamic_batch, size, arch, ngf,
           norm, dropout):
    """Export an official CycleGAN/pix2pix generator checkpoint to ONNX, verified against PyTorch."""
    from .export import export_checkpoint, export_pair

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


_threads_option = click.option("--threads", type=int, help="ORT intra-op threads (default: ORT's choice).")
_provider_option = click.option("--provider", default="cpu", show_default=True,
                                help="Execution provider: cpu, cuda, tensorrt or openvino.")


@cli.command()
@click.argument("src_dir")
@click.option("-o", "--output", "dst_dir", required=True, help="Folder for the .npy files and the info file.")
@click.option("--size", default=256, show_default=True, help="Resize to SIZE x SIZE.")
@click.option("--resample", default="bicubic", show_default=True, help="bicubic, bilinear, lanczos, nearest, box, hamming.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "uint8"]),
              help="float32 in [-1, 1] like the reference, or uint8 for models that normalise in the graph.")
@_friendly_errors
def prep(src_dir, dst_dir, size, resample, dtype):
    """Preprocess the images of SRC_DIR into .npy files and an info file."""
    from .prep import prep as run_prep

    result = run_prep(src_dir, dst_dir, size=size, resample=resample, dtype=dtype,
                      warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {result.written} samples and {result.info}" +
               (f"; skipped {len(result.skipped)} unreadable file(s)" if result.skipped else ""))


@cli.command()
@click.argument("model")
@click.option("--data", "info", required=True, help="Info file written by 'cgsurg prep'.")
@click.option("-o", "--output", "out_dir", required=True, help="Folder for one output .npy per input.")
@click.option("--batch", default=16, show_default=True, help="Batch size (a static-batch model uses its own).")
@_threads_option
@_provider_option
@click.option("--png", is_flag=True, help="Also write each output as an 8-bit PNG.")
@_friendly_errors
def infer(model, info, out_dir, batch, threads, provider, png):
    """Batched offline inference over an info file."""
    from .infer import infer as run_infer

    result = run_infer(model, info, out_dir, batch=batch, threads=threads, provider=provider, png=png,
                       notice=lambda m: click.echo(m, err=True))
    click.echo(f"{result.count} images in {result.seconds:.2f}s at batch {result.batch}: "
               f"{result.throughput:.2f} images/s overall, "
               f"{result.count / result.inference_seconds:.2f} images/s in inference; outputs in {out_dir}")


@cli.command("eval")
@click.argument("dirs", nargs=-1)
@click.option("--ref", "ref_model", help="Reference model (with --model and --data).")
@click.option("--model", help="Model to evaluate against --ref.")
@click.option("--data", "info", help="Info file to run both models on.")
@click.option("--batch", default=16, show_default=True)
@_threads_option
@click.option("--min-cos", type=float, help="Fail (exit 3) when the mean per-pixel cosine is below this.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--csv", "csv_path", help="Write the per-image scores to this CSV file.")
@_friendly_errors
def evaluate(dirs, ref_model, model, info, batch, threads, min_cos, as_json, csv_path):
    """Accuracy: REF_DIR OUT_DIR, or --ref REF.onnx --model NEW.onnx --data INFO."""
    from .evaluate import evaluate_dirs, evaluate_models

    if dirs and (ref_model or model or info):
        raise InputError("give two output folders, or --ref, --model and --data, not both")
    if dirs:
        if len(dirs) != 2:
            raise InputError("give exactly two folders: REF_DIR OUT_DIR")
        result = evaluate_dirs(*dirs)
    elif ref_model and model and info:
        result = evaluate_models(ref_model, model, info, batch=batch, threads=threads)
    else:
        raise InputError("give REF_DIR OUT_DIR, or all of --ref, --model and --data")
    if csv_path:
        result.write_csv(csv_path)
    summary = result.summary
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        def fmt(key, digits=6):
            v = summary[key]
            return "n/a" if v is None else f"mean {v['mean']:.{digits}f}  min {v['min']:.{digits}f}"
        click.echo(f"images: {summary['images']}")
        click.echo(f"pixel cosine (vendor metric): {fmt('pixel_cos')}")
        click.echo(f"flat cosine: {fmt('cos')}")
        click.echo(f"max abs: mean {summary['max_abs']['mean']:.4g}  max {summary['max_abs']['max']:.4g}")
        click.echo(f"psnr dB: {fmt('psnr_db', 2)}   ssim: {fmt('ssim', 4)}")
        click.echo("worst: " + ", ".join(f"{s.name} {s.pixel_cos:.6f}" for s in result.worst))
    if min_cos is not None and summary["pixel_cos"]["mean"] < min_cos:
        worst = ", ".join(f"{s.name} ({s.pixel_cos:.4f})" for s in result.worst)
        raise NumericCheckFailed(f"mean pixel cosine {summary['pixel_cos']['mean']:.6f} is below {min_cos}; "
                                 f"worst images: {worst}")


@cli.command()
@click.argument("model")
@click.option("--batch", "batch_text", default="1,16", show_default=True, help="Batch sizes, comma-separated.")
@click.option("--rounds", default=20, show_default=True)
@click.option("--warmup", default=3, show_default=True)
@click.option("--data", "info", help="Info file: time real batches instead of random inputs.")
@_threads_option
@_provider_option
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def bench(model, batch_text, rounds, warmup, info, threads, provider, as_json):
    """Throughput and latency per batch size."""
    from .bench import bench as run_bench, parse_batches

    result = run_bench(model, parse_batches(batch_text), rounds=rounds, warmup=warmup, data=info, threads=threads,
                       provider=provider)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    env = result.environment
    click.echo(f"{model} ({result.mode} inputs) on {env['provider']}, onnxruntime {env['onnxruntime']}, "
               f"threads {env['threads']}, {env['cpu']} ({env['cores']} cores)")
    click.echo(f"  {'batch':>5}  {'images/s':>9}  {'mean ms':>8}  {'p50 ms':>8}  {'p90 ms':>8}  {'p99 ms':>8}")
    for r in result.results:
        lat = r.latency_ms
        click.echo(f"  {r.batch:>5}  {r.throughput:>9.2f}  {lat['mean']:>8.2f}  {lat['p50']:>8.2f}  "
                   f"{lat['p90']:>8.2f}  {lat['p99']:>8.2f}")
    for note in result.skipped:
        click.echo(f"  note: {note}")


@cli.command("profile")
@click.argument("model")
@click.option("--batch", default=1, show_default=True)
@click.option("--rounds", default=5, show_default=True)
@_threads_option
@_provider_option
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def profile_command(model, batch, rounds, threads, provider, as_json):
    """Per-operator time from ONNX Runtime's profiler."""
    from .profiling import profile

    result = profile(model, batch=batch, rounds=rounds, threads=threads, provider=provider)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(f"{model}: batch {result.batch}, {result.rounds} runs after 1 warm-up")
    click.echo(f"  {'op type':<24} {'nodes':>5}  {'ms/run':>9}  {'share':>6}")
    for op in result.ops:
        click.echo(f"  {op['op_type']:<24} {op['nodes']:>5}  {op['per_run_ms']:>9.3f}  {op['share']:>6.1%}")
    click.echo("top nodes:")
    for n in result.top_nodes:
        click.echo(f"  {n['node'][:48]:<48} {n['op_type']:<16} {n['per_run_ms']:>9.3f} ms  {n['share']:>6.1%}")


@cli.command("run")
@click.argument("config")
@click.option("-o", "--output", help="Output folder (default: the config's 'output').")
@_friendly_errors
def run_command(config, output):
    """Run export -> apply (with report) -> prep -> infer -> eval -> bench from a YAML/JSON CONFIG."""
    from .flow import FlowConfig, run_flow

    summary = run_flow(FlowConfig.load(config), output, echo=click.echo)
    click.echo((Path(summary["output"]) / "summary.md").read_text().rstrip())


@cli.command()
@click.option("-o", "--output", default="cgsurg-demo", show_default=True, help="Output folder.")
@click.option("--ngf", default=64, show_default=True, help="Generator width (64: the reference size).")
@click.option("--blocks", default=9, show_default=True, help="Residual blocks (9: resnet_9blocks).")
@click.option("--size", default=256, show_default=True, help="Image size.")
@click.option("--rounds", default=3, show_default=True, help="Benchmark rounds per batch size.")
@_friendly_errors
def demo(output, ngf, blocks, size, rounds):
    """The whole flow on a seeded reference-size CycleGAN generator and bundled photos."""
    from .flow import demo as run_demo

    summary = run_demo(output, ngf=ngf, blocks=blocks, size=size, rounds=rounds, echo=click.echo)
    click.echo((Path(summary["output"]) / "summary.md").read_text().rstrip())
    click.echo(f"open {Path(summary['output']) / 'report' / 'report.html'} for the per-pass report")


def _print_comparison(comparison: Comparison, title: str) -> None:
    status = "OK" if comparison.ok else "FAILED"
    click.echo(f"{title}: {status} on {comparison.samples} sample(s)")
    for m in comparison.outputs:
        psnr = "inf" if m.psnr_db is None else f"{m.psnr_db:.2f}"
        click.echo(f"  {m.name}: max_abs {m.max_abs:.3g}  mean_abs {m.mean_abs:.3g}  cos {m.cos:.6f}  "
                   f"pixel_cos {m.pixel_cos:.6f}  psnr_db {psnr}")
    for v in comparison.violations:
        click.echo(f"  ! {v}")


def main() -> None:
    cli(prog_name="cgsurg")
