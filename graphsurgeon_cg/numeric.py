"""Numeric comparison of two ONNX models in ONNX Runtime.

Both models run with ORT graph optimisations disabled, so that ORT's own fusions neither
hide nor cause differences. Metrics per output:

- ``max_abs``, ``mean_abs``: absolute differences;
- ``cos``: cosine similarity of the flattened outputs;
- ``pixel_cos``: the vendor guide's metric, ``torch.cosine_similarity(a, b)`` with its default
  ``dim=1``: a cosine over the channel axis at every pixel, averaged over pixels and images;
- ``psnr_db``: PSNR with the reference's peak-to-peak range as the signal range
  (``None`` when the outputs are identical, i.e. infinite).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .errors import InputError
from .modelio import fits_in_protobuf, save_model
from .runtime import numpy_dtype

Feeds = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]

EXACT_MAX_ABS = 1e-5
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Bound:
    """How far a rewrite may move the outputs.

    ``|new - ref| <= max_abs + rel * |ref|`` element-wise (when ``max_abs`` is set) and a mean
    per-pixel cosine of at least ``min_pixel_cos`` (when set). Exact passes use ``EXACT``.
    """

    max_abs: float | None = None
    rel: float = 0.0
    min_pixel_cos: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"|diff| <= {self.max_abs:g}" + (f" + {self.rel:g}*|ref|" if self.rel else ""))
        if self.min_pixel_cos is not None:
            parts.append(f"pixel cosine >= {self.min_pixel_cos:g}")
        return " and ".join(parts) or "unbounded"

    @staticmethod
    def chain(bounds: Sequence["Bound"]) -> "Bound":
        """The bound of several rewrites applied one after the other: errors add up."""
        if all(b.max_abs is not None for b in bounds):
            max_abs = sum(b.max_abs for b in bounds)
            rel = sum(b.rel for b in bounds)
        else:
            max_abs, rel = None, 0.0
        cos_losses = [1.0 - b.min_pixel_cos for b in bounds if b.min_pixel_cos is not None]
        min_cos = 1.0 - sum(cos_losses) if cos_losses else None
        return Bound(max_abs=max_abs, rel=rel, min_pixel_cos=min_cos)


EXACT = Bound(max_abs=EXACT_MAX_ABS)


@dataclass
class OutputMetrics:
    name: str
    max_abs: float
    mean_abs: float
    cos: float
    pixel_cos: float
    psnr_db: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Comparison:
    """Per-output metrics over all samples, and the bound violations if a bound was given."""

    outputs: list[OutputMetrics]
    samples: int
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def worst(self) -> OutputMetrics:
        return max(self.outputs, key=lambda m: m.max_abs)

    def as_dict(self) -> dict:
        return {"samples": self.samples, "ok": self.ok, "violations": self.violations,
                "outputs": [m.as_dict() for m in self.outputs]}


# --- sessions and inputs ---------------------------------------------------------------

def make_session(model: onnx.ModelProto | str | os.PathLike, threads: int | None = None,
                 optimize: bool = False) -> ort.InferenceSession:
    """An ORT CPU session; graph optimisations are off (for comparisons) unless ``optimize``."""
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    try:
        if not isinstance(model, onnx.ModelProto):
            return ort.InferenceSession(str(model), opts, providers=providers)
        if fits_in_protobuf(model):
            return ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
        with tempfile.TemporaryDirectory() as tmp:  # too big for one protobuf: go through a file
            path = Path(tmp) / "model.onnx"
            save_model(model, path, external_data=True)
            return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # ORT raises its own exception types
        raise InputError(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0][:300]}") from None


def parse_input_shapes(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """``["img:1,3,256,256"]`` -> ``{"img": (1, 3, 256, 256)}``."""
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise InputError(f"bad --input-shape {item!r}: expected NAME:D1,D2,... with positive integers")
        shapes[name] = shape
    return shapes


def check_shape_names_of(inputs, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Every ``--input-shape`` must name one of ``inputs`` (ORT NodeArgs)."""
    unknown = set(shapes) - {i.name for i in inputs}
    if unknown:
        names = ", ".join(i.name for i in inputs)
        raise InputError(f"--input-shape names no model input: {', '.join(sorted(unknown))} (inputs: {names})")


