"""Pass: rewrite every recognised channel shuffle into one canonical spelling.

Canonical is ``Reshape(N, g, C/g, H, W) -> Transpose(0, 2, 1, 3, 4) -> Reshape(N, C, H, W)``, so the
passes after this one match a single pattern. Megvii's fused form (shuffle in C/2 groups, then take the
two halves) becomes the canonical shuffle followed by a Split into those halves.
"""

from __future__ import annotations

import onnx

from .graph_utils import GraphIndex, NameAllocator, Rewrite, apply_rewrites, ensure_node_names, split_node
from .recognize_shuffle import shuffles_in
from .result import PassResult
from .shuffle_builders import flatten_channels, grouped_transpose

NAME = "canonicalize_channel_shuffle"


def canonicalize_channel_shuffle(model: onnx.ModelProto) -> PassResult:
    """Rewrite each non-canonical channel shuffle in ``model`` to the canonical three nodes.

    Returns a PassResult whose model is a new ModelProto (the input is not modified). Tensors outside the
    shuffles keep their names, so the rest of the graph is untouched; canonical shuffles are skipped."""
    model = ensure_node_names(model)
    names = NameAllocator(model)
    rewrites = []
    for match in shuffles_in(GraphIndex(model)):
        if match.canonical:
            continue
        base = match.nodes[0]
        flat = match.outputs[0] if match.split_sizes is None else names.fresh(f"{base}/shuffle_output")
        nodes, inits, moved = grouped_transpose(names, base, match.input, match.shape, match.groups)
        flat_nodes, flat_inits = flatten_channels(names, base, moved, match.shape, flat)
        nodes += flat_nodes
        inits += flat_inits
        detail = f"{base}: {match.spelling} -> canonical shuffle(C={match.channels}, g={match.groups})"
        if match.split_sizes is not None:
            split_nodes, split_inits = split_node(
                model, names, base, flat, 1, match.split_sizes, match.outputs
            )
            nodes += split_nodes
            inits += split_inits
            detail += f" + Split{list(match.split_sizes)}"
        rewrites.append(Rewrite(match.nodes, nodes, inits, detail))
    if not rewrites:
        return PassResult(NAME, model, 0, [])
    return PassResult(NAME, apply_rewrites(model, rewrites), len(rewrites), [r.detail for r in rewrites])
