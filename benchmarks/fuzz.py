"""The long differential-fuzzing campaign (issue 10): random valid ONNX models around the patterns
cgsurg's passes touch, every pass on each, outcomes classified per pass.

    python benchmarks/fuzz.py --graphs 1000 [--seed S] [--passes fold-constants reflect2slice ...]
                              [--minutes M] [--keep 3] [--shrink-seconds 15] [--exclude TAG ...]

Prints the table and writes ``benchmarks/results/fuzz-<date>.json`` and ``.md``: per pass the
graphs tried, how many it applied to, and the outcomes (ok, mismatch, crash, invalid model,
interface changed, caller's model changed, refused, not applicable), the distinct failure
messages with their counts, and the first few reproducers per category (shrunk: ONNX text,
pipeline, message, the seed and choices that rebuild it). The generator and the oracle live in
``tests/fuzzing.py`` (the test suite runs a short budget of the same, ``tests/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the generator and oracle are shared with the test suite

import fuzzing  # noqa: E402

from graphsurgeon_cg.check.cpu import cpu_name  # noqa: E402

ort.set_default_logger_severity(4)  # the runtime's own error lines would drown the progress output

COLUMNS = [("tried", None), ("applicable", None), ("ok", fuzzing.OK), ("mismatch", fuzzing.MISMATCH),
           ("crash", fuzzing.CRASH), ("invalid model", fuzzing.INVALID_MODEL),
           ("interface changed", fuzzing.INTERFACE), ("input mutated", fuzzing.INPUT_MUTATED),
           ("refused", fuzzing.REFUSED), ("not applicable", fuzzing.NOT_APPLICABLE)]


def split_specs(values: list[str]) -> list[str]:
    """Pass specs from arguments, each possibly a comma-separated pipeline (commas inside
    parentheses or brackets belong to the options)."""
    specs = []
    for value in values:
        depth, part = 0, ""
        for ch in value:
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            if ch == "," and depth == 0:
                specs.append(part.strip())
                part = ""
            else:
                part += ch
        if part.strip():
            specs.append(part.strip())
    return specs



def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def row(tally: fuzzing.PassTally) -> list[int]:
    values = []
    for label, category in COLUMNS:
        if label == "tried":
            values.append(tally.tried)
        elif label == "applicable":
            values.append(tally.applicable)
        else:
            values.append(tally.counts[category])
    return values


def text_table(tallies: dict[str, fuzzing.PassTally]) -> str:
    header = ["pass"] + [label for label, _ in COLUMNS] + ["s/graph"]
    rows = [[spec] + [str(v) for v in row(t)] + [f"{t.seconds / max(t.tried, 1):.3f}"] for spec, t in tallies.items()]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def markdown(tallies: dict[str, fuzzing.PassTally], meta: dict) -> str:
    out = [f"# Differential fuzzing, {meta['date']}", "",
           f"{meta['graphs']} graphs (seed {meta['seed']}) in {meta['seconds']:.0f} s on {meta['cpu']} "
           f"({meta['cores']} cores, shared), onnx {meta['onnx']}, onnxruntime {meta['onnxruntime']}, "
           f"cgsurg at {meta['commit']}. {meta['discarded_total']} generated models were discarded as invalid "
           "or not runnable before use. Each pass (or pipeline: the last pass is the one judged) runs through "
           "PassManager on a copy of every graph; exact passes are compared with the original in ONNX Runtime "
           "and onnx.reference (|diff| <= 1e-5; in ORT float16 outputs may also differ by one float16 ulp, as "
           "ORT's float16 kernels round differently with the graph around them), lossy ones by the numeric "
           "checker within their declared bound (cosine bars of reflect2const, resize-nearest and int8 set to 0: "
           "their defaults are model-dependent gates; postproc-fold only where the outputs stay in [-1, 1], its "
           "domain). int8 calibrates on 8 samples drawn like the check's inputs.", "",
           "| pass | " + " | ".join(label for label, _ in COLUMNS) + " |",
           "|---|" + "---:|" * len(COLUMNS)]
    for spec, tally in tallies.items():
        out.append(f"| `{spec}` | " + " | ".join(str(v) for v in row(tally)) + " |")
    out += ["", "Outcomes: *ok* (rewrote, valid, same interface, same numbers), *mismatch* (outputs moved: exact "
            "passes beyond 1e-5 in either runtime, lossy ones beyond their bound), *crash* (the pass failed: "
            "PassFailed or another exception), *invalid model* (the result fails the checker or a runtime "
            "cannot load/run it), *interface changed* (input/output names, count, rank, a static dim, or "
            "dtypes for passes that keep them), *input mutated* (the caller's ModelProto was changed), "
            "*refused* (a documented InputError), *not applicable* (nothing rewritten).", ""]
    failures = [(spec, t) for spec, t in tallies.items() if t.signatures]
    if failures:
        out += ["## Failures by message", ""]
        for spec, tally in failures:
            for category, sigs in tally.signatures.items():
                for sig, count in sorted(sigs.items(), key=lambda kv: -kv[1]):
                    out.append(f"- `{spec}` {category} ×{count}: {sig}")
        out.append("")
        out += ["## Reproducers (shrunk)", ""]
        for spec, tally in failures:
            for category, reps in tally.reproducers.items():
                for rep in reps:
                    out += [f"### `{spec}`: {category}", "", f"{rep.message}", "",
                            f"seed {rep.seed}; {rep.nodes} nodes (shrunk from {rep.shrunk_from}); corners: "
                            f"{', '.join(rep.tags)}; rebuild: `fuzzing.replay(choices)` with the choices in the JSON",
                            "", "```text", rep.text.rstrip(), "```", ""]
    out += ["## Generator coverage (graphs with each corner)", "",
            ", ".join(f"{tag} {n}" for tag, n in meta["tags"].items()), ""]
    if meta["discarded"]:
        out += ["## Discarded while generating", ""]
        for reason, n in sorted(meta["discarded"].items(), key=lambda kv: -kv[1])[:12]:
            out.append(f"- ×{n}: {reason}")
        out.append("")
    return "\n".join(out)


def load(path: Path) -> tuple[dict[str, fuzzing.PassTally], dict]:
    """The tallies and meta data of an earlier run's JSON."""
    payload = json.loads(path.read_text())
    tallies = {}
    for spec, data in payload["passes"].items():
        tally = fuzzing.PassTally(spec, tried=data["tried"], seconds=data["seconds"], signatures=data["failures"])
        tally.counts.update(data["counts"])
        tally.reproducers = {c: [fuzzing.Reproducer(**r) for r in reps] for c, reps in data["reproducers"].items()}
        tallies[spec] = tally
    return tallies, payload["meta"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=1000, help="how many random graphs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    parser.add_argument("--passes", nargs="+", default=None,
                        help=f"pass specs to check (default: {', '.join(fuzzing.PASSES)})")
    parser.add_argument("--minutes", type=float, default=None, help="stop generating after this many minutes")
    parser.add_argument("--keep", type=int, default=3, help="reproducers kept per pass and category (default 3)")
    parser.add_argument("--shrink-seconds", type=float, default=10.0,
                        help="time to shrink each kept reproducer (0: no shrinking; default 10)")
    parser.add_argument("--shrink-budget", type=float, default=240.0,
                        help="total time for shrinking over the campaign (default 240)")
    parser.add_argument("--exclude", nargs="*", default=[], help="generator corners (tags) not to produce")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results folder")
    parser.add_argument("--name", default=None, help="file stem (default fuzz-<date>)")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only rewrite the .md beside an earlier run's JSON (no fuzzing)")
    args = parser.parse_args(argv)
    if args.render:
        tallies, meta = load(args.render)
        args.render.with_suffix(".md").write_text(markdown(tallies, meta))
        print(text_table(tallies))
        print(f"wrote {args.render.with_suffix('.md')}")
        return 0
    passes = split_specs(args.passes) if args.passes else list(fuzzing.PASSES)
    unknown = sorted(set(args.exclude) - fuzzing.TAGS)
    if unknown:
        parser.error(f"unknown corner(s) {', '.join(unknown)}; known: {', '.join(sorted(fuzzing.TAGS))}")
    from graphsurgeon_cg.core.errors import CgsurgError
    from graphsurgeon_cg.core.registry import build_pipeline

    try:
        build_pipeline(",".join(passes))
    except CgsurgError as exc:
        parser.error(str(exc))

    start = time.perf_counter()
    deadline = start + 60 * args.minutes if args.minutes else None

    def progress(index: int, case: fuzzing.Case) -> None:
        done = index + 1
        if done % 25 == 0 or done == args.graphs:
            bad = sum(t.tried - t.counts[fuzzing.OK] - t.counts[fuzzing.NOT_APPLICABLE] - t.counts[fuzzing.REFUSED]
                      for t in tallies.values())
            print(f"[fuzz] {done}/{args.graphs} graphs, {time.perf_counter() - start:.0f} s, {bad} failures so far",
                  flush=True)

    tallies = {spec: fuzzing.PassTally(spec) for spec in passes}
    tallies, meta = fuzzing.run_campaign(args.graphs, args.seed, passes, keep=args.keep,
                                         shrink_seconds=args.shrink_seconds, shrink_budget=args.shrink_budget,
                                         exclude=args.exclude,
                                         progress=progress, deadline=deadline, tallies=tallies)
    now = dt.datetime.now()
    meta.update(date=now.strftime("%Y-%m-%d"), time=now.strftime("%H:%M"), requested_graphs=args.graphs,
                passes=passes, exclude=args.exclude, onnx=onnx.__version__, onnxruntime=ort.__version__,
                python=platform.python_version(), cpu=cpu_name(), cores=len(os.sched_getaffinity(0)),
                commit=git_commit(), discarded_total=sum(meta["discarded"].values()))
    print(text_table(tallies))
    for spec, tally in tallies.items():
        for category, sigs in tally.signatures.items():
            for sig, count in sorted(sigs.items(), key=lambda kv: -kv[1]):
                print(f"  {spec} {category} x{count}: {sig}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"fuzz-{meta['date']}"
    payload = {"meta": meta, "passes": {spec: {"tried": t.tried, "applicable": t.applicable, "counts": t.counts,
                                               "seconds": round(t.seconds, 3), "failures": t.signatures,
                                               "reproducers": {c: [r.as_dict() for r in reps]
                                                               for c, reps in t.reproducers.items()}}
                                        for spec, t in tallies.items()}}
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(tallies, meta))
    print(f"wrote {args.out / stem}.json and .md ({meta['graphs']} graphs in {meta['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
