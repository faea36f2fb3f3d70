"""prep, infer, eval, bench, profile, compile: the vendor flow's stages."""

from __future__ import annotations

import click

from ..check.images import LAYOUTS, LETTERBOX_FILL, NORMS, RESAMPLE, RESIZE_MODES, VALUE_RANGES
from ..core.errors import InputError
from . import cli, tables
from .options import (
    BatchSizes,
    Floats,
    ImageSize,
    check_inputs,
    data_option,
    deprecated_option,
    input_shape_option,
    json_option,
    ray_option,
    runtime_options,
    shapes_of,
    weights_option,
)


@cli.command(short_help="Preprocess images into .npy samples and an info file.")
@click.argument("src_dir")
@click.option("-o", "--output", "dst_dir", required=True, help="Folder for the .npy files and the info file.")
@click.option("--size", default="256", show_default=True, type=ImageSize(),
              help="Output size: SIZE x SIZE, or HEIGHT,WIDTH.")
@click.option("--resize", default="squash", show_default=True, type=click.Choice(RESIZE_MODES),
              help="squash: stretch to the size; letterbox: fit inside, aspect kept, pad evenly with --fill; "
                   "center-crop: cover, aspect kept, cut the centre; keep-aspect: shorter side to min(size), "
                   "no pad or crop (samples differ in size).")
@click.option("--resample", default="bicubic", show_default=True, type=click.Choice(RESAMPLE),
              help="Resampling filter of the resize.")
@click.option("--norm", type=click.Choice(list(NORMS)),
              help="Normalisation preset: cyclegan (mean = std = 0.5: [-1, 1], the default), imagenet "
                   "(mean 0.485,0.456,0.406, std 0.229,0.224,0.225), unit (x / 255: [0, 1]).")
@click.option("--mean", type=Floats(), help="Per-channel mean, R,G,B on the 0..1 scale: (x / 255 - mean) / std.")
@click.option("--std", type=Floats(), help="Per-channel std, R,G,B on the 0..1 scale (with --mean).")
@click.option("--layout", default="nchw", show_default=True, type=click.Choice(LAYOUTS),
              help="Channels first (nchw) or last (nhwc).")
@click.option("--bgr", is_flag=True, help="Channels in B,G,R order (after normalising; --mean/--std stay R,G,B).")
@click.option("--fill", type=click.IntRange(0, 255),
              help=f"Letterbox padding, 0..255 before normalising [default: {LETTERBOX_FILL}].")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "uint8"]),
              help="float32, normalised; or uint8 bytes for models that normalise in the graph.")
@deprecated_option("--range", "value_range", type=click.Choice(VALUE_RANGES),
                   use="--norm cyclegan (for -1..1) or --norm unit (for 0..1)")
def prep(src_dir, dst_dir, size, resize, resample, norm, mean, std, layout, bgr, fill, dtype, value_range):
    """Preprocess the images of SRC_DIR into .npy files and an info file (and prep.json, the
    preprocessing done)."""
    from ..stages.prep import prep as run_prep

    if norm and value_range:
        raise InputError("give --norm or --range, not both")
    if norm and mean:
        raise InputError("give --norm or --mean/--std, not both")
    result = run_prep(src_dir, dst_dir, size=size, resample=resample, dtype=dtype, value_range=value_range or "-1..1",
                      norm=norm, mean=mean, std=std, resize=resize, layout=layout, bgr=bgr, fill=fill,
                      warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {result.written} sample{'' if result.written == 1 else 's'} and {result.info}" +
               (f"; skipped {len(result.skipped)} unreadable file(s)" if result.skipped else ""))


@cli.command(short_help="Run a model over an info file, one .npy per sample.")
@click.argument("model")
@data_option(required=True)
@click.option("-o", "--output", "out_dir", required=True, help="Folder for one output .npy per input.")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1),
              help="Batch size (a static-batch model uses its own).")
@runtime_options
@click.option("--png", is_flag=True, help="Also write each output as an 8-bit PNG.")
@click.option("--overwrite", is_flag=True, help="Replace -o whole even when it holds files infer did not write.")
@ray_option
@input_shape_option
def infer(model, info, out_dir, batch, backend, threads, provider, png, overwrite, ray_address, input_shapes):
    """Batched offline inference over an info file: one output .npy per sample in -o (written
    whole at the end; an earlier infer's folder is replaced whole, any other refused)."""
    from ..stages.infer import infer as run_infer

    if ray_address is not None:
        from ..distributed import infer_ray

        if input_shapes:
            raise InputError("--input-shape does not run on --ray yet: fix the model first "
                             "(cgsurg apply --passes 'static-shape(shapes=...)')")
        result = infer_ray(model, info, out_dir, batch=batch, address=ray_address, threads=threads or 1,
                           provider=provider, png=png, backend=backend, notice=lambda m: click.echo(m, err=True),
                           overwrite=overwrite)
    else:
        result = run_infer(model, info, out_dir, batch=batch, threads=threads, provider=provider, png=png,
                           notice=lambda m: click.echo(m, err=True), backend=backend, shapes=shapes_of(input_shapes),
                           overwrite=overwrite)
    click.echo(f"{result.count} images in {result.seconds:.2f}s at batch {result.batch}: "
               f"{result.throughput:.2f} images/s overall, "
               f"{result.count / result.inference_seconds:.2f} images/s in inference; outputs in {out_dir}")


