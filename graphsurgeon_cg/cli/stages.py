"""prep, infer, eval, bench, profile, compile: the vendor flow's stages."""

from __future__ import annotations

import click

from ..check.images import RESAMPLE, VALUE_RANGES
from ..core.errors import InputError
from . import cli, tables
from .options import BatchSizes, check_inputs, data_option, json_option, ray_option, runtime_options, shapes_of


@cli.command()
@click.argument("src_dir")
@click.option("-o", "--output", "dst_dir", required=True, help="Folder for the .npy files and the info file.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=1), help="Resize to SIZE x SIZE.")
@click.option("--resample", default="bicubic", show_default=True, type=click.Choice(RESAMPLE),
              help="Resampling filter of the resize.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "uint8"]),
              help="float32 in [-1, 1] like the reference, or uint8 for models that normalise in the graph.")
@click.option("--range", "value_range", default="-1..1", show_default=True, type=click.Choice(VALUE_RANGES),
              help="Values of float32 samples: -1..1 (Normalize(0.5, 0.5), CycleGAN) or 0..1 (x / 255).")
def prep(src_dir, dst_dir, size, resample, dtype, value_range):
    """Preprocess the images of SRC_DIR into .npy files and an info file."""
    from ..stages.prep import prep as run_prep

    result = run_prep(src_dir, dst_dir, size=size, resample=resample, dtype=dtype, value_range=value_range,
                      warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {result.written} samples and {result.info}" +
               (f"; skipped {len(result.skipped)} unreadable file(s)" if result.skipped else ""))


@cli.command()
@click.argument("model")
@data_option(required=True)
@click.option("-o", "--output", "out_dir", required=True, help="Folder for one output .npy per input.")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1),
              help="Batch size (a static-batch model uses its own).")
@runtime_options
@click.option("--png", is_flag=True, help="Also write each output as an 8-bit PNG.")
@ray_option
def infer(model, info, out_dir, batch, backend, threads, provider, png, ray_address):
    """Batched offline inference over an info file."""
    from ..stages.infer import infer as run_infer

    if ray_address is not None:
        from ..distributed import infer_ray

        result = infer_ray(model, info, out_dir, batch=batch, address=ray_address, threads=threads or 1,
                           provider=provider, png=png, backend=backend, notice=lambda m: click.echo(m, err=True))
    else:
        result = run_infer(model, info, out_dir, batch=batch, threads=threads, provider=provider, png=png,
                           notice=lambda m: click.echo(m, err=True), backend=backend)
    click.echo(f"{result.count} images in {result.seconds:.2f}s at batch {result.batch}: "
               f"{result.throughput:.2f} images/s overall, "
               f"{result.count / result.inference_seconds:.2f} images/s in inference; outputs in {out_dir}")


@cli.command("eval")
@click.argument("dirs", nargs=-1)
@click.option("--ref", "ref_model", metavar="REF.onnx", help="Reference model (with --model and --data).")
@click.option("--model", metavar="NEW.onnx", help="Model to evaluate against --ref.")
@data_option(help="Info file to run both models on.")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1),
              help="Batch size when running the models.")
@runtime_options
@click.option("--min-cos", type=click.FloatRange(-1, 1),
              help="Fail (exit 3) when the mean cosine (per-pixel for images, flat otherwise) is below this.")
@json_option
@click.option("--csv", "csv_path", metavar="FILE.csv", help="Write the per-image scores to this CSV file.")
@ray_option
def evaluate(dirs, ref_model, model, info, batch, backend, threads, provider, min_cos, as_json, csv_path,
             ray_address):
    """Accuracy: REF_DIR OUT_DIR, or --ref REF.onnx --model NEW.onnx --data INFO.

    With --backend openvino, --model (ONNX or an OpenVINO IR .xml) runs compiled by OpenVINO and
    --ref in ONNX Runtime."""
    from ..core.modelio import check_writable
    from ..stages.evaluate import evaluate_dirs, evaluate_models

    if csv_path:
        check_writable(csv_path)  # before the work, not after it
    if dirs and (ref_model or model or info):
        raise InputError("give two output folders, or --ref, --model and --data, not both")
    if dirs:
        if len(dirs) != 2:
            raise InputError("give exactly two folders: REF_DIR OUT_DIR")
        if backend != "ort" or ray_address is not None:
            raise InputError("--backend and --ray run models: give --ref, --model and --data with them, "
                             "not output folders")
        result = evaluate_dirs(*dirs)
    elif ref_model and model and info and ray_address is not None:
        from ..distributed import evaluate_ray

        result = evaluate_ray(ref_model, model, info, batch=batch, address=ray_address, threads=threads or 1,
                              provider=provider, backend=backend)
    elif ref_model and model and info:
        result = evaluate_models(ref_model, model, info, batch=batch, threads=threads, provider=provider,
                                 backend=backend)
    else:
        raise InputError("give REF_DIR OUT_DIR, or all of --ref, --model and --data")
    if csv_path:
        result.write_csv(csv_path)
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        tables.evaluation(result.summary, result.worst)
    if min_cos is not None:
        result.gate(min_cos)


