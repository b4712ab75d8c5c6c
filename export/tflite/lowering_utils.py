"""Small helpers shared by the ONNX -> TFLite lowering modules: attributes, names, and layout permutations.

A layout is a permutation ``perm`` of an ONNX tensor's axes: IR axis ``i`` holds ONNX axis ``perm[i]``, so the
IR shape is ``[onnx_shape[p] for p in perm]``. 4-D activations start NHWC, ``NHWC = (0, 2, 3, 1)``.
"""

from __future__ import annotations

import onnx

NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}
NHWC = (0, 2, 3, 1)


def to_nhwc(shape) -> tuple[int, ...]:
    n, c, h, w = shape
    return (n, h, w, c)


def attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def clean(name: str) -> str:
    return name.strip("/").replace("/", ".") or "t"


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def default_perm(rank: int) -> tuple[int, ...]:
    """The layout a tensor gets when nothing else decides: NHWC for 4-D, the ONNX layout otherwise."""
    return NHWC if rank == 4 else identity(rank)


def permuted(shape, perm) -> tuple[int, ...]:
    return tuple(int(shape[p]) for p in perm)


def transpose_between(src, dst) -> tuple[int, ...]:
    """The TRANSPOSE permutation taking an IR tensor in layout ``src`` to layout ``dst`` (same ONNX tensor)."""
    return tuple(src.index(axis) for axis in dst)


def moves_only_unit_axes(shape, src, dst) -> bool:
    """True when going from layout ``src`` to ``dst`` keeps the order of every axis longer than 1, so a
    RESHAPE does what a TRANSPOSE would."""
    return [a for a in src if shape[a] != 1] == [a for a in dst if shape[a] != 1]


def drop_axes(perm, removed) -> tuple[int, ...]:
    """``perm`` of a tensor after the ONNX axes ``removed`` disappear (reductions without keepdims, Gather
    of a scalar): the remaining axes keep their IR order and are renumbered."""
    kept = [a for a in perm if a not in removed]
    order = sorted(kept)
    return tuple(order.index(a) for a in kept)


def reshape_groups(in_shape, out_shape) -> list[tuple[list[int], list[int]]] | None:
    """Pair the axes longer than 1 of ``in_shape`` and ``out_shape`` into groups of equal products, in order:
    each group of input axes is merged and split into its group of output axes. None when sizes disagree."""
    ins = [i for i, d in enumerate(in_shape) if d != 1]
    outs = [i for i, d in enumerate(out_shape) if d != 1]
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(ins) or j < len(outs):
        if i >= len(ins) or j >= len(outs):
            return None
        gi, gj = [ins[i]], [outs[j]]
        pi, pj = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                if i >= len(ins):
                    return None
                gi.append(ins[i])
                pi *= in_shape[ins[i]]
                i += 1
            else:
                if j >= len(outs):
                    return None
                gj.append(outs[j])
                pj *= out_shape[outs[j]]
                j += 1
        groups.append((gi, gj))
    return groups


def reshaped_perm(in_shape, out_shape, perm) -> tuple[int, ...] | None:
    """The layout of ``reshape(x, out_shape)`` when it can be done as a RESHAPE of ``x``'s IR tensor in layout
    ``perm``: every merged or split group of axes must sit contiguous and in ONNX order in that layout. Axes
    of size 1 of the output follow the output axis before them (or lead). None when the layout does not allow.

    E.g. NCHW (1, C, H, W) -> (1, C, H*W) on an NHWC tensor: the groups (C) and (H, W) appear as H, W | C, so
    the output is the IR tensor (1, H*W, C) with layout (0, 2, 1).
    """
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return None
    owner = {axis: k for k, (gi, _) in enumerate(groups) for axis in gi}
    ir_axes = [a for a in perm if in_shape[a] != 1]
    order: list[int] = []
    pos = 0
    while pos < len(ir_axes):
        k = owner[ir_axes[pos]]
        gi = groups[k][0]
        if ir_axes[pos:pos + len(gi)] != gi:
            return None
        order.append(k)
        pos += len(gi)
    out = [axis for k in order for axis in groups[k][1]]
    for axis in range(len(out_shape)):
        if out_shape[axis] == 1:
            out.insert(out.index(axis - 1) + 1 if axis > 0 else 0, axis)
    return tuple(out)
