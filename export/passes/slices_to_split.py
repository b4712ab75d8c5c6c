"""Pass: turn sibling Slices that tile a tensor along one axis into a single Split.

``torch.chunk`` exports as one Slice per piece; one Split reads the input once and says what it does.
"""

from __future__ import annotations

import onnx

from .graph_utils import (
    MIN_OPSET_FOR_INPUT_SIZES,
    GraphIndex,
    NameAllocator,
    Rewrite,
    apply_rewrites,
    default_opset,
    ensure_node_names,
    split_node,
)
from .recognize_split import slice_range, tiling_slices
from .result import PassResult

NAME = "slices_to_split"


def slices_to_split(model: onnx.ModelProto) -> PassResult:
    """Replace each set of step-1 Slices that cut one tensor into contiguous pieces covering a whole axis
    (each piece exactly once, at least two pieces) with one Split whose outputs keep the Slices' names.

    Other readers of the tensor are unaffected. Returns a PassResult with a new model; on opset < 13
    models it changes nothing."""
    model = ensure_node_names(model)
    if default_opset(model) < MIN_OPSET_FOR_INPUT_SIZES:
        return PassResult(NAME, model, 0, [])
    index = GraphIndex(model)
    names = NameAllocator(model)
    groups: dict[tuple[str, int], list[onnx.NodeProto]] = {}
    for node in index.nodes:
        rng = slice_range(index, node) if node.op_type == "Slice" else None
        if rng is not None:
            groups.setdefault((node.input[0], rng[0]), []).append(node)
    rewrites = []
    for (tensor, axis), slices in groups.items():
        tiles = tiling_slices(index, slices, index.shape(tensor)[axis]) if len(slices) > 1 else None
        if tiles is None:
            continue
        sizes = [end - start for _, start, end in tiles]
        base = tiles[0][0].name
        nodes, inits = split_node(model, names, base, tensor, axis, sizes, [n.output[0] for n, _, _ in tiles])
        detail = f"{', '.join(n.name for n, _, _ in tiles)} -> Split(axis={axis}, {sizes})"
        rewrites.append(Rewrite([n.name for n, _, _ in tiles], nodes, inits, detail))
    if not rewrites:
        return PassResult(NAME, model, 0, [])
    return PassResult(NAME, apply_rewrites(model, rewrites), len(rewrites), [r.detail for r in rewrites])
