"""File-level entry points: the functions the CLI calls, usable from Python as they are."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .errors import InputError
from .manager import CheckSettings, PassManager, PipelineResult
from .modelio import check_writable, load_model, same_file, save_model
from .numeric import Bound, Comparison, compare_models, parse_input_shapes
from .registry import load_plugin


def apply(
    model_path: str | os.PathLike,
    output_path: str | os.PathLike,
    pipeline: str | Sequence,
    *,
    check: bool = True,
    check_each: bool = False,
    input_shapes: Iterable[str] = (),
    inputs_dir: str | os.PathLike | None = None,
    seed: int = 0,
    in_place: bool = False,
    plugins: Iterable[str | os.PathLike] = (),
) -> PipelineResult:
    """Rewrite ``model_path`` with ``pipeline`` and write ``output_path``.

    Nothing is written unless every pass succeeds and the numeric check passes; the input file
    is never modified unless ``in_place`` is set and ``output_path`` names it.
    """
    for plugin in plugins:
        load_plugin(plugin)
    if same_file(model_path, output_path) and not in_place:
        raise InputError(f"output {output_path} is the input file; pass --in-place to overwrite it")
    check_writable(output_path)
    manager = PassManager(pipeline, check=_settings(check, input_shapes, inputs_dir, seed), check_each=check_each)
    model = load_model(model_path)
    result = manager.run(model)
    save_model(result.model, output_path)
    return result


def diff(
    model_a: str | os.PathLike,
    model_b: str | os.PathLike,
    *,
    input_shapes: Iterable[str] = (),
    inputs_dir: str | os.PathLike | None = None,
    seed: int = 0,
    bound: Bound | None = None,
) -> Comparison:
    """Compare two models' outputs on the same inputs (A is the reference)."""
    a, b = load_model(model_a), load_model(model_b)
    return compare_models(a, b, shapes=parse_input_shapes(input_shapes), seed=seed, bound=bound,
                          inputs_dir=str(inputs_dir) if inputs_dir else None)


def _settings(check: bool, input_shapes: Iterable[str], inputs_dir, seed: int) -> CheckSettings | None:
    if not check:
        return None
    if inputs_dir is not None and not Path(inputs_dir).is_dir():
        raise InputError(f"--inputs {inputs_dir} is not a directory")
    return CheckSettings(shapes=parse_input_shapes(input_shapes),
                         inputs_dir=str(inputs_dir) if inputs_dir else None, seed=seed)
