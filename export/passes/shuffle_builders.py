"""The node sequences the shuffle passes emit, built in one place so every lowering spells them alike.

A shuffle of (N, C, H, W) in g groups is ``Reshape(N, g, C/g, H, W) -> Transpose(0, 2, 1, 3, 4)``, which
leaves channel ``j * g + k`` of the result at ``[:, j, k]`` of an (N, C/g, g, H, W) tensor; flattening
that tensor, or splitting it along axis 1 and flattening each piece, finishes the job.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from .graph_utils import NameAllocator, int64_initializer, make_node
from .recognize_shuffle import CANONICAL_PERM

Built = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]


def grouped_transpose(
    names: NameAllocator, base: str, source: str, shape: Sequence[int], groups: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """``source`` (N, C, H, W) -> Reshape (N, g, C/g, H, W) -> Transpose -> (N, C/g, g, H, W).

    Returns the nodes, their initializers and the name of the (N, C/g, g, H, W) tensor."""
    n, c, h, w = shape
    target = int64_initializer(names, f"{base}/shuffle_groups_shape", [n, groups, c // groups, h, w])
    grouped = names.fresh(f"{base}/shuffle_grouped")
    moved = names.fresh(f"{base}/shuffle_transposed")
    nodes = [
        make_node("Reshape", [source, target.name], [grouped], names.fresh(f"{base}/shuffle_reshape_groups")),
        make_node("Transpose", [grouped], [moved], names.fresh(f"{base}/shuffle_transpose"),
                  perm=list(CANONICAL_PERM)),
    ]
    return nodes, [target], moved


def flatten_channels(
    names: NameAllocator, base: str, source: str, shape: Sequence[int], output: str
) -> Built:
    """Reshape an (N, a, b, H, W) tensor ``source`` into ``shape`` (N, a*b, H, W), named ``output``."""
    target = int64_initializer(names, f"{base}/shuffle_flat_shape", list(shape))
    node = make_node("Reshape", [source, target.name], [output], names.fresh(f"{base}/shuffle_reshape_flat"))
    return [node], [target]


def split_interleaved(
    names: NameAllocator,
    base: str,
    source: str,
    shape: Sequence[int],
    groups: int,
    sizes: Sequence[int],
    outputs: Sequence[str],
) -> Built:
    """Split an (N, C/g, g, H, W) tensor ``source`` along axis 1 into channel pieces of ``sizes`` (each a
    multiple of g) and Reshape piece k to (N, sizes[k], H, W) under the name ``outputs[k]``."""
    n, _, h, w = shape
    split = int64_initializer(names, f"{base}/shuffle_split_sizes", [s // groups for s in sizes])
    parts = [names.fresh(f"{base}/shuffle_split_{k}") for k in range(len(sizes))]
    nodes = [make_node("Split", [source, split.name], parts, names.fresh(f"{base}/shuffle_split"), axis=1)]
    inits = [split]
    for k, (part, size, out) in enumerate(zip(parts, sizes, outputs, strict=True)):
        target = int64_initializer(names, f"{base}/shuffle_piece_{k}_shape", [n, size, h, w])
        name = names.fresh(f"{base}/shuffle_reshape_{k}")
        nodes.append(make_node("Reshape", [part, target.name], [out], name))
        inits.append(target)
    return nodes, inits
