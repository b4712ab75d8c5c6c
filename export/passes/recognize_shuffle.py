"""Find channel shuffles in an ONNX graph, whichever way the PyTorch code spelled them.

ONNX has no ChannelShuffle op, so a shuffle reaches the graph as ``Reshape -> Transpose -> Reshape``.
The spellings differ in the middle rank and permutation (torchvision's ``view/transpose/view`` and
``reshape/permute/reshape`` give a 5-D middle, ``reshape(b, g, c/g, h*w)`` a 4-D one, Megvii's
``reshape(b*c/2, 2, h*w).permute(1, 0, 2)`` a 3-D one that also splits the result in halves with
``x[0], x[1]``). Rather than list patterns, a candidate chain is recognised by what it computes: an
array of element indices shaped like the input is pushed through the chain with NumPy, and the chain is
a shuffle only if what comes out is exactly ``shuffle(g)`` of the channels for some ``1 < g < C``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from .graph_utils import GraphIndex, attribute, ensure_node_names

CANONICAL_PERM = (0, 2, 1, 3, 4)


@dataclass(frozen=True)
class ShuffleMatch:
    """One channel shuffle found in a graph.

    ``nodes``: the names of the nodes that compute it (including the Gathers of a fused split);
    ``input``: the (N, C, H, W) tensor shuffled; ``outputs``: the shuffled tensor, or the pieces in order
    when the spelling splits it (Megvii's form); ``shape``: the input's (N, C, H, W); ``groups``: g, so
    that output channel ``j * g + k`` is input channel ``k * C/g + j``; ``spelling``: how it was written;
    ``split_sizes``: the channel counts of the pieces for a fused split, else None; ``canonical``: whether
    it already is ``Reshape(N, g, C/g, H, W) -> Transpose(0, 2, 1, 3, 4) -> Reshape(N, C, H, W)``.
    """

    nodes: tuple[str, ...]
    input: str
    outputs: tuple[str, ...]
    shape: tuple[int, int, int, int]
    groups: int
    spelling: str
    split_sizes: tuple[int, ...] | None = None
    canonical: bool = False

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def output(self) -> str:
        """The shuffled tensor's name; for a spelling that splits it, the pieces' names joined by ", "."""
        return ", ".join(self.outputs)


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    """``perm`` such that ``shuffled[:, i] == x[:, perm[i]]`` for ``channel_shuffle(x, groups)``."""
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def shuffle_groups_of(result: np.ndarray, source: np.ndarray) -> int | None:
    """The g for which ``result`` is ``source`` with its channels shuffled in g groups, or None.

    ``source`` holds unique values, so a match means every element moved exactly as a shuffle moves it.
    """
    if result.shape != source.shape:
        return None
    channels = source.shape[1]
    corner = result[:1, :, :1, :1]
    for groups in range(2, channels):
        if channels % groups:
            continue
        perm = shuffle_permutation(channels, groups)
        # The one-pixel check rejects wrong g cheaply; the full comparison is what proves the match.
        if np.array_equal(corner, source[:1, perm, :1, :1]) and np.array_equal(result, source[:, perm]):
            return groups
    return None


def _reshape(x: np.ndarray, node: onnx.NodeProto, shape: list[int]) -> np.ndarray | None:
    """NumPy mirror of ONNX Reshape, including its ``0`` means "keep this dim" rule."""
    if attribute(node, "allowzero", 0) == 0:
        shape = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(shape)]
    try:
        return x.reshape(shape)
    except ValueError:
        return None


def _transpose(x: np.ndarray, node: onnx.NodeProto) -> np.ndarray | None:
    perm = attribute(node, "perm")
    perm = list(range(x.ndim))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(x.ndim)):
        return None
    return x.transpose(perm)


def _spelling(middle_rank: int, perm: list[int], split: bool) -> str:
    if split:
        return f"reshape({middle_rank}-D)/permute{tuple(perm)}/reshape + Gather per piece (Megvii)"
    if middle_rank == 5 and tuple(perm) == CANONICAL_PERM:
        return "view/transpose/view or reshape/permute/reshape (5-D)"
    if middle_rank == 4 and tuple(perm) == (0, 2, 1, 3):
        return "reshape/transpose/reshape (4-D, h*w flattened)"
    return f"reshape({middle_rank}-D)/transpose{tuple(perm)}/reshape"


def _gather_pieces(index: GraphIndex, tensor: str, count: int) -> list[onnx.NodeProto] | None:
    """The Gathers on axis 0 that read pieces 0..count-1 of ``tensor``, one each, in piece order."""
    readers = index.consumers_of(tensor)
    if tensor in index.graph_outputs or len(readers) != count:
        return None
    by_piece: dict[int, onnx.NodeProto] = {}
    for node in readers:
        if node.op_type != "Gather" or node.input[0] != tensor or int(attribute(node, "axis", 0)) != 0:
            return None
        value = index.constant(node.input[1])
        if value is None or value.ndim != 0 or value.dtype.kind not in "iu":
            return None
        piece = int(value) + count if int(value) < 0 else int(value)
        if not 0 <= piece < count or piece in by_piece:
            return None
        by_piece[piece] = node
    return [by_piece[k] for k in range(count)]


def _match_at(index: GraphIndex, first: onnx.NodeProto) -> ShuffleMatch | None:
    """The shuffle whose chain starts with Reshape ``first``, if there is one."""
    source_name = first.input[0]
    shape = index.shape(source_name)
    shape1 = index.int_constant(first.input[1]) if len(first.input) > 1 else None
    if shape is None or len(shape) != 4 or shape1 is None or shape[1] < 4:
        return None
    transpose = index.only_consumer(first.output[0])
    if transpose is None or transpose.op_type != "Transpose":
        return None
    last = index.only_consumer(transpose.output[0])
    if last is None or last.op_type != "Reshape" or last.input[0] != transpose.output[0]:
        return None
    shape2 = index.int_constant(last.input[1])
    if shape2 is None:
        return None

    source = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    middle = _reshape(source, first, shape1)
    moved = None if middle is None else _transpose(middle, transpose)
    result = None if moved is None else _reshape(moved, last, shape2)
    if result is None:
        return None
    perm = [int(p) for p in attribute(transpose, "perm", list(range(middle.ndim))[::-1])]
    chain = (first.name, transpose.name, last.name)

    if result.shape == source.shape:
        groups = shuffle_groups_of(result, source)
        if groups is None:
            return None
        n, c, h, w = shape
        canonical = (
            shape1 == [n, groups, c // groups, h, w]
            and tuple(perm) == CANONICAL_PERM
            and shape2 == [n, c, h, w]
        )
        return ShuffleMatch(
            chain, source_name, (last.output[0],), shape, groups, _spelling(middle.ndim, perm, False),
            canonical=canonical,
        )

    # Megvii's spelling: the shuffled channels come out stacked on a new leading axis, read by Gathers.
    gathers = _gather_pieces(index, last.output[0], result.shape[0]) if result.ndim == 5 else None
    if gathers is None:
        return None
    pieces = [result[k] for k in range(result.shape[0])]
    if any(p.shape[0] != shape[0] or p.shape[2:] != shape[2:] for p in pieces):
        return None
    groups = shuffle_groups_of(np.concatenate(pieces, axis=1), source)
    if groups is None:
        return None
    return ShuffleMatch(
        chain + tuple(g.name for g in gathers),
        source_name,
        tuple(g.output[0] for g in gathers),
        shape,
        groups,
        _spelling(middle.ndim, perm, True),
        split_sizes=tuple(p.shape[1] for p in pieces),
    )


def find_channel_shuffles(model: onnx.ModelProto) -> list[ShuffleMatch]:
    """Every channel shuffle in ``model``'s main graph, in graph order.

    A match needs static shapes and constant reshape targets (what ``onnxsim`` leaves behind), and its
    intermediate tensors must be read by nothing else. A Reshape->Transpose->Reshape that is not exactly
    a shuffle (a spatial transpose, another channel permutation, an identity) is not a match.
    """
    return shuffles_in(GraphIndex(ensure_node_names(model)))


def shuffles_in(index: GraphIndex) -> list[ShuffleMatch]:
    """``find_channel_shuffles`` over an already built index (the passes build one anyway)."""
    matches = []
    for node in index.nodes:
        if node.op_type == "Reshape" and node.domain in ("", "ai.onnx"):
            match = _match_at(index, node)
            if match is not None:
                matches.append(match)
    return matches
