"""tune: search for the fastest pipeline that meets the accuracy bar."""

from __future__ import annotations

import click

from ..core.errors import NumericCheckFailed
from . import cli
from .options import BatchSizes, deprecated_option, input_shape_option, ray_option, shapes_of


@cli.command(short_help="Find the fastest pipeline that meets an accuracy bar.")
@click.argument("model")
@click.option("--data", "calib", required=True, metavar="CALIB.info", help="Calibration samples (int8).")
@click.option("--eval", "evaluation", required=True, metavar="EVAL.info",
              help="Evaluation samples, disjoint from the calibration ones: the bar is judged here.")
@click.option("--min-cos", default=0.99, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="The bar: mean vendor per-pixel cosine against the original.")
@click.option("--backend", type=click.Choice(["ort", "openvino", "both"]), default="ort", show_default=True,
              help="Where candidates run: ONNX Runtime, OpenVINO (fp32, and NNCF int8 when installed), or both.")
@click.option("--batches", "batches", type=BatchSizes(), default="1,16", show_default=True,
              help="Batch sizes timed, comma-separated.")
@deprecated_option("--batch", "old_batches", type=BatchSizes(), use="--batches")
@click.option("--budget", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Minutes; candidates not started by then are skipped (and listed).")
@click.option("--rounds", default=10, show_default=True, type=click.IntRange(min=1),
              help="Timed rounds at batch 1, interleaved across candidates (at batch B: rounds/sqrt(B), at least 3; "
                   "after warm-up rounds).")
@click.option("--threads", type=click.IntRange(min=1), help="Threads per session (default: the runtime's).")
@click.option("--only", metavar="WORD[,WORD]", default="",
              help="Try only the candidates whose label contains one of these words (e.g. int8,exact).")
@click.option("-o", "--output", default="cgsurg-tune", show_default=True, help="Output folder.")
@input_shape_option
@ray_option
def tune(model, calib, evaluation, min_cos, backend, batches, old_batches, budget, rounds, threads, only, output,
         input_shapes, ray_address):
    """Find the fastest candidate pipeline whose per-pixel cosine meets --min-cos (exit 3 if none does)."""
    batches = old_batches or batches
    from ..tune import apply_line, run_line
    from ..tune import tune as run_tune

    backends = ("ort", "openvino") if backend == "both" else (backend,)
    try:
        result = run_tune(model, calib, evaluation, output, min_cos=min_cos, backends=backends, batches=batches,
                          budget_minutes=budget, rounds=rounds, threads=threads,
                          only=[w.strip() for w in only.split(",") if w.strip()], ray_address=ray_address,
                          shapes=shapes_of(input_shapes), progress=lambda m: click.echo(m, err=True))
    except NumericCheckFailed:
        _table_from(output)
        raise
    _print(result.as_dict())
    written = "best_ov/model.xml" if result.winner.model.endswith(".xml") else "best.onnx"
    click.echo(f"winner: {result.winner.label} on {result.winner.backend} -> {output}/{written}")
    click.echo(f"  {apply_line(result.winner, model)}")
    click.echo(f"  run it: {run_line(result.winner, f'{output}/{written}')}")
    if result.note:
        click.echo(f"note: {result.note}")
    click.echo(f"see {output}/tune.html")


def _at(values: dict, batch: int) -> float:
    return values.get(str(batch), values.get(batch, 0.0))  # str keys once read back from JSON


def _ratio(values: dict, batch: int) -> str:
    value = _at(values, batch)
    return f"{value:.2f}x" if value else "-"


def _table_from(output: str) -> None:
    import json
    from pathlib import Path

    path = Path(output) / "tune.json"
    if path.is_file():
        _print(json.loads(path.read_text()))


def _print(result: dict) -> None:
    env = result["environment"]
    click.echo(f"cpu: {env.get('cpu')} ({env.get('isa')}), {env.get('cores')} cores, threads {env.get('threads')}")
    batches = sorted({int(b) for c in result["candidates"] for b in c["img_per_s"]})
    head = "".join(f"  {'b' + str(b) + ' img/s':>10} {'vs fp32':>7}" for b in batches)
    click.echo(f"  {'candidate':<44} {'backend':<8} {'cos eval':>8} {'min':>7} {'calib':>7}{head}")
    for c in result["candidates"]:
        cos = c["eval_cos"] or {}
        calib = (c["calib_cos"] or {}).get("mean")
        cells = "".join(f"  {_at(c['img_per_s'], b):>10.2f} {_ratio(c['vs_ort_fp32'], b):>7}" for b in batches)
        mark = " *" if result["winner"] == {"label": c["label"], "backend": c["backend"]} else ""
        line = f"  {c['label'] + mark:<44} {c['backend']:<8} "
        if c["error"]:
            click.echo(line + f"failed: {c['error']}")
            continue
        click.echo(line + f"{cos.get('mean', 0):>8.4f} {cos.get('min', 0):>7.4f} {calib or 0:>7.4f}{cells}")
    for note in result["skipped"]:
        click.echo(f"  skipped: {note}")
