"""ONNX Runtime sessions for the stages (infer, eval, bench, profile) and the machine they ran on.

Execution providers by short name; one that this onnxruntime build lacks is a clear error,
not a silent fall-back to the CPU.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .errors import InputError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}

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


def open_session(model_path, provider: str = "cpu", threads: int | None = None, profile_prefix: str | None = None,
                 optimize: bool = True) -> ort.InferenceSession:
    """A session as deployment would run it: all graph optimisations on unless ``optimize`` is off."""
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
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
    path = os.fspath(model_path)
    if not os.path.isfile(path):
        raise InputError(f"no such model file: {path}" if not os.path.exists(path) else f"{path} is not a file")
    try:
        return ort.InferenceSession(path, opts, providers=providers)
    except Exception as exc:
        raise InputError(f"ONNX Runtime cannot load {path}: {str(exc).strip().splitlines()[0][:300]}") from None


@dataclass
class ImageInput:
    """The single image input of a generator: name, dtype, static batch (or None), CHW shape."""

    name: str
    dtype: np.dtype
    static_batch: int | None
    sample_shape: tuple

    @staticmethod
    def of(session: ort.InferenceSession) -> "ImageInput":
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise InputError(f"the model has {len(inputs)} inputs; the stages need a single image input")
        inp = inputs[0]
        shape = list(inp.shape)
        if len(shape) < 1 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
            raise InputError(f"input '{inp.name}' has shape {shape}: only the batch axis may be dynamic "
                             "(use 'cgsurg apply' with static dims or re-export with --size)")
        batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        return ImageInput(inp.name, numpy_dtype(inp.type), batch, tuple(shape[1:]))

    def random_batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        shape = (batch, *self.sample_shape)
        if self.dtype == np.uint8:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        return rng.uniform(-1, 1, shape).astype(self.dtype)


def environment(provider: str, threads: int | None) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"onnxruntime": ort.__version__, "provider": PROVIDERS[provider.lower()], "threads": threads or "default",
            "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
