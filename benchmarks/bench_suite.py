"""The benchmark suite: original vs exact vs speed pipelines, tool time, tool scaling.

    pip install torch==2.13.0 -e '.[export,bench]'
    python benchmarks/bench_suite.py [--reps 3] [--quick]

Builds the reference-size CycleGAN generator (ngf 64, 9 residual blocks, 256x256, seeded
weights: nothing is downloaded), exports it at opset 11, and measures in one run:

1. models: the original export, the exact pipeline and the speed pipeline (int8 calibrated on
   one set of photos, evaluated on another): throughput at batch 1 and 16 and latency p50/p99
   (ORT CPU, interleaved repetitions, medians), accuracy on the held-out real photos (vendor
   per-pixel cosine against the original), file size;
2. tool time: `cgsurg apply --no-check` against `onnxslim` on the same file, interleaved;
3. tool scaling: `apply` on synthetic graphs of 10k, 50k and 100k nodes.

Photos are the ones scikit-image ships (colour and grey), four crops each; calibration and
evaluation use different photos. The weights are random, so accuracy is not that of a
trained generator. Results: benchmarks/results/<date>.json and <date>.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE.parent))

from graphsurgeon_cg import apply, save_model  # noqa: E402
from graphsurgeon_cg.check.feeds import ImageInput  # noqa: E402
from graphsurgeon_cg.check.session import environment, make_session  # noqa: E402
from graphsurgeon_cg.stages.evaluate import evaluate_models  # noqa: E402
from graphsurgeon_cg.stages.prep import prep  # noqa: E402

EXACT = "fold-constants,reflect2slice,pad-conv-fusion"
TOOL_PIPELINE = "fold-constants,reflect2slice,pad-conv-fusion,fp16out"
# Both sets mix natural photos, micrographs and grey textures; no photo is in both.
CALIBRATION_PHOTOS = ("hubble_deep_field", "chelsea", "retina", "camera", "brick", "grass", "coins", "horse")
EVALUATION_PHOTOS = ("astronaut", "immunohistochemistry", "coffee", "rocket", "colorwheel", "gravel", "moon", "clock")


def build_model() -> Path:
    path = WORK / "cyclegan_full_opset11.onnx"
    if path.exists():
        return path
    import torch

    from graphsurgeon_cg.export.architectures import GeneratorSpec, build_generator

    WORK.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = build_generator(GeneratorSpec("resnet_9blocks")).eval()
    torch.onnx.export(model, (torch.randn(1, 3, 256, 256),), str(path), opset_version=11, dynamo=False,
                      input_names=["img_sat_maps"], output_names=["maps"],
                      dynamic_axes={"img_sat_maps": {0: "batch"}, "maps": {0: "batch"}})
    return path


def write_results(name: str, result: dict, table: str) -> None:
    """``results/NAME.json`` and ``results/NAME.md``; the table printed too."""
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    print(table)


def photo_sets() -> dict[str, Path]:
    """Info files of prepped 256x256 crops: 'calib' and 'eval' from different photos."""
    from PIL import Image
    from skimage import data

    infos = {}
    for split, names in (("calib", CALIBRATION_PHOTOS), ("eval", EVALUATION_PHOTOS)):
        src = WORK / "photos" / split
        if src.exists():
            shutil.rmtree(src)
        src.mkdir(parents=True)
        for name in names:
            img = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB")
            w, h = img.size
            quarters = [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
            for k, box in enumerate(quarters):
                img.crop(box).save(src / f"{name}_{k}.png")
        infos[split] = prep(src, WORK / "prepped" / split, size=256, progress=False).info
    return infos


def time_runs(session, batch: int, rounds: int, warmup: int = 1) -> list[float]:
    image = ImageInput.of(session)
    x = image.random_batch(batch, np.random.default_rng(0))
    for _ in range(warmup):
        session.run(None, {image.name: x})
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        session.run(None, {image.name: x})
        times.append(time.perf_counter() - start)
    return times


def model_table(models: dict[str, Path], eval_info: Path, reps: int, rounds: dict[int, int]) -> dict:
    sessions = {name: make_session(path, optimize=True) for name, path in models.items()}
    runs = {(name, b): [] for name in models for b in rounds}
    per_rep = {(name, b): [] for name in models for b in rounds}
    for _ in range(reps):  # interleaved: drift and heat hit every model alike
        for b, n in rounds.items():
            for name, session in sessions.items():
                t = time_runs(session, b, n)
                runs[(name, b)] += t
                per_rep[(name, b)].append(b * len(t) / sum(t))
    table = {}
    for name, path in models.items():
        entry = {"bytes": path.stat().st_size}
        for b in rounds:
            ms = np.array(runs[(name, b)]) * 1000
            entry[f"batch{b}"] = {"throughput": statistics.median(per_rep[(name, b)]),
                                  "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
        if name != "original":
            result = evaluate_models(models["original"], path, eval_info, batch=8)
            entry["accuracy"] = {"pixel_cos_mean": result.summary["pixel_cos"]["mean"],
                                 "pixel_cos_min": result.summary["pixel_cos"]["min"],
                                 "max_abs": result.summary["max_abs"]["max"], "images": result.summary["images"]}
        table[name] = entry
    for entry in table.values():
        for b in rounds:
            base = table["original"][f"batch{b}"]["throughput"]
            entry[f"batch{b}"]["speedup"] = entry[f"batch{b}"]["throughput"] / base
    return table


def tool_times(model: Path, reps: int) -> dict:
    onnxslim = shutil.which("onnxslim")
    cgsurg = [sys.executable, "-m", "graphsurgeon_cg", "apply", str(model), "-o", str(WORK / "tool_cgsurg.onnx")]
    commands = {"cgsurg apply --no-check": [*cgsurg, "--passes", TOOL_PIPELINE, "--no-check"]}
    if onnxslim:
        commands["onnxslim"] = [onnxslim, str(model), str(WORK / "tool_slim.onnx")]
    times = {name: [] for name in commands}
    for _ in range(reps):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    result = {name: {"median_s": statistics.median(t), "runs_s": t} for name, t in times.items()}
    if onnxslim:
        result["ratio"] = result["cgsurg apply --no-check"]["median_s"] / result["onnxslim"]["median_s"]
    return result


def synthetic(n_nodes: int):
    """Blocks of Pad(zero) -> Conv 3x3 -> Relu -> Add(skip) on a 1x2x8x8 tensor: n_nodes nodes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((2, 2, 3, 3)).astype(np.float32) * 0.1, "w"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    nodes, x = [], "x"
    for b in range(n_nodes // 4):
        nodes += [helper.make_node("Pad", [x, "pads"], [f"p{b}"], mode="constant", name=f"pad{b}"),
                  helper.make_node("Conv", [f"p{b}", "w"], [f"c{b}"], name=f"conv{b}"),
                  helper.make_node("Relu", [f"c{b}"], [f"r{b}"], name=f"relu{b}"),
                  helper.make_node("Add", [x, f"r{b}"], [f"a{b}"], name=f"add{b}")]
        x = f"a{b}"
    graph = helper.make_graph(nodes, "synthetic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def scaling(sizes: list[int]) -> dict:
    result = {}
    for n in sizes:
        path = save_model(synthetic(n), WORK / f"synthetic_{n}.onnx")
        start = time.perf_counter()
        apply(path, WORK / f"synthetic_{n}_out.onnx", EXACT, check=False)
        result[str(n)] = {"nodes": n, "seconds": time.perf_counter() - start}
    return result


def markdown(r: dict) -> str:
    lines = [f"Run {r['date']} on {r['environment']['cpu']} ({r['environment']['cores']} cores), onnxruntime "
             f"{r['environment']['onnxruntime']}, reference-size CycleGAN (ngf 64, 9 blocks, 256x256, random seeded "
             "weights: accuracy is not that of a trained generator).", "",
             "| model | pipeline | img/s b1 | x b1 | img/s b16 | x b16 | p50/p99 ms b1 | p50/p99 ms b16 "
             "| pixel cos mean (min) | size MB |",
             "|---|---|---:|---:|---:|---:|---|---|---|---:|"]
    for name, e in r["models"].items():
        acc = e.get("accuracy")
        cos = f"{acc['pixel_cos_mean']:.4f} ({acc['pixel_cos_min']:.4f})" if acc else "reference"
        if acc and acc["max_abs"] == 0:
            cos += ", bit-identical"
        b1, b16 = e["batch1"], e["batch16"]
        lines.append(f"| {name} | `{r['pipelines'][name] or '-'}` | {b1['throughput']:.2f} | {b1['speedup']:.2f} | "
                     f"{b16['throughput']:.2f} | {b16['speedup']:.2f} | {b1['p50_ms']:.0f}/{b1['p99_ms']:.0f} | "
                     f"{b16['p50_ms']:.0f}/{b16['p99_ms']:.0f} | {cos} | {e['bytes'] / 1e6:.1f} |")
    t = r["tool"]
    lines += ["", "| tool | median s |", "|---|---:|"]
    lines += [f"| {name} | {v['median_s']:.2f} |" for name, v in t.items() if isinstance(v, dict)]
    if "ratio" in t:
        lines.append(f"\n`cgsurg apply --no-check --passes {TOOL_PIPELINE}` / onnxslim = {t['ratio']:.2f}")
    lines += ["", "| synthetic nodes | apply s |", "|---:|---:|"]
    lines += [f"| {v['nodes']} | {v['seconds']:.2f} |" for v in r["scaling"].values()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    original = build_model()
    infos = photo_sets()
    pipelines = {"original": None, "exact": EXACT,
                 "speed": f"fold-constants,pad-conv-fusion,int8(data={infos['calib']},samples=32,min_cos=0.9)"}
    models, apply_seconds = {"original": original}, {}
    for name, pipeline in pipelines.items():
        if pipeline:
            start = time.perf_counter()
            apply(original, WORK / f"{name}.onnx", pipeline)
            apply_seconds[name] = time.perf_counter() - start
            models[name] = WORK / f"{name}.onnx"
    rounds = {1: 3, 16: 1} if args.quick else {1: 10, 16: 2}
    result = {
        "date": datetime.date.today().isoformat(),
        "environment": environment("cpu", None),
        "pipelines": {k: (v.replace(str(infos["calib"]), "CALIB.info") if v else v) for k, v in pipelines.items()},
        "calibration_images": len(open(infos["calib"]).readlines()),
        "evaluation_images": len(open(infos["eval"]).readlines()),
        "apply_seconds": apply_seconds,
        "models": model_table(models, infos["eval"], args.reps, rounds),
        "tool": tool_times(original, max(args.reps, 3)),
        "scaling": scaling([10_000, 50_000, 100_000]),
    }
    write_results(result["date"], result, markdown(result))


if __name__ == "__main__":
    main()
