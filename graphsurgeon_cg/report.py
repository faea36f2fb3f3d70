"""Per-pass accuracy report: what each rewrite of a pipeline cost, measured cumulatively.

``AccuracyReport`` is a pass-manager instrument. It runs the original model once on the
evaluation inputs (real images from an info file, a folder, or seeded random inputs), then
after every pass runs the rewritten model on the same inputs and scores it against the
original with the metrics of ``check.metrics`` (vendor per-pixel cosine mean and min, flat
cosine, max abs, PSNR, SSIM). When the pipeline ends, whether it succeeded or failed, it writes
``report.json`` (schema ``cgsurg-report`` version 2; NaN is ``null``),
``report.md`` and a self-contained ``report.html`` with sample images, difference heat maps
and a chart of accuracy along the pipeline; it gates on minimum cosine/PSNR and compares with
a baseline report. Gates judge the per-pixel cosine for image outputs and the flat cosine for
one-channel outputs (``metrics.judged_by``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .check.feeds import Feeds, fit_batch, static_batch
from .check.images import to_image
from .check.metrics import json_safe, meets, score, summarise
from .check.session import make_session, run_feed
from .core.base import Pass
from .core.errors import InputError, NumericCheckFailed
from .core.instruments import Instrument, PipelineRun
from .core.manager import PassRecord, PipelineResult
from .core.modelio import staged_folder

SCHEMA = "cgsurg-report"
VERSION = 2
SHOWN_SAMPLES = 3


@dataclass
class Gates:
    min_cos: float | None = None  # on the judged cosine (per-pixel for images, flat otherwise)
    min_psnr: float | None = None


def _outputs(run: PipelineRun, stage: int, feeds: Sequence[Feeds]) -> list[np.ndarray]:
    """The first output per sample of ``run.stages[stage]``, in the original model's units."""
    model = run.stages[stage]
    session = make_session(model)
    name = session.get_outputs()[0].name
    batch = static_batch(model)
    outs = []
    for feed in feeds:
        adapted = fit_batch(run.feeds_for(feed, stage), batch)
        out = dict(zip([o.name for o in session.get_outputs()], run_feed(session, adapted)))
        outs.append(run.outputs_back(out, stage)[name][0])
    return outs


def _throughput(model: onnx.ModelProto, feed: Feeds, rounds: int = 3) -> float:
    """Images per second at batch 1 with ORT's optimisations on, as deployment runs it."""
    session = make_session(model, optimize=True)
    feed = fit_batch({k: v[:1] for k, v in feed.items()}, static_batch(model))
    session.run(None, feed)
    runs, start = 0, time.perf_counter()
    while runs < rounds or time.perf_counter() - start < 0.25:  # tiny models need more runs to be steady
        session.run(None, feed)
        runs += 1
    return next(iter(feed.values())).shape[0] * runs / (time.perf_counter() - start)


