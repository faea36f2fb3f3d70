"""tune.html: the table and the speed/accuracy chart, self-contained (inline SVG, no scripts).

Points are numbered as the table's rows (names would overlap: candidates cluster), numbers that
would collide are stacked, the originals are squares, the winner is ringed, and a candidate
judged only on the proxy or timed only by the quick probe is hollow. The table scrolls inside
its own box rather than past the page's edge."""

from __future__ import annotations

from html import escape

from ..check.metrics import psnr_text
from .results import Candidate, TuneResult, pareto, run_line

WIDTH, HEIGHT, PAD = 720, 380, 56


def _environment(env: dict) -> str:
    runtimes = ", ".join(f"{name} {env[name]}" for name in ("onnxruntime", "openvino", "nncf") if env.get(name))
    flags = " ".join(env.get("isa_flags") or [])
    return (f"CPU: {env.get('cpu', '?')} ({env.get('isa', '?')}), {env.get('cores', '?')} cores, "
            f"threads {env.get('threads', '?')}; {runtimes}" + (f"; flags: {flags}" if flags else ""))


def _chart(result: TuneResult, scored: list[Candidate], number: dict[int, int]) -> str:
    front = {id(c) for c in pareto(scored)}
    xs = [c.speed for c in scored] or [1.0]
    ys = [c.eval_mean for c in scored] + [result.min_cos]
    x0, x1 = min(xs) * 0.9, max(xs) * 1.1 if max(xs) > min(xs) else min(xs) * 1.2
    y0, y1 = min(ys) - 0.002, 1.0005

    def px(x: float) -> float:
        return PAD + (x - x0) / (x1 - x0) * (WIDTH - 2 * PAD)

    def py(y: float) -> float:
        return HEIGHT - PAD - (y - y0) / (y1 - y0) * (HEIGHT - 2 * PAD)

    marks: list[str] = []
    placed: list[tuple[float, float]] = []
    for c in sorted(scored, key=lambda c: (c.speed, c.eval_mean)):
        x, y = px(c.speed), py(c.eval_mean)
        colour = "#d62728" if c is result.winner else "#1f77b4" if id(c) in front else "#888"
        fill = colour if c.timed and (c.evaluated == "full" or c.pipeline is None) else "white"
        tip = (f"<title>{number[id(c)]}. {escape(c.label)} on {c.backend}: {c.speed:.2f}x, "
               f"{c.eval_mean:.4f}</title>")
        shape = (f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{fill}" stroke="{colour}" '
                 f'stroke-width="2">{tip}</rect>' if c.pipeline is None else
                 f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}" stroke="{colour}" stroke-width="2">{tip}'
                 "</circle>")
        if c is result.winner:
            shape += f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" stroke="#d62728" stroke-width="2"/>'
        ly = y - 8
        while any(abs(ly - oy) < 11 and abs(x - ox) < 24 for ox, oy in placed):  # stack colliding numbers
            ly -= 11
        placed.append((x, ly))
        label = f"{number[id(c)]}" + (" winner" if c is result.winner else "")
        marks.append(shape + f'<text x="{x + 8:.1f}" y="{ly:.1f}" font-size="11" fill="{colour}"'
                             f'{" font-weight=bold" if c is result.winner else ""}>{label}</text>')
    ordered = sorted((c for c in scored if id(c) in front), key=lambda c: c.speed)
    line = " ".join(f"{px(c.speed):.1f},{py(c.eval_mean):.1f}" for c in ordered)
    bar_y = py(result.min_cos)
    return (f'<svg width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>'
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>'
            f'<line x1="{PAD}" y1="{bar_y:.1f}" x2="{WIDTH - PAD}" y2="{bar_y:.1f}" stroke="#d62728" '
            f'stroke-dasharray="4"/><text x="{WIDTH - PAD - 70}" y="{bar_y + 14:.1f}" font-size="11" '
            f'fill="#d62728">bar {result.min_cos}</text>'
            f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-opacity="0.5"/>{"".join(marks)}'
            f'<text x="{WIDTH / 2 - 130}" y="{HEIGHT - 14}" font-size="12">speed vs ORT fp32 (geometric mean over '
            f'batches)</text><text x="{PAD}" y="{PAD - 16}" font-size="12">per-pixel cosine (evaluation set)</text>'
            f'<text x="{PAD}" y="{HEIGHT - PAD + 15}" font-size="10" text-anchor="middle">{x0:.2f}x</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 15}" font-size="10" text-anchor="middle">{x1:.2f}x</text>'
            f'<text x="{PAD - 4}" y="{py(y0):.1f}" font-size="10" text-anchor="end">{y0:.3f}</text>'
            f'<text x="{PAD - 4}" y="{py(1.0):.1f}" font-size="10" text-anchor="end">1.000</text></svg>')


