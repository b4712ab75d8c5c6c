"""Channel-shuffle lowerings for the NHWC TFLite graph: each replaces every ``SHUFFLE`` pseudo-op.

All of them keep every op delegable to XNNPACK (RESHAPE, TRANSPOSE, SPLIT, CONCATENATION only):

- ``reshape``: RESHAPE (N,H,W,g,C/g) -> TRANSPOSE [0,1,2,4,3] -> RESHAPE (N,H,W,C), the direct NHWC form.
- ``fused``: as ``reshape``, but when the shuffled tensor's only reader is an even SPLIT on channels, the
  split happens on the transposed 5-D tensor and the full shuffled tensor is never materialised.
- ``roundtrip``: TRANSPOSE to NCHW, the NCHW reshape/transpose/reshape, TRANSPOSE back: three big-block
  transposes, which XNNPACK runs faster than one 5-D transpose of two small inner axes.
- ``floor`` (benchmarks only, NOT the same function): the shuffle deleted.
"""

from __future__ import annotations

from edgekit.export.tflite.ir import Graph, Op

TFLITE_SHUFFLE_LOWERINGS = ("fused", "reshape", "roundtrip")


def lower_shuffles(graph: Graph, lowering: str) -> int:
    """Replace every SHUFFLE op in place; returns how many were lowered. Raises ValueError for a bad name."""
    lowerers = {"reshape": _reshape_form, "fused": _fused_form, "roundtrip": _roundtrip_form, "floor": _floor}
    if lowering not in lowerers:
        raise ValueError(f"unknown shuffle lowering {lowering!r}; choose one of {', '.join(lowerers)}")
    count = 0
    new_ops: list[Op] = []
    consumers = graph.consumers()
    dropped: set[int] = set()
    for op in graph.ops:
        if id(op) in dropped:
            continue
        if op.kind != "SHUFFLE":
            new_ops.append(op)
            continue
        count += 1
        new_ops.extend(lowerers[lowering](graph, op, consumers, dropped))
    graph.ops = [op for op in new_ops if id(op) not in dropped]
    graph.remove_unused()
    return count


def _shape5(graph: Graph, x: str, groups: int):
    n, h, w, c = graph.shape(x)
    return n, h, w, c, groups, c // groups


def _reshape(graph: Graph, x: str, shape, name: str, src: str) -> tuple[str, Op]:
    out = graph.add_tensor(name, shape)
    return out, Op("RESHAPE", [x, graph.int32_constant(name + "_shape", shape)], [out], {"new_shape": tuple(shape)},
                   src)


def _transpose(graph: Graph, x: str, perm, shape, name: str, src: str) -> tuple[str, Op]:
    out = graph.add_tensor(name, shape)
    return out, Op("TRANSPOSE", [x, graph.int32_constant(name + "_perm", perm)], [out], {}, src)


def _reshape_form(graph: Graph, op: Op, consumers, dropped) -> list[Op]:
    x, (y,) = op.inputs[0], op.outputs
    n, h, w, c, g, cg = _shape5(graph, x, op.options["groups"])
    a, r1 = _reshape(graph, x, (n, h, w, g, cg), y + "_grouped", op.name)
    b, t = _transpose(graph, a, (0, 1, 2, 4, 3), (n, h, w, cg, g), y + "_swapped", op.name)
    r2 = Op("RESHAPE", [b, graph.int32_constant(y + "_shape", (n, h, w, c))], [y], {"new_shape": (n, h, w, c)},
            op.name)
    return [r1, t, r2]


def _fused_form(graph: Graph, op: Op, consumers, dropped) -> list[Op]:
    x, (y,) = op.inputs[0], op.outputs
    readers = consumers.get(y, [])
    n, h, w, c, g, cg = _shape5(graph, x, op.options["groups"])
    split = readers[0] if len(readers) == 1 and y not in graph.outputs else None
    if split is None or split.kind != "SPLIT" or split.inputs[1] != y:
        return _reshape_form(graph, op, consumers, dropped)
    axis = int(graph.tensors[split.inputs[0]].data.reshape(-1)[0])
    pieces = split.options["num_splits"]
    if axis != 3 or cg % pieces:
        return _reshape_form(graph, op, consumers, dropped)
    a, r1 = _reshape(graph, x, (n, h, w, g, cg), y + "_grouped", op.name)
    b, t = _transpose(graph, a, (0, 1, 2, 4, 3), (n, h, w, cg, g), y + "_swapped", op.name)
    piece_shape = (n, h, w, cg // pieces, g)
    parts = [graph.add_tensor(f"{out}_5d", piece_shape) for out in split.outputs]
    s = Op("SPLIT", [graph.int32_constant(y + "_split_axis", 3), b], parts, {"num_splits": pieces}, op.name)
    reshapes = [
        Op("RESHAPE", [p, graph.int32_constant(out + "_shape", (n, h, w, c // pieces))], [out],
           {"new_shape": (n, h, w, c // pieces)}, op.name)
        for p, out in zip(parts, split.outputs, strict=True)
    ]
    dropped.add(id(split))
    return [r1, t, s, *reshapes]


def _roundtrip_form(graph: Graph, op: Op, consumers, dropped) -> list[Op]:
    x, (y,) = op.inputs[0], op.outputs
    n, h, w, c, g, cg = _shape5(graph, x, op.options["groups"])
    a, t1 = _transpose(graph, x, (0, 3, 1, 2), (n, c, h, w), y + "_nchw", op.name)
    b, r1 = _reshape(graph, a, (n, g, cg, h * w), y + "_grouped", op.name)
    d, t2 = _transpose(graph, b, (0, 2, 1, 3), (n, cg, g, h * w), y + "_swapped", op.name)
    e, r2 = _reshape(graph, d, (n, c, h, w), y + "_shuffled_nchw", op.name)
    t3 = Op("TRANSPOSE", [e, graph.int32_constant(y + "_to_nhwc", (0, 2, 3, 1))], [y], {}, op.name)
    return [t1, r1, t2, r2, t3]


def _floor(graph: Graph, op: Op, consumers, dropped) -> list[Op]:
    graph.replace_uses(op.outputs[0], op.inputs[0])
    return []
