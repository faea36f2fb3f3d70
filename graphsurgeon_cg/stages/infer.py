"""infer: batched offline inference over an info file, one output ``.npy`` per input.

Reading the next batch and writing the previous outputs run in background threads while the
backend (ONNX Runtime or OpenVINO, ``check.backends``) computes (both release the GIL), so the
stage runs close to ``bench``'s pure-inference speed. A static-batch model gets its own batch
size, and its last partial batch is padded with copies of its last sample (the padding's
outputs dropped); a dynamic-batch model runs the last batch at its real size.

The output folder appears whole or not at all, and holds only this run's outputs: it is
written aside and put in place at the end, replacing the folder of an earlier ``infer`` run
whole (listed in its ``.cgsurg-infer`` manifest); a folder that holds other files is refused
unless ``overwrite`` says to replace it whole.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..check.backends import Runner, backend_for
from ..check.feeds import ImageInput, Shapes
from ..check.images import save_png
from ..core.errors import InputError
from ..core.modelio import check_output_folder, staged_folder, within
from .dataset import Sample, load_sample, read_info


@dataclass
class InferResult:
    count: int
    batch: int
    seconds: float  # wall time of the whole stage
    inference_seconds: float  # time inside session.run

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def batches(runner: Runner, samples: list[Sample], batch: int, shapes: Shapes | None = None,
            read: Callable[[Sample], np.ndarray] = load_sample
            ) -> Iterator[tuple[list[Sample], list[np.ndarray], float]]:
    """(samples, outputs without padding, seconds in ``runner.run``) per batch, reading the next
    batch in the background while the current one runs; ``shapes``: see ``ImageInput.of``;
    ``read``: a sample's array (on a Ray worker, from the arrays the driver sent)."""
    image = ImageInput.of(runner, shapes)
    size = image.static_batch or batch

    def load(chunk: list[Sample]) -> np.ndarray:
        arrays = []
        for s in chunk:
            arr = read(s)
            if arr.ndim == 3 and arr.shape != image.sample_shape and arr.transpose(1, 2, 0).shape == image.sample_shape:
                arr = arr.transpose(1, 2, 0)  # prep writes CHW; a preproc-fold(layout=nhwc) model takes HWC
            if arr.shape != image.sample_shape:
                raise InputError(f"{s.path} has shape {arr.shape}; the model takes {image.sample_shape}")
            if arr.dtype != image.dtype:
                if np.issubdtype(arr.dtype, np.floating) != np.issubdtype(image.dtype, np.floating):
                    raise InputError(f"{s.path} is {arr.dtype} but the model takes {image.dtype}; "
                                     f"prep with --dtype {'uint8' if image.dtype == np.uint8 else 'float32'}")
                arr = arr.astype(image.dtype)
            arrays.append(arr)
        if image.static_batch:  # the model takes no other batch size: pad a partial last batch
            arrays += [arrays[-1]] * (size - len(arrays))
        return np.stack(arrays)

    chunks = [samples[i:i + size] for i in range(0, len(samples), size)]
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(load, chunks[0])
        for k, chunk in enumerate(chunks):
            data = pending.result()
            if k + 1 < len(chunks):
                pending = reader.submit(load, chunks[k + 1])
            t0 = time.perf_counter()
            outputs = runner.run({image.name: data})
            yield chunk, [o[:len(chunk)] for o in outputs], time.perf_counter() - t0


MANIFEST = ".cgsurg-infer"  # in an output folder: the files infer wrote there


def infer(model: str | os.PathLike, info: str | os.PathLike, out_dir: str | os.PathLike, batch: int = 16,
          threads: int | None = None, provider: str = "cpu", png: bool = False,
          notice: Callable[[str], None] = lambda m: None, progress: bool = True, backend: str = "ort",
          shapes: Shapes | None = None, overwrite: bool = False) -> InferResult:
    """Run ``model`` over the samples of ``info`` on ``backend`` (``ort`` with ``provider``, or
    ``openvino``: an ONNX file or an OpenVINO IR ``.xml``), one output file per sample.
    ``shapes`` (``--input-shape``): the size the samples have on the input's dynamic axes.
    ``overwrite``: replace ``out_dir`` whole even when it holds files infer did not write."""
    if batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    samples = read_info(info)
    session = backend_for(backend, provider=provider, threads=threads).load(model)
    image = ImageInput.of(session, shapes)
    if image.static_batch and image.static_batch != batch:
        notice(f"the model has static batch {image.static_batch}: using it instead of {batch}")
    out = check_output_beside_inputs(out_dir, info, samples, overwrite)
    with staged_folder(out, replace=True) as staging:  # nothing is left behind unless every sample ran
        result = _infer(session, image, samples, staging, batch, png, progress, shapes)
        write_manifest(staging)
        return result


def check_output_beside_inputs(out_dir: str | os.PathLike, info: str | os.PathLike, samples: list[Sample],
                               overwrite: bool = False) -> Path:
    """The output folder, refused when it is or contains the info file or a sample (the outputs
    would overwrite the inputs of the same name), cannot be written, or holds files that an
    earlier infer did not write (unless ``overwrite``): it is replaced whole, and a later
    ``eval`` would pair stale files."""
    out = Path(out_dir)
    clash = next((p for p in [Path(info), *(s.path for s in samples)] if within(p, out)), None)
    if clash is not None:
        raise InputError(f"the output folder {out} is or contains the inputs ({clash}); choose another")
    check_output_folder(out)
    foreign = [] if overwrite or not out.is_dir() else _not_written_by_infer(out)
    if foreign:
        raise InputError(f"the output folder {out} holds {len(foreign)} file(s) infer did not write (e.g. "
                         f"{foreign[0]}); choose a new folder, or pass --overwrite to replace it whole")
    return out


def _not_written_by_infer(out: Path) -> list[str]:
    try:
        listed = set(json.loads((out / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    return sorted(p.name for p in out.iterdir() if p.name != MANIFEST and p.name not in listed)


def write_manifest(folder: Path) -> None:
    """List the files of ``folder`` (infer's outputs) so that a later run may replace them."""
    files = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    (folder / MANIFEST).write_text(json.dumps({"written_by": "cgsurg infer", "files": files}) + "\n")


def _infer(session: Runner, image: ImageInput, samples: list[Sample], out: Path, batch: int, png: bool,
           progress: bool, shapes: Shapes | None = None) -> InferResult:
    from tqdm import tqdm

    start = time.perf_counter()
    inference = 0.0
    with ThreadPoolExecutor(max_workers=1) as writer, tqdm(total=len(samples), desc="infer", unit="img",
                                                             disable=None if progress else True) as bar:
        writes = []
        names = [o.name for o in session.get_outputs()]
        for chunk, outputs, seconds in batches(session, samples, batch, shapes):
            inference += seconds
            writes.append(writer.submit(_write, out, chunk, outputs, names, png))
            bar.update(len(chunk))
        for w in writes:
            try:
                w.result()
            except OSError as exc:
                raise InputError(f"cannot write the outputs: {exc.strerror or exc}") from None
    return InferResult(count=len(samples), batch=image.static_batch or batch,
                       seconds=time.perf_counter() - start, inference_seconds=inference)


def _write(out: Path, chunk: list[Sample], outputs: list[np.ndarray], names: list[str], png: bool) -> None:
    for i, sample in enumerate(chunk):
        for k, (name, values) in enumerate(zip(names, outputs)):
            stem = sample.stem if len(names) == 1 else f"{sample.stem}.{name}"
            np.save(out / f"{stem}.npy", values[i])
            if png and k == 0:
                save_png(values[i], out / f"{stem}.png")
