"""Loading and saving ONNX models: clear errors on bad files, external data, atomic writes.

Every model cgsurg reads or writes goes through here, so that a bad input gives one clear
line and an interrupted or failed run never leaves a partial output file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from .errors import InputError

# Protobuf cannot serialise a message of 2 GiB or more; stay clear of the limit.
PROTOBUF_LIMIT = 2**31 - 2**26


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and validate an ONNX model, external data included."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    try:
        model = onnx.load(str(path), load_external_data=True)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"{path} is not a readable ONNX model ({_first_line(exc)})") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise InputError(f"{path} is not an ONNX model (no graph with nodes found)")
    try:
        if model_nbytes(model) < PROTOBUF_LIMIT:
            onnx.checker.check_model(model)
        else:
            onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InputError(f"{path} is not a valid ONNX model: {_first_line(exc)}") from None
    return model


def model_nbytes(model: onnx.ModelProto) -> int:
    """Size of the serialised model, without failing on models past the protobuf limit."""
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    if weights >= PROTOBUF_LIMIT:
        return weights
    return model.ByteSize()


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when ``path`` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"output {path} is a directory, expected a file name")
    if not parent.is_dir():
        raise InputError(f"output directory {parent} does not exist")
    try:  # a real probe: permission bits say little to root or on read-only mounts
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"output directory {parent} is not writable ({exc.strerror or exc})") from None
    return path


def save_model(model: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> Path:
    """Write ``model`` atomically; weights go to ``<name>.data`` when large or when asked.

    Everything is written inside a temporary directory next to the target and renamed into
    place only once complete, data file first, so readers never see a half-written model.
    """
    path = check_writable(path)
    if external_data is None:
        external_data = model_nbytes(model) >= PROTOBUF_LIMIT
    data_name = path.name + ".data"
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            tmp_model = Path(tmp) / path.name
            if external_data:
                onnx.save_model(model, str(tmp_model), save_as_external_data=True,
                                all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
                os.replace(Path(tmp) / data_name, path.parent / data_name)
            else:
                onnx.save_model(model, str(tmp_model))
            os.replace(tmp_model, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