@cli.command("eval", short_help="Score outputs against a reference (cosine, PSNR).")
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
                              provider=provider, backend=backend, notice=lambda m: click.echo(m, err=True))
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


@cli.command(short_help="Throughput and latency per batch size.")
@click.argument("model")
@click.option("--batches", "batch_sizes", default="1,16", show_default=True, type=BatchSizes(),
              help="Batch sizes, comma-separated.")
@deprecated_option("--batch", "old_batch_sizes", type=BatchSizes(), use="--batches")
@click.option("--rounds", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs per batch size.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0),
              help="Untimed runs before timing.")
@data_option(help="Info file: time real batches instead of random inputs.")
@runtime_options
@input_shape_option
@json_option
def bench(model, batch_sizes, old_batch_sizes, rounds, warmup, info, backend, threads, provider, input_shapes,
          as_json):
    """Throughput and latency per batch size."""
    batch_sizes = old_batch_sizes or batch_sizes
    from ..stages.bench import bench as run_bench

    result = run_bench(model, batch_sizes, rounds=rounds, warmup=warmup, data=info, threads=threads,
                       provider=provider, notice=lambda m: click.echo(m, err=True), backend=backend,
                       shapes=shapes_of(input_shapes))
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        tables.bench(model, result)


@cli.command("profile", short_help="Time per operator (ORT profiler or OpenVINO).")
@click.argument("model")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1), help="Batch size.")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=1), help="Profiled runs.")
@runtime_options
@input_shape_option
@json_option
def profile_command(model, batch, rounds, backend, threads, provider, input_shapes, as_json):
    """Per-operator time from ONNX Runtime's profiler (or OpenVINO's per-layer counters)."""
    from ..stages.profiling import profile

    result = profile(model, batch=batch, rounds=rounds, threads=threads, provider=provider, backend=backend,
                     shapes=shapes_of(input_shapes))
    if as_json:
        tables.echo_json(result.as_dict())
    else:
        tables.profile(model, result)


@cli.command("compile", short_help="Compile with OpenVINO and check it against ORT.")
@click.argument("model")
@click.option("--target", required=True, metavar="openvino", help="The compiler (openvino: the one that runs here).")
@click.option("-o", "--output", "out_dir", required=True, help="Folder for the compiled model (model.xml, model.bin).")
@weights_option("Weights of the IR, as in the ovc script of 'apply --target openvino'")
@click.option("--fp16", is_flag=True, hidden=True, help="Deprecated: --weights fp16.")
@click.option("--no-check", is_flag=True, help="Do not run the compiled model against ONNX Runtime.")
@click.option("--min-cos", type=click.FloatRange(-1, 1),
              help="Fail (exit 3) when the compiled model's cosine to ORT is below this "
                   "(default 0.9999, 0.999 with --weights fp16, 0.95 with --int8).")
@click.option("--int8", "int8_data", is_flag=False, flag_value="", default=None, metavar="",
              help="Quantise to int8 with NNCF, calibrated on the --data samples.")
@data_option(help="Info file of preprocessed samples: the check's inputs (the first 16) and --int8's calibration.")
@click.option("--keep-float", default="first-last,ConvTranspose", show_default=True, metavar="ITEM[,ITEM]",
              help="With --int8, left in float: first-last, an ONNX op type (Conv, ConvTranspose) or layer names.")
@check_inputs
@click.option("--threads", type=click.IntRange(min=1), help="OpenVINO's INFERENCE_NUM_THREADS for the check.")
@json_option
def compile_command(model, target, out_dir, weights, fp16, int8_data, info, keep_float, no_check, min_cos,
                    input_shapes,
                    inputs_dir, seed, threads, as_json):
    """Compile MODEL with a vendor compiler (OpenVINO: the IR) and check it against ONNX Runtime."""
    from ..stages.compile import compile_model

    if fp16:
        click.echo("cgsurg: warning: --fp16 is deprecated and will be removed; use --weights fp16", err=True)
        weights = "fp16"
    int8: bool | str = int8_data is not None
    if int8_data:  # the older form, --int8 CALIB.info
        click.echo("cgsurg: warning: --int8 CALIB.info is deprecated and goes in the next release; "
                   "use --int8 --data CALIB.info", err=True)
        if info is not None:
            raise InputError("give the calibration samples once: --int8 --data INFO")
        int8 = int8_data
    result = compile_model(model, out_dir, target, weights=weights, check=not no_check, min_cos=min_cos,
                           shapes=shapes_of(input_shapes), inputs_dir=inputs_dir, seed=seed, threads=threads,
                           int8=int8, keep_float=[k.strip() for k in keep_float.split(",") if k.strip()],
                           warn=lambda m: click.echo(m, err=True), data=info)
    if as_json:
        tables.echo_json(result.as_dict())
        return
    click.echo(f"compiled {model} with {result.compiler} in {result.seconds:.2f}s, weights "
               f"{'int8 (NNCF)' if int8 else 'float16' if result.fp16 else 'float32'}")
    if result.check is not None:
        tables.comparison(result.check, "check on OpenVINO vs ONNX Runtime")
    else:
        click.echo("check: skipped (--no-check)")
    click.echo(f"wrote {result.xml} and {result.bin}")
