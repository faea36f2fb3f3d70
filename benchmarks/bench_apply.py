"""How long `cgsurg apply` takes on the full-size CycleGAN generator, next to onnxslim.

    pip install torch==2.13.0 -e '.[export,bench]'
    python benchmarks/bench_apply.py [--reps 5]

Builds the reference-size generator (ngf 64, 9 residual blocks, 256x256, seeded weights, no
download), exports it at opset 11 with the TorchScript exporter, then times, interleaved and
as whole processes (start-up included, as a user sees it):
  - cgsurg apply --no-check --passes fold-constants,reflect2slice,pad-conv-fusion,fp16out
  - cgsurg apply with the default numeric check
  - onnxslim MODEL OUT
and reports medians. Results go to benchmarks/results/<date>-apply.json and a markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
PIPELINE = "fold-constants,reflect2slice,pad-conv-fusion,fp16out"


def build_model() -> Path:
    path = WORK / "cyclegan_full_opset11.onnx"
    if path.exists():
        return path
    import torch

    sys.path.insert(0, str(HERE.parent))
    from graphsurgeon_cg.architectures import build_resnet_generator

    WORK.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = build_resnet_generator(ngf=64, n_blocks=9).eval()
    torch.onnx.export(model, (torch.randn(1, 3, 256, 256),), str(path), opset_version=11, dynamo=False,
                      input_names=["img_sat_maps"], output_names=["maps"],
                      dynamic_axes={"img_sat_maps": {0: "batch"}, "maps": {0: "batch"}})
    return path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    model = build_model()
    cgsurg = shutil.which("cgsurg") or sys.exit("cgsurg is not installed")
    onnxslim = shutil.which("onnxslim") or sys.exit("onnxslim is not installed: pip install -e '.[bench]'")
    commands = {
        "cgsurg apply --no-check": [cgsurg, "apply", str(model), "-o", str(WORK / "exact_nocheck.onnx"),
                                    "--passes", PIPELINE, "--no-check"],
        "cgsurg apply (checked)": [cgsurg, "apply", str(model), "-o", str(WORK / "exact_checked.onnx"),
                                   "--passes", PIPELINE],
        "onnxslim": [onnxslim, str(model), str(WORK / "slim.onnx")],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.reps):  # interleaved, so drift hits every tool alike
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "model": {"path": model.name, "bytes": model.stat().st_size},
        "pipeline": PIPELINE,
        "reps": args.reps,
        "seconds": times,
        "median_seconds": medians,
        "ratio_nocheck_vs_onnxslim": medians["cgsurg apply --no-check"] / medians["onnxslim"],
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stem = out_dir / f"{result['date']}-apply"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = ["| command | median s | all runs (s) |", "|---|---:|---|"]
    table += [f"| {name} | {medians[name]:.2f} | {', '.join(f'{t:.2f}' for t in times[name])} |" for name in commands]
    table.append(f"\ncgsurg --no-check / onnxslim = {result['ratio_nocheck_vs_onnxslim']:.2f} "
                 f"({args.reps} interleaved runs, {result['machine']['cores']} cores)")
    stem.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
