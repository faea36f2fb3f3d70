"""Per-pass accuracy report: what each rewrite of a pipeline cost, on its own and in total.

``AccuracyReport`` is a pass-manager instrument. It runs the original model once on the
evaluation inputs (real images from an info file, a folder, or seeded random inputs), then
after every pass runs the rewritten model on the same inputs and scores it against the
original with the metrics of ``check.metrics`` (vendor per-pixel cosine mean and min, flat
cosine, max abs, PSNR, SSIM). Each pass also gets its own effect: the change (Δ) of the judged
cosine and of PSNR that it caused, and its outputs against the previous stage's judged by the
pass's declared bound (held or not). When the pipeline ends, whether it succeeded or failed,
it writes ``report.json`` (schema ``cgsurg-report`` version 2; NaN is ``null``),
``report.md`` and a self-contained ``report.html`` with, per sample image, the outputs after
each pass that changed the picture and a log-scale heat map (with a colour bar) of what that
pass changed, for the samples that scored worst after the pipeline (by the judged cosine,
named), and a chart of accuracy along the pipeline with the run's bar (``bar``: the gate, or
the check's bar) drawn as a line; identical outputs have PSNR "identical" (``metrics.psnr_text``),
never inf; it gates on minimum cosine/PSNR and
compares with a baseline report. Gates judge the per-pixel cosine for image outputs and the
flat cosine for one-channel outputs (``metrics.judged_by``). Progress goes to stderr.
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
from .check.images import display_range, to_image
from .check.metrics import compare_outputs, data_range, json_safe, meets, psnr_text, score, summarise
from .check.session import SessionCache, make_session
from .core.base import Pass
from .core.bounds import CLOSE_ATOL, CLOSE_RTOL
from .core.errors import InputError, NumericCheckFailed
from .core.instruments import Instrument, PipelineRun
from .core.modelio import staged_folder
from .core.records import PassRecord, PipelineResult

SCHEMA = "cgsurg-report"
VERSION = 2
SHOWN_SAMPLES = 3
HEAT_DECADES = 2  # each heat map's log scale spans its max / 10^2 up to its max
KIND_WORDS = {"info": "from the info file", "folder": "from the inputs folder", "random": "seeded random"}


@dataclass
class Gates:
    min_cos: float | None = None  # on the judged cosine (per-pixel for images, flat otherwise)
    min_psnr: float | None = None


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
    report when the pipeline ends, failed or not; fails the run on gates or a baseline.

    ``names`` label the samples (image names); ``source`` says where they came from (an
    info file); ``progress`` shows a progress bar on stderr (None: only on a terminal);
    ``bar`` is the cosine the run must reach (drawn on the chart; default: the ``min_cos`` gate);
    ``sessions``: the run's ORT sessions and their outputs, shared with the numeric check."""

    def __init__(self, feeds: list[Feeds], input_kind: str, out_dir: str | os.PathLike, model_path: str = "",
                 gates: Gates | None = None, baseline: str | os.PathLike | None = None, baseline_cos_tol: float = 1e-4,
                 baseline_psnr_tol: float = 0.5, bench: bool = False, names: Sequence[str] | None = None,
                 source: str = "", progress: bool | None = None, bar: float | None = None,
                 sessions: SessionCache | None = None):
        if not feeds:
            raise InputError("no evaluation inputs for the report")
        self.feeds = feeds
        self.input_kind = input_kind  # "info", "folder" or "random"
        self.names = list(names) if names else [f"sample {i + 1}" for i in range(len(feeds))]
        self.source = source
        self.out_dir = Path(out_dir)
        self.model_path = model_path
        self.gates = gates or Gates()
        self.bar = bar if bar is not None else self.gates.min_cos
        self.baseline = baseline
        self.baseline_cos_tol = baseline_cos_tol
        self.baseline_psnr_tol = baseline_psnr_tol
        self.bench = bench
        self.progress = progress
        self.sessions = sessions or SessionCache()
        self.entries: list[dict] = []
        # (pass spec, its outputs, the previous stage's outputs) of every sample, per pass that
        # changed the outputs: the samples shown are the worst after the pipeline, known at the end
        self.gallery: list[tuple[str, list[np.ndarray], list[np.ndarray]]] = []
        self.reference: list[np.ndarray] | None = None
        self.baseline_throughput: float | None = None
        self.reference_seconds = 0.0
        self.pipeline = ""
        self._bar: Any = None

    # --- hooks ------------------------------------------------------------------------
    def before_pipeline(self, run: PipelineRun) -> None:
        from tqdm import tqdm

        self.pipeline = ",".join(str(p) for p in run.passes)
        self._bar = tqdm(total=(len(run.passes) + 1) * len(self.feeds), desc="report: original", unit="run",
                         leave=False, disable=None if self.progress is None else not self.progress)
        start = time.perf_counter()
        self.reference = self._outputs(run, 0)
        self._previous = self.reference
        self.baseline_throughput = _throughput(run.original, self.feeds[0]) if self.bench else None
        self.reference_seconds = time.perf_counter() - start

    def after_pass(self, run: PipelineRun, index: int, p: Pass, record: PassRecord) -> None:
        assert self.reference is not None
        start = time.perf_counter()
        if self._bar is not None:
            self._bar.set_description(f"report: {record.spec}")
        outputs = self._outputs(run, index + 1)
        scores = [score(name, ref, out) for name, ref, out in zip(self.names, self.reference, outputs)]
        previous, self._previous = self._previous, outputs
        changed = any(not np.array_equal(a, b) for a, b in zip(previous, outputs))
        if changed:
            self.gallery.append((record.spec, outputs, previous))
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
            # within atol + rtol·|ref| of the original everywhere: the cosine gate's stand-in where
            # the cosine of near-zero outputs is noise (core.bounds)
            "close": all(bool((np.abs(np.asarray(o, np.float64) - r) <= CLOSE_ATOL + CLOSE_RTOL * np.abs(r)).all())
                         for r, o in zip(self.reference, outputs)),
        }
        before = self.entries[-1]["metrics"] if self.entries else None
        entry = {"name": p.name, "spec": record.spec, "options": p.changed_options(), "exact": p.exact,
                 "rewrites": record.rewrites, "seconds": record.seconds + record.verify_seconds,
                 "nodes_before": record.nodes_before, "nodes_after": record.nodes_after,
                 "op_delta": record.op_delta, "changed_outputs": changed, "metrics": metrics,
                 "delta": _delta(before, metrics), "step": _step(p, previous, outputs),
                 "samples": [{"name": s.name, s.judged_by: s.judged_cos, "psnr_db": s.psnr_db} for s in scores],
                 "regressions": []}
        if self.bench:
            entry["throughput_batch1"] = _throughput(run.stages[index + 1], run.feeds_for(self.feeds[0], index + 1))
        entry["score_seconds"] = time.perf_counter() - start
        self.entries.append(entry)

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        self._close_bar()
        failure = self.gate_failure(self.gates)
        regressions = self.compare_baseline(self.baseline, self.baseline_cos_tol,
                                            self.baseline_psnr_tol) if self.baseline else []
        if regressions and not failure:
            failure = f"accuracy regressed against the baseline after pass {regressions[0]}"
        if failure:
            raise NumericCheckFailed(failure)  # after_pipeline_failed writes the report with it
        result.report_dir = self.write()

    def after_pipeline_failed(self, run: PipelineRun, error: Exception) -> None:
        self._close_bar()
        # A failed verdict (a pass, the check, a gate) is what the report explains; a bad input
        # leaves nothing behind, like every failed command.
        if self.reference is not None and not isinstance(error, InputError):
            try:
                self.write(error=str(error))
            except InputError:
                pass  # the run's own error is the one to show

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _outputs(self, run: PipelineRun, stage: int) -> list[np.ndarray]:
        """The first output per sample of ``run.stages[stage]``, in the original model's units."""
        model = run.stages[stage]
        name = self.sessions.session(model).get_outputs()[0].name
        batch = static_batch(model)
        outs = []
        for feed in self.feeds:
            out = self.sessions.run(model, [fit_batch(run.feeds_for(feed, stage), batch)])[0]
            outs.append(run.outputs_back(out, stage)[name][0])
            if self._bar is not None:
                self._bar.update()
        return outs

    # --- verdicts ---------------------------------------------------------------------
    def gate_failure(self, gates: Gates) -> str | None:
        """The first pass after which a metric falls below its bar, as an error message
        (NaN never passes)."""
        for entry in self.entries:
            m = entry["metrics"]
            judged = m[f"{m['judged_by']}_mean"]
            if gates.min_cos is not None and not m.get("close") and not meets(judged, gates.min_cos):
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
                problems.append(f"psnr_db_mean {psnr_text(old_psnr)} -> {new_psnr:.2f}")
            entry["regressions"] = problems
            if problems:
                flagged.append(f"{entry['spec']}: {'; '.join(problems)}")
        return flagged

    # --- writers ----------------------------------------------------------------------
    def as_dict(self, error: str | None = None) -> dict:
        baseline = str(self.baseline) if self.baseline else None
        return {"schema": SCHEMA, "version": VERSION, "model": self.model_path, "pipeline": self.pipeline,
                "inputs": {"kind": self.input_kind, "samples": len(self.feeds), "names": self.names,
                           "source": self.source or None},
                "shown_samples": [self.names[i] for i in self.worst_samples()],
                "bar": self.bar, "baseline": baseline, "error": error, "reference_seconds": self.reference_seconds,
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

    def _inputs_line(self, data: dict) -> str:
        inputs = data["inputs"]
        n = inputs["samples"]
        what = f"{n} {KIND_WORDS.get(inputs['kind'], inputs['kind'])} sample{'s' if n != 1 else ''}"
        if inputs["kind"] == "info" and inputs.get("source"):
            what = f"{n} sample{'s' if n != 1 else ''} of {inputs['source']}"
        if inputs["kind"] != "random":
            what += f" ({', '.join(inputs['names'])})"
        return what

    def _rows(self, data: dict) -> list[list[str]]:
        rows = []
        before: dict | None = None
        for e in data["passes"]:
            m = e["metrics"]
            judged = m["judged_by"]
            psnr = psnr_text(m["psnr_db_mean"])
            delta = ", ".join(f"{op} {d:+d}" for op, d in e["op_delta"].items()) or "-"
            flag = ("REGRESSED: " + "; ".join(e["regressions"])) if e["regressions"] else ""
            row = [e["spec"], _bound_cell(e), str(e["rewrites"]),
                   f"{e['nodes_before']}\u00a0→\u00a0{e['nodes_after']}", _num(m[f"{judged}_mean"]),
                   _signed(e["delta"]["cos"]), _num(m[f"{judged}_min"]), psnr, _psnr_delta(before, m),
                   _num(m["max_abs"], 3, "g"), f"{e['seconds']:.2f}", f"{e['score_seconds']:.2f}", delta]
            if "throughput_batch1" in e:
                row.append(f"{e['throughput_batch1']:.2f}")
            rows.append(row + [flag])
            before = m
        return rows

    def _header(self, data: dict) -> list[str]:
        judged = data["passes"][0]["metrics"]["judged_by"] if data["passes"] else "pixel_cos"
        cos = "pixel cos" if judged == "pixel_cos" else "cos"
        head = ["pass", "declared bound (this pass)", "rewrites", "nodes", f"{cos} mean", f"Δ {cos}", f"{cos} min",
                "PSNR dB", "Δ PSNR", "max abs", "pass s", "scoring s", "op delta"]
        return head + (["img/s (b1)"] if self.bench else []) + ["flag"]

    def _markdown(self, data: dict) -> str:
        lines = [f"# cgsurg report: `{data['pipeline']}`", "",
                 f"Model `{data['model']}` on {self._inputs_line(data)}. Metrics compare each pass's output "
                 "with the original model's (cumulative); Δ is what the pass itself changed; the bound is "
                 "checked on the pass's own change.", ""]
        if data["error"]:
            lines += [f"**Failed:** {data['error']}", ""]
        head = self._header(data)
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self._rows(data)]
        return "\n".join(lines) + "\n"

    def _html(self, data: dict) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self._header(data))
        wide = {0, 1, 12, len(self._header(data)) - 1}  # pass, bound, op delta, flag may wrap; numbers never
        body = []
        for r, e in zip(self._rows(data), data["passes"]):
            cells = "".join(f"<td{'' if i in wide else ' class=n'}"
                            f"{' style=color:#b00' if i == 1 and e['step']['held'] is False else ''}>{esc(c)}</td>"
                            for i, c in enumerate(r))
            body.append(f"<tr class='{'bad' if r[-1] else ''}'>{cells}</tr>")
        parts = [f"<h1>cgsurg report</h1><p>Pipeline <code>{esc(data['pipeline'])}</code> on "
                 f"<code>{esc(data['model'])}</code>, {esc(self._inputs_line(data))}. Metrics compare each pass's "
                 "output with the original model's (cumulative); <b>Δ</b> is what the pass itself changed; the "
                 "declared bound is checked on the pass's own change. Scoring the original took "
                 f"{data['reference_seconds']:.2f}s.</p>"]
        if data["error"]:
            parts.append(f"<p class='bad'><b>Failed:</b> {esc(data['error'])}</p>")
        parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
        if self.entries:
            parts.append(f"<h2>Accuracy along the pipeline</h2><img alt='chart' src='{self._chart()}'>")
        parts.append(self._gallery_html())
        style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                 "padding:3px 6px;font-size:13px}td.n{white-space:nowrap;text-align:right}.bad{background:#fdd}"
                 "figure{display:inline-block;margin:4px;vertical-align:top}figcaption{font-size:12px;max-width:200px}"
                 "img.s{width:192px;image-rendering:pixelated}h3{margin-bottom:2px}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cgsurg report</title><style>{style}</style>"
                f"</head><body>{''.join(parts)}</body></html>\n")

    def _gallery_html(self) -> str:
        reference = self.reference
        unchanged = [e["spec"] for e in self.entries if not e["changed_outputs"]]
        if reference is None or not self.gallery:
            return "<h2>Samples</h2><p>No pass changed the outputs.</p>"
        picked = self.worst_samples()
        peak = max(data_range(reference[i]) for i in picked)
        grey = peak / 255  # one 8-bit grey level of the output's range
        shown: list[tuple[str, list[np.ndarray], list[np.ndarray], float]] = []
        faint: list[tuple[str, list[np.ndarray], list[np.ndarray], float]] = []
        for spec, outs, prev in self.gallery:
            biggest = max(float(np.abs(np.asarray(outs[i], np.float64) - prev[i]).max()) for i in picked)
            (shown if biggest >= grey / 2 else faint).append((spec, outs, prev, biggest))
        notes = []
        if unchanged:
            notes.append(f"Outputs unchanged by {', '.join(unchanged)}.")
        for spec, _, _, biggest in faint:
            notes.append(f"{spec} changed the outputs by at most {biggest:.3g} (under half an 8-bit grey level: "
                         "not visible in a picture).")
        rows = [f"<h2>Samples</h2><p>{html.escape(' '.join(notes))}</p>" if notes else "<h2>Samples</h2>"]
        if not shown:
            return "".join(rows)
        rows.append(f"<p>The {len(picked)} sample(s) that scored worst after the pipeline (by {self._judged()}): "
                    f"{html.escape(', '.join(self.names[i] for i in picked))}. "
                    "Input and original output, then for each pass that visibly changed the outputs: its output "
                    "and a heat map of what <i>that pass</i> changed (|output − previous stage's output|, mean over "
                    f"channels), each on a log scale from 1/{10 ** HEAT_DECADES} of its own maximum (black) to the "
                    f"maximum (white), which its caption gives.</p><img alt='colour bar' src='{_colour_bar()}'>")
        for i in picked:
            low, high = display_range(reference[i])
            last = self.entries[-1]
            judged = last["metrics"]["judged_by"]
            own = last["samples"][i]
            psnr = psnr_text(own["psnr_db"], unit=" dB")
            rows.append(f"<h3>{html.escape(self.names[i])}</h3><p>after the pipeline: {judged} "
                        f"{_num(own[judged])}, PSNR {psnr}</p>")
            inp = next(iter(self.feeds[i].values()))[0]
            figures = [_figure(inp, "input", display_range(inp)), _figure(reference[i], "original output", (low, high))]
            for spec, outs, prev, _ in shown:
                diff = np.abs(np.asarray(outs[i], np.float64) - prev[i])
                figures.append(_figure(outs[i], f"after {spec}", (low, high)))
                figures.append(_heat(diff, f"changed by {spec} (max {float(diff.mean(axis=0).max()):.3g})"))
            rows.append("<div>" + "".join(f for f in figures if f) + "</div>")
        return "".join(rows)

    def _judged(self) -> str:
        return self.entries[-1]["metrics"]["judged_by"] if self.entries else "pixel_cos"

    def worst_samples(self) -> list[int]:
        """The indices of the samples shown: the ``SHOWN_SAMPLES`` with the lowest judged cosine
        after the last pass (NaN first, then file order among equals)."""
        if not self.entries:
            return list(range(min(SHOWN_SAMPLES, len(self.feeds))))
        judged = self._judged()

        def key(i: int) -> tuple[float, int]:
            value = self.entries[-1]["samples"][i].get(judged)
            return (-np.inf if value is None or not np.isfinite(value) else value, i)

        return sorted(range(len(self.feeds)), key=key)[:SHOWN_SAMPLES]

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
        # at least 0.001 of cosine in view, no offset notation: float noise stays a flat line
        bars = [] if self.bar is None else [self.bar]
        span = max([1e-3] + [1.0 - v for v in low + mean + bars if np.isfinite(v)])
        ax.set_ylim(1.0 - 1.1 * span, 1.0 + 0.1 * span)
        for bar in bars:  # the line the run must stay above
            ax.axhline(bar, color="#d62728", linestyle=":", linewidth=1.5, label=f"bar {bar:g}")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_ylabel("vs original")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return _fig_uri(fig)


