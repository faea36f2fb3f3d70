"""Layer 4: ``cgsurg tune`` — the fastest pipeline that still meets the accuracy bar.

Candidates are pipelines (the exact one; int8 variants over format, calibration method, which
layers stay float, and a mixed-precision search) on a backend (ONNX Runtime; OpenVINO when
installed: fp32, and int8 by NNCF with chosen layers float). Each is built with ``api.apply``
and ``stages.compile`` (the calibration set feeds int8), judged on the evaluation set only
(mean vendor per-pixel cosine against the original on ONNX Runtime; the calibration set's
figure is reported beside it), and timed as ``bench`` times: warm-up, then the candidates
*interleaved* round by round with the original in one process, medians. The winner is the
fastest candidate that meets the bar (the original is the baseline, never the winner),
written as ``best.onnx`` (or ``best_ov/`` for an OpenVINO IR) with the command line that
reproduces it; when none does, the verdict fails (exit 3) naming the closest, and the table
and the Pareto front still show what was reached.

With ``ray_address`` the candidates are built and judged as Ray tasks (``distributed``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .api import apply
from .check.backends import backend_for
from .check.feeds import ImageInput
from .check.metrics import json_safe, psnr_text, score
from .core.errors import InputError, NumericCheckFailed
from .core.modelio import check_output_folder, staged_folder
from .stages.dataset import load_sample, read_info
from .stages.evaluate import EvalResult, _scored
from .stages.infer import batches as infer_batches

EVAL_BATCH = 4
# A pause before each timed run: the previous session's worker threads spin a while after their
# run (ORT's and OpenVINO's pools both do) and would steal the next one's cores.
SETTLE_S = 0.05
EXACT = "fold-constants,reflect2slice,instancenorm-fusion,pad-conv-fusion"  # exact up to float rounding


@dataclass
class Candidate:
    label: str
    backend: str
    pipeline: str | None  # None: the original model
    nncf: tuple[str, ...] | None = None  # then compiled to int8 by NNCF with these layers float
    model: str = ""
    build_s: float = 0.0
    eval_cos: dict | None = None  # mean/min per-pixel cosine on the evaluation set
    calib_cos: dict | None = None
    psnr_db: float | None = None
    ssim: float | None = None
    img_per_s: dict[int, float] = field(default_factory=dict)
    vs_original: dict[int, float] = field(default_factory=dict)  # same backend's original
    vs_ort_fp32: dict[int, float] = field(default_factory=dict)
    size_mb: float = 0.0
    meets: bool = False
    error: str = ""

    @property
    def speed(self) -> float:
        """The geometric mean of the speed-ups over ORT fp32 across batch sizes (over the
        backend's own original when ORT was not run)."""
        values = [v for v in (self.vs_ort_fp32 or self.vs_original).values() if v > 0]
        return float(np.exp(np.mean(np.log(values)))) if values else 0.0


@dataclass
class TuneResult:
    candidates: list[Candidate]
    winner: Candidate | None
    min_cos: float
    environment: dict
    skipped: list[str]

    @property
    def note(self) -> str:
        """Said when the winner meets the bar but is no faster than the original."""
        if self.winner is None or self.winner.speed >= 1.0:
            return ""
        return (f"{self.winner.label} on {self.winner.backend} meets the bar but runs at {self.winner.speed:.2f}x "
                "the original: no candidate that meets the bar is faster here; keep the original")

    def as_dict(self) -> dict:
        winner = {"label": self.winner.label, "backend": self.winner.backend} if self.winner else None
        return json_safe({"min_cos": self.min_cos, "winner": winner, "note": self.note,
                          "environment": self.environment, "skipped": self.skipped,
                          "candidates": [{**asdict(c), "speed": c.speed} for c in self.candidates]})


def candidates(min_cos: float, calib: str, backends: Sequence[str]) -> list[Candidate]:
    """What tune tries, cheapest first (the budget cuts the tail): the mixed-precision search,
    which quantises once per layer group it tries, comes last."""
    int8 = f"{EXACT},int8(data={calib},min_cos=0"
    found = []
    if "ort" in backends:
        found += [Candidate("original", "ort", None),
                  Candidate("exact", "ort", EXACT),
                  Candidate("int8 qdq percentile (ConvTranspose float)", "ort", f"{int8})"),
                  Candidate("int8 qdq percentile, all quantised", "ort", f"{int8},keep_first_last=false,keep_ops=[])"),
                  Candidate("int8 qdq minmax", "ort", f"{int8},method=minmax)"),
                  Candidate("int8 qoperator percentile", "ort", f"{int8},format=qoperator)")]
    if "openvino" in backends:
        found += [Candidate("original", "openvino", None), Candidate("exact", "openvino", EXACT),
                  Candidate("nncf int8 (first/last, ConvTranspose float)", "openvino", EXACT,
                            nncf=("first-last", "ConvTranspose")),
                  Candidate("nncf int8 (ConvTranspose float)", "openvino", EXACT, nncf=("ConvTranspose",)),
                  Candidate("nncf int8, all quantised", "openvino", EXACT, nncf=())]
    if "ort" in backends:
        found.append(Candidate("int8 mixed (auto)", "ort", f"{EXACT},int8(data={calib},keep_float=[auto],"
                                                           f"keep_first_last=false,keep_ops=[],min_cos={min_cos})"))
    return found


def check_disjoint(calib: str | os.PathLike, evaluation: str | os.PathLike) -> None:
    """Calibration and evaluation samples must be different files (a bar judged on the images
    the quantiser was calibrated on flatters it)."""
    def files(info) -> dict[str, str]:
        found = {}
        for s in read_info(info):
            try:
                found[str(Path(s.path).resolve())] = s.stem
            except OSError:
                found[str(s.path)] = s.stem
        return found

    shared = sorted(set(files(calib)) & set(files(evaluation)))
    if shared:
        raise InputError(f"the calibration and evaluation sets share {len(shared)} sample(s) "
                         f"(e.g. {shared[0]}); tune judges the bar on images it did not calibrate on")


def tune(model: str | os.PathLike, calib: str | os.PathLike, evaluation: str | os.PathLike,
         out_dir: str | os.PathLike, *, min_cos: float = 0.99, backends: Sequence[str] = ("ort",),
         batches: Sequence[int] = (1, 16), budget_minutes: float = 15.0, rounds: int = 10,
         threads: int | None = None, only: Sequence[str] = (), ray_address: str | None = None,
         progress: Callable[[str], None] = lambda m: None) -> TuneResult:
    """Try the candidates, time them, pick the winner; writes ``out_dir`` (tune.json, tune.html,
    the candidates' models, best.onnx). Raises ``NumericCheckFailed`` (the folder still
    written) when no candidate meets ``min_cos``. ``only``: label substrings to keep (the
    original is always measured, as the baseline; it is never the winner). ``ray_address``
    (``local`` for a local Ray): the candidates are built and judged as Ray tasks of one CPU
    each and timed in one task holding a whole node (see ``distributed``)."""
    if not 0 < min_cos <= 1:
        raise InputError(f"min_cos must be in (0, 1], got {min_cos}")
    if not batches or min(batches) < 1 or rounds < 1 or budget_minutes <= 0:
        raise InputError("batch sizes, rounds and the budget must be positive")
    for name in backends:
        backend_for(name, threads=threads)  # unknown or not installed: fail before any work
    if not Path(model).is_file():
        raise InputError(f"no such model file: {model}")
    check_disjoint(calib, evaluation)
    check_output_folder(out_dir)
    deadline = time.monotonic() + budget_minutes * 60  # for everything, the final timing included
    with staged_folder(out_dir, keep=lambda exc: isinstance(exc, NumericCheckFailed)) as stage:
        (stage / "candidates").mkdir()
        skipped: list[str] = []
        chosen = [c for c in candidates(min_cos, str(calib), backends)
                  if c.pipeline is None or not only or any(word in c.label for word in only)]
        if only and all(c.pipeline is None for c in chosen):
            raise InputError(f"no candidate label contains {', '.join(only)}")
        progress("[tune] the original's outputs on both sets")
        started = time.perf_counter()
        references = {"eval": reference_outputs(model, evaluation, threads),
                      "calib": reference_outputs(model, calib, threads)}
        per_image = (time.perf_counter() - started) / max(1, len(references["eval"]) + len(references["calib"]))
        # The budget covers the timing at the end too: a candidate costs about its share of it.
        timing_per_candidate = per_image * sum(b * (max(3, round(rounds / b ** 0.5)) + 2) for b in batches)
        jobs = [(c, str(model), stage / "candidates" / f"{k:02d}.onnx", str(calib), str(evaluation), min_cos,
                 references, threads) for k, c in enumerate(chosen)]
        if ray_address is not None:
            from .distributed import connect, node_task, run_tasks

            ray = connect(ray_address)
            progress(f"[tune] {len(jobs)} candidates as Ray tasks")
            tried = run_tasks(ray, _judged, [(*job[:-1], 1) for job in jobs])
            progress(f"[tune] timing in one task holding a whole node: {len(batches)} batch sizes x {rounds} rounds")
            tried, environment = node_task(ray, _timed, tried, batches, rounds, str(evaluation), threads)
        else:
            tried = []
            for k, job in enumerate(jobs):
                c = job[0]
                if c.pipeline is not None and \
                        time.monotonic() + timing_per_candidate * (len(tried) + 1) > deadline:
                    skipped.append(f"{c.label} on {c.backend}: over the budget")
                    continue
                progress(f"[tune] {k + 1}: {c.label} on {c.backend}")
                tried.append(_judged(*job))
            tried, environment = _timed(tried, batches, rounds, str(evaluation), threads, progress)
        ok = [c for c in tried if c.meets and not c.error and c.pipeline is not None]
        winner = max(ok, key=lambda c: c.speed) if ok else None
        if winner is not None and winner.model.endswith(".xml"):
            (stage / "best_ov").mkdir()
            for part in (".xml", ".bin"):
                shutil.copyfile(Path(winner.model).with_suffix(part), stage / "best_ov" / f"model{part}")
        elif winner is not None:
            shutil.copyfile(winner.model, stage / "best.onnx")
        for c in tried:  # where the models will be once the staging folder is in place
            if c.model and Path(c.model).is_relative_to(stage):
                c.model = str(Path(out_dir) / Path(c.model).relative_to(stage))
        result = TuneResult(tried, winner, min_cos, environment, skipped)
        (stage / "tune.json").write_text(json.dumps(result.as_dict(), indent=2))
        (stage / "tune.html").write_text(render_html(result))
        if winner is None:
            judged = [c for c in tried if c.eval_cos and not c.error and c.pipeline is not None]
            closest = max(judged, key=lambda c: c.eval_cos["mean"]) if judged else None  # type: ignore[index]
            near = f"; closest: {closest.label} on {closest.backend} ({closest.eval_cos['mean']:.4f})" \
                if closest and closest.eval_cos else ""
            raise NumericCheckFailed(f"no candidate meets mean per-pixel cosine {min_cos} on the evaluation "
                                     f"set{near}; see {Path(out_dir) / 'tune.html'}")
    return result


def reference_outputs(model, info, threads) -> dict[str, np.ndarray]:
    """The original's first output per sample of ``info`` on ONNX Runtime, computed once for all
    candidates (running it again beside each one would double tune's time)."""
    return dict(_first_outputs(backend_for("ort", threads=threads).load(model), info))


def _judge(c: Candidate, info, references: dict[str, np.ndarray], threads) -> EvalResult:
    outputs = _first_outputs(backend_for(c.backend, threads=threads).load(c.model), info)
    return _scored([score(stem, references[stem], out) for stem, out in outputs])


def _first_outputs(runner, info) -> list[tuple[str, np.ndarray]]:
    """(sample name, first output) for each sample of ``info``, in its order."""
    return [(s.stem, out[0][i]) for chunk, out, _ in infer_batches(runner, read_info(info), EVAL_BATCH)
            for i, s in enumerate(chunk)]


def _judged(c: Candidate, model, path: Path, calib, evaluation, min_cos: float, references: dict,
            threads) -> Candidate:
    """``c`` built into ``path`` and judged on both sets against the original's ``references``
    (``{"eval": ..., "calib": ...}``); a failure is the candidate's error."""
    start = time.perf_counter()
    try:
        if c.pipeline is None:
            shutil.copyfile(model, path)
        else:
            apply(model, path, c.pipeline, check=False)
        c.model = str(path)
        c.size_mb = path.stat().st_size / 1e6
        if c.nncf is not None:
            from .stages.compile import compile_model

            compiled = compile_model(path, path.with_suffix(""), int8=calib, keep_float=c.nncf, check=False)
            c.model = str(compiled.xml)
            c.size_mb = (compiled.xml.stat().st_size + compiled.bin.stat().st_size) / 1e6
        judged = _judge(c, evaluation, references["eval"], threads)
        c.eval_cos = judged.summary.get(judged.judged_by)
        c.psnr_db = (judged.summary.get("psnr_db") or {}).get("mean")
        c.ssim = (judged.summary.get("ssim") or {}).get("mean")
        on_calib = _judge(c, calib, references["calib"], threads)
        c.calib_cos = on_calib.summary.get(on_calib.judged_by)
        c.meets = bool(c.eval_cos and c.eval_cos["mean"] >= min_cos)
    except Exception as exc:  # a candidate that cannot be built or run is a row, not the end of tune
        if c.pipeline is None:
            raise  # the original itself: the input is bad
        c.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    c.build_s = time.perf_counter() - start
    return c


def _timed(tried: list[Candidate], batches: Sequence[int], rounds: int, evaluation, threads,
           progress: Callable[[str], None] = lambda m: None) -> tuple[list[Candidate], dict]:
    """Images per second at each batch size: every candidate loaded, then the rounds interleaved
    (one run of each candidate per round, so that load drifts hit all alike), medians."""
    runnable = [c for c in tried if c.model and not c.error]
    runners = {id(c): backend_for(c.backend, threads=threads).load(c.model) for c in runnable}
    samples = read_info(evaluation)
    environment = backend_for("ort", threads=threads).environment()
    environment["isa"] = cpu_isa()
    for batch in batches:
        progress(f"[tune] timing batch {batch}: {len(runnable)} candidates, interleaved")
        feeds = {}
        for c in runnable:
            image = ImageInput.of(runners[id(c)])
            if image.static_batch not in (None, batch):
                continue
            pool = [load_sample(samples[i % len(samples)]).astype(image.dtype) for i in range(batch)]
            feeds[id(c)] = {image.name: np.stack(pool)}
        times: dict[int, list[float]] = {key: [] for key in feeds}
        timed = max(3, round(rounds / batch ** 0.5))  # a batch of 16 takes 16 times longer: fewer rounds
        warmup = 2 if batch < 8 else 1
        for r in range(timed + warmup):
            for c in runnable:
                if id(c) not in feeds:
                    continue
                time.sleep(SETTLE_S)
                start = time.perf_counter()
                runners[id(c)].run(feeds[id(c)])
                if r >= warmup:
                    times[id(c)].append(time.perf_counter() - start)
        for c in runnable:
            if times.get(id(c)):
                c.img_per_s[batch] = batch / float(np.median(times[id(c)]))
    for c in runnable:
        original = next((o for o in runnable if o.pipeline is None and o.backend == c.backend), None)
        ort_fp32 = next((o for o in runnable if o.pipeline is None and o.backend == "ort"), None)
        for batch, speed in c.img_per_s.items():
            if original and batch in original.img_per_s:
                c.vs_original[batch] = speed / original.img_per_s[batch]
            if ort_fp32 and batch in ort_fp32.img_per_s:
                c.vs_ort_fp32[batch] = speed / ort_fp32.img_per_s[batch]
    return tried, environment


def cpu_isa() -> str:
    """The vector instructions that decide int8 speed: AVX2, AVX-512, VNNI, AMX (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        return "unknown"
    names = [("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
             ("amx_int8", "AMX-INT8")]
    found = [label for flag, label in names if flag in flags]
    return ", ".join(found) if found else "no AVX2"


def pareto(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both speed and evaluation cosine."""
    scored = [c for c in cands if c.eval_cos and c.speed > 0]
    return [c for c in scored if not any(
        o.speed >= c.speed and o.eval_cos["mean"] >= c.eval_cos["mean"] and  # type: ignore[index]
        (o.speed > c.speed or o.eval_cos["mean"] > c.eval_cos["mean"]) for o in scored)]  # type: ignore[index]


def apply_line(c: Candidate, model: str | os.PathLike) -> str:
    if c.pipeline is None:
        return f"(the original model{', compiled by OpenVINO' if c.backend == 'openvino' else ''})"
    line = f"cgsurg apply {model} -o OUT.onnx --passes '{c.pipeline}'"
    if c.nncf is not None:
        return line + (f" && cgsurg compile OUT.onnx --target openvino -o OUT_ov --int8 CALIB.info "
                       f"--keep-float '{','.join(c.nncf)}'")
    return line + ("   # then run it with --backend openvino" if c.backend == "openvino" else "")


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
                    f"<td>{'' if c.eval_cos is None else psnr_text(c.psnr_db, 1)}</td>"
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
