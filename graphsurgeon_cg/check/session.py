"""The one way cgsurg opens ONNX Runtime sessions, and the machine they run on.

Comparisons run with ORT's graph optimisations off (``optimize=False``, the default), so ORT's
own fusions neither hide nor cause differences; the stages (infer, eval, bench, profile) run
with them on, as deployment would. Execution providers by short name; one that this
onnxruntime build lacks is a clear error, not a silent fall-back to the CPU.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from ..core.errors import InputError
from ..core.modelio import external_location, fits_in_protobuf, has_external_data, save_model
from .cpu import cpu_name
from .providers import PROVIDERS

ort.set_default_logger_severity(3)  # ORT's own coloured log lines would precede our one-line errors


ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
             "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def numpy_dtype(ort_type: str) -> np.dtype:
    if ort_type not in ORT_TYPES:
        raise InputError(f"inputs of type {ort_type} are not supported")
    return np.dtype(ORT_TYPES[ort_type])


def provider_list(provider: str) -> list[str]:
    name = PROVIDERS.get(provider.lower())
    if name is None:
        raise InputError(f"unknown provider '{provider}': expected one of {', '.join(PROVIDERS)}")
    available = ort.get_available_providers()
    if name not in available:
        have = ", ".join(k for k, v in PROVIDERS.items() if v in available)
        raise InputError(f"provider '{provider}' is not available in this onnxruntime build (available: {have}); "
                         f"install onnxruntime-gpu or onnxruntime-openvino for it")
    return [name] if name == PROVIDERS["cpu"] else [name, PROVIDERS["cpu"]]


def make_session(model: onnx.ModelProto | str | os.PathLike, *, optimize: bool = False, provider: str = "cpu",
                 threads: int | None = None, profile_prefix: str | None = None) -> ort.InferenceSession:
    """An ORT session for a model in memory or a file (external data included)."""
    if threads is not None and threads < 1:
        raise InputError(f"the thread count must be at least 1, got {threads}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    providers = provider_list(provider)
    where = "the model"
    try:
        if not isinstance(model, onnx.ModelProto):
            path = os.fspath(model)
            where = path
            if not os.path.isfile(path):
                raise InputError(f"no such model file: {path}" if not os.path.exists(path) else f"{path} is not a file")
            return ort.InferenceSession(path, opts, providers=providers)
        if has_external_data(model) and fits_in_protobuf(model):
            return _on_disk_session(model, opts, providers)
        if fits_in_protobuf(model):
            return ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
        with tempfile.TemporaryDirectory() as tmp:  # weights in memory too big for one protobuf
            file = Path(tmp) / "model.onnx"
            save_model(model, file, external_data=True)
            return ort.InferenceSession(str(file), opts, providers=providers)
    except InputError:
        raise
    except Exception as exc:  # ORT raises its own exception types
        raise InputError(f"ONNX Runtime cannot load {where}: {first_line(exc)}") from None


def _on_disk_session(model: onnx.ModelProto, opts: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    """A session for a model whose large tensors stay on disk. ORT memory-maps external data
    that lies beside the model file (and refuses any other, links included), so the small
    model goes, for the moment of loading, into a hidden file next to the weights: about 1x
    the model in memory, none on disk. Where that folder is not writable, the tensors are
    handed over as external initializers instead (ORT then copies them)."""
    folders = {os.path.dirname(external_location(t)[0]) for t in model.graph.initializer
               if t.data_location == onnx.TensorProto.EXTERNAL}
    if len(folders) == 1:
        folder = folders.pop()
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for tensor in copy.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = os.path.basename(entry.value)
        try:
            handle, file = tempfile.mkstemp(prefix=".cgsurg-check-", suffix=".onnx", dir=folder)
        except OSError:
            pass
        else:
            try:
                with os.fdopen(handle, "wb") as f:
                    f.write(copy.SerializeToString())
                return ort.InferenceSession(file, opts, providers=providers)
            finally:
                os.unlink(file)
    names, values, maps = [], [], []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location, offset, _ = external_location(tensor)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
            array = np.memmap(location, dtype=dtype, mode="r", offset=offset, shape=tuple(tensor.dims))
            maps.append(array)
            names.append(tensor.name)
            values.append(ort.OrtValue.ortvalue_from_numpy(np.asarray(array)))
    opts.add_external_initializers(names, values)
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
    session._cgsurg_weights = (maps, values)  # keep the mappings alive
    return session


class SessionCache:
    """One ORT session per model per run, opened when first asked for, with the outputs it
    computed by feed: the numeric check, the report and the feeds that api reads share the
    original's session and its outputs, and the report's session of the last stage serves the
    check's verdict (issue 19: a 2 GB model costs seconds and its size in memory per session).

    Models are told apart by identity (a stage is never edited once made). A model ``kept``
    stays open for the run (the original, which every comparison reads); of the others only
    the one asked for last, since the stages are visited in order and each may be as large as
    the original."""

    def __init__(self) -> None:
        self._kept: dict[int, _Runs] = {}
        self._last: _Runs | None = None

    def of(self, model: onnx.ModelProto, keep: bool = False) -> _Runs:
        runs = self._kept.get(id(model))
        if runs is None and self._last is not None and self._last.model is model:
            runs = self._last
        if runs is None:
            runs = _Runs(model)
        if keep:
            self._kept[id(model)] = runs
            if self._last is runs:
                self._last = None
        elif id(model) not in self._kept:
            self._last = runs
        return runs

    def session(self, model: onnx.ModelProto, keep: bool = False) -> ort.InferenceSession:
        return self.of(model, keep).session

    def run(self, model: onnx.ModelProto, feeds: Sequence[dict]) -> list[dict]:
        """Outputs by name for each feed, computed once per model and feed."""
        return self.of(model).run(feeds)


class _Runs:
    """A model's session, opened on first use, and its outputs keyed by the feed's content."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model  # held, so that its id stays its own while cached
        self._session: ort.InferenceSession | None = None
        self._outputs: dict[bytes, dict] = {}

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            self._session = make_session(self.model)
        return self._session

    def run(self, feeds: Sequence[dict]) -> list[dict]:
        keys = [_digest(feed) for feed in feeds]
        missing = [(key, feed) for key, feed in zip(keys, feeds) if key not in self._outputs]
        if missing:
            for (key, _), out in zip(missing, run_session(self.session, [feed for _, feed in missing])):
                self._outputs[key] = out
        return [self._outputs[key] for key in keys]


