"""tune.html: the table and the speed/accuracy chart, self-contained (inline SVG, no scripts)."""

from __future__ import annotations

from .results import TuneResult, pareto


def render_html(result: TuneResult) -> str:
    """A self-contained page: the table and the speed/accuracy chart (inline SVG, no scripts)."""
    from html import escape

    width, height, pad = 640, 360, 50
    scored = [c for c in result.candidates if c.eval_cos and c.speed > 0]
    front = {id(c) for c in pareto(scored)}
    xs = [c.speed for c in scored] or [1.0]
    ys = [c.eval_cos["mean"] for c in scored] + [result.min_cos] if scored else [result.min_cos]  # type: ignore[index]
    x0, x1 = 0.0, max(xs) * 1.1
    y0, y1 = min(ys) - 0.002, 1.0005

    def px(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def py(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    dots = "".join(
        f'<circle cx="{px(c.speed):.1f}" cy="{py(c.eval_cos["mean"]):.1f}" r="5" '  # type: ignore[index]
        f'fill="{"#d62728" if c is result.winner else "#1f77b4" if id(c) in front else "#aaa"}">'
        f'<title>{escape(c.label)} on {c.backend}: {c.speed:.2f}x, {c.eval_cos["mean"]:.4f}</title></circle>'  # type: ignore[index]
        + (f'<text x="{px(c.speed) + 7:.1f}" y="{py(c.eval_cos["mean"]) - 6:.1f}" font-size="10">'  # type: ignore[index]
           f'{escape(c.label)} ({c.backend})</text>' if id(c) in front else "")  # the rest: hover for a name
        for c in scored)
    ordered = sorted((c for c in scored if id(c) in front), key=lambda c: c.speed)
    line = " ".join(f"{px(c.speed):.1f},{py(c.eval_cos['mean']):.1f}" for c in ordered)  # type: ignore[index]
    bar_y = py(result.min_cos)
    svg = (f'<svg width="{width + 220}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">'
           f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#333"/>'
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#333"/>'
           f'<line x1="{pad}" y1="{bar_y:.1f}" x2="{width - pad}" y2="{bar_y:.1f}" stroke="#d62728" '
           f'stroke-dasharray="4"/><text x="{width - pad - 90}" y="{bar_y - 4:.1f}" font-size="11" '
           f'fill="#d62728">bar {result.min_cos}</text>'
           f'<polyline points="{line}" fill="none" stroke="#1f77b4"/>{dots}'
           f'<text x="{width / 2 - 80}" y="{height - 12}" font-size="12">speed vs ORT fp32 (geo. mean over batches)'
           f'</text><text x="12" y="{pad - 14}" font-size="12">per-pixel cosine (evaluation set)</text>'
           f'<text x="{pad - 4}" y="{height - pad + 14}" font-size="10" text-anchor="end">{x0:.1f}</text>'
           f'<text x="{width - pad}" y="{height - pad + 14}" font-size="10">{x1:.2f}</text>'
           f'<text x="{pad - 4}" y="{py(y0) :.1f}" font-size="10" text-anchor="end">{y0:.3f}</text>'
           f'<text x="{pad - 4}" y="{py(1.0):.1f}" font-size="10" text-anchor="end">1.000</text></svg>')
    batches = sorted({b for c in result.candidates for b in c.img_per_s})
    head = "".join(f"<th>img/s b{b}</th><th>vs orig b{b}</th><th>vs ORT fp32 b{b}</th>" for b in batches)
    rows = []
    for c in result.candidates:
        cells = "".join(f"<td>{c.img_per_s.get(b, 0):.2f}</td><td>{c.vs_original.get(b, 0):.2f}x</td>"
                        f"<td>{c.vs_ort_fp32.get(b, 0):.2f}x</td>" for b in batches)
        cos = f"{c.eval_cos['mean']:.4f} (min {c.eval_cos['min']:.4f})" if c.eval_cos else c.error or "-"
        calib = f"{c.calib_cos['mean']:.4f}" if c.calib_cos else "-"
        mark = " &#9733;" if c is result.winner else ""
        rows.append(f"<tr><td>{escape(c.label)}{mark}</td><td>{c.backend}</td><td>{escape(cos)}</td><td>{calib}</td>"
                    f"<td>{'' if c.psnr_db is None else f'{c.psnr_db:.1f}'}</td>"
                    f"<td>{'' if c.ssim is None else f'{c.ssim:.4f}'}</td>{cells}<td>{c.size_mb:.2f}</td>"
                    f"<td>{c.build_s:.1f}</td><td><code>{escape(c.pipeline or '-')}</code></td></tr>")
    note = f"<p><b>{escape(result.note)}</b></p>" if result.note else ""
    winner = note + (f"<p>Winner: <b>{escape(result.winner.label)}</b> on {result.winner.backend}, "
              f"{result.winner.speed:.2f}x ORT fp32, per-pixel cosine {result.winner.eval_cos['mean']:.4f} "  # type: ignore[index]
              f"(written as best.onnx).</p>" if result.winner else
              f"<p><b>No candidate meets the bar {result.min_cos}.</b></p>")
    env = escape(", ".join(f"{k}: {v}" for k, v in result.environment.items()))
    return (f"<!doctype html><meta charset=utf-8><title>cgsurg tune</title><style>body{{font-family:sans-serif;"
            f"margin:2em}}td,th{{padding:3px 8px;white-space:nowrap;border-bottom:1px solid #ddd;text-align:left}}"
            f"</style><h1>cgsurg tune</h1>{winner}<p>{env}</p>{svg}<p>Blue: the Pareto front; red: the winner; "
            f"dashed: the bar.</p><table><tr><th>candidate</th><th>backend</th><th>cosine (eval)</th>"
            f"<th>cosine (calib)</th><th>PSNR</th><th>SSIM</th>{head}<th>MB</th><th>build s</th><th>pipeline</th>"
            f"</tr>{''.join(rows)}</table>"
            + ("<p>Skipped: " + escape("; ".join(result.skipped)) + "</p>" if result.skipped else ""))
