"""Which layouts the readers of an ONNX tensor can use without a TRANSPOSE: a look ahead for the lowering.

An attention block splits one qkv tensor into q, k and v, and each BATCH_MATMUL wants its operand with the
heads in front. Transposing each piece costs three TRANSPOSEs; transposing the qkv tensor once, before the
split, costs one. ``wanted_orders`` follows a tensor's single-reader chain through layout-only ops (Transpose,
Reshape/Squeeze/Unsqueeze, products with a scalar) to a MatMul and returns the orders of its axes that the
MatMul takes as they are. An order lists the tensor's axes longer than 1, in IR order (axes of size 1 can sit
anywhere: moving them is a RESHAPE).
"""

from __future__ import annotations

from collections.abc import Callable

from edgekit.export.tflite.lowering_utils import attrs, reshape_groups

Orders = frozenset[tuple[int, ...]]


def order_of(perm, shape) -> tuple[int, ...]:
    """The axes longer than 1 of a tensor of ``shape`` in layout ``perm``, in IR order."""
    return tuple(a for a in perm if shape[a] != 1)


def wanted_orders(name: str, readers: dict[str, list], shape_of: Callable[[str], tuple[int, ...]],
                  is_scalar: Callable[[str], bool], depth: int = 8) -> Orders | None:
    """The orders (``order_of``) of ``name``'s axes that its reader chain takes without a TRANSPOSE; None
    when the chain does not end at a MatMul or has several readers (no preference)."""
    users = readers.get(name, [])
    if depth == 0 or len(users) != 1:
        return None
    node = users[0]
    shape = shape_of(name)
    if node.op_type == "MatMul" and node.input[0] != node.input[1]:
        rank = len(shape)
        if rank < 2:
            return None
        batch = tuple(range(rank - 2))
        layouts = [batch + (rank - 2, rank - 1)]
        if node.input[1] == name:  # BATCH_MATMUL's adj_y takes the right operand transposed
            layouts.append(batch + (rank - 1, rank - 2))
        return frozenset(order_of(p, shape) for p in layouts)
    out = node.output[0]
    if node.op_type in ("Mul", "Div") and node.input[0] == name and is_scalar(node.input[1]) or (
            node.op_type == "Mul" and node.input[1] == name and is_scalar(node.input[0])):
        return wanted_orders(out, readers, shape_of, is_scalar, depth - 1)
    if node.op_type == "Transpose":
        later = wanted_orders(out, readers, shape_of, is_scalar, depth - 1)
        if later is None:
            return None
        tp = [int(v) for v in attrs(node).get("perm", list(reversed(range(len(shape)))))]
        return frozenset(tuple(tp[k] for k in order) for order in later)
    if node.op_type in ("Reshape", "Squeeze", "Unsqueeze", "Flatten"):
        later = wanted_orders(out, readers, shape_of, is_scalar, depth - 1)
        groups = reshape_groups(shape, shape_of(out))
        if later is None or groups is None:
            return None
        found = set()
        for order in later:
            mapped = _through_reshape(order, groups)
            if mapped is not None:
                found.add(mapped)
        return frozenset(found) or None
    return None


def _through_reshape(out_order, groups) -> tuple[int, ...] | None:
    """The input order that a reshape with ``groups`` (``reshape_groups``) maps to ``out_order``."""
    owner = {axis: k for k, (_, go) in enumerate(groups) for axis in go}
    result: list[int] = []
    pos = 0
    while pos < len(out_order):
        k = owner[out_order[pos]]
        go = groups[k][1]
        if tuple(out_order[pos:pos + len(go)]) != tuple(go):
            return None
        result.extend(groups[k][0])
        pos += len(go)
    return tuple(result)
