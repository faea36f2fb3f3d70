"""pad-conv-fusion: fold a zero constant Pad into the Conv that consumes it. Exact.

The vendor guide's "PadV3D fusion": one node fewer, and the compiler pads inside the
convolution instead of materialising a padded copy of the feature map. Matches a Pad with
mode constant and value 0, constant non-negative pads on spatial axes only (batch and channel
unpadded), whose output feeds exactly one node, a Conv with ``auto_pad`` NOTSET, as its data
input. Conv ``pads`` are [x1_begin, x2_begin, ..., x1_end, x2_end]: the Pad's spatial pads are
added to them. The same zeros enter the same sums, so the result is exact.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs
from onnx import helper

from graphsurgeon_cg import Match, NodeRewritePass, NoMatch, PassContext, PassResult, Shapes, register_pass
from graphsurgeon_cg.core.graphutil import PadInfo, any_pad, present, read_pad
from graphsurgeon_cg.core.protograph import ProtoGraph, attribute
from graphsurgeon_cg.core.protograph import present as proto_present
from graphsurgeon_cg.core.protorules import run_rule


@register_pass
class PadConvFusion(NodeRewritePass):
    name = "pad-conv-fusion"
    summary = "Fold a zero constant Pad on spatial axes into the following Conv's pads (exact)"
    exact = True
    op_types = ("Pad",)
    nothing_found = "no Pad"
    preserves = (Shapes,)  # the Conv reads the Pad's input: no other tensor changes

    def needs_shapes(self, graph: gs.Graph) -> bool:  # the rank, to place opset-18 axes
        return any_pad(graph, lambda n: present(n, 3) is not None and n.inputs[0].shape is None)

    def match(self, node: gs.Node, ctx: PassContext) -> Match | NoMatch:
        pad = read_pad(node)
        refused = _refusal(pad)
        if refused:
            return refused
        out = node.outputs[0]
        if any(out is t for t in ctx.graph.outputs):
            return NoMatch("the padded tensor is a graph output")
        if len(out.outputs) != 1 or out.outputs[0].op != "Conv":
            return NoMatch("the Pad does not feed exactly one Conv")
        conv = out.outputs[0]
        if conv.inputs[0] is not out:
            return NoMatch("the Pad feeds the Conv's weights, not its data")
        auto_pad = conv.attrs.get("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", b"NOTSET"):
            return NoMatch(f"the Conv has auto_pad {auto_pad}")
        return Match(node, pad)

    def rewrite(self, match: Match, ctx: PassContext) -> None:
        node, pad = match.node, match.info
        assert isinstance(pad, PadInfo) and pad.rank is not None and pad.pads is not None
        conv = node.outputs[0].outputs[0]
        rank = pad.rank
        spatial = rank - 2
        conv_pads = list(conv.attrs.get("pads", [0] * (2 * spatial)))
        for i in range(spatial):
            conv_pads[i] += int(pad.pads[2 + i])
            conv_pads[spatial + i] += int(pad.pads[rank + 2 + i])
        conv.attrs["pads"] = conv_pads
        conv.inputs[0] = node.inputs[0]
        node.outputs.clear()
        ctx.mark(conv)

    # The same rule on the protobuf (core.fastpath), step for step.
    def needs_shapes_proto(self, graph: ProtoGraph) -> bool:
        return any(n.op_type == "Pad" and n.input and proto_present(n, 3) is not None and
                   graph.shape(n.input[0]) is None for n in graph.nodes)

    def run_proto(self, graph: ProtoGraph) -> PassResult:
        def match(node) -> Match | NoMatch:
            pad = graph.read_pad(node)
            refused = _refusal(pad)
            if refused:
                return refused
            out = node.output[0]
            if out in graph.outputs:
                return NoMatch("the padded tensor is a graph output")
            users = graph.users(out)
            if len(users) != 1 or users[0].op_type != "Conv":
                return NoMatch("the Pad does not feed exactly one Conv")
            if users[0].input[0] != out:
                return NoMatch("the Pad feeds the Conv's weights, not its data")
            auto_pad = attribute(users[0], "auto_pad", "NOTSET")
            if auto_pad != "NOTSET":
                return NoMatch(f"the Conv has auto_pad {auto_pad}")
            return Match(node, pad)

        def rewrite(found: Match) -> None:
            node, pad = found.node, found.info
            conv = graph.writable(graph.users(node.output[0])[0])
            rank = pad.rank
            spatial = rank - 2
            conv_pads = list(attribute(conv, "pads", [0] * (2 * spatial)))
            for i in range(spatial):
                conv_pads[i] += int(pad.pads[2 + i])
                conv_pads[spatial + i] += int(pad.pads[rank + 2 + i])
            existing = [a for a in conv.attribute if a.name == "pads"]
            if existing:
                del existing[0].ints[:]
                existing[0].ints.extend(conv_pads)
            else:
                conv.attribute.append(helper.make_attribute("pads", conv_pads))
            graph.set_input(conv, 0, node.input[0])
            graph.clear_outputs(node)
            graph.mark(conv)

        return run_rule(graph, self.op_types, self.nothing_found, match, rewrite)


def _refusal(pad: PadInfo) -> NoMatch | None:
    if pad.mode != "constant":
        return NoMatch(f"mode is {pad.mode}, not constant")
    if pad.reason or pad.pads is None:
        return NoMatch(pad.reason or "the pads cannot be read")
    if pad.value != 0.0:
        return NoMatch(f"pad value is {pad.value:g}, not 0")
    rank = pad.rank
    if rank is None or rank < 3 or len(pad.pads) != 2 * rank:
        return NoMatch("the input rank is unknown or has no spatial axes")
    if pad.pads[[0, 1, rank, rank + 1]].any():
        return NoMatch("batch or channel axes are padded")
    if (pad.pads < 0).any():
        return NoMatch("negative pads (cropping)")
    return None