def render_html(result: TuneResult) -> str:
    """A self-contained page: the verdict, the machine, the chart and the table."""
    number = {id(c): k + 1 for k, c in enumerate(result.candidates)}
    scored = [c for c in result.candidates if c.eval_cos and c.speed > 0]
    batches = sorted({b for c in result.candidates for b in c.img_per_s})
    head = "".join(f"<th>b{b} img/s</th><th>b{b} &times;ORT fp32</th>" for b in batches)
    rows = []
    for c in result.candidates:
        cells = "".join(f"<td>{c.img_per_s[b]:.2f}</td><td title='vs its runtime&#39;s original: "
                        f"{c.vs_original.get(b, 0):.2f}x'>{c.vs_ort_fp32.get(b, 0):.2f}x</td>"
                        if b in c.img_per_s else "<td>-</td><td>-</td>" for b in batches)
        cos = f"{c.eval_cos.mean:.4f} (min {c.eval_cos.min:.4f})" if c.eval_cos else c.error or "-"
        calib = f"{c.calib_cos.mean:.4f}" if c.calib_cos else "-"
        quick = f"{c.probe_vs_ort_fp32:.2f}x" if c.probe_vs_ort_fp32 else "-"
        mark = " &#9733;" if c is result.winner else ""
        mark += f"<br><small>{escape(c.simulated)}</small>" if c.simulated else ""
        wrap = " class=w" if c.simulated else ""
        rows.append(f"<tr><td>{number[id(c)]}</td><td{wrap}>{escape(c.label)}{mark}</td><td>{c.backend} "
                    f"{c.precision}</td><td>{escape(cos)}</td><td class=w>{escape(c.evaluated or '-')}</td>"
                    f"<td>{calib}</td><td>{'' if c.eval_cos is None else psnr_text(c.psnr_db, 1)}</td><td>{quick}</td>"
                    f"{cells}<td>{c.size_mb:.2f}</td><td>{c.build_s:.1f}</td>"
                    f"<td class=w><code>{escape(c.pipeline or '-')}</code></td></tr>")
    note = f"<p><b>{escape(result.note)}</b></p>" if result.note else ""
    if result.winner is not None:
        w = result.winner
        written = "best_ov/model.xml" if w.model.endswith(".xml") else "best.onnx"
        verdict = (f"<p>Winner: <b>{number[id(w)]}. {escape(w.label)}</b> on {w.backend} ({w.precision}), "
                   f"{w.speed:.2f}x ORT fp32, per-pixel cosine {w.eval_mean:.4f} "
                   f"(written as {written}; run it: <code>{escape(run_line(w, written))}</code>).</p>")
    else:
        verdict = f"<p><b>No candidate meets the bar {result.min_cos}.</b></p>"
    chart = _chart(result, scored, number) if scored else ""
    skipped = "".join(f"<li>{escape(s)}</li>" for s in result.skipped)
    return (f"<!doctype html><meta charset=utf-8><title>cgsurg tune</title><style>body{{font-family:sans-serif;"
            f"margin:2em;max-width:1200px}}.t{{overflow-x:auto;max-width:100%}}table{{border-collapse:collapse;"
            f"font-size:13px}}td,th{{padding:3px 6px;white-space:nowrap;border-bottom:1px solid #ddd;"
            f"text-align:left;vertical-align:top}}td.w{{white-space:normal;min-width:10em;max-width:22em}}"
            f"td.w code{{word-break:break-all}}</style><h1>cgsurg tune</h1>{note}{verdict}"
            f"<p>{escape(_environment(result.environment))}</p>{chart}<p>Points are numbered as the table's rows. "
            f"Squares: the originals; blue: the Pareto front; ringed red: the winner; hollow: judged on the proxy "
            f"images or timed only by the quick probe; dashed: the bar.</p><div class=t><table><tr><th>#</th>"
            f"<th>candidate</th><th>runtime</th><th>cosine (eval)</th><th>evaluated</th><th>cosine (calib)</th>"
            f"<th>PSNR</th><th>quick b1</th>{head}<th>MB</th><th>s</th><th>pipeline</th></tr>{''.join(rows)}"
            f"</table></div>" + (f"<p>Not tried:</p><ul>{skipped}</ul>" if skipped else ""))
