"""Inputs to run a model on: seeded random ones, real ones from a folder, and the single
image input of a generator (name, dtype, static batch) that the stages work with."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..core.errors import InputError, first_line
from .images import IMAGE_SUFFIXES, load_image
from .session import numpy_dtype

Feeds = dict[str, np.ndarray]
Shapes = Mapping[str, Sequence[int]]
DEFAULT_GRID = (127.5, 127.5)


def check_shape_names(inputs: Sequence[Any], shapes: Shapes) -> None:
    """Every given shape must name one of ``inputs`` (ORT NodeArgs)."""
    unknown = set(shapes) - {i.name for i in inputs}
    if unknown:
        names = ", ".join(i.name for i in inputs)
        raise InputError(f"an input shape names no model input: {', '.join(sorted(unknown))} (inputs: {names})")


def _static(d: Any) -> bool:
    return isinstance(d, int) and d > 0


def dynamic_axes_error(inp: Any) -> InputError:
    """One line: which axes of ``inp`` (an ORT NodeArg) other than the batch are dynamic, and
    how to give them (``--input-shape x:1,3,H,W``)."""
    dims = list(inp.shape)
    axes = ", ".join(f"{axis} ({d or 'unnamed'})" for axis, d in enumerate(dims) if axis > 0 and not _static(d))
    names = {len(dims) - 2: "H", len(dims) - 1: "W"} if len(dims) == 4 else {}
    example = ",".join(str(d) if _static(d) else "1" if axis == 0 else names.get(axis, f"D{axis}")
                       for axis, d in enumerate(dims))
    return InputError(f"input '{inp.name}' has dynamic axes {axes}; give them with --input-shape {inp.name}:{example}")


def fitted_shape(inp: Any, given: Sequence[int]) -> tuple[int, ...]:
    """``given`` (an ``--input-shape``) checked against ``inp``'s declared shape: same rank, and
    the static axes unchanged."""
    declared = list(inp.shape)
    text = f"{inp.name}:{','.join(map(str, given))}"
    shown = "[" + ",".join(str(d) if _static(d) else "?" for d in declared) + "]"
    if len(given) != len(declared):
        raise InputError(f"input shape {text} has {len(given)} axes; input '{inp.name}' has {len(declared)} {shown}")
    for axis, (d, g) in enumerate(zip(declared, given)):
        if _static(d) and d != g:
            raise InputError(f"input shape {text} gives axis {axis} size {g}; input '{inp.name}' has it fixed at {d}")
    return tuple(int(g) for g in given)


def input_shape(inp: Any, shapes: Shapes) -> tuple[int, ...]:
    """The shape to feed ``inp`` (an ORT NodeArg): given, else static, else batch 1 on axis 0."""
    if inp.name in shapes:
        return fitted_shape(inp, shapes[inp.name])
    if any(not _static(d) for d in list(inp.shape)[1:]):
        raise dynamic_axes_error(inp)
    return tuple(d if _static(d) else 1 for d in inp.shape)  # a dynamic batch axis defaults to batch 1


def random_array(shape: Sequence[int], dtype: np.dtype, rng: np.random.Generator,
                 grid: tuple | None = None) -> np.ndarray:
    """Seeded random data for one input: for image-shaped float inputs (N x 1|3 x H x W) random
    8-bit pictures normalised as ``(u - mean) / scale`` (``grid``, default 127.5 and 127.5, so
    that a model made to take uint8 images sees exactly the same pictures); other floats uniform
    in [-1, 1]; uint8 over 0..255; bools; other ints small."""
    shape = tuple(shape)
    if np.issubdtype(dtype, np.floating):
        if len(shape) == 4 and shape[1] in (1, 3):
            mean, scale = (np.broadcast_to(np.asarray(v, np.float32).reshape(-1), (shape[1],)).reshape(1, -1, 1, 1)
                           for v in (grid or DEFAULT_GRID))
            pixels = rng.integers(0, 256, size=shape).astype(np.float32)
            return (pixels / scale - mean / scale).astype(dtype)
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 4, size=shape).astype(dtype)


def random_feeds(source: Any, shapes: Shapes | None = None, seed: int = 0, samples: int = 1,
                 grid: tuple | None = None) -> list[Feeds]:
    """``samples`` seeded random feeds for a session (or its list of inputs)."""
    inputs = source.get_inputs() if hasattr(source, "get_inputs") else list(source)
    shapes = shapes or {}
    check_shape_names(inputs, shapes)
    rng = np.random.default_rng(seed)
    return [{inp.name: random_array(input_shape(inp, shapes), numpy_dtype(inp.type), rng, grid) for inp in inputs}
            for _ in range(samples)]


def file_feeds(session: Any, folder: str | os.PathLike, warn: Callable[[str], None] = lambda m: None,
               shapes: Shapes | None = None) -> list[Feeds]:
    """Real inputs from a folder: ``.npy`` arrays, ``.npz`` archives keyed by input name, or
    images (resized to the input's size, scaled to [-1, 1], NCHW) for a single image input:
    its static size, or on dynamic height/width the size ``shapes`` (``--input-shape``) gives.
    Like ``prep``, a file that cannot be read is skipped with a warning (through ``warn``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"the inputs folder {folder} is not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".npy", ".npz"} | IMAGE_SUFFIXES
                   and p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"the inputs folder {folder} holds no .npy, .npz or image files")
    inputs = session.get_inputs()
    shapes = shapes or {}
    check_shape_names(inputs, shapes)
    if len(inputs) != 1 and any(p.suffix.lower() != ".npz" for p in files):
        raise InputError(f"the model has {len(inputs)} inputs: give .npz files keyed by input name")
    size = _image_size(inputs[0], shapes) if any(p.suffix.lower() in IMAGE_SUFFIXES for p in files) else None
    feeds = []
    for path in files:
        try:
            feed = _read_feed(path, inputs, size)
        except InputError:
            raise
        except Exception as exc:  # numpy and PIL raise many types for broken or unknown files
            warn(f"warning: skipped {path}: {first_line(exc)}")
            continue
        for inp in inputs:
            arr = feed[inp.name]
            if arr.ndim == len(inp.shape) - 1:
                arr = arr[None]
            feed[inp.name] = arr.astype(numpy_dtype(inp.type), copy=False)
        feeds.append(feed)
    if not feeds:
        raise InputError(f"none of the {len(files)} input files in {folder} could be read")
    return feeds


def _read_feed(path: Path, inputs: Sequence[Any], size: tuple[int, int] | None) -> Feeds:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            feed = {i.name: archive[i.name] for i in inputs if i.name in archive}
        if len(feed) != len(inputs):
            raise InputError(f"{path} lacks arrays for inputs {[i.name for i in inputs if i.name not in feed]}")
        return feed
    if suffix == ".npy":
        return {inputs[0].name: np.load(path, allow_pickle=False)}
    assert size is not None  # file_feeds found the image size when the folder holds images
    return {inputs[0].name: load_image(path, size)[0]}


def _image_size(inp: Any, shapes: Shapes) -> tuple[int, int]:
    """(width, height) that images are resized to for ``inp``: from ``shapes`` when it names the
    input, else its static size; a dynamic size without it is one line saying how to give it."""
    shape = list(inp.shape)
    if len(shape) != 4:
        raise InputError(f"input '{inp.name}' is not an NCHW image; use .npy inputs")
    if inp.name in shapes:
        shape = list(fitted_shape(inp, shapes[inp.name]))
    elif not all(_static(d) for d in shape[2:]):
        raise dynamic_axes_error(inp)
    return int(shape[3]), int(shape[2])


def static_batch(model: onnx.ModelProto) -> int | None:
    """The first graph input's static batch size, or None when it is dynamic."""
    initializers = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in initializers:
            dims = inp.type.tensor_type.shape.dim
            return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
    return None


def first_dims(model: onnx.ModelProto) -> dict[str, int]:
    """The static first dimension of each graph input (weights aside) that has one."""
    initializers = {t.name for t in model.graph.initializer}
    found = {}
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name not in initializers and dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            found[inp.name] = dims[0].dim_value
    return found


def fit_batch(feed: Feeds, batch: int | None) -> Feeds:
    """``feed`` at a model's static ``batch``: the first sample repeated (None: unchanged)."""
    if not batch or all(v.shape[0] == batch for v in feed.values()):
        return feed
    return {k: np.repeat(v[:1], batch, axis=0) for k, v in feed.items()}


@dataclass
class ImageInput:
    """The single image input of a generator: name, dtype, static batch (or None), sample shape."""

    name: str
    dtype: np.dtype
    static_batch: int | None
    sample_shape: tuple

    @staticmethod
    def of(session: Any, shapes: Shapes | None = None) -> ImageInput:
        """The session's image input, at ``shapes`` when given (``--input-shape``: its axes but
        the batch, which a stage's batch size sets on a dynamic-batch model)."""
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise InputError(f"the model has {len(inputs)} inputs; the stages need a single image input")
        inp = inputs[0]
        shapes = shapes or {}
        check_shape_names(inputs, shapes)
        shape = list(inp.shape)
        if inp.name in shapes:
            shape = [shape[0], *fitted_shape(inp, shapes[inp.name])[1:]]
        if len(shape) < 1:
            raise InputError(f"input '{inp.name}' is a scalar; the stages need an image input")
        if not all(_static(d) for d in shape[1:]):
            raise dynamic_axes_error(inp)
        batch = shape[0] if _static(shape[0]) else None
        return ImageInput(inp.name, numpy_dtype(inp.type), batch, tuple(shape[1:]))

    def random_batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        return random_array((batch, *self.sample_shape), self.dtype, rng)
