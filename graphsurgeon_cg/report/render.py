"""The report for people: ``report.md`` and a self-contained ``report.html`` from a ``Report``.

The HTML adds, per sample image, the outputs after each pass that changed the picture and a
log-scale heat map (with a colour bar) of what that pass changed, for the samples that scored
worst after the pipeline (``Report.worst_samples``), and a chart of accuracy along the pipeline
with the run's bar drawn as a line. Pictures need the outputs themselves (``Pictures``), which
``report.json`` does not hold. Identical outputs have PSNR "identical", never inf.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..check.images import display_range, to_image
from ..check.metrics import data_range, psnr_text
from .schema import MetricSummary, PassReport, Report
from .verdicts import num

HEAT_DECADES = 2  # each heat map's log scale spans its max / 10^2 up to its max
KIND_WORDS = {"info": "from the info file", "folder": "from the inputs folder", "random": "seeded random"}


@dataclass
class Pictures:
    """What the HTML draws, per sample: the first input, the original's output, and for each
    pass that changed the outputs, (its spec, its outputs, the previous stage's outputs)."""

    inputs: list[np.ndarray]
    reference: list[np.ndarray]
    changes: list[tuple[str, list[np.ndarray], list[np.ndarray]]] = field(default_factory=list)


def inputs_line(report: Report) -> str:
    inputs = report.inputs
    n = inputs.samples
    what = f"{n} {KIND_WORDS.get(inputs.kind, inputs.kind)} sample{'s' if n != 1 else ''}"
    if inputs.kind == "info" and inputs.source:
        what = f"{n} sample{'s' if n != 1 else ''} of {inputs.source}"
    if inputs.kind != "random":
        what += f" ({', '.join(inputs.names)})"
    return what


def header(report: Report) -> list[str]:
    cos = "pixel cos" if report.judged_by == "pixel_cos" else "cos"
    head = ["pass", "declared bound (this pass)", "rewrites", "nodes", f"{cos} mean", f"Δ {cos}", f"{cos} min",
            "PSNR dB", "Δ PSNR", "max abs", "pass s", "scoring s", "op delta"]
    benched = report.original_throughput_batch1 is not None
    return head + (["img/s (b1)"] if benched else []) + ["flag"]


def rows(report: Report) -> list[list[str]]:
    out = []
    before: MetricSummary | None = None
    for e in report.passes:
        m = e.metrics
        delta = ", ".join(f"{op} {d:+d}" for op, d in e.op_delta.items()) or "-"
        flag = ("REGRESSED: " + "; ".join(e.regressions)) if e.regressions else ""
        row = [e.spec, bound_cell(e), str(e.rewrites), f"{e.nodes_before}\u00a0→\u00a0{e.nodes_after}",
               num(m.judged_mean), signed(e.delta.cos), num(m.judged_min), psnr_text(m.psnr_db_mean),
               psnr_delta(before, m), num(m.max_abs, 3, "g"), f"{e.seconds:.2f}", f"{e.score_seconds:.2f}", delta]
        if e.throughput_batch1 is not None:
            row.append(f"{e.throughput_batch1:.2f}")
        out.append(row + [flag])
        before = m
    return out


def markdown(report: Report) -> str:
    lines = [f"# cgsurg report: `{report.pipeline}`", "",
             f"Model `{report.model}` on {inputs_line(report)}. Metrics compare each pass's output "
             "with the original model's (cumulative); Δ is what the pass itself changed; the bound is "
             "checked on the pass's own change.", ""]
    if report.error:
        lines += [f"**Failed:** {report.error}", ""]
    head = header(report)
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows(report)]
    return "\n".join(lines) + "\n"


def html_page(report: Report, pictures: Pictures | None = None) -> str:
    esc = html.escape
    head = header(report)
    wide = {0, 1, 12, len(head) - 1}  # pass, bound, op delta, flag may wrap; numbers never
    body = []
    for r, e in zip(rows(report), report.passes):
        cells = "".join(f"<td{'' if i in wide else ' class=n'}"
                        f"{' style=color:#b00' if i == 1 and e.step.held is False else ''}>{esc(c)}</td>"
                        for i, c in enumerate(r))
        body.append(f"<tr class='{'bad' if r[-1] else ''}'>{cells}</tr>")
    parts = [f"<h1>cgsurg report</h1><p>Pipeline <code>{esc(report.pipeline)}</code> on "
             f"<code>{esc(report.model)}</code>, {esc(inputs_line(report))}. Metrics compare each pass's "
             "output with the original model's (cumulative); <b>Δ</b> is what the pass itself changed; the "
             "declared bound is checked on the pass's own change. Scoring the original took "
             f"{report.reference_seconds:.2f}s.</p>"]
    if report.error:
        parts.append(f"<p class='bad'><b>Failed:</b> {esc(report.error)}</p>")
    parts.append(f"<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{''.join(body)}</table>")
    if report.passes:
        parts.append(f"<h2>Accuracy along the pipeline</h2><img alt='chart' src='{chart(report)}'>")
    parts.append(gallery_html(report, pictures))
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:3px 6px;font-size:13px}td.n{white-space:nowrap;text-align:right}.bad{background:#fdd}"
             "figure{display:inline-block;margin:4px;vertical-align:top}figcaption{font-size:12px;max-width:200px}"
             "img.s{width:192px;image-rendering:pixelated}h3{margin-bottom:2px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cgsurg report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")


