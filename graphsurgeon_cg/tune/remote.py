"""tune on a Ray cluster (``--ray``) with no shared storage, through the loss of worker nodes.

The driver ships the model and both sample sets once (``cluster.ship``, ``cluster.ship_set``);
each candidate is one task of one CPU that builds it in a folder of its own node, judges it on
the node's copies of the sets (its ``int8(data=...)`` calibration path rewritten to the node's
copy, and back before the candidate returns) and returns the built files' bytes, which the
driver writes where the local path would have built them. The timing is one task that holds a
whole node, with every runnable candidate shipped to it. A task whose worker or node dies is
re-run on a live node (``cluster.run_all``): a lost node costs the candidates it held, re-run
from the start, not the tune.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..check.feeds import Shapes
from ..cluster import Shipped, materialise, model_files, run_all, ship, ship_set
from ..distributed import node_task
from .judging import _judged
from .results import Candidate
from .timing import timed


def _built_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _judge_task(c: Candidate, name: str, model: Shipped, calib: Shipped, evaluation: Shipped, driver_calib: str,
                min_cos: float, references: dict, shapes: Shapes | None) -> tuple[Candidate, dict[str, bytes], str]:
    """On a worker: ``c`` built as ``name`` in a folder of this node, judged on this node's
    copies of the sets; (the candidate, the built files by name, its model's name among them)."""
    local_calib = str(materialise(calib))
    pipeline = c.pipeline
    if pipeline is not None:  # candidates.plan wrote the driver's path into the int8 option
        c.pipeline = pipeline.replace(f"data={driver_calib}", f"data={local_calib}")
    with tempfile.TemporaryDirectory(prefix="cgsurg-tune-") as tmp:
        folder = Path(tmp)
        _judged(c, str(materialise(model)), folder / name, local_calib, str(materialise(evaluation)), min_cos,
                references, 1, shapes)
        built = _built_files(folder)
        main = str(Path(c.model).relative_to(folder)) if c.model else ""
    c.pipeline, c.model = pipeline, ""
    return c, built, main


def judge(ray: Any, chosen: Sequence[Candidate], paths: Sequence[Path], model, calib, evaluation, min_cos: float,
          references: dict, shapes: Shapes | None, notice: Callable[[str], None]) -> list[Candidate]:
    """Each of ``chosen`` built into ``paths`` (on the driver) and judged in full, as Ray tasks."""
    shipped = ship(ray, model_files(model)), ship_set(ray, calib), ship_set(ray, evaluation)
    on_store = ray.put(references)  # once, not once per task
    found: list[Candidate] = list(chosen)

    def job(c: Candidate, path: Path) -> Callable[[], tuple]:
        return lambda: (c, path.name, *shipped, str(calib), min_cos, on_store, shapes)

    def write(k: int, value: tuple) -> None:
        c, built, main = value
        folder = paths[k].parent
        for name, data in built.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        c.model = str(folder / main) if main else ""
        found[k] = c

    run_all(ray, _judge_task, [job(c, path) for c, path in zip(chosen, paths)], [1] * len(chosen),
            notice=notice, what="candidate", unit="candidates", on_result=write)
    return found


def _time_task(tried: list[Candidate], models: dict[int, Shipped], batches: Sequence[int], rounds: int,
               evaluation: Shipped, threads, shapes: Shapes | None) -> tuple[list[Candidate], dict]:
    """On a worker holding a whole node: the candidates timed on this node's copies."""
    for k, c in enumerate(tried):
        c.model = str(materialise(models[k])) if k in models else ""  # not runnable: not timed
    return timed(tried, batches, rounds, str(materialise(evaluation)), threads, shapes=shapes)


def time_all(ray: Any, tried: list[Candidate], batches: Sequence[int], rounds: int, evaluation, threads,
             shapes: Shapes | None, notice: Callable[[str], None]) -> tuple[list[Candidate], dict]:
    """``timing.timed`` of every runnable candidate in one task holding a whole node (nothing
    else runs beside it); the candidates come back with the driver's model paths."""
    models = {k: ship(ray, model_files(c.model)) for k, c in enumerate(tried) if c.model and not c.error}
    shipped = ship_set(ray, evaluation)
    timed, environment = node_task(ray, _time_task, tried, models, batches, rounds, shipped, threads, shapes,
                                   notice=notice)
    for mine, theirs in zip(tried, timed):
        theirs.model = mine.model
    return timed, environment
