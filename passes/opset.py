"""opset: convert the model to another opset of the default domain. Exact, and verified.

``opset(version=N)`` converts to N; ``opset(min=L,max=H)`` (either bound alone too) converts
only a model outside [L, H], to the nearer bound, and is a no-op (0 rewrites) inside: what
the target presets use. Going down, where the converter has no adapter, raises on the way, or
gives a model the checker or ONNX Runtime rejects, cgsurg lowers each node itself
(``opset_down``, adapters in ``opset_adapters``), refusing what it cannot keep exact.

Uses ``onnx.version_converter``, which rewrites each node whose operator changed between the
versions (e.g. Pad attributes -> inputs at 11, Resize operands at 13). Compilers accept a
fixed range of opsets (Ascend ATC: 11). What the converter gets wrong is fixed:

- Resize-10 and Upsample (< 11) map output to input coordinates as ``x / scale`` and, in
  ``nearest`` mode, round down when enlarging and up when shrinking (ONNX Runtime's reading
  of opset 10, per axis). Resize-11 added ``coordinate_transformation_mode`` and
  ``nearest_mode`` with other defaults (``half_pixel``, ``round_prefer_floor``), which the
  converter leaves unset: the pass sets ``asymmetric`` and ``floor`` (``ceil`` when every
  scale shrinks) on each Resize it upgrades. Scales that enlarge one axis and shrink another
  in nearest mode have no opset-11 equivalent: the pass refuses and says so (exit 2).
- A Pad before opset 11 in ``reflect`` or ``edge`` mode may carry a ``value`` attribute that
  means nothing there; the converter turns it into an operand those modes reject, so it is
  dropped first. The ``constant_value`` operand the converter makes is always float32: on
  float16 or float64 data it is given the data's type.
- A Resize-11 given ``sizes`` carries an empty ``scales`` operand; from opset 13 the operand
  is optional and ONNX Runtime refuses both unless it can see scales is an empty constant (an
  empty initializer listed as an input is overridable, so it cannot): the empty operand goes.

Then the converted model is run against the original in ONNX Runtime on seeded random inputs
(graph optimisations off): outputs that move by more than an exact pass allows (1e-5) fail
the pass, naming the output. Where the inputs cannot be made up (dynamic axes other than
the batch, types ORT cannot feed) or ORT cannot run the original, the reasons say that the
check was skipped. A conversion the converter's adapters cannot do (no Pad adapter below
18, Resize ``axes`` below 18, ...) is refused with the converter's reason (exit 2); any other
converter error fails the pass with its message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import InputError, Option, Pass, PassContext, PassFailed, PassResult, between, register_pass
from graphsurgeon_cg.core.bounds import EXACT_MAX_ABS
from graphsurgeon_cg.core.modelio import all_graphs, constant_values, default_opset, weightless

from .opset_adapters import ADAPTERS
from .opset_down import Refused, lower

OPSET_11 = 11  # Resize got coordinate_transformation_mode and nearest_mode, Pad its operands
OPSET_13 = 13  # Resize's scales became optional (sizes alone)


@register_pass
class Opset(Pass):
    name = "opset"
    summary = "Convert to opset N, or into a range [min, max] (exact, verified in ONNX Runtime)"
    exact = True
    reports_modified = True
    version = Option(int, 17, "the target opset of the default domain",
                     check=between(7, onnx.defs.onnx_opset_version()))
    min = Option(int, 0, "with max or alone, instead of version: raise a model below this opset to it "
                         "(0: no lower bound)", check=between(0, onnx.defs.onnx_opset_version()))
    max = Option(int, 0, "with min or alone, instead of version: lower a model above this opset to it "
                         "(0: no upper bound)", check=between(0, onnx.defs.onnx_opset_version()))

    def needs_shapes(self, graph: gs.Graph) -> bool:
        # The converter types the model itself; types lent from before the conversion would go
        # stale in it (a Dropout mask is float at opset 9, bool from 10).
        return False

    def __init__(self, **values):
        super().__init__(**values)
        ranged = bool(self.min or self.max)
        if ranged and "version" in values:
            raise InputError(f"{self.name}: give version=N or min/max, not both")
        if ranged and self.min and self.max and self.min > self.max:
            raise InputError(f"{self.name}: min={self.min} is above max={self.max}")
        if ranged and 0 < (self.max or self.min) < 7:
            raise InputError(f"{self.name}: opsets below 7 cannot be converted to")

    def wanted(self, current: int) -> int:
        """The opset this pass converts a model at ``current`` to."""
        if not (self.min or self.max):
            return self.version
        if self.min and current < self.min:
            return self.min
        return self.max if self.max and current > self.max else current

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        version = self.wanted(graph.opset)
        if graph.opset == version:
            where = (f"already at opset {version}" if not (self.min or self.max) else
                     f"at opset {version}, within {self.min or 'any'}-{self.max or 'any'}")
            return PassResult(0, [f"the model is {where}"], modified=False)
        original = gs.export_onnx(graph)
        if original.ir_version < 4:  # IR 3 wants every initializer listed as an input (the converter does)
            listed = {i.name for i in original.graph.input}
            original.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                                        for t in original.graph.initializer if t.name not in listed)
        converted = convert_opset(original, version, self)
        try:
            reasons = self._verify(original, converted, ctx)
        except PassFailed:
            if version > graph.opset:
                raise
            # a downward adapter of the converter that changed the numbers (Softmax 13 -> 11 on another
            # axis than the last): cgsurg's own lowering, which refuses what it cannot keep
            converted = convert_opset(original, version, self, converter=False)
            reasons = self._verify(original, converted, ctx)
        return PassResult(1, reasons, graph=gs.import_onnx(converted))

    def _verify(self, original: onnx.ModelProto, converted: onnx.ModelProto, ctx: PassContext) -> list[str]:
        """Run both models on the same seeded random inputs (the run's services); fail the pass
        if they differ by more than an exact pass may."""
        if ctx.services is None:
            return ["converted without a numeric check: the pass manager was given no runtime (services)"]
        try:
            why = ctx.services.differs(original, converted, EXACT_MAX_ABS)
        except InputError as exc:
            return [f"converted without a numeric check: {exc}"]
        if why is not None:
            allowed = f" (an exact pass allows {EXACT_MAX_ABS:g})" if "by up to" in why else ""
            raise PassFailed(self.name, f"the conversion changed {why}{allowed}")
        return []


def convert_opset(model: onnx.ModelProto, version: int, owner: Pass, converter: bool = True) -> onnx.ModelProto:
    """``onnx.version_converter.convert_version`` with what it gets wrong fixed (Resize semantics,
    dead Pad values, Pad value types; see the module docstring). ``model`` itself is left unchanged. int8 uses it
    too, for its upgrade to opset 13."""
    if any(_dead_pad_value(node) is not None for node in _nodes(model.graph)):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for node in _nodes(copy.graph):
            dead = _dead_pad_value(node)
            if dead is not None:
                node.attribute.remove(dead)
        model = copy
    crossing = default_opset(model) < OPSET_11 <= version
    attribute_pads = crossing and any(n.op_type == "Pad" for n in _nodes(model.graph))
    types = _element_types(model) if attribute_pads else {}
    converted = _convert_version(model, version, owner) if converter or version > default_opset(model) else \
        _lower(model, default_opset(model), version, owner)
    if default_opset(model) < OPSET_13 <= version:
        _drop_empty_scales_beside_sizes(converted.graph)
    if crossing:
        _keep_opset10_resize(converted.graph, version, owner)
        _match_pad_value_types(converted.graph, types)
    return converted


def _convert_version(model: onnx.ModelProto, version: int, owner: Pass) -> onnx.ModelProto:
    """``onnx.version_converter``; going down where it lacks an adapter, cgsurg's own lowering
    (``opset_down``). A conversion neither can do is refused naming the operator."""
    source = default_opset(model)
    try:
        converted = onnx.version_converter.convert_version(model, version)
        if version < source:  # its downward adapters can leave what the target lacks (ReduceMax-18's noop attribute)
            try:
                onnx.checker.check_model(weightless(converted), full_check=True)
            except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
                return _lower(model, source, version, owner)
        return converted
    except RuntimeError as exc:  # the converter's adapters assert what they cannot do
        found = re.search(r"version_converter.*?Assertion `.*?` failed: (.+)", str(exc))
        if found is None:
            raise
        reason = found[1].strip().splitlines()[0]
        adapter = re.fullmatch(r"No Adapter (To|From) Version \$?(\d+) for (\w+)", reason)
        if adapter:
            reason = f"it has no adapter {adapter[1].lower()} version {adapter[2]} of {adapter[3]}"
        if version < source:
            return _lower(model, source, version, owner)
    raise owner.refuse(f"onnx.version_converter cannot take this model from opset {source} to {version}: {reason}")


def _lower(model: onnx.ModelProto, source: int, version: int, owner: Pass) -> onnx.ModelProto:
    try:
        return lower(model, source, version, ADAPTERS)
    except Refused as refused:
        raise owner.refuse(f"cannot take this model from opset {source} to {version}: {refused}") from None


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can type, subgraphs included."""
    inferred = onnx.shape_inference.infer_shapes(weightless(model))
    found = {t.name: t.data_type for g in all_graphs(inferred.graph) for t in g.initializer}
    found.update((v.name, v.type.tensor_type.elem_type) for g in all_graphs(inferred.graph)
                 for v in [*g.input, *g.value_info, *g.output] if v.type.HasField("tensor_type"))
    return found


def _match_pad_value_types(graph: onnx.GraphProto, types: dict[str, int]) -> None:
    """Give the converter's float32 ``constant_value`` of each Pad the type of its data."""
    for g in all_graphs(graph):
        constants = {n.output[0]: n for n in g.node
                     if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
        for node in g.node:
            if node.op_type != "Pad" or len(node.input) < 3 or node.input[2] not in constants:
                continue
            want = types.get(node.input[0])
            tensor = constants[node.input[2]].attribute[0].t
            if want and tensor.data_type != want:
                value = onnx.numpy_helper.to_array(tensor).astype(onnx.helper.tensor_dtype_to_np_dtype(want))
                tensor.CopyFrom(onnx.numpy_helper.from_array(value, tensor.name))


def _drop_empty_scales_beside_sizes(graph: onnx.GraphProto) -> None:
    """Resize-11 takes ``sizes`` with an empty ``scales``; from 13 on, ``scales`` is optional and
    ONNX Runtime refuses to load a Resize given both unless it can see that scales is an empty
    constant (an empty initializer listed as a graph input is overridable, so it cannot). The
    converter keeps the empty operand: leave it out."""
    for g in all_graphs(graph):
        empty = {t.name for t in g.initializer if 0 in t.dims}
        empty |= {v.name for v in g.input if v.type.tensor_type.HasField("shape") and
                  [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim] == [0]}
        for node in g.node:
            if node.op_type == "Resize" and node.domain in ("", "ai.onnx") and len(node.input) > 3 and \
                    node.input[3] and node.input[2] in empty:
                node.input[2] = ""


def _keep_opset10_resize(graph: onnx.GraphProto, version: int, owner: Pass) -> None:
    """Give every upgraded Resize (one without a coordinate mode) the opset-10 semantics."""
    constants = constant_values(graph)
    for node in _nodes(graph):
        names = {a.name for a in node.attribute}
        if node.op_type != "Resize" or node.domain not in ("", "ai.onnx") or "coordinate_transformation_mode" in names:
            continue
        node.attribute.append(onnx.helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"nearest")
        if mode != b"nearest" or "nearest_mode" in names:
            continue
        scales = constants.get(node.input[2]) if len(node.input) > 2 else None
        if scales is None:  # computed scales: opset-10 models enlarge (and the opset pass verifies)
            scales = np.ones(1, np.float32)
        shrink = bool((scales < 1).any())
        if shrink and bool((scales > 1).any()):
            raise owner.refuse(f"the Resize producing '{node.output[0]}' (nearest, scales "
                               f"{[round(float(v), 6) for v in scales]}) rounds down on the enlarged axes and up on "
                               f"the shrunk ones in opset 10, which opset {version} cannot express")
        node.attribute.append(onnx.helper.make_attribute("nearest_mode", "ceil" if shrink else "floor"))


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for g in all_graphs(graph):
        yield from g.node


def _dead_pad_value(node: onnx.NodeProto) -> onnx.AttributeProto | None:
    """The ``value`` attribute of an attribute-style Pad in reflect/edge mode, where it means nothing."""
    if node.op_type != "Pad":
        return None
    attrs = {a.name: a for a in node.attribute}
    mode = attrs["mode"].s if "mode" in attrs else b"constant"
    return attrs["value"] if "pads" in attrs and "value" in attrs and mode != b"constant" else None
