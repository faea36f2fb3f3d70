"""Backends: what runs a model for the stages and the numeric comparisons.

A backend loads a model (a path or an ``onnx.ModelProto``) into a ``Runner``: its inputs and
outputs (name, shape, element type, in ONNX Runtime's terms so the feeds and the stages read
them alike) and ``run(feed) -> list[np.ndarray]`` in output order.

- ``OrtBackend``: ONNX Runtime through ``session.make_session`` (providers cpu, cuda, tensorrt).
- ``OpenVinoBackend``: a real compiler, OpenVINO's runtime (``Core().compile_model`` on its CPU
  device), reading ONNX directly or an OpenVINO IR (``.xml`` beside its ``.bin``). openvino is
  imported only when a model is loaded. Inference precision is f32 (OpenVINO may pick bf16 on
  CPUs that have it), one stream with the latency hint (one request at a time, as an ORT
  session runs), and ``threads`` sets ``INFERENCE_NUM_THREADS`` as it sets ORT's intra-op
  threads, so the two compare fairly.

Loading or running failures are one-line ``InputError``s with the runtime's own reason.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import onnx

from ..core.errors import InputError, first_line
from ..core.modelio import fits_in_protobuf, has_external_data, load_model, save_model
from .providers import BACKENDS

Model = onnx.ModelProto | str | os.PathLike


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: ``shape`` has ints for static axes and None or a name for dynamic
    ones; ``type`` is ONNX Runtime's spelling (``tensor(float)``), as ORT's NodeArgs have it."""

    name: str
    shape: tuple[int | str | None, ...]
    type: str

    @property
    def dtype(self) -> np.dtype:
        from .session import numpy_dtype

        return numpy_dtype(self.type)


class Runner(Protocol):
    """A loaded model. ``get_inputs``/``get_outputs`` read like an ORT session's, so the feeds
    (``check.feeds``) work with any backend."""

    backend: ClassVar[str]

    def get_inputs(self) -> list[TensorInfo]: ...

    def get_outputs(self) -> list[TensorInfo]: ...

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


class Backend(Protocol):
    name: ClassVar[str]

    def load(self, model: Model) -> Runner: ...

    def environment(self) -> dict: ...