def input_shape(inp, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape to feed ``inp`` (an ORT NodeArg): given, else static, else batch 1 on axis 0."""
    if inp.name in shapes:
        return tuple(shapes[inp.name])
    dims = []
    for axis, d in enumerate(inp.shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        elif axis == 0:
            dims.append(1)  # a dynamic batch axis defaults to batch 1
        else:
            raise InputError(f"input '{inp.name}' has dynamic axis {axis} ({d}); give its shape with "
                             f"--input-shape {inp.name}:" + ",".join(str(x) if isinstance(x, int) else "N" for x in inp.shape))
    return tuple(dims)


def random_feeds(source, shapes: Mapping[str, tuple[int, ...]] | None = None,
                 seed: int = 0, samples: int = 1, grid: tuple | None = None) -> list[Feeds]:
    """Seeded random inputs for a session (or its list of inputs): floats uniform in [-1, 1]
    (for image-shaped inputs, random 8-bit pictures normalised as ``u / scale - mean / scale``
    with ``grid = (mean, scale)``, default 127.5 and 127.5, so that a model made to take uint8
    images sees exactly the same pictures), uint8 over 0..255, other ints small."""
    inputs = source.get_inputs() if hasattr(source, "get_inputs") else list(source)
    rng = np.random.default_rng(seed)
    check_shape_names_of(inputs, shapes or {})
    feeds = []
    for _ in range(samples):
        feed = {}
        for inp in inputs:
            shape = input_shape(inp, shapes or {})
            dtype = numpy_dtype(inp.type)
            if np.issubdtype(dtype, np.floating):
                if len(shape) == 4 and shape[1] in (1, 3):
                    mean, scale = (np.broadcast_to(np.asarray(v, np.float32).reshape(-1), (shape[1],)).reshape(1, -1, 1, 1)
                                   for v in (grid or (127.5, 127.5)))
                    pixels = rng.integers(0, 256, size=shape).astype(np.float32)
                    feed[inp.name] = (pixels / scale - mean / scale).astype(dtype)
                else:
                    feed[inp.name] = rng.uniform(-1, 1, size=shape).astype(dtype)
            elif dtype == np.uint8:
                feed[inp.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            elif dtype == np.bool_:
                feed[inp.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
            else:
                feed[inp.name] = rng.integers(0, 4, size=shape).astype(dtype)
        feeds.append(feed)
    return feeds


def file_feeds(session: ort.InferenceSession, folder: str | os.PathLike) -> list[Feeds]:
    """Real inputs from a folder: ``.npy`` arrays, ``.npz`` archives keyed by input name, or
    images (resized to the input's size, scaled to [-1, 1], NCHW) for a single image input."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--inputs {folder} is not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".npy", ".npz"} | IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--inputs {folder} holds no .npy, .npz or image files")
    inputs = session.get_inputs()
    feeds = []
    for path in files:
        if path.suffix.lower() == ".npz":
            with np.load(path) as archive:
                feed = {i.name: archive[i.name] for i in inputs if i.name in archive}
            if len(feed) != len(inputs):
                raise InputError(f"{path} lacks arrays for inputs {[i.name for i in inputs if i.name not in feed]}")
        elif len(inputs) != 1:
            raise InputError(f"the model has {len(inputs)} inputs: give .npz files keyed by input name")
        elif path.suffix.lower() == ".npy":
            feed = {inputs[0].name: np.load(path)}
        else:
            feed = {inputs[0].name: _image_array(path, inputs[0])}
        for inp in inputs:
            arr = feed[inp.name]
            if arr.ndim == len(inp.shape) - 1:
                arr = arr[None]
            feed[inp.name] = arr.astype(numpy_dtype(inp.type), copy=False)
        feeds.append(feed)
    return feeds


def _image_array(path: Path, inp) -> np.ndarray:
    """An image file as the reference preprocessing makes it, at the input's size."""
    from .prep import load_image

    shape = inp.shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
        raise InputError(f"input '{inp.name}' is not an NCHW image of static size; use .npy inputs")
    try:
        return load_image(path, (shape[3], shape[2]))[0]
    except Exception as exc:  # PIL raises many types for broken or unknown files
        raise InputError(f"cannot read image {path}: {exc}") from None


def run_session(session: ort.InferenceSession, feeds: Sequence[Feeds]) -> list[Outputs]:
    names = [o.name for o in session.get_outputs()]
    results = []
    for feed in feeds:
        try:
            values = session.run(names, feed)
        except Exception as exc:
            raise InputError(f"ONNX Runtime failed to run the model: {str(exc).splitlines()[0][:300]}") from None
        results.append(dict(zip(names, values)))
    return results


# --- metrics ---------------------------------------------------------------------------

def pixel_cosine(ref: np.ndarray, new: np.ndarray, eps: float = 1e-8) -> float:
    """Mean of the cosine over axis 1 (channels), as ``torch.cosine_similarity`` computes it."""
    ref = np.asarray(ref, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if ref.ndim < 2:
        return flat_cosine(ref, new, eps)
    dot = (ref * new).sum(axis=1)
    norms = np.sqrt(np.maximum((ref * ref).sum(axis=1) * (new * new).sum(axis=1), eps * eps))
    return float(np.mean(dot / norms))


def flat_cosine(ref: np.ndarray, new: np.ndarray, eps: float = 1e-8) -> float:
    ref = np.asarray(ref, dtype=np.float64).ravel()
    new = np.asarray(new, dtype=np.float64).ravel()
    return float(ref @ new / max(np.linalg.norm(ref) * np.linalg.norm(new), eps))


def psnr(ref: np.ndarray, new: np.ndarray) -> float | None:
    ref = np.asarray(ref, dtype=np.float64)
    mse = float(np.mean((ref - np.asarray(new, dtype=np.float64)) ** 2))
    if mse == 0.0:
        return None
    peak = float(np.ptp(ref)) or 1.0
    return 10.0 * math.log10(peak * peak / mse)


def compare_outputs(refs: Sequence[Outputs], news: Sequence[Outputs], bound: Bound | None = None) -> Comparison:
    """Metrics per output over all samples; outputs are matched by name, else by position."""
    ref_names, new_names = list(refs[0]), list(news[0])
    if set(ref_names) == set(new_names):
        pairs = [(n, n) for n in ref_names]
    elif len(ref_names) == len(new_names):
        pairs = list(zip(ref_names, new_names))
    else:
        raise InputError(f"the models have different outputs: {ref_names} vs {new_names}")
    metrics, violations = [], []
    for ref_name, new_name in pairs:
        ref = [np.asarray(r[ref_name], dtype=np.float64) for r in refs]
        new = [np.asarray(n[new_name], dtype=np.float64) for n in news]
        if any(a.shape != b.shape for a, b in zip(ref, new)):
            violations.append(f"output '{ref_name}' changed shape {ref[0].shape} -> {new[0].shape}")
            continue
        ref_all = np.concatenate([a.ravel() for a in ref])
        new_all = np.concatenate([b.ravel() for b in new])
        diff = np.abs(ref_all - new_all)
        if not np.all(np.isfinite(new_all) == np.isfinite(ref_all)):
            violations.append(f"output '{ref_name}' has non-finite values that the reference does not")
            diff = np.nan_to_num(diff, nan=np.inf)
        m = OutputMetrics(
            name=ref_name,
            max_abs=float(diff.max()) if diff.size else 0.0,
            mean_abs=float(diff.mean()) if diff.size else 0.0,
            cos=flat_cosine(ref_all, new_all),
            pixel_cos=float(np.mean([pixel_cosine(a, b) for a, b in zip(ref, new)])),
            psnr_db=psnr(ref_all, new_all),
        )
        metrics.append(m)
        if bound is not None:
            violations.extend(_violations(m, ref_all, diff, bound))
    return Comparison(outputs=metrics, samples=len(refs), violations=violations)


def _violations(m: OutputMetrics, ref: np.ndarray, diff: np.ndarray, bound: Bound) -> list[str]:
    found = []
    if bound.max_abs is not None and diff.size:
        excess = diff - (bound.max_abs + bound.rel * np.abs(ref))
        if excess.max() > 0:
            would_pass = float(diff.max()) if not bound.rel else float(bound.max_abs + excess.max())
            found.append(f"output '{m.name}': max abs diff {m.max_abs:.3g} exceeds {bound.describe()} "
                         f"(max_abs {would_pass:.3g} would pass)")
    if bound.min_pixel_cos is not None and m.pixel_cos < bound.min_pixel_cos:
        found.append(f"output '{m.name}': pixel cosine {m.pixel_cos:.6f} is below {bound.min_pixel_cos:g}")
    return found


def compare_models(ref_model, new_model, feeds: Sequence[Feeds] | None = None,
                   shapes: Mapping[str, tuple[int, ...]] | None = None, seed: int = 0,
                   bound: Bound | None = None, inputs_dir: str | None = None) -> Comparison:
    """Run both models on the same inputs and compare (the engine of ``cgsurg diff``)."""
    ref_sess = make_session(ref_model)
    new_sess = make_session(new_model)
    if feeds is None:
        feeds = file_feeds(ref_sess, inputs_dir) if inputs_dir else random_feeds(ref_sess, shapes, seed)
    return compare_outputs(run_session(ref_sess, feeds), run_session(new_sess, feeds), bound)
