"""Layer 3: the vendor flow's stages on ONNX Runtime: prep, infer, eval, bench, profile, and
the info-file dataset. Depend on ``core`` and ``check``."""