def _digest(feed: dict) -> bytes:
    """A feed's content as a key (a hash, not a copy: inputs may be large)."""
    h = hashlib.blake2b(digest_size=20)
    for name in sorted(feed):
        value = np.ascontiguousarray(feed[name])
        h.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.data if value.dtype != object else repr(value.tolist()).encode())
    return h.digest()


def run_session(session: ort.InferenceSession, feeds: list[dict]) -> list[dict]:
    """Outputs by name for each feed; an ORT failure is one clear line."""
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, run_feed(session, feed, names))) for feed in feeds]


def run_feed(session: ort.InferenceSession, feed: dict, names: list[str] | None = None) -> list:
    """``session.run`` with an ORT failure as one clear line (wrong shapes: which axis, got, expected)."""
    try:
        return session.run(names, feed)
    except Exception as exc:
        raise InputError(f"ONNX Runtime failed to run the model: {first_line(exc, 400)}") from None


def first_line(exc: BaseException, limit: int = 300) -> str:
    """ORT's message as one line: without its bracketed status and boilerplate, with the detail
    lines that follow the first one (for a shape error: each axis with what it got and expected)."""
    text = str(exc).strip() or type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = text.replace("Please fix either the inputs/outputs or the model.", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(exc).__name__]
    line = lines[0] + (": " + "; ".join(lines[1:]) if len(lines) > 1 else "")
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return line


def environment(provider: str, threads: int | None) -> dict:
    cpu = cpu_name()
    return {"onnxruntime": ort.__version__, "provider": PROVIDERS[provider.lower()], "threads": threads or "default",
            "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
