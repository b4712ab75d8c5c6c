"""Recognise a tensor being cut into contiguous pieces along one axis: one Split, or sibling Slices.

``torch.chunk``/``torch.split`` export as a Split or as one Slice per piece; the passes that fuse a
shuffle with the split that follows it, and ``slices_to_split``, all start from this.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from .graph_utils import GraphIndex, attribute, default_opset


@dataclass(frozen=True)
class TensorPieces:
    """``tensor`` cut along ``axis`` into pieces of ``sizes`` (in order), produced by ``nodes`` as
    ``outputs`` (one per piece, in the same order)."""

    tensor: str
    axis: int
    sizes: tuple[int, ...]
    nodes: tuple[str, ...]
    outputs: tuple[str, ...]


def slice_range(index: GraphIndex, node: onnx.NodeProto) -> tuple[int, int, int] | None:
    """``(axis, start, end)`` of a step-1 Slice over one axis of a statically shaped tensor, normalised to
    a non-negative axis and ``0 <= start <= end <= dim``; None for anything else."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return None
    shape = index.shape(node.input[0])
    starts = index.int_constant(node.input[1])
    ends = index.int_constant(node.input[2])
    if shape is None or starts is None or ends is None or len(starts) != 1 or len(ends) != 1:
        return None
    axes = index.int_constant(node.input[3]) if len(node.input) > 3 and node.input[3] else [0]
    steps = index.int_constant(node.input[4]) if len(node.input) > 4 and node.input[4] else [1]
    if axes is None or steps != [1] or len(axes) != 1:
        return None
    rank = len(shape)
    axis = axes[0] + rank if axes[0] < 0 else axes[0]
    if not 0 <= axis < rank:
        return None
    dim = shape[axis]

    def clamp(v: int) -> int:
        return min(max(v + dim if v < 0 else v, 0), dim)

    start, end = clamp(starts[0]), clamp(ends[0])
    return axis, start, max(start, end)


def split_sizes(index: GraphIndex, node: onnx.NodeProto) -> tuple[int, tuple[int, ...]] | None:
    """``(axis, sizes)`` of a Split whose sizes are known and all of whose outputs are used names."""
    if node.op_type != "Split" or not node.output or not all(node.output):
        return None
    shape = index.shape(node.input[0])
    if shape is None:
        return None
    rank = len(shape)
    axis = int(attribute(node, "axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        return None
    dim, count = shape[axis], len(node.output)
    if default_opset(index.model) < 13:
        sizes = attribute(node, "split")
    elif len(node.input) > 1 and node.input[1]:
        sizes = index.int_constant(node.input[1])
        if sizes is None:
            return None
    else:
        sizes = None
    if sizes is None:
        if attribute(node, "num_outputs") is not None:  # opset 18: last piece may be smaller
            step = -(-dim // count)
            sizes = [step] * (count - 1) + [dim - step * (count - 1)]
        elif dim % count == 0:
            sizes = [dim // count] * count
        else:
            return None
    sizes = [int(s) for s in sizes]
    if len(sizes) != count or sum(sizes) != dim or min(sizes) < 0:
        return None
    return axis, tuple(sizes)


def tiling_slices(
    index: GraphIndex, slices: list[onnx.NodeProto], dim: int
) -> list[tuple[onnx.NodeProto, int, int]] | None:
    """The slices sorted by start, with ``(start, end)``, if they cover ``[0, dim)`` exactly once with at
    least two non-empty pieces; None otherwise."""
    ranges = []
    for node in slices:
        rng = slice_range(index, node)
        if rng is None:
            return None
        ranges.append((node, rng[1], rng[2]))
    ranges.sort(key=lambda r: (r[1], r[2]))
    cursor = 0
    for _, start, end in ranges:
        if start != cursor or end <= start:
            return None
        cursor = end
    if cursor != dim or len(ranges) < 2:
        return None
    return ranges


def pieces_read_by_all_consumers(index: GraphIndex, tensor: str, axis: int) -> TensorPieces | None:
    """How ``tensor`` is cut along ``axis`` if every one of its readers takes part in the cut: a single
    Split on ``axis``, or Slices on ``axis`` that tile it. None if anything else reads it (or it is a
    graph output), because then the whole tensor has to exist anyway."""
    shape = index.shape(tensor)
    readers = index.consumers_of(tensor)
    if shape is None or not readers or tensor in index.graph_outputs:
        return None
    if any(r.input[0] != tensor or list(r.input).count(tensor) != 1 for r in readers):
        return None
    if len(readers) == 1 and readers[0].op_type == "Split":
        found = split_sizes(index, readers[0])
        if found is None or found[0] != axis or len(found[1]) < 2:
            return None
        split = readers[0]
        return TensorPieces(tensor, axis, found[1], (split.name,), tuple(split.output))
    if not all(r.op_type == "Slice" for r in readers):
        return None
    if any((slice_range(index, r) or (None,))[0] != axis for r in readers):
        return None
    tiles = tiling_slices(index, readers, shape[axis])
    if tiles is None:
        return None
    return TensorPieces(
        tensor,
        axis,
        tuple(end - start for _, start, end in tiles),
        tuple(node.name for node, _, _ in tiles),
        tuple(node.output[0] for node, _, _ in tiles),
    )