@cli.command()
@click.argument("model")
@click.option("--batch", "batch_sizes", default="1,16", show_default=True, type=BatchSizes(),
              help="Batch sizes, comma-separated.")
@click.option("--rounds", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs per batch size.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0),
              help="Untimed runs before timing.")
@data_option(help="Info file: time real batches instead of random inputs.")
@runtime_options
@json_option
def bench(model, batch_sizes, rounds, warmup, info, backend, threads, provider, as_json):
    """Throughput and latency per batch size."""
    from ..stages.bench import bench as run_bench

    result = run_bench(model, batch_sizes, rounds=rounds, warmup=warmup, data=info, threads=threads,
                       provider=provider, notice=lambda m: click.echo(m, err=True), backend=backend)
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        tables.bench(model, result)


@cli.command("profile")
@click.argument("model")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1), help="Batch size.")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=1), help="Profiled runs.")
@runtime_options
@json_option
def profile_command(model, batch, rounds, backend, threads, provider, as_json):
    """Per-operator time from ONNX Runtime's profiler (or OpenVINO's per-layer counters)."""
    from ..stages.profiling import profile

    result = profile(model, batch=batch, rounds=rounds, threads=threads, provider=provider, backend=backend)
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        tables.profile(model, result)


@cli.command("compile")
@click.argument("model")
@click.option("--target", required=True, metavar="openvino", help="The compiler (openvino: the one that runs here).")
@click.option("-o", "--output", "out_dir", required=True, help="Folder for the compiled model (model.xml, model.bin).")
@click.option("--fp16", is_flag=True,
              help="Store the weights as float16 (ovc's default; computed in float32 on the CPU).")
@click.option("--no-check", is_flag=True, help="Do not run the compiled model against ONNX Runtime.")
@click.option("--min-cos", type=click.FloatRange(-1, 1),
              help="Fail (exit 3) when the compiled model's cosine to ORT is below this "
                   "(default 0.9999, 0.999 with --fp16, 0.95 with --int8).")
@click.option("--int8", "int8_data", metavar="CALIB.info",
              help="Quantise to int8 with NNCF, calibrated on these samples.")
@click.option("--keep-float", default="first-last,ConvTranspose", show_default=True, metavar="ITEM[,ITEM]",
              help="With --int8, left in float: first-last, an ONNX op type (Conv, ConvTranspose) or layer names.")
@check_inputs
@click.option("--threads", type=click.IntRange(min=1), help="OpenVINO's INFERENCE_NUM_THREADS for the check.")
@json_option
def compile_command(model, target, out_dir, fp16, int8_data, keep_float, no_check, min_cos, input_shapes, inputs_dir,
                    seed, threads, as_json):
    """Compile MODEL with a vendor compiler (OpenVINO: the IR) and check it against ONNX Runtime."""
    from ..stages.compile import compile_model

    result = compile_model(model, out_dir, target, fp16=fp16, check=not no_check, min_cos=min_cos,
                           shapes=shapes_of(input_shapes), inputs_dir=inputs_dir, seed=seed, threads=threads,
                           int8=int8_data, keep_float=[k.strip() for k in keep_float.split(",") if k.strip()],
                           warn=lambda m: click.echo(m, err=True))
    if as_json:
        tables.echo_json(result.as_dict())
        return
    click.echo(f"compiled {model} with {result.compiler} in {result.seconds:.2f}s, weights "
               f"{'int8 (NNCF)' if int8_data else 'float16' if result.fp16 else 'float32'}")
    if result.check is not None:
        tables.comparison(result.check, "check on OpenVINO vs ONNX Runtime")
    else:
        click.echo("check: skipped (--no-check)")
    click.echo(f"wrote {result.xml} and {result.bin}")
