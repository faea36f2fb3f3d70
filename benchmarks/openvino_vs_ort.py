"""OpenVINO vs ONNX Runtime on the reference-size generator: throughput and accuracy.

    pip install torch==2.13.0 -e '.[export,openvino]'
    python benchmarks/openvino_vs_ort.py [--reps 5] [--threads N]      # the real run, on an idle machine
    python benchmarks/openvino_vs_ort.py --quick                       # smoke run: tiny model, few runs

Builds the reference-size CycleGAN generator as ``bench_suite.py`` does (ngf 64, 9 residual
blocks, 256x256, seeded weights, opset 11), compiles it with ``cgsurg compile --target
openvino`` (float32 IR) and measures:

1. throughput at batch 1 and 16: ORT's CPU provider (graph optimisations on, as the stages run
   it) against OpenVINO's CPU device running the IR (f32 precision hint, latency hint), the
   same thread count for both (``--threads``, default: the CPUs this process may use), random
   inputs, ``--warmup`` untimed runs, then ``--rounds1``/``--rounds16`` timed runs per
   repetition; repetitions interleave the backends (in alternating order) so drift and heat hit
   both alike; throughput is the median over repetitions, latency p50/p99 over all runs;
2. accuracy: each OpenVINO variant (ONNX read directly, the float32 IR, a float16-weight IR)
   against ORT on the evaluation photos of ``bench_suite.py`` (32 crops of scikit-image's
   photos), with the vendor per-pixel cosine (``cgsurg eval --backend openvino``).

The CPU model and its ISA flags (AVX2, AVX-512, VNNI, AMX from /proc/cpuinfo) are recorded: both
runtimes pick kernels by them. Results: benchmarks/results/openvino_vs_ort.json and .md
(``--quick`` writes openvino_vs_ort-quick.*: its numbers are not a measurement).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_suite import WORK, build_model, photo_sets, write_results  # noqa: E402

from graphsurgeon_cg.check.backends import OpenVinoBackend, OrtBackend, Runner  # noqa: E402
from graphsurgeon_cg.check.cpu import cpu_flags, cpu_name  # noqa: E402
from graphsurgeon_cg.check.feeds import ImageInput  # noqa: E402
from graphsurgeon_cg.stages.compile import compile_model  # noqa: E402
from graphsurgeon_cg.stages.evaluate import evaluate_models  # noqa: E402
from graphsurgeon_cg.stages.prep import prep  # noqa: E402

TINY = HERE.parent / "tests" / "fixtures" / "cyclegan_tiny_opset11.onnx"  # --quick: 64x64, 2 blocks
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
             "amx_int8")


def cpu_info() -> dict:
    """The CPU model and which of the ISA extensions that matter for these kernels it has."""
    model, flags = cpu_name(), cpu_flags()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cpus": cpus, "isa": {flag: flag in flags for flag in ISA_FLAGS}}


def time_runs(runner: Runner, batch: int, rounds: int, warmup: int) -> list[float]:
    image = ImageInput.of(runner)
    feed = {image.name: image.random_batch(batch, np.random.default_rng(0))}
    for _ in range(warmup):
        runner.run(feed)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        runner.run(feed)
        times.append(time.perf_counter() - start)
    return times


def throughput(runners: dict[str, Runner], rounds: dict[int, int], reps: int, warmup: int) -> dict:
    runs: dict[tuple[str, int], list[float]] = {(n, b): [] for n in runners for b in rounds}
    per_rep: dict[tuple[str, int], list[float]] = {(n, b): [] for n in runners for b in rounds}
    names = list(runners)
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]  # alternate who goes first
        for batch, n in rounds.items():
            for name in order:
                t = time_runs(runners[name], batch, n, warmup)
                runs[(name, batch)] += t
                per_rep[(name, batch)].append(batch * len(t) / sum(t))
    table: dict = {}
    for name in names:
        for batch in rounds:
            ms = np.array(runs[(name, batch)]) * 1000
            table.setdefault(name, {})[f"batch{batch}"] = {
                "throughput": statistics.median(per_rep[(name, batch)]), "per_rep": per_rep[(name, batch)],
                "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "runs": len(ms)}
    for batch in rounds:
        base = table["ort"][f"batch{batch}"]["throughput"]
        for name in names:
            table[name][f"batch{batch}"]["vs_ort"] = table[name][f"batch{batch}"]["throughput"] / base
    return table


def accuracy(original: Path, variants: dict[str, Path], info: Path, threads: int) -> dict:
    result = {}
    for name, path in variants.items():
        scored = evaluate_models(original, path, info, batch=8, threads=threads, backend="openvino")
        s = scored.summary
        result[name] = {"pixel_cos_mean": s["pixel_cos"]["mean"], "pixel_cos_min": s["pixel_cos"]["min"],
                        "cos_min": s["cos"]["min"], "max_abs": s["max_abs"]["max"], "images": s["images"]}
    return result


def markdown(r: dict) -> str:
    env = r["environment"]
    isa = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env["isa"].items())
    lines = [f"Run {r['date']}{' (QUICK smoke run: not a measurement)' if r['quick'] else ''} on {env['cpu']} "
             f"({env['cpus']} CPUs; {isa}), onnxruntime {env['onnxruntime']}, openvino {env['openvino']}, "
             f"{r['threads']} threads each; {r['model']}.", "",
             f"Throughput: random inputs, {r['warmup']} warm-up runs then {r['rounds']['1']} (batch 1) / "
             f"{r['rounds']['16']} (batch 16) timed runs per repetition, {r['reps']} interleaved repetitions, "
             "median img/s; latency p50/p99 over all runs.", "",
             "| backend | img/s b1 | x ORT b1 | p50/p99 ms b1 | img/s b16 | x ORT b16 | p50/p99 ms b16 |",
             "|---|---:|---:|---|---:|---:|---|"]
    labels = {"ort": "ONNX Runtime CPU (optimisations on)", "openvino": "OpenVINO CPU, float32 IR (f32 precision)"}
    for name, e in r["throughput"].items():
        b1, b16 = e["batch1"], e["batch16"]
        lines.append(f"| {labels[name]} | {b1['throughput']:.2f} | {b1['vs_ort']:.2f} | "
                     f"{b1['p50_ms']:.1f}/{b1['p99_ms']:.1f} | {b16['throughput']:.2f} | {b16['vs_ort']:.2f} | "
                     f"{b16['p50_ms']:.1f}/{b16['p99_ms']:.1f} |")
    lines += ["", f"Accuracy against ONNX Runtime on {r['evaluation_images']} photo crops (vendor per-pixel "
              "cosine):", "", "| OpenVINO runs | pixel cos mean | pixel cos min | max abs |", "|---|---:|---:|---:|"]
    for name, a in r["accuracy"].items():
        lines.append(f"| {name} | {a['pixel_cos_mean']:.6f} | {a['pixel_cos_min']:.6f} | {a['max_abs']:.3g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--rounds1", type=int, default=10, help="timed runs per repetition at batch 1")
    parser.add_argument("--rounds16", type=int, default=2, help="timed runs per repetition at batch 16")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before each timed series")
    parser.add_argument("--threads", type=int, default=None, help="threads for both runtimes (default: all CPUs)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the tiny 64x64 test generator, 1 repetition, 2/1 runs; writes *-quick.*")
    args = parser.parse_args()
    threads = args.threads or cpu_info()["cpus"]
    WORK.mkdir(exist_ok=True)
    infos = photo_sets()  # bench_suite's photos; their 'eval' crops, 256x256
    if args.quick:
        original = TINY
        info = prep(WORK / "photos" / "eval", WORK / "prepped" / "eval64", size=64, progress=False).info
        reps, rounds, warmup = 1, {1: 2, 16: 1}, 1
        model = "the tiny test generator (64x64, 2 residual blocks; --quick)"
    else:
        original = build_model()
        info = infos["eval"]
        reps, rounds, warmup = args.reps, {1: args.rounds1, 16: args.rounds16}, args.warmup
        model = "reference-size CycleGAN (ngf 64, 9 blocks, 256x256, random seeded weights)"
    ir = compile_model(original, WORK / "openvino_ir", fp16=False, threads=threads).xml
    ir16 = compile_model(original, WORK / "openvino_ir_fp16", fp16=True, threads=threads).xml
    runners: dict[str, Runner] = {"ort": OrtBackend(threads=threads).load(original),
                                  "openvino": OpenVinoBackend(threads=threads).load(ir)}
    ort_env, ov_env = OrtBackend(threads=threads).environment(), OpenVinoBackend(threads=threads).environment()
    result = {
        "date": datetime.date.today().isoformat(),
        "quick": args.quick,
        "model": model,
        "environment": {**cpu_info(), "onnxruntime": ort_env["onnxruntime"], "openvino": ov_env["openvino"],
                        "python": ort_env["python"]},
        "threads": threads, "reps": reps, "rounds": {str(k): v for k, v in rounds.items()}, "warmup": warmup,
        "evaluation_images": len(Path(info).read_text().splitlines()),
        "throughput": throughput(runners, rounds, reps, warmup),
        "accuracy": accuracy(original, {"ONNX read directly": original, "float32 IR (cgsurg compile)": ir,
                                        "float16-weight IR (compile --fp16)": ir16}, info, threads),
    }
    write_results("openvino_vs_ort-quick" if args.quick else "openvino_vs_ort", result, markdown(result))


if __name__ == "__main__":
    main()
