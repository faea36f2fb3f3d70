"""How tune builds a candidate and judges it against the original: the vendor metric on each
sample's first output, in the candidate's runtime as deployed at batch 1. Shared by the local
search (``search``) and the Ray tasks (``remote``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..api import apply
from ..check.backends import backend_for
from ..check.feeds import Shapes
from ..check.metrics import score
from ..stages.bench import deployment_runner
from ..stages.dataset import read_info
from ..stages.evaluate import EvalResult
from ..stages.infer import batches as infer_batches
from .results import Candidate

EVAL_BATCH = 4


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def reference_outputs(model, info, threads, shapes: Shapes | None = None) -> dict[str, np.ndarray]:
    """The original's first output per sample of ``info`` on ONNX Runtime, computed once for all
    candidates (running it again beside each one would double tune's time)."""
    return dict(_first_outputs(backend_for("ort", threads=threads).load(model), info, shapes))


def judging_runner(c: Candidate, threads):
    """``c`` loaded to be judged at batch 1: as deployed, or for a simulated candidate, its
    float16 simulation (``check.fp16sim``) in ONNX Runtime with graph optimisations off, as
    the check runs it."""
    if not c.simulated:
        return deployment_runner(c.backend, c.model, 1, threads, c.precision)
    import onnx

    from ..check.backends import OrtBackend
    from ..check.fp16sim import simulate
    from ..stages.bench import cores

    return OrtBackend(optimize=False, threads=threads or cores()).load(simulate(onnx.load(c.model)).model)


def _judge(c: Candidate, info, references: dict[str, np.ndarray], threads, shapes: Shapes | None = None
           ) -> EvalResult:
    outputs = _first_outputs(judging_runner(c, threads), info, shapes)
    return EvalResult.from_scores([score(stem, references[stem], out) for stem, out in outputs])


def _first_outputs(runner, info, shapes: Shapes | None = None) -> list[tuple[str, np.ndarray]]:
    """(sample name, first output) for each sample of ``info``, in its order."""
    return [(s.stem, out[0][i]) for chunk, out, _ in infer_batches(runner, read_info(info), EVAL_BATCH, shapes)
            for i, s in enumerate(chunk)]


def _built(c: Candidate, model, path: Path, calib, min_cos: float) -> None:
    """``c`` built into ``path`` (an IR beside it for NNCF); a failure is the candidate's error."""
    try:
        if c.pipeline is None:
            shutil.copyfile(model, path)
        else:
            apply(model, path, c.pipeline, check=False)
        c.model = str(path)
        c.size_mb = path.stat().st_size / 1e6
        if c.nncf is not None:
            from ..stages.compile import compile_model

            compiled = compile_model(path, path.with_suffix(""), int8=calib, keep_float=c.nncf, check=False,
                                     int8_options=c.nncf_options, min_cos=min_cos)
            c.model = str(compiled.xml)
            c.size_mb = (compiled.xml.stat().st_size + compiled.bin.stat().st_size) / 1e6
    except Exception as exc:  # a candidate that cannot be built is a row, not the end of tune
        if c.pipeline is None:
            raise  # the original itself: the input is bad
        c.error = _reason(exc)


def _judged(c: Candidate, model, path: Path, calib, evaluation, min_cos: float, references: dict,
            threads, shapes: Shapes | None = None) -> Candidate:
    """``c`` built into ``path`` and judged in full on both sets against the original's
    ``references`` (``{"eval": ..., "calib": ...}``): the Ray tasks' job; a failure is the
    candidate's error."""
    start = time.perf_counter()
    _built(c, model, path, calib, min_cos)
    try:
        if c.error:
            raise RuntimeError(c.error)
        scores_of(c, _judge(c, evaluation, references["eval"], threads, shapes))
        c.calib_cos = _judge(c, calib, references["calib"], threads, shapes).judged
        c.meets = bool(c.eval_cos and c.eval_cos.mean >= min_cos)
        c.evaluated = "full"
    except Exception as exc:  # a candidate that cannot be run is a row, not the end of tune
        if c.pipeline is None:
            raise  # the original itself: the input is bad
        c.error = _reason(exc)
    c.build_s = time.perf_counter() - start
    return c


def scores_of(c: Candidate, judged: EvalResult) -> None:
    """``c``'s evaluation scores: the judged cosine, PSNR and SSIM."""
    c.eval_cos = judged.judged
    c.psnr_db = psnr.mean if (psnr := judged.stat("psnr_db")) else None
    c.ssim = ssim.mean if (ssim := judged.stat("ssim")) else None