def _delta(before: dict | None, after: dict) -> dict:
    """What one pass changed: its judged cosine and PSNR minus the previous stage's (the
    original scores cosine 1). The PSNR change is None when either PSNR is infinite."""
    judged = after["judged_by"]
    cos_before = 1.0 if before is None else before[f"{judged}_mean"]
    cos_after = after[f"{judged}_mean"]
    psnr_before = None if before is None else before["psnr_db_mean"]  # None: identical (infinite)
    psnr_after = after["psnr_db_mean"]
    return {"cos": None if cos_before is None or cos_after is None else cos_after - cos_before,
            "psnr_db": None if psnr_before is None or psnr_after is None else psnr_after - psnr_before}


def _step(p: Pass, previous: list[np.ndarray], outputs: list[np.ndarray]) -> dict:
    """The pass's own change (its outputs against the previous stage's) judged by its bound."""
    bound = p.bound()
    comparison = compare_outputs([{"out": a[None]} for a in previous], [{"out": b[None]} for b in outputs], bound)
    m = comparison.outputs[0] if comparison.outputs else None
    return {"bound": bound.describe(), "held": comparison.ok, "judged": comparison.judged.get("out"),
            "violation": comparison.violations[0].replace("output 'out': ", "") if comparison.violations else None,
            "max_abs": None if m is None else m.max_abs, "judged_cos": None if m is None else m.judged_cos}


