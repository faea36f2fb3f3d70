"""Per-pass accuracy report: what each rewrite of a pipeline cost, measured cumulatively.

``AccuracyReport`` is a pass-manager instrument. It runs the original model once on the
evaluation inputs (real images from an info file, a folder, or seeded random inputs), then
after every pass runs the rewritten model on the same inputs and scores it against the
original with the metrics of ``cgsurg eval`` (vendor per-pixel cosine mean and min, flat
cosine, max abs, PSNR, SSIM). It writes ``report.json`` (schema ``cgsurg-report`` version 1),
``report.md`` and a self-contained ``report.html`` with sample images, difference heat maps
and a chart of accuracy along the pipeline; it gates on minimum cosine/PSNR and compares with
a baseline report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from .errors import InputError
from .evaluate import score
from .infer import to_image
from .manager import PassRecord
from .numeric import Feeds, make_session

SCHEMA = "cgsurg-report"
VERSION = 1
SHOWN_SAMPLES = 3


@dataclass
class Gates:
    min_cos: float | None = None
    min_psnr: float | None = None


def _run(model: onnx.ModelProto, feeds: Sequence[Feeds], passes: Sequence) -> list[dict]:
    """Outputs per sample of the model after ``passes``, in the original model's units; inputs
    are translated through the passes, and a static batch larger than 1 is filled with copies."""
    session = make_session(model)
    inp = session.get_inputs()[0]
    static = inp.shape[0] if isinstance(inp.shape[0], int) else None
    names = [o.name for o in session.get_outputs()]
    outs = []
    for feed in feeds:
        for p in passes:
            feed = p.adapt_feeds(feed)
        if static and static != next(iter(feed.values())).shape[0]:
            feed = {k: np.repeat(v[:1], static, axis=0) for k, v in feed.items()}
        out = dict(zip(names, session.run(names, feed)))
        for p in reversed(passes):
            out = p.adapt_outputs(out)
        outs.append({k: v[0] for k, v in out.items()})
    return outs


def _throughput(model: onnx.ModelProto, feed: Feeds, rounds: int = 3) -> float:
    """Images per second at batch 1 with ORT's optimisations on, as deployment runs it."""
    session = make_session(model, optimize=True)
    feed = {k: v[:1] for k, v in feed.items()}
    inp = session.get_inputs()[0]
    if isinstance(inp.shape[0], int) and inp.shape[0] > 1:
        feed = {k: np.repeat(v, inp.shape[0], axis=0) for k, v in feed.items()}
    session.run(None, feed)
    runs, start = 0, time.perf_counter()
    while runs < rounds or time.perf_counter() - start < 0.25:  # tiny models need more runs to be steady
        session.run(None, feed)
        runs += 1
    return feed[inp.name].shape[0] * runs / (time.perf_counter() - start)


