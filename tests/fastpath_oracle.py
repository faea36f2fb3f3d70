"""The oracle of the protobuf fast path (``core.fastpath``): a pipeline run on both paths must
write the same model, with the same records, or fail with the same error. Shared by
``tests/test_fastpath.py`` and ``benchmarks/fastpath_agreement.py`` (the long campaign)."""

from __future__ import annotations

import onnx

import graphsurgeon_cg.core.manager as manager_module
from graphsurgeon_cg import CgsurgError, PassManager
from graphsurgeon_cg.core import fastpath


def both_paths(model: onnx.ModelProto, spec: str) -> tuple:
    """(fast outcome, gs outcome, whether the fast path was taken, whether it changed the
    caller's model); an outcome is the result or the error. The gs path is chosen by turning
    the fast path off for its run."""
    taken: list[bool] = []

    def spy(*args):
        taken.append(fastpath.run_fast(*args))
        return taken[-1]

    outcomes: list = []
    mutated = False
    original = model.SerializeToString()
    chosen = manager_module.run_fast
    try:
        for chooser in (spy, lambda *a: False):
            manager_module.run_fast = chooser
            copy = onnx.ModelProto()  # a fresh copy each: the gs path's folding edits the caller's nodes
            copy.ParseFromString(original)
            try:
                outcomes.append(PassManager(spec).run(copy))
            except CgsurgError as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
            if chooser is spy and taken and taken[0]:
                mutated = copy.SerializeToString() != original
    finally:
        manager_module.run_fast = chosen
    return outcomes[0], outcomes[1], bool(taken and taken[0]), mutated


def assert_same(fast, slow, feeds: list[dict] | None = None) -> None:
    """Raise AssertionError (saying what differs) unless the outcomes are the same; ``feeds``:
    inputs to compare the outputs on where the bytes differ (default: one random sample, every
    dynamic dimension 1)."""
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    if fast.model.SerializeToString() != slow.model.SerializeToString():
        # onnx-graphsurgeon re-exports every attribute (a tensor attribute gets name ""
        # written out): the fields must still be equal, and ORT's outputs bit-identical.
        assert canonical(fast.model) == canonical(slow.model), "the models differ"
        assert_same_outputs(fast.model, slow.model, feeds)
    for a, b in zip(fast.records, slow.records, strict=True):
        keep = {k: v for k, v in a.__dict__.items() if not k.endswith("seconds")}
        other = {k: v for k, v in b.__dict__.items() if not k.endswith("seconds")}
        assert keep == other, f"the records of {a.name} differ"


def canonical(model: onnx.ModelProto) -> tuple:
    from onnx import numpy_helper

    def value(attr: onnx.AttributeProto):
        v = onnx.helper.get_attribute_value(attr)
        return numpy_helper.to_array(v).tolist() if isinstance(v, onnx.TensorProto) else v

    g = model.graph
    nodes = [(n.op_type, n.name, n.domain, list(n.input), list(n.output), n.doc_string,
              [(a.name, value(a)) for a in n.attribute]) for n in g.node]
    inits = [(t.name, t.data_type, list(t.dims), numpy_helper.to_array(t).tobytes()) for t in g.initializer]
    infos = [i.SerializeToString() for i in [*g.input, *g.output, *g.value_info]]
    return nodes, inits, infos, [o.SerializeToString() for o in model.opset_import], model.ir_version


def assert_same_outputs(a: onnx.ModelProto, b: onnx.ModelProto, feeds: list[dict] | None = None) -> None:
    import numpy as np
    import onnxruntime as ort

    if feeds is None:
        rng = np.random.default_rng(0)
        feed = {}
        for info in a.graph.input:
            tt = info.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
            feed[info.name] = rng.standard_normal(dims).astype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        feeds = [feed]
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (a, b)]
    for feed in feeds:
        outs = [session.run(None, feed) for session in sessions]
        for x, y in zip(*outs, strict=True):
            assert np.array_equal(x, y, equal_nan=True), "the outputs differ"
