"""The protobuf fast path against the onnx-graphsurgeon path on random graphs (issue 19): every
pipeline the fast path serves runs on both paths, which must write the same model with the same
records, or fail with the same error, without changing the caller's model.

    python benchmarks/fastpath_agreement.py [--graphs 1000] [--seed 0]

The graphs come from the fuzz generator (``tests/fuzzing.py``), the oracle from
``tests/fastpath_oracle.py`` (``tests/test_fastpath.py`` runs 40 of the same). Writes
benchmarks/results/fastpath-<date>.json and .md: per pipeline the graphs tried, how many took the
fast path, how many agreed, and the first disagreements with the seed that rebuilds each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import traceback
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the generator and the oracle are shared with the suite

import fuzzing  # noqa: E402
from fastpath_oracle import assert_same, both_paths  # noqa: E402

ort.set_default_logger_severity(4)

PIPELINES = ["fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=1)", "reflect2slice",
             "pad-conv-fusion", "static-batch(batch=1)", "fold-constants", "pad-conv-fusion,reflect2slice",
             "static-batch(batch=2),reflect2slice,pad-conv-fusion"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graphs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="the first graph's seed (graph k: seed + k)")
    parser.add_argument("--seeds", type=int, nargs="*", help="these seeds only (a rerun of findings)")
    args = parser.parse_args()
    seeds = args.seeds or [args.seed + k for k in range(args.graphs)]
    rows = {p: {"tried": 0, "fast": 0, "agree": 0, "disagree": 0, "examples": []} for p in PIPELINES}
    start, discarded = time.perf_counter(), 0
    for k, seed in enumerate(seeds):
        try:
            case = fuzzing.generate(seed)
        except fuzzing.Invalid:
            discarded += 1
            continue
        for pipeline in PIPELINES:
            row = rows[pipeline]
            row["tried"] += 1
            problem = None
            try:
                fast, slow, taken, mutated = both_paths(case.model, pipeline)
                row["fast"] += taken
                if mutated:
                    problem = "the fast path changed the caller's model"
                else:  # outputs compared on the case's own feeds (valid sizes), at the batch the pipeline sets
                    assert_same(fast, slow, fuzzing.feeds_for(case, batch=fuzzing.static_batch_of(pipeline)))
            except AssertionError as exc:
                problem = f"the paths disagree: {str(exc).splitlines()[0] if str(exc) else 'assertion'}"
            except Exception:  # noqa: BLE001 - a crash of either path is a finding too
                problem = "crash: " + traceback.format_exc().strip().splitlines()[-1]
            if problem:
                row["disagree"] += 1
                if len(row["examples"]) < 5:
                    row["examples"].append({"seed": seed, "problem": problem[:300]})
            else:
                row["agree"] += 1
        if (k + 1) % 100 == 0:
            print(f"{k + 1} graphs, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    date = dt.date.today().isoformat()
    named = f"seeds {seeds[0]}..{seeds[-1]}" if not args.seeds else "seeds " + ", ".join(map(str, seeds))
    lines = [f"# Fast path against the onnx-graphsurgeon path, {date}", "",
             f"{len(seeds)} fuzz graphs ({named}, {discarded} discarded by "
             f"the generator) in {seconds:.0f} s. Each pipeline runs on both paths (`tests/fastpath_oracle.py`): "
             "the same model (bytes, or equal fields and bit-identical ORT outputs), the same records, or the same "
             "error; the caller's model unchanged. *fast*: graphs where the fast path ran the pipeline (elsewhere "
             "it gave way to onnx-graphsurgeon before any hook, and both runs are the gs path).", "",
             "| pipeline | tried | fast | agree | disagree |", "|---|---:|---:|---:|---:|"]
    for pipeline, row in rows.items():
        lines.append(f"| `{pipeline}` | {row['tried']} | {row['fast']} | {row['agree']} | {row['disagree']} |")
    for pipeline, row in rows.items():
        for example in row["examples"]:
            lines.append(f"\n- `{pipeline}`, seed {example['seed']}: {example['problem']}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    if args.seeds:  # a rerun of findings is printed, not kept
        print("\n".join(lines))
        return
    (out / f"fastpath-{date}.json").write_text(json.dumps({"date": date, "graphs": len(seeds), "seed": args.seed,
                                                            "seconds": seconds, "rows": rows}, indent=2))
    (out / f"fastpath-{date}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