@dataclass
class AccuracyReport:
    original: onnx.ModelProto
    feeds: list[Feeds]
    input_kind: str  # "info", "folder" or "random"
    bench: bool = False
    entries: list[dict] = field(default_factory=list)
    gallery: list[tuple[str, list[np.ndarray]]] = field(default_factory=list)  # (pass, shown outputs)

    def __post_init__(self):
        if not self.feeds:
            raise InputError("no evaluation inputs for the report")
        self.passes: list = []
        self.output_name = self.original.graph.output[0].name
        self.reference = [o[self.output_name] for o in _run(self.original, self.feeds, [])]
        self._previous = self.reference
        self.baseline_throughput = _throughput(self.original, self.feeds[0]) if self.bench else None

    # --- instrument -------------------------------------------------------------------
    def after_pass(self, p, record: PassRecord, model: onnx.ModelProto) -> None:
        self.passes.append(p)
        outputs = [o[self.output_name] for o in _run(model, self.feeds, self.passes)]
        scores = [score(f"sample{i}", ref, out) for i, (ref, out) in enumerate(zip(self.reference, outputs))]
        changed = any(not np.array_equal(a, b) for a, b in zip(self._previous, outputs))
        self._previous = outputs
        if changed:
            self.gallery.append((record.spec, outputs[:SHOWN_SAMPLES]))
        psnr = [s.psnr_db for s in scores if s.psnr_db is not None]
        ssim = [s.ssim for s in scores if s.ssim is not None]
        metrics = {
            "pixel_cos_mean": float(np.mean([s.pixel_cos for s in scores])),
            "pixel_cos_min": float(np.min([s.pixel_cos for s in scores])),
            "cos_mean": float(np.mean([s.cos for s in scores])),
            "max_abs": float(np.max([s.max_abs for s in scores])),
            "psnr_db_mean": float(np.mean(psnr)) if len(psnr) == len(scores) else None,  # None: identical
            "ssim_mean": float(np.mean(ssim)) if ssim else None,
        }
        entry = {"name": p.name, "spec": record.spec, "options": p.changed_options(), "exact": p.exact,
                 "rewrites": record.rewrites, "seconds": record.seconds, "nodes_before": record.nodes_before,
                 "nodes_after": record.nodes_after, "op_delta": record.op_delta, "changed_outputs": changed,
                 "metrics": metrics, "regressions": []}
        if self.bench:
            feed = self.feeds[0]
            for q in self.passes:
                feed = q.adapt_feeds(feed)
            entry["throughput_batch1"] = _throughput(model, feed)
        self.entries.append(entry)

    # --- verdicts ---------------------------------------------------------------------
    def gate_failure(self, gates: Gates) -> str | None:
        """The first pass after which a metric falls below its bar, as an error message."""
        for entry in self.entries:
            m = entry["metrics"]
            if gates.min_cos is not None and m["pixel_cos_mean"] < gates.min_cos:
                return (f"accuracy gate: after pass '{entry['spec']}' the mean pixel cosine is "
                        f"{m['pixel_cos_mean']:.6f} < {gates.min_cos}")
            if gates.min_psnr is not None and m["psnr_db_mean"] is not None and m["psnr_db_mean"] < gates.min_psnr:
                return (f"accuracy gate: after pass '{entry['spec']}' the mean PSNR is "
                        f"{m['psnr_db_mean']:.2f} dB < {gates.min_psnr}")
        return None

    def compare_baseline(self, path: str | Path, cos_tol: float = 1e-4, psnr_tol: float = 0.5) -> list[str]:
        """Flag each pass whose metrics got worse than in an earlier report of the same pipeline."""
        try:
            old = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read baseline report {path}: {exc}") from None
        if old.get("schema") != SCHEMA or not isinstance(old.get("passes"), list):
            raise InputError(f"{path} is not a cgsurg report")
        # The same passes in the same order; their options may differ (that is what one tunes).
        old_names = [e.get("name") for e in old["passes"]]
        if old_names != [e["name"] for e in self.entries]:
            raise InputError(f"baseline {path} is for passes {','.join(map(str, old_names))}, not this pipeline's")
        flagged = []
        for entry, before in zip(self.entries, old["passes"]):
            entry["baseline_spec"] = before.get("spec")
            new_m, old_m = entry["metrics"], before["metrics"]
            problems = []
            for key in ("pixel_cos_mean", "pixel_cos_min", "cos_mean"):
                if new_m[key] < old_m[key] - cos_tol:
                    problems.append(f"{key} {old_m[key]:.6f} -> {new_m[key]:.6f}")
            old_psnr, new_psnr = old_m.get("psnr_db_mean"), new_m["psnr_db_mean"]
            if new_psnr is not None and (old_psnr is None or new_psnr < old_psnr - psnr_tol):
                problems.append(f"psnr_db_mean {'inf' if old_psnr is None else f'{old_psnr:.2f}'} -> {new_psnr:.2f}")
            entry["regressions"] = problems
            if problems:
                flagged.append(f"{entry['spec']}: {'; '.join(problems)}")
        return flagged

    # --- writers ----------------------------------------------------------------------
    def as_dict(self, model_path: str, pipeline: str, error: str | None = None, baseline: str | None = None) -> dict:
        return {"schema": SCHEMA, "version": VERSION, "model": model_path, "pipeline": pipeline,
                "inputs": {"kind": self.input_kind, "samples": len(self.feeds)},
                "baseline": baseline, "error": error,
                "original_throughput_batch1": self.baseline_throughput,
                "passes": self.entries}

    def write(self, out_dir: str | Path, model_path: str, pipeline: str, error: str | None = None,
              baseline: str | None = None) -> Path:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"--report {out} is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        data = self.as_dict(model_path, pipeline, error, baseline)
        (out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
        (out / "report.md").write_text(self._markdown(data))
        (out / "report.html").write_text(self._html(data))
        return out

    def _rows(self, data: dict) -> list[list[str]]:
        rows = []
        for e in data["passes"]:
            m = e["metrics"]
            psnr = "inf" if m["psnr_db_mean"] is None else f"{m['psnr_db_mean']:.2f}"
            delta = ", ".join(f"{op} {d:+d}" for op, d in e["op_delta"].items()) or "-"
            flag = ("REGRESSED: " + "; ".join(e["regressions"])) if e["regressions"] else ""
            row = [e["spec"], "exact" if e["exact"] else "lossy", str(e["rewrites"]),
                   f"{e['nodes_before']} → {e['nodes_after']}", f"{m['pixel_cos_mean']:.6f}",
                   f"{m['pixel_cos_min']:.6f}", f"{m['cos_mean']:.6f}", f"{m['max_abs']:.3g}", psnr,
                   f"{e['seconds']:.3f}", delta]
            if "throughput_batch1" in e:
                row.append(f"{e['throughput_batch1']:.2f}")
            rows.append(row + [flag])
        return rows

    def _header(self) -> list[str]:
        head = ["pass", "kind", "rewrites", "nodes", "pixel cos mean", "pixel cos min", "cos", "max abs",
                "PSNR dB", "time s", "op delta"]
        return head + (["img/s (b1)"] if self.bench else []) + ["flag"]

    def _markdown(self, data: dict) -> str:
        lines = [f"# cgsurg report: `{data['pipeline']}`", "",
                 f"Model `{data['model']}`; metrics against the original on {data['inputs']['samples']} "
                 f"{data['inputs']['kind']} input(s), cumulative after each pass.", ""]
        if data["error"]:
            lines += [f"**Failed:** {data['error']}", ""]
        head = self._header()
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in self._rows(data)]
        return "\n".join(lines) + "\n"

    def _html(self, data: dict) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self._header())
        body = "".join(
            f"<tr class='{'bad' if r[-1] else ''}'>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
            for r in self._rows(data))
        parts = [f"<h1>cgsurg report</h1><p>Pipeline <code>{esc(data['pipeline'])}</code> on "
                 f"<code>{esc(data['model'])}</code>; {data['inputs']['samples']} {esc(data['inputs']['kind'])} "
                 "input(s); metrics are cumulative against the original model.</p>"]
        if data["error"]:
            parts.append(f"<p class='bad'><b>Failed:</b> {esc(data['error'])}</p>")
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
        if self.entries:
            parts.append(f"<h2>Accuracy along the pipeline</h2><img alt='chart' src='{self._chart()}'>")
        parts.append(self._gallery_html())
        style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                 "padding:3px 6px;font-size:13px}.bad{background:#fdd}figure{display:inline-block;margin:4px}"
                 "figcaption{font-size:12px;max-width:200px}img.s{width:192px;image-rendering:pixelated}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cgsurg report</title><style>{style}</style>"
                f"</head><body>{''.join(parts)}</body></html>\n")

    def _gallery_html(self) -> str:
        if not self.gallery:
            return "<h2>Samples</h2><p>No pass changed the outputs.</p>"
        rows = ["<h2>Samples</h2><p>Input, original output, then for each pass that changed numbers its "
                "output and the absolute difference to the original (mean over channels, shared colour scale).</p>"]
        for i in range(min(SHOWN_SAMPLES, len(self.feeds))):
            scale = max(float(np.abs(outs[i] - self.reference[i]).mean(axis=0).max()) for _, outs in self.gallery) or 1.0
            figures = [_figure(next(iter(self.feeds[i].values()))[0], "input"),
                       _figure(self.reference[i], "original output")]
            for spec, outs in self.gallery:
                figures.append(_figure(outs[i], f"after {spec}"))
                figures.append(_heat(np.abs(outs[i] - self.reference[i]), scale, f"|diff| after {spec} (max {scale:.3g})"))
            rows.append("<div>" + "".join(f for f in figures if f) + "</div>")
        return "".join(rows)

    def _chart(self) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = ["original"] + [e["spec"] for e in self.entries]
        mean = [1.0] + [e["metrics"]["pixel_cos_mean"] for e in self.entries]
        low = [1.0] + [e["metrics"]["pixel_cos_min"] for e in self.entries]
        fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(names)), 3), dpi=90)
        ax.plot(range(len(names)), mean, marker="o", label="pixel cosine, mean")
        ax.plot(range(len(names)), low, marker="v", linestyle="--", label="pixel cosine, min")
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("vs original")
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _png_uri(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(chw: np.ndarray, caption: str) -> str:
    image = to_image(chw)
    if image is None:
        return ""
    return f"<figure><img class='s' src='{_png_uri(image)}'><figcaption>{html.escape(caption)}</figcaption></figure>"


def _heat(diff: np.ndarray, scale: float, caption: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from PIL import Image

    if diff.ndim != 3:
        return ""
    rgba = colormaps["inferno"](np.clip(diff.mean(axis=0) / scale, 0, 1))
    image = Image.fromarray((rgba[..., :3] * 255).round().astype(np.uint8))
    return f"<figure><img class='s' src='{_png_uri(image)}'><figcaption>{html.escape(caption)}</figcaption></figure>"
