"""Pass: fuse a channel shuffle with the channel split that reads it.

ShuffleNetV2 shuffles the channels and the next block immediately chunks them in two. Exported as is,
the Transpose materialises the whole shuffled tensor and the Slices copy it again. When every reader of
the shuffle is part of one split along the channels (a Split, or Slices that tile them, torch.chunk's
form) and each piece is a whole number of groups, the pieces are cut straight from the transposed
(N, C/g, g, H, W) tensor instead:

    Reshape(N, g, C/g, H, W) -> Transpose(0, 2, 1, 3, 4) -> Split(axis=1, s_k / g) -> Reshape(N, s_k, H, W)
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
)
from .recognize_shuffle import ShuffleMatch, shuffles_in
from .recognize_split import TensorPieces, pieces_read_by_all_consumers
from .result import PassResult
from .shuffle_builders import grouped_transpose, split_interleaved

NAME = "fuse_shuffle_split"


def split_after_shuffle(index: GraphIndex, match: ShuffleMatch) -> TensorPieces | None:
    """The channel split that is the only reader of ``match``'s output, if its pieces are whole groups."""
    if match.split_sizes is not None:
        return None
    pieces = pieces_read_by_all_consumers(index, match.outputs[0], axis=1)
    if pieces is None or any(size % match.groups for size in pieces.sizes):
        return None
    return pieces


def fuse_shuffle_split(model: onnx.ModelProto) -> PassResult:
    """Fuse every recognised channel shuffle whose output is only split along the channels.

    Returns a PassResult with a new model; the split's output tensors keep their names. Needs opset 13+
    (Split with sizes as an input); on older models it changes nothing."""
    model = ensure_node_names(model)
    if default_opset(model) < MIN_OPSET_FOR_INPUT_SIZES:
        return PassResult(NAME, model, 0, [])
    index = GraphIndex(model)
    names = NameAllocator(model)
    rewrites = []
    for match in shuffles_in(index):
        pieces = split_after_shuffle(index, match)
        if pieces is None:
            continue
        base = match.nodes[0]
        nodes, inits, moved = grouped_transpose(names, base, match.input, match.shape, match.groups)
        split_nodes, split_inits = split_interleaved(
            names, base, moved, match.shape, match.groups, pieces.sizes, pieces.outputs
        )
        detail = (
            f"{base}: shuffle(C={match.channels}, g={match.groups}) + split{list(pieces.sizes)} "
            f"-> Reshape/Transpose/Split/Reshape"
        )
        rewrites.append(Rewrite(match.nodes + pieces.nodes, nodes + split_nodes, inits + split_inits, detail))
    if not rewrites:
        return PassResult(NAME, model, 0, [])
    return PassResult(NAME, apply_rewrites(model, rewrites), len(rewrites), [r.detail for r in rewrites])
