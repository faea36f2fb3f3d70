"""Everything the commands print as text tables, in one place."""

from __future__ import annotations

import json
from typing import Any

import click

from ..check.metrics import Comparison, json_safe, psnr_text
from ..core.records import PipelineResult
from ..targets.base import LintResult


def echo_json(data: Any) -> None:
    """Valid JSON always: NaN and infinities become null."""
    click.echo(json.dumps(json_safe(data), indent=2, allow_nan=False, default=str))


def _num(value: float | None, digits: int = 6, kind: str = "f") -> str:
    return "n/a" if value is None else f"{value:.{digits}{kind}}"


def comparison(result: Comparison, title: str) -> None:
    """The verdict with its bar and inputs, one line per output with the criterion that judged
    it, the violations and the warnings (a check that tests little)."""
    if result.bound is None:
        click.echo(f"{title}: compared on {result.inputs or f'{result.samples} sample(s)'}")
    else:
        click.echo(f"{title}: {'OK' if result.ok else 'FAILED'}, {result.verdict()}")
    for m in result.outputs:
        judged = result.judged.get(m.name) or m.judged_by
        click.echo(f"  {m.name}: max_abs {m.max_abs:.3g}  mean_abs {m.mean_abs:.3g}  cos {m.cos:.6f}  "
                   f"pixel_cos {_num(m.pixel_cos)}  psnr_db {psnr_text(m.psnr_db)}  (judged by {judged})")
    for v in result.violations:
        click.echo(f"  ! {v}")
    for w in result.warnings:
        click.echo(f"  warning: {w}")


def layer_diff(result: Any, title: str) -> None:
    """``diff --layers``: one line per tensor of A in topological order, then the verdict."""
    verdict = "OK" if result.ok else "DIVERGES"
    inputs = result.inputs or f"{result.samples} sample(s)"
    click.echo(f"{title}: {verdict}, per tensor {result.tolerance()} on {inputs}"
               f" ({len(result.matched)} tensors matched, {len(result.unmatched)} of A's unmatched, "
               f"{len(result.only_b)} only in B; {result.chunks} run(s))")
    width = min(max((len(r.name) for r in result.rows), default=6), 60)
    ops = max((len(r.op) for r in result.rows), default=2)
    click.echo(f"  {'tensor':<{width}}  {'op':<{ops}} {'max_abs':>9} {'cos':>9} {'pixel_cos':>9} {'beyond':>8}  match")
    first = result.first_divergence
    for r in result.rows:
        name = r.name if len(r.name) <= width else "..." + r.name[-width + 3:]
        if r.b_name is None:
            click.echo(f"  {name:<{width}}  {r.op:<{ops}} {'-':>9} {'-':>9} {'-':>9} {'-':>8}  unmatched (not in B)")
            continue
        how = r.matched_by + ("" if r.b_name == r.name else f" -> {r.b_name}")
        mark = "  <- first divergence" if r is first else ""
        if r.note:
            click.echo(f"  {name:<{width}}  {r.op:<{ops}} {r.note}{mark}")
            continue
        click.echo(f"  {name:<{width}}  {r.op:<{ops}} {_num(r.max_abs, 3, 'g'):>9} {_num(r.cos):>9} "
                   f"{_num(r.pixel_cos):>9} {r.mismatched:>8}  {how}{mark}")
    if result.only_b:
        more = f", ... ({len(result.only_b)} in all)" if len(result.only_b) > 8 else ""
        shown = ", ".join(result.only_b[:8]) + more
        click.echo(f"  only in B: {shown}")
    if first is not None:
        click.echo(f"first divergence: {first.name} (made by {first.op} node '{first.node}'): {first.mismatched} of "
                   f"{first.elements} elements beyond the tolerance, max_abs {_num(first.max_abs, 3, 'g')}, "
                   f"atol {_num(first.atol_needed, 3, 'g')} would pass")


def pass_records(result: PipelineResult) -> None:
    click.echo(f"pipeline: {result.pipeline}")
    width = max(len(r.spec) for r in result.records)
    click.echo(f"  {'pass':<{width}}  {'rewrites':>8}  {'nodes':>13}  {'time':>7}  {'cosine':>9}  op delta")
    for r in result.records:
        delta = ", ".join(f"{op} {d:+d}" for op, d in r.op_delta.items()) or "-"
        nodes = f"{r.nodes_before} -> {r.nodes_after}"
        cos = f"{min(m.judged_cos for m in r.check.outputs):.6f}" if r.check and r.check.outputs else "-"
        click.echo(f"  {r.spec:<{width}}  {r.rewrites:>8}  {nodes:>13}  {r.seconds:>6.2f}s  {cos:>9}  {delta}")
        if not r.rewrites:
            for reason in r.reasons[:5]:
                click.echo(f"  {'':<{width}}  why not: {reason}")


def passes(rows: list[dict]) -> None:
    for row in rows:
        kind = "exact" if row["exact"] else f"lossy, {row['bound']}"
        click.echo(f"{row['name']:<16} [{kind}] {row['summary']}")
        for key, opt in row["options"].items():
            click.echo(f"{'':<18}{key}: {opt['type']} = {opt['default']!r}  {opt['help']}")


