"""Pass: an equal Split whose pieces are each reshaped alike is done after one Reshape of the whole tensor.

Attention written as ``q, k, v = qkv(x).chunk(3, -1)`` then ``t.reshape(b, n, heads, d)`` per piece splits the
channel axis before it is cut into heads. Each piece then needs its own TRANSPOSE to put the heads in front
of the tokens. Reshaping the qkv tensor to (b, n, 3, heads, d) first and splitting that keeps the three
pieces in one tensor, which the lowering transposes once (``layout_demand``). The original per-piece
Reshapes stay and only drop the split axis.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.export.passes.graph_utils import default_opset, static_shapes
from edgekit.export.passes.result import PassResult

NAME = "reshape_before_split"


def _split_axis_factors(piece_shape, reshaped, axis: int) -> tuple[int, ...] | None:
    """The factors that ``reshaped`` cuts axis ``axis`` of ``piece_shape`` into, the other axes unchanged."""
    head, tail = tuple(piece_shape[:axis]), tuple(piece_shape[axis + 1:])
    reshaped = tuple(reshaped)
    if len(reshaped) <= len(head) + len(tail) or reshaped[:len(head)] != head or (
            tail and reshaped[len(reshaped) - len(tail):] != tail):
        return None
    factors = reshaped[len(head):len(reshaped) - len(tail)]
    return factors if int(np.prod(factors)) == piece_shape[axis] and len(factors) > 1 else None


def reshape_before_split(model: onnx.ModelProto) -> PassResult:
    """Rewrite every equal Split whose pieces are each read only by a Reshape cutting the split axis into the
    same factors (module doc). Returns a PassResult with a new model; the input is not modified."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if default_opset(out) < 13:  # Split's sizes became an input in opset 13
        return PassResult(NAME, out)
    graph = out.graph
    shapes = static_shapes(out)
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    details = []
    for split in [n for n in graph.node if n.op_type == "Split"]:
        x = split.input[0]
        if x not in shapes or any(p not in shapes or p in outputs or len(readers.get(p, [])) != 1
                                  for p in split.output):
            continue
        rank = len(shapes[x])
        axis = next((int(helper.get_attribute_value(a)) for a in split.attribute if a.name == "axis"), 0) % rank
        pieces = [shapes[p] for p in split.output]
        if len(set(pieces)) != 1:
            continue
        reshapes = [readers[p][0] for p in split.output]
        if any(r.op_type != "Reshape" or r.input[0] != p or r.output[0] not in shapes
               for r, p in zip(reshapes, split.output, strict=True)):
            continue
        factors = {_split_axis_factors(pieces[0], shapes[r.output[0]], axis) for r in reshapes}
        if len(factors) != 1 or None in factors:
            continue
        (cut,) = factors
        n = len(split.output)
        whole = tuple(shapes[x][:axis]) + (n, *cut) + tuple(shapes[x][axis + 1:])
        base = split.output[0]
        whole_name = base + "_whole"
        graph.initializer.append(numpy_helper.from_array(np.array(whole, np.int64), whole_name + "_shape"))
        reshape = helper.make_node("Reshape", [x, whole_name + "_shape"], [whole_name],
                                   name=(split.name or base) + "_whole")
        new_outputs = [p + "_piece" for p in split.output]
        sizes = base + "_piece_sizes"
        graph.initializer.append(numpy_helper.from_array(np.ones(n, np.int64), sizes))
        new_split = helper.make_node("Split", [whole_name, sizes], new_outputs, axis=axis,
                                     name=(split.name or base) + "_pieces")
        for r, q in zip(reshapes, new_outputs, strict=True):
            r.input[0] = q
        index = list(graph.node).index(split)
        graph.node.remove(split)
        graph.node.insert(index, new_split)
        graph.node.insert(index, reshape)
        details.append(f"{split.name or base}: reshape to {list(whole)} before splitting axis {axis}")
    return PassResult(NAME, out, len(details), details)