def gallery_html(report: Report, pictures: Pictures | None) -> str:
    unchanged = [e.spec for e in report.passes if not e.changed_outputs]
    if pictures is None or not pictures.changes:
        return "<h2>Samples</h2><p>No pass changed the outputs.</p>"
    reference = pictures.reference
    picked = report.worst_samples()
    peak = max(data_range(reference[i]) for i in picked)
    grey = peak / 255  # one 8-bit grey level of the output's range
    shown: list[tuple[str, list[np.ndarray], list[np.ndarray], float]] = []
    faint: list[tuple[str, list[np.ndarray], list[np.ndarray], float]] = []
    for spec, outs, prev in pictures.changes:
        biggest = max(float(np.abs(np.asarray(outs[i], np.float64) - prev[i]).max()) for i in picked)
        (shown if biggest >= grey / 2 else faint).append((spec, outs, prev, biggest))
    notes = []
    if unchanged:
        notes.append(f"Outputs unchanged by {', '.join(unchanged)}.")
    for spec, _, _, biggest in faint:
        notes.append(f"{spec} changed the outputs by at most {biggest:.3g} (under half an 8-bit grey level: "
                     "not visible in a picture).")
    out = [f"<h2>Samples</h2><p>{html.escape(' '.join(notes))}</p>" if notes else "<h2>Samples</h2>"]
    if not shown:
        return "".join(out)
    names = report.inputs.names
    out.append(f"<p>The {len(picked)} sample(s) that scored worst after the pipeline (by {report.judged_by}): "
               f"{html.escape(', '.join(names[i] for i in picked))}. "
               "Input and original output, then for each pass that visibly changed the outputs: its output "
               "and a heat map of what <i>that pass</i> changed (|output − previous stage's output|, mean over "
               f"channels), each on a log scale from 1/{10 ** HEAT_DECADES} of its own maximum (black) to the "
               f"maximum (white), which its caption gives.</p><img alt='colour bar' src='{_colour_bar()}'>")
    last = report.passes[-1]
    for i in picked:
        low, high = display_range(reference[i])
        own = last.samples[i]
        out.append(f"<h3>{html.escape(names[i])}</h3><p>after the pipeline: {last.metrics.judged_by} "
                   f"{num(own.judged_cos)}, PSNR {psnr_text(own.psnr_db, unit=' dB')}</p>")
        inp = pictures.inputs[i]
        figures = [_figure(inp, "input", display_range(inp)), _figure(reference[i], "original output", (low, high))]
        for spec, outs, prev, _ in shown:
            diff = np.abs(np.asarray(outs[i], np.float64) - prev[i])
            figures.append(_figure(outs[i], f"after {spec}", (low, high)))
            figures.append(_heat(diff, f"changed by {spec} (max {float(diff.mean(axis=0).max()):.3g})"))
        out.append("<div>" + "".join(f for f in figures if f) + "</div>")
    return "".join(out)


def chart(report: Report) -> str:
    """Accuracy along the pipeline (mean and min of the judged cosine) with the run's bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["original"] + [e.spec for e in report.passes]
    judged = report.judged_by
    mean = [1.0] + [_nan(e.metrics.judged_mean) for e in report.passes]
    low = [1.0] + [_nan(e.metrics.judged_min) for e in report.passes]
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(names)), 3), dpi=90)
    ax.plot(range(len(names)), mean, marker="o", label=f"{judged}, mean")
    ax.plot(range(len(names)), low, marker="v", linestyle="--", label=f"{judged}, min")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    # at least 0.001 of cosine in view, no offset notation: float noise stays a flat line
    bars = [] if report.bar is None else [report.bar]
    span = max([1e-3] + [1.0 - v for v in low + mean + bars if np.isfinite(v)])
    ax.set_ylim(1.0 - 1.1 * span, 1.0 + 0.1 * span)
    for bar in bars:  # the line the run must stay above
        ax.axhline(bar, color="#d62728", linestyle=":", linewidth=1.5, label=f"bar {bar:g}")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_ylabel("vs original")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _fig_uri(fig)


def bound_cell(e: PassReport) -> str:
    step = e.step
    kind = "exact" if e.exact else "lossy"
    verdict = "held" if step.held else "FAILED"
    if step.held and (step.judged or "").startswith("atol/rtol"):
        verdict = "held by atol/rtol (the cosine is noise this close to zero)"
    return f"{kind}, {step.bound}: {verdict}" + (f"; {worst_layer_text(e)}" if e.worst_layer else "")


def worst_layer_text(e: PassReport) -> str:
    """Where a pass that broke its bound starts to diverge, for the table's bound cell."""
    w = e.worst_layer
    assert w is not None
    return f"worst layer: {w.name} ({w.op} '{w.node}'), cos {num(w.cos, 4)}, max abs {num(w.max_abs, 3, 'g')}"


def signed(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    text = f"{value:+.{digits}f}" if abs(value) >= 0.5 * 10 ** -digits else f"{value:+.1e}"
    return text.replace("-", "−")


def psnr_delta(before: MetricSummary | None, after: MetricSummary) -> str:
    """Δ PSNR for the table; a PSNR of None is infinite (identical outputs)."""
    old, new = (None if before is None else before.psnr_db_mean), after.psnr_db_mean
    if old is None or new is None:
        return "0" if old is None and new is None else "from identical" if old is None else "to identical"
    return signed(new - old, 2)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _png_uri(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fig_uri(fig: Any) -> str:
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


def heat_scale(values: np.ndarray) -> np.ndarray:
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
    rgba = colormaps["inferno"](heat_scale(diff.mean(axis=0)))
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
