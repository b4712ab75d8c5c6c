"""Pass: fold a channel shuffle into the Concat that builds its input.

In ShuffleNetV2 the shuffled tensor is ``cat(a, b)`` with one input per group. Shuffling a concat of g
equal parts is interleaving them, which a Concat on a new axis does in one copy, with no Transpose:

    Unsqueeze(axis 2) each input -> Concat(axis=2) -> Reshape(N, C, H, W)

When the shuffled tensor is then only split along the channels in whole groups, the (N, C/g, g, H, W)
concat result is split along axis 1 and each piece reshaped, as in ``fuse_shuffle_split``.
"""

from __future__ import annotations

import onnx

from .fuse_shuffle_split import split_after_shuffle
from .graph_utils import (
    MIN_OPSET_FOR_INPUT_SIZES,
    GraphIndex,
    NameAllocator,
    Rewrite,
    apply_rewrites,
    attribute,
    default_opset,
    ensure_node_names,
    int64_initializer,
    make_node,
)
from .recognize_shuffle import ShuffleMatch, shuffles_in
from .result import PassResult
from .shuffle_builders import flatten_channels, split_interleaved

NAME = "fold_shuffle_into_concat"


def concat_of_groups(index: GraphIndex, match: ShuffleMatch) -> onnx.NodeProto | None:
    """The Concat producing ``match``'s input, if it joins exactly g inputs of C/g channels on axis 1 and
    nothing but the shuffle reads its result."""
    if match.split_sizes is not None:
        return None
    concat = index.producer.get(match.input)
    if concat is None or concat.op_type != "Concat" or len(concat.input) != match.groups:
        return None
    n, c, h, w = match.shape
    if int(attribute(concat, "axis", 0)) not in (1, -3):
        return None
    if any(index.shape(x) != (n, c // match.groups, h, w) for x in concat.input):
        return None
    reader = index.only_consumer(match.input)
    if reader is None or reader.name != match.nodes[0]:
        return None
    return concat


def fold_shuffle_into_concat(model: onnx.ModelProto) -> PassResult:
    """Replace each recognised shuffle of a g-way channel Concat with an interleaving Concat.

    Returns a PassResult with a new model; the shuffle's output (or its split's outputs) keep their
    names. Needs opset 13+ (Unsqueeze/Split take axes/sizes as inputs); older models are left alone."""
    model = ensure_node_names(model)
    if default_opset(model) < MIN_OPSET_FOR_INPUT_SIZES:
        return PassResult(NAME, model, 0, [])
    index = GraphIndex(model)
    names = NameAllocator(model)
    rewrites = []
    for match in shuffles_in(index):
        concat = concat_of_groups(index, match)
        if concat is None:
            continue
        base = match.nodes[0]
        axes = int64_initializer(names, f"{base}/shuffle_unsqueeze_axes", [2])
        nodes, inits = [], [axes]
        expanded: dict[str, str] = {}
        for k, part in enumerate(concat.input):
            if part not in expanded:
                expanded[part] = names.fresh(f"{base}/shuffle_group_{k}")
                nodes.append(make_node("Unsqueeze", [part, axes.name], [expanded[part]],
                                       names.fresh(f"{base}/shuffle_unsqueeze_{k}")))
        interleaved = names.fresh(f"{base}/shuffle_interleaved")
        nodes.append(make_node("Concat", [expanded[p] for p in concat.input], [interleaved],
                               names.fresh(f"{base}/shuffle_concat"), axis=2))
        removed = (concat.name,) + match.nodes
        pieces = split_after_shuffle(index, match)
        if pieces is None:
            tail_nodes, tail_inits = flatten_channels(names, base, interleaved, match.shape, match.outputs[0])
            how = "Unsqueeze/Concat(axis=2)/Reshape"
        else:
            tail_nodes, tail_inits = split_interleaved(
                names, base, interleaved, match.shape, match.groups, pieces.sizes, pieces.outputs
            )
            removed += pieces.nodes
            how = f"Unsqueeze/Concat(axis=2)/Split{list(pieces.sizes)}/Reshape"
        shuffle = f"shuffle(C={match.channels}, g={match.groups})"
        detail = f"{base}: Concat({match.groups} inputs) + {shuffle} -> {how}"
        rewrites.append(Rewrite(removed, nodes + tail_nodes, inits + tail_inits, detail))
    if not rewrites:
        return PassResult(NAME, model, 0, [])
    return PassResult(NAME, apply_rewrites(model, rewrites), len(rewrites), [r.detail for r in rewrites])
