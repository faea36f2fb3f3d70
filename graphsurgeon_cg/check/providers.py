"""ONNX Runtime execution providers by short name, and the backends (no onnxruntime import: the
CLI lists them)."""

BACKENDS = ("ort", "openvino")  # check.backends: ONNX Runtime, OpenVINO's runtime

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