def run_all(runner: Runner, feeds: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Outputs by name for each feed (what ``check.metrics.compare_outputs`` takes)."""
    names = [o.name for o in runner.get_outputs()]
    return [dict(zip(names, runner.run(feed))) for feed in feeds]


# --- ONNX Runtime ------------------------------------------------------------------------------
class OrtRunner:
    backend: ClassVar[str] = "ort"

    def __init__(self, session: Any):
        self.session = session  # the onnxruntime.InferenceSession (profiling reads it)
        self._inputs = [TensorInfo(i.name, tuple(i.shape), i.type) for i in session.get_inputs()]
        self._outputs = [TensorInfo(o.name, tuple(o.shape), o.type) for o in session.get_outputs()]
        self._names = [o.name for o in self._outputs]

    def get_inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        from .session import run_feed

        return run_feed(self.session, dict(feed), self._names)


@dataclass(frozen=True)
class OrtBackend:
    """ONNX Runtime with an execution provider by short name; ``optimize`` turns ORT's graph
    optimisations on (the stages) or off (comparisons)."""

    provider: str = "cpu"
    threads: int | None = None
    optimize: bool = True
    profile_prefix: str | None = None
    name: ClassVar[str] = "ort"

    def load(self, model: Model) -> OrtRunner:
        from .session import make_session

        return OrtRunner(make_session(model, optimize=self.optimize, provider=self.provider, threads=self.threads,
                                      profile_prefix=self.profile_prefix))

    def environment(self) -> dict:
        from .session import environment

        env = environment(self.provider, self.threads)
        return {"backend": self.name, "runtime": f"onnxruntime {env['onnxruntime']}", **env}


# --- OpenVINO ----------------------------------------------------------------------------------
_BOILERPLATE = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:?|FrontEnd API failed with \w+:?|"
                          r"Model wasn't fully converted\.?|Summary:|Failed operations detailed log:)$")


def openvino_reason(exc: BaseException, limit: int = 300) -> str:
    """OpenVINO's message as one line: without its source locations and frames; for a model
    it could not convert, the operators it names and the first specific reason."""
    lines = [re.sub(r"Exception from \S+:\d+:\s*", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not _BOILERPLATE.match(line)]
    summary = [line[3:] for line in lines if line.startswith("-- ") and not line.endswith("with a message:")]
    details = [line for line in lines if not line.startswith("-- ") and not line.endswith(":")]
    if summary:
        reason = "; ".join(summary) + (f": {details[-1]}" if details else "")
    else:
        reason = details[0] if details else (lines[0] if lines else type(exc).__name__)
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def _check_ir(path: Path) -> None:
    """An IR's root element is ``<net>``. Checked here because OpenVINO, handed any other
    file, tries every frontend it has, and TensorFlow's prints parse errors to stderr."""
    import xml.etree.ElementTree as ET

    try:
        _, root = next(ET.iterparse(path, events=("start",)))
    except (ET.ParseError, StopIteration, OSError) as exc:
        raise InputError(f"{path} is not an OpenVINO IR (not XML: {first_line(exc)})") from None
    if root.tag != "net":
        raise InputError(f"{path} is not an OpenVINO IR (its root element is <{root.tag}>, not <net>)")


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise InputError("the OpenVINO backend needs the openvino package: install cgsurg[openvino] "
                         "(pip install 'cgsurg[openvino]')") from None
    return openvino


_ORT_NAMES = {"float32": "tensor(float)", "float16": "tensor(float16)", "float64": "tensor(double)",
              "uint8": "tensor(uint8)", "int8": "tensor(int8)", "int32": "tensor(int32)", "int64": "tensor(int64)",
              "bool": "tensor(bool)"}


def _port_info(port: Any, names: Sequence[str], index: int, kind: str) -> TensorInfo:
    """A compiled model's port: its ONNX name (a port can carry several names; the one the
    ONNX graph used wins), shape (None for dynamic axes) and type."""
    own = port.get_names()
    name = next((n for n in names if n in own), None) or (sorted(own)[0] if own else f"{kind}{index}")
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    try:
        dtype = np.dtype(port.get_element_type().to_dtype()).name
    except Exception:  # element types numpy lacks (bf16, int4, ...)
        dtype = port.get_element_type().get_type_name()
    return TensorInfo(name, shape, _ORT_NAMES.get(dtype, f"tensor({dtype})"))


class OpenVinoRunner:
    backend: ClassVar[str] = "openvino"

    def __init__(self, compiled: Any, input_names: Sequence[str] = (), output_names: Sequence[str] = ()):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._inputs = [_port_info(p, input_names, i, "input") for i, p in enumerate(compiled.inputs)]
        self._outputs = [_port_info(p, output_names, i, "output") for i, p in enumerate(compiled.outputs)]
        self._input_ports = {info.name: port for info, port in zip(self._inputs, compiled.inputs)}

    def get_inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        unknown = [k for k in feed if k not in self._input_ports]
        if unknown:
            raise InputError(f"OpenVINO failed to run the model: no input named {unknown[0]} "
                             f"(inputs: {', '.join(self._input_ports)})")
        try:
            result = self.request.infer({self._input_ports[k]: np.ascontiguousarray(v) for k, v in feed.items()})
        except Exception as exc:
            raise InputError(f"OpenVINO failed to run the model: {openvino_reason(exc, 400)}") from None
        return [np.asarray(result[port]) for port in self.compiled.outputs]

    def layer_times(self) -> list[tuple[str, str, float]]:
        """(layer, type, milliseconds) of each layer that ran in the last ``run``
        (with ``OpenVinoBackend(profiling=True)``)."""
        return [(p.node_name, p.node_type, p.real_time.total_seconds() * 1000.0)
                for p in self.request.get_profiling_info() if str(p.status).endswith("EXECUTED")]


@dataclass(frozen=True)
class OpenVinoBackend:
    """OpenVINO's runtime on ``device`` (CPU). ``profiling`` turns on per-layer counters
    (``PERF_COUNT``)."""

    threads: int | None = None
    device: str = "CPU"
    profiling: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)  # extra compile properties
    name: ClassVar[str] = "openvino"

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if self.threads is not None:
            if self.threads < 1:
                raise InputError(f"the thread count must be at least 1, got {self.threads}")
            props["INFERENCE_NUM_THREADS"] = self.threads
        if self.profiling:
            props["PERF_COUNT"] = True
        props.update(self.config)
        return props

    def load(self, model: Model) -> OpenVinoRunner:
        props = self.properties()  # option errors before the import
        openvino = import_openvino()
        core = openvino.Core()
        source, names = self._read(core, model)
        try:
            compiled = core.compile_model(source, self.device, props)
        except Exception as exc:
            raise InputError(f"OpenVINO cannot compile {names[2]}: {openvino_reason(exc)}") from None
        return OpenVinoRunner(compiled, names[0], names[1])

    def load_marked(self, model: Model, tensors: Sequence[str]) -> OpenVinoRunner:
        """``model`` with the tensors named ``tensors`` as extra outputs (``Model.add_outputs``:
        an IR's tensors keep the ONNX names); the runner names its outputs by them."""
        props = self.properties()
        core = import_openvino().Core()
        source, names = self._read(core, model)
        try:
            source.add_outputs(list(tensors))
            compiled = core.compile_model(source, self.device, props)
        except Exception as exc:
            raise InputError(f"OpenVINO cannot compile {names[2]} with its tensors marked: "
                             f"{openvino_reason(exc)}") from None
        return OpenVinoRunner(compiled, names[0], [*tensors, *names[1]])

    def _read(self, core: Any, model: Model) -> tuple[Any, tuple[list[str], list[str], str]]:
        """The model read by OpenVINO, with the ONNX input and output names (none for an IR)
        and how to name it in messages."""
        where = "the model"
        try:
            if isinstance(model, onnx.ModelProto):
                names = ([i.name for i in model.graph.input], [o.name for o in model.graph.output], where)
                if fits_in_protobuf(model) and not has_external_data(model):
                    return core.read_model(model.SerializeToString()), names
                with tempfile.TemporaryDirectory() as tmp:  # weights on disk or beyond one protobuf
                    file = save_model(model, Path(tmp) / "model.onnx", external_data=True)
                    return core.read_model(str(file)), names
            path = Path(model)
            where = str(path)
            if path.suffix.lower() == ".xml":  # an OpenVINO IR: the .bin beside it holds the weights
                if not path.is_file():
                    raise InputError(f"no such model file: {path}" if not path.exists() else f"{path} is not a file")
                _check_ir(path)
                if not path.with_suffix(".bin").is_file():
                    raise InputError(f"{path} is an OpenVINO IR without its weights: {path.with_suffix('.bin')} "
                                     "is missing")
                return core.read_model(str(path)), ([], [], where)
            if path.suffix.lower() == ".bin" and path.with_suffix(".xml").is_file():
                raise InputError(f"{path} holds an OpenVINO IR's weights: give its graph, {path.with_suffix('.xml')}")
            proto = load_model(path)  # ONNX: checked as every command checks it, one-line errors
            names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output], where)
            return core.read_model(str(path)), names
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"OpenVINO cannot read {where}: {openvino_reason(exc)}") from None

    def environment(self) -> dict:
        from .session import environment

        version = import_openvino().__version__.split("-")[0]
        env = {k: v for k, v in environment("cpu", self.threads).items() if k != "onnxruntime"}
        return {"backend": self.name, "runtime": f"openvino {version}", **env, "openvino": version,
                "provider": f"OpenVINO {self.device}"}


def backend_for(name: str, *, provider: str = "cpu", threads: int | None = None, optimize: bool = True) -> Backend:
    """A backend by name (``ort`` or ``openvino``); ``provider`` is ONNX Runtime's."""
    key = name.lower()
    if key not in BACKENDS:
        raise InputError(f"unknown backend '{name}': expected one of {', '.join(BACKENDS)}")
    if key == "openvino":
        if provider.lower() != "cpu":
            raise InputError(f"provider '{provider}' is ONNX Runtime's; the openvino backend runs on OpenVINO's "
                             "CPU device")
        return OpenVinoBackend(threads=threads)
    return OrtBackend(provider=provider, threads=threads, optimize=optimize)
