"""Models over 2 GB: build one (a 2.4 GB embedding table next to Pad -> Conv, weights written
straight to external data: such a tensor cannot pass through one protobuf message), then time
``cgsurg apply --passes fold-constants,pad-conv-fusion`` with the numeric check, from the
model's own folder, and record wall time and peak memory (run by hand; needs ~5 GB of disk).

    python benchmarks/big_model.py [--rows 150000] [--dir /tmp/cgsurg-big]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def build(path: Path, rows: int, flat: bool = False) -> None:
    """``flat``: the table as one one-dimensional tensor (rows * 4096 elements), read by a Gather
    of single elements; else a 2-D table of rows of 4096."""
    data_name = path.name + ".data"
    chunk = np.ones((1000, 4096), np.float32)
    with open(path.parent / data_name, "wb") as f:
        for _ in range(rows // 1000):
            f.write(chunk.tobytes())
    dims = [rows // 1000 * 1000 * 4096] if flat else [rows // 1000 * 1000, 4096]
    table = TensorProto(name="table", data_type=TensorProto.FLOAT, dims=dims)
    table.data_location = TensorProto.EXTERNAL
    for key, value in (("location", data_name), ("offset", "0"), ("length", str(rows // 1000 * 1000 * 4096 * 4))):
        table.external_data.add(key=key, value=value)
    inits = [table, numpy_helper.from_array(np.full((2, 2, 3, 3), 0.1, np.float32), "w"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    nodes = [helper.make_node("Gather", ["table", "idx"], ["rows"]),
             helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "w"], ["y"])]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("idx", TensorProto.INT64, [2]),
                                             helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [2] if flat else [2, 4096]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save_model(model, str(path))


def measure(folder: Path, extra: list[str]) -> dict:
    """One ``cgsurg apply`` in its own process: wall time and that process's peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "graphsurgeon_cg", "apply", "big.onnx", "-o", "out.onnx",
                             "--passes", "fold-constants,pad-conv-fusion", *extra], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the maximum over all children
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    written = sorted(os.listdir(folder))
    for name in ("out.onnx", "out.onnx.data"):
        (folder / name).unlink(missing_ok=True)
    return {"args": extra, "exit": os.waitstatus_to_exitcode(status), "seconds": round(seconds, 2),
            "peak_rss_bytes": usage.ru_maxrss * 1024, "stderr": stderr.strip(), "written": written}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=150_000, help="table rows of 16 KiB each")
    parser.add_argument("--dir", default="/tmp/cgsurg-big")
    parser.add_argument("--shapes", default="2d,1d", help="which tables: 2d (rows of 4096), 1d (one long vector)")
    args = parser.parse_args()
    folder = Path(args.dir)
    runs = []
    for shape in args.shapes.split(","):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        build(folder / "big.onnx", args.rows, flat=shape == "1d")
        size = (folder / "big.onnx.data").stat().st_size
        for extra in ([], ["--no-check"]):
            run = {"table": shape, "model_bytes": size, **measure(folder, extra)}
            run["peak_over_model"] = round(run["peak_rss_bytes"] / size, 3)
            print(json.dumps(run), flush=True)
            runs.append(run)
    shutil.rmtree(folder, ignore_errors=True)
    result = {"date": datetime.date.today().isoformat(), "goal": "peak < 2x model with the check, < 0.5x without",
              "runs": runs}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"big-model-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