class AccuracyReport(Instrument):
    """Measures every pass against the original on the evaluation inputs and writes the
    report when the pipeline ends, failed or not; fails the run on gates or a baseline."""

    def __init__(self, feeds: list[Feeds], input_kind: str, out_dir: str | os.PathLike, model_path: str = "",
                 gates: Gates | None = None, baseline: str | os.PathLike | None = None, baseline_cos_tol: float = 1e-4,
                 baseline_psnr_tol: float = 0.5, bench: bool = False):
        if not feeds:
            raise InputError("no evaluation inputs for the report")
        self.feeds = feeds
        self.input_kind = input_kind  # "info", "folder" or "random"
        self.out_dir = Path(out_dir)
        self.model_path = model_path
        self.gates = gates or Gates()
        self.baseline = baseline
        self.baseline_cos_tol = baseline_cos_tol
        self.baseline_psnr_tol = baseline_psnr_tol
        self.bench = bench
        self.entries: list[dict] = []
        self.gallery: list[tuple[str, list[np.ndarray]]] = []  # (pass, shown outputs)
        self.reference: list[np.ndarray] | None = None
        self.baseline_throughput: float | None = None
        self.pipeline = ""

    # --- hooks ------------------------------------------------------------------------
    def before_pipeline(self, run: PipelineRun) -> None:
        self.pipeline = ",".join(str(p) for p in run.passes)
        self.reference = _outputs(run, 0, self.feeds)
        self._previous = self.reference
        self.baseline_throughput = _throughput(run.original, self.feeds[0]) if self.bench else None

    def after_pass(self, run: PipelineRun, index: int, p: Pass, record: PassRecord) -> None:
        assert self.reference is not None
        outputs = _outputs(run, index + 1, self.feeds)
        scores = [score(f"sample{i}", ref, out) for i, (ref, out) in enumerate(zip(self.reference, outputs))]
        changed = any(not np.array_equal(a, b) for a, b in zip(self._previous, outputs))
        self._previous = outputs
        if changed:
            self.gallery.append((record.spec, outputs[:SHOWN_SAMPLES]))
        summary = summarise(scores)

        def stat(key: str, which: str) -> float | None:
            return summary[key][which] if summary[key] else None

        psnr_known = len([s for s in scores if s.psnr_db is not None]) == len(scores)
        metrics = {
            "judged_by": summary["judged_by"],
            "pixel_cos_mean": stat("pixel_cos", "mean"), "pixel_cos_min": stat("pixel_cos", "min"),
            "cos_mean": stat("cos", "mean"), "cos_min": stat("cos", "min"),
            "max_abs": summary["max_abs"]["max"],
            "psnr_db_mean": stat("psnr_db", "mean") if psnr_known else None,  # None: identical
            "ssim_mean": stat("ssim", "mean"),
        }
        entry = {"name": p.name, "spec": record.spec, "options": p.changed_options(), "exact": p.exact,
                 "rewrites": record.rewrites, "seconds": record.seconds, "nodes_before": record.nodes_before,
                 "nodes_after": record.nodes_after, "op_delta": record.op_delta, "changed_outputs": changed,
                 "metrics": metrics, "regressions": []}
        if self.bench:
            entry["throughput_batch1"] = _throughput(run.stages[index + 1], run.feeds_for(self.feeds[0], index + 1))
        self.entries.append(entry)

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        failure = self.gate_failure(self.gates)
        regressions = self.compare_baseline(self.baseline, self.baseline_cos_tol,
                                            self.baseline_psnr_tol) if self.baseline else []
        if regressions and not failure:
            failure = f"accuracy regressed against the baseline after pass {regressions[0]}"
        if failure:
            raise NumericCheckFailed(failure)  # after_pipeline_failed writes the report with it
        result.report_dir = self.write()

    def after_pipeline_failed(self, run: PipelineRun, error: Exception) -> None:
        # A failed verdict (a pass, the check, a gate) is what the report explains; a bad input
        # leaves nothing behind, like every failed command.
        if self.reference is not None and not isinstance(error, InputError):
            try:
                self.write(error=str(error))
            except InputError:
                pass  # the run's own error is the one to show

    # --- verdicts ---------------------------------------------------------------------
    def gate_failure(self, gates: Gates) -> str | None:
        """The first pass after which a metric falls below its bar, as an error message
        (NaN never passes)."""
        for entry in self.entries:
            m = entry["metrics"]
            judged = m[f"{m['judged_by']}_mean"]
            if gates.min_cos is not None and not meets(judged, gates.min_cos):
                return (f"accuracy gate: after pass '{entry['spec']}' the mean {m['judged_by']} is "
                        f"{_num(judged)} < {gates.min_cos}")
            if gates.min_psnr is not None and m["psnr_db_mean"] is not None and not meets(m["psnr_db_mean"],
                                                                                         gates.min_psnr):
                return (f"accuracy gate: after pass '{entry['spec']}' the mean PSNR is "
                        f"{_num(m['psnr_db_mean'], 2)} dB < {gates.min_psnr}")
        return None

    def compare_baseline(self, path: str | os.PathLike, cos_tol: float = 1e-4, psnr_tol: float = 0.5) -> list[str]:
        """Flag each pass whose metrics got worse than in an earlier report of the same pipeline."""
        try:
            old = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read baseline report {path}: {exc}") from None
        if old.get("schema") != SCHEMA or old.get("version") != VERSION or not isinstance(old.get("passes"), list):
            raise InputError(f"{path} is not a cgsurg report of version {VERSION}")
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
                if old_m.get(key) is not None and not meets(new_m[key], old_m[key] - cos_tol):
                    problems.append(f"{key} {old_m[key]:.6f} -> {_num(new_m[key])}")
            old_psnr, new_psnr = old_m.get("psnr_db_mean"), new_m["psnr_db_mean"]
            if new_psnr is not None and (old_psnr is None or new_psnr < old_psnr - psnr_tol):
                problems.append(f"psnr_db_mean {'inf' if old_psnr is None else f'{old_psnr:.2f}'} -> {new_psnr:.2f}")
            entry["regressions"] = problems
            if problems:
                flagged.append(f"{entry['spec']}: {'; '.join(problems)}")
        return flagged

    # --- writers ----------------------------------------------------------------------
    def as_dict(self, error: str | None = None) -> dict:
        baseline = str(self.baseline) if self.baseline else None
        return {"schema": SCHEMA, "version": VERSION, "model": self.model_path, "pipeline": self.pipeline,
                "inputs": {"kind": self.input_kind, "samples": len(self.feeds)},
                "baseline": baseline, "error": error,
                "original_throughput_batch1": self.baseline_throughput,
                "passes": self.entries}

    def write(self, error: str | None = None) -> Path:
        """Write the three files together: all of them are put in place, or none."""
        out = self.out_dir
        data = json_safe(self.as_dict(error))
        with staged_folder(out) as staging:
            try:
                (staging / "report.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
                (staging / "report.md").write_text(self._markdown(data))
                (staging / "report.html").write_text(self._html(data))
            except OSError as exc:
                raise InputError(f"cannot write the report in {out}: {exc.strerror or exc}") from None
        return out

    def _rows(self, data: dict) -> list[list[str]]:
        rows = []
        for e in data["passes"]:
            m = e["metrics"]
            psnr = "inf" if m["psnr_db_mean"] is None else _num(m["psnr_db_mean"], 2)
            delta = ", ".join(f"{op} {d:+d}" for op, d in e["op_delta"].items()) or "-"
            flag = ("REGRESSED: " + "; ".join(e["regressions"])) if e["regressions"] else ""
            row = [e["spec"], "exact" if e["exact"] else "lossy", str(e["rewrites"]),
                   f"{e['nodes_before']} → {e['nodes_after']}", _num(m["pixel_cos_mean"]),
                   _num(m["pixel_cos_min"]), _num(m["cos_mean"]), _num(m["max_abs"], 3, "g"), psnr,
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
        reference = self.reference
        assert reference is not None  # a gallery entry is only added after the reference was measured
        rows = ["<h2>Samples</h2><p>Input, original output, then for each pass that changed numbers its "
                "output and the absolute difference to the original (mean over channels, shared colour scale).</p>"]
        for i in range(min(SHOWN_SAMPLES, len(self.feeds))):
            scale = max(float(np.abs(outs[i] - reference[i]).mean(axis=0).max()) for _, outs in self.gallery) or 1.0
            figures = [_figure(next(iter(self.feeds[i].values()))[0], "input"),
                       _figure(reference[i], "original output")]
            for spec, outs in self.gallery:
                figures.append(_figure(outs[i], f"after {spec}"))
                figures.append(_heat(np.abs(outs[i] - reference[i]), scale, f"|diff| after {spec} (max {scale:.3g})"))
            rows.append("<div>" + "".join(f for f in figures if f) + "</div>")
        return "".join(rows)

    def _chart(self) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = ["original"] + [e["spec"] for e in self.entries]
        judged = self.entries[0]["metrics"]["judged_by"]
        mean = [1.0] + [_nan(e["metrics"][f"{judged}_mean"]) for e in self.entries]
        low = [1.0] + [_nan(e["metrics"][f"{judged}_min"]) for e in self.entries]
        fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(names)), 3), dpi=90)
        ax.plot(range(len(names)), mean, marker="o", label=f"{judged}, mean")
        ax.plot(range(len(names)), low, marker="v", linestyle="--", label=f"{judged}, min")
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("vs original")
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _num(value: Any, digits: int = 6, kind: str = "f") -> str:
    """A metric for a table: n/a when undefined (None here is never 'identical')."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}{kind}}"


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


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