def evaluation(summary: dict, worst: list) -> None:
    def fmt(key: str, digits: int = 6) -> str:
        v = summary[key]
        if v is None:  # a PSNR is undefined only where every output is identical to its reference
            return psnr_text(None) if key == "psnr_db" else "n/a"
        return f"mean {_num(v['mean'], digits)}  min {_num(v['min'], digits)}"

    click.echo(f"images: {summary['images']}")
    click.echo(f"pixel cosine (vendor metric): {fmt('pixel_cos')}")
    click.echo(f"flat cosine: {fmt('cos')}")
    click.echo(f"judged by: {summary['judged_by']}")
    click.echo(f"max abs: mean {summary['max_abs']['mean']:.4g}  max {summary['max_abs']['max']:.4g}")
    click.echo(f"psnr dB: {fmt('psnr_db', 2)}   ssim: {fmt('ssim', 4)}")
    click.echo("worst: " + ", ".join(f"{s.name} {s.judged_cos:.6f}" for s in worst))


def bench(model: str, result: Any) -> None:
    env = result.environment
    click.echo(f"{model} ({result.mode} inputs) on {env['provider']}, {env['runtime']}, "
               f"threads {env['threads']}, {env['cpu']} ({env['cores']} cores)")
    click.echo(f"  {'batch':>5}  {'images/s':>9}  {'mean ms':>8}  {'p50 ms':>8}  {'p90 ms':>8}  {'p99 ms':>8}")
    for r in result.results:
        lat = r.latency_ms
        click.echo(f"  {r.batch:>5}  {r.throughput:>9.2f}  {lat['mean']:>8.2f}  {lat['p50']:>8.2f}  "
                   f"{lat['p90']:>8.2f}  {lat['p99']:>8.2f}")
    for note in result.skipped:
        click.echo(f"  note: {note}")


def profile(model: str, result: Any) -> None:
    click.echo(f"{model}: batch {result.batch}, {result.rounds} runs after 1 warm-up")
    click.echo(f"  {'op type':<24} {'nodes':>5}  {'ms/run':>9}  {'share':>6}")
    for op in result.ops:
        click.echo(f"  {op['op_type']:<24} {op['nodes']:>5}  {op['per_run_ms']:>9.3f}  {op['share']:>6.1%}")
    click.echo("top nodes:")
    width = max([16, *(len(n["op_type"]) for n in result.top_nodes)])  # OpenVINO's op names run longer
    for n in result.top_nodes:
        click.echo(f"  {n['node'][:48]:<48} {n['op_type']:<{width}} {n['per_run_ms']:>9.3f} ms  {n['share']:>6.1%}")


def lint(result: LintResult, model: str, err: bool = False) -> None:
    """Findings grouped by rule: count, the fixing pass, distinct messages, the first nodes."""
    click.echo(f"{result.target}: {len(result.errors)} error(s), {len(result.warnings)} warning(s) in {model}", err=err)
    groups = result.by_rule()
    if not groups:
        return
    width = max(len(rule) for rule, _ in groups)
    click.echo(f"  {'severity':<8}  {'rule':<{width}}  {'count':>5}  fix", err=err)
    for (rule, severity), found in groups.items():
        fixes = sorted({f.fix for f in found if f.fix})
        click.echo(f"  {severity:<8}  {rule:<{width}}  {len(found):>5}  {', '.join(fixes) or '-'}", err=err)
        for message in list(dict.fromkeys(f.message for f in found))[:3]:
            click.echo(f"      {message}", err=err)
        nodes = list(dict.fromkeys(f.node for f in found if f.node))
        if nodes:
            more = f" (+{len(nodes) - 3} more)" if len(nodes) > 3 else ""
            click.echo(f"      nodes: {', '.join(nodes[:3])}{more}", err=err)


def prediction(p: Any) -> None:
    """The predicted accuracy of the compiled model, the tensors that lose most, the keep list."""
    click.echo(f"predicted at {p.precision.name}: {p.precision.how}")
    if p.cos_mean is None:
        click.echo("  computed in float32: no float16 or bfloat16 loss to predict")
        return
    click.echo(f"  on {p.inputs} (simulated: every tensor rounded to {p.precision.name} after its op): "
               f"mean per-pixel cosine {p.cos_mean:.6f} (min {p.cos_min:.6f}), PSNR {p.psnr_mean:.2f} dB "
               f"(min {p.psnr_min:.2f}); bar {p.bar}: {'meets it' if p.meets else 'MISSES it'}")
    for t in p.worst:
        why = f"overflow: reaches {t.peak:,.0f}, past 65,504" if t.overflow else f"adds {t.added:.2e} relative error"
        click.echo(f"  {t.tensor} ({t.op} {t.node}): cos {t.cos:.6f}, {why}")
    if p.keep:
        click.echo("keep in float32 (printed here, not written):")
        for line in p.keep_form.splitlines():
            click.echo(f"  {line}")
        click.echo("  or cgsurg apply --passes 'fp16(auto=true)' --data INFO, or fp16(block=[OP,...])")


def targets(rows: list[dict]) -> None:
    for row in rows:
        tool = f"[{row['tool']}]" if row["tool"] else "[no compile step]"
        click.echo(f"{row['name']:<10} {row['summary']}  {tool}")
        for version, info in row["versions"].items():
            default = " (default)" if version == row["default_version"] else ""
            click.echo(f"  {row['name']}:{version}{default}: {info['release']}")
            click.echo(f"    preset: {info['preset']}")
            click.echo(f"    lossy:  {info['lossy_preset']}")
            for rule in info["rules"]:
                click.echo(f"    rule {rule['id']}: {rule['summary']}")
