"""Info files, the vendor guide's dataset index: one line ``index path width height`` per
preprocessed sample (width and height of the original image). Relative paths are relative to
the info file's folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError


@dataclass(frozen=True)
class Sample:
    index: int
    path: Path
    width: int
    height: int

    @property
    def stem(self) -> str:
        return self.path.stem


def write_info(path: Path, samples: list[Sample]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for s in samples:
            f.write(f"{s.index} {os.path.relpath(s.path, path.parent)} {s.width} {s.height}\n")
    os.replace(tmp, path)


def read_info(path: str | os.PathLike) -> list[Sample]:
    """Parse and validate an info file: every listed file must exist; stems must be unique."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such info file: {path}" if not path.exists() else f"{path} is not a file")
    samples: list[Sample] = []
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text info file") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:  # the path may hold spaces: index first, width and height last
            index_text, rest = line.strip().split(maxsplit=1)
            file, width_text, height_text = rest.rsplit(maxsplit=2)
            index, width, height = int(index_text), int(width_text), int(height_text)
        except ValueError:
            raise InputError(f"{path}:{number}: expected 'index path width height', got {line.strip()!r}") from None
        file_path = Path(file) if os.path.isabs(file) else path.parent / file
        samples.append(Sample(index, file_path, width, height))
    if not samples:
        raise InputError(f"info file {path} lists no samples")
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise InputError(f"info file {path} lists {len(missing)} missing file(s), e.g. {missing[0]}")
    stems = [s.stem for s in samples]
    if len(set(stems)) != len(stems):
        raise InputError(f"info file {path} lists two samples with the same name; outputs are named by stem")
    return samples


def load_sample(sample: Sample) -> np.ndarray:
    try:
        return np.load(sample.path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"cannot read {sample.path}: {exc}") from None


def info_feeds(model, info: str | os.PathLike, samples: int) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """The first ``samples`` samples of an info file as feeds of the model's (a proto, a path,
    or its ORT session, which spares opening another) first input, and their names; a sample of
    the wrong shape is an error, before any work."""
    from ..check.session import make_session

    inp = (model if hasattr(model, "get_inputs") else make_session(model)).get_inputs()[0]
    dtype = np.float32 if "float" in inp.type else np.uint8
    chosen = read_info(info)[:samples]
    feeds = [{inp.name: load_sample(s)[None].astype(dtype)} for s in chosen]
    for sample, feed in zip(chosen, feeds):
        got = feed[inp.name].shape
        if len(got) != len(inp.shape) or any(isinstance(d, int) and d != g for d, g in zip(inp.shape[1:], got[1:])):
            raise InputError(f"sample {sample.path} has shape {got[1:]}; the model's input '{inp.name}' takes "
                             f"{tuple(inp.shape[1:])}")
    return feeds, [s.stem for s in chosen]
