"""Scale: the exact pipeline on synthetic graphs of ``reflect Pad -> Conv -> zero Pad -> Conv -> Relu``
blocks with a dynamic batch, at several sizes; time per pass and in all (run by hand).

    python benchmarks/scale.py [--nodes 10000 50000 100000] [--repeat 3]

It also times ``cgsurg apply --no-check`` and onnxsim (``pip install -e '.[bench]'``) as whole
processes on the same file in the same run, and reports their ratio.

Writes benchmarks/results/scale-<date>.json and .md. The target is about linear growth and at
most 10 s for 100k nodes on the reference machine. ``--verify auto each`` (the default) times
deferred verification (what ``apply --no-check`` does) and verification after every pass.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from graphsurgeon_cg import PassManager, apply  # noqa: E402
from graphsurgeon_cg.check.session import environment  # noqa: E402

PIPELINE = "fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=1)"


def reflect_blocks(n_nodes: int) -> onnx.ModelProto:
    """``n_nodes // 5`` blocks on a N x 2 x 8 x 8 tensor with a symbolic batch."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((2, 2, 3, 3)).astype(np.float32) * 0.1, "w"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    nodes, x = [], "x"
    for b in range(n_nodes // 5):
        nodes += [helper.make_node("Pad", [x, "pads"], [f"r{b}"], mode="reflect", name=f"reflect{b}"),
                  helper.make_node("Conv", [f"r{b}", "w"], [f"c{b}"], name=f"conv{b}a"),
                  helper.make_node("Pad", [f"c{b}", "pads"], [f"z{b}"], mode="constant", name=f"zero{b}"),
                  helper.make_node("Conv", [f"z{b}", "w"], [f"d{b}"], name=f"conv{b}b"),
                  helper.make_node("Relu", [f"d{b}"], [f"y{b}"], name=f"relu{b}")]
        x = f"y{b}"
    graph = helper.make_graph(nodes, "reflect_blocks",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 2, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def measure(n: int, verify: str) -> dict:
    """The pass manager on the model in memory (no file I/O), and ``apply`` from file to file
    (load with the checker, run, save atomically) as ``cgsurg apply --no-check`` does it."""
    model = reflect_blocks(n)
    import_s = _import_seconds(model)
    start = time.perf_counter()
    result = PassManager(PIPELINE, verify=verify).run(model)
    total = time.perf_counter() - start
    row = {"nodes": n, "verify": verify, "seconds": total, "import_s": import_s,
           "passes": {r.name: {"run_s": r.seconds, "verify_s": r.verify_seconds, "rewrites": r.rewrites}
                      for r in result.records}}
    if verify == "auto":
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "blocks.onnx", Path(tmp) / "out.onnx"
            onnx.save(model, src)
            start = time.perf_counter()
            apply(src, dst, PIPELINE, check=False)
            row["apply_s"] = time.perf_counter() - start
    return row


def whole_process(n: int, repeat: int) -> dict:
    """``cgsurg apply --no-check`` and ``onnxsim`` on the same file, each a fresh process (start-up,
    load, save and exit included), median of ``repeat``, alternating so that both see the same load."""
    import shutil
    import statistics
    import subprocess

    onnxsim = shutil.which("onnxsim")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "blocks.onnx"
        onnx.save(reflect_blocks(n), src)
        commands = {"cgsurg": [sys.executable, "-m", "graphsurgeon_cg", "apply", str(src),
                               "-o", str(Path(tmp) / "a.onnx"), "--no-check", "--passes", PIPELINE]}
        if onnxsim:
            commands["onnxsim"] = [onnxsim, str(src), str(Path(tmp) / "b.onnx")]
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(repeat):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    row = {"nodes": n, **{f"{k}_s": statistics.median(v) for k, v in times.items()}}
    if "onnxsim_s" in row:
        row["ratio"] = row["cgsurg_s"] / row["onnxsim_s"]
    return row


def _import_seconds(model: onnx.ModelProto) -> float:
    import onnx_graphsurgeon as gs

    start = time.perf_counter()
    gs.import_onnx(model)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--verify", nargs="+", default=["auto", "each"], choices=["auto", "each", "end"],
                        help="the pass manager's verification modes to time (auto: what apply --no-check does)")
    parser.add_argument("--repeat", type=int, default=3, help="whole-process runs per tool (median)")
    args = parser.parse_args()
    side = [whole_process(n, args.repeat) for n in args.nodes]
    rows = [measure(n, verify) for verify in args.verify for n in args.nodes]
    env = environment("cpu", None)
    date = datetime.date.today().isoformat()
    names = list(rows[0]["passes"])
    lines = [f"Run {date} on {env['cpu']} ({env['cores']} cores), pipeline `{PIPELINE}`, no numeric check.", "",
             "| verify | nodes | apply, file to file, s | pass manager s | gs import s | " + " | ".join(names) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        cells = [f"{p['run_s']:.2f} + {p['verify_s']:.2f}" for p in r["passes"].values()]
        apply_s = f"{r['apply_s']:.2f}" if "apply_s" in r else ""
        lines.append(f"| {r['verify']} | {r['nodes']} | {apply_s} | {r['seconds']:.2f} | {r['import_s']:.2f} | "
                     + " | ".join(cells) + " |")
    lines += ["", f"Whole process, median of {args.repeat}, same file, same run (goal: cgsurg <= 0.75x onnxsim):", "",
              "| nodes | cgsurg apply --no-check s | onnxsim s | cgsurg/onnxsim |", "|---:|---:|---:|---:|"]
    for r in side:
        lines.append(f"| {r['nodes']} | {r['cgsurg_s']:.2f} | {r.get('onnxsim_s', float('nan')):.2f} | "
                     f"{r.get('ratio', float('nan')):.2f} |")
    lines += ["", "Per pass: run + verify seconds (verify: export, strict shape inference, checker). `auto` verifies",
              "once at the end here (no pass after the first change reads inferred shapes); `each` verifies after",
              "every pass that changed the graph, as every run did before deferred verification. The pass manager",
              "time includes one onnx-graphsurgeon import of the model (timed alone in its column)."]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    summary = {"date": date, "environment": env, "runs": rows, "whole_process": side}
    (out / f"scale-{date}.json").write_text(json.dumps(summary, indent=2))
    (out / f"scale-{date}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