def _bound_cell(e: dict) -> str:
    step = e["step"]
    kind = "exact" if e["exact"] else "lossy"
    verdict = "held" if step["held"] else "FAILED"
    if step["held"] and (step.get("judged") or "").startswith("atol/rtol"):
        verdict = "held by atol/rtol (the cosine is noise this close to zero)"
    return f"{kind}, {step['bound']}: {verdict}"


def _num(value: Any, digits: int = 6, kind: str = "f") -> str:
    """A metric for a table: n/a when undefined (None here is never 'identical')."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}{kind}}"


def _signed(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    text = f"{value:+.{digits}f}" if abs(value) >= 0.5 * 10 ** -digits else f"{value:+.1e}"
    return text.replace("-", "−")


def _psnr_delta(before: dict | None, after: dict) -> str:
    """Δ PSNR for the table; a PSNR of None is infinite (identical outputs)."""
    old, new = (None if before is None else before["psnr_db_mean"]), after["psnr_db_mean"]
    if old is None or new is None:
        return "0" if old is None and new is None else "from identical" if old is None else "to identical"
    return _signed(new - old, 2)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _png_uri(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fig_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(chw: np.ndarray, caption: str, value_range: tuple[float, float]) -> str:
    image = to_image(chw, value_range)
    if image is None:
        return ""
    return f"<figure><img class='s' src='{_png_uri(image)}'><figcaption>{html.escape(caption)}</figcaption></figure>"


def _heat_scale(values: np.ndarray) -> np.ndarray:
    """|diff| -> 0..1 on a log scale from its max / 10**HEAT_DECADES (0) to its max (1)."""
    peak = float(values.max()) if values.size and np.isfinite(values).all() else 0.0
    if peak <= 0:
        return np.zeros_like(values, dtype=np.float64)
    low = peak / 10 ** HEAT_DECADES
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (np.log10(np.maximum(values, low)) - np.log10(low)) / HEAT_DECADES
    return np.clip(np.nan_to_num(scaled, nan=1.0), 0, 1)


def _heat(diff: np.ndarray, caption: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from PIL import Image

    if diff.ndim != 3:
        return ""
    rgba = colormaps["inferno"](_heat_scale(diff.mean(axis=0)))
    image = Image.fromarray((rgba[..., :3] * 255).round().astype(np.uint8))
    return f"<figure><img class='s' src='{_png_uri(image)}'><figcaption>{html.escape(caption)}</figcaption></figure>"


def _colour_bar() -> str:
    """The heat maps' colour bar: the log scale, as fractions of each map's maximum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colors

    fig = plt.figure(figsize=(5, 0.9), dpi=90)
    ax = fig.add_axes((0.08, 0.55, 0.84, 0.3))
    norm = colors.LogNorm(vmin=10.0 ** -HEAT_DECADES, vmax=1.0)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="inferno"), cax=ax, orientation="horizontal")
    ticks = [10.0 ** -k for k in range(HEAT_DECADES, -1, -1)]
    bar.set_ticks(ticks, labels=[f"max/{round(1 / t)}" if t < 1 else "max" for t in ticks])
    bar.ax.minorticks_off()
    return _fig_uri(fig)
