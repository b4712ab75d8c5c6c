"""The layers edgekit's folded channel-shuffle lowering split, seen again as the layers they came from.

``export/tflite/fold_shuffles.py`` removes a channel shuffle's TRANSPOSE and SPLIT by cutting every
convolution that feeds it into one piece per *fate group* (the output channels that go to the same readers),
named ``<layer>_fate<n>`` (the inner steps of a cut conv -> depthwise chain ``<layer>_fate<n>_<op>``), and
joins the pieces each reader needs with CONCATENATIONs named ``<tensor>_gathered``. Each piece reads all of
its layer's input channels and writes a few of its outputs, so judged alone it looks like an unbalanced 1x1
convolution (G1) that the network does not have: G1 is about the channel widths the network was designed
with, so it judges the layers the pieces came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from edgekit.analysis.costs import OpNode, conv_kind, layer_cost
from edgekit.analysis.results import Finding, LayerCost

_PIECE = re.compile(r"^(?P<layer>.+)_fate\d+(?P<step>(?:_[a-z0-9]+)*)$")
_GATHERED = re.compile(r"_gathered(?:_\d+)?$")


@dataclass
class SplitLayers:
    """A folded file's layers as designed, and which of the file's ops each split layer stands for."""

    layers: list[LayerCost]  # the file's layers in order, each split layer's pieces replaced by the layer
    pieces: dict[str, list[str]]  # name of a split layer -> the names of the file's ops it was cut into
    concatenations: int  # the fold's CONCATENATIONs that join the pieces
    extra_memory_access: int  # what the pieces access beyond the unsplit layers (each re-reads its input)

    def file_names(self, names: list[str]) -> list[str]:
        """``names`` of designed layers as the names of the file's ops (a split layer as its pieces)."""
        return [piece for name in names for piece in self.pieces.get(name, [name])]

    def finding(self, file_memory_access: int) -> Finding:
        """One ``info`` saying which ops were regrouped, why G1 judges the layers as designed, and what the
        split costs in memory access."""
        count = sum(len(pieces) for pieces in self.pieces.values())
        share = 100 * self.extra_memory_access / file_memory_access if file_memory_access else 0.0
        return Finding(
            "G1", "info",
            f"{count} ops named *_fate<n> are pieces of {len(self.pieces)} layers that edgekit's folded shuffle "
            f"lowering cut up (this file's metadata says shuffle_lowering folded), joined by "
            f"{self.concatenations} concatenations in place of the channel shuffles' TRANSPOSE and SPLIT; G1 judges "
            "the layers as designed, not the pieces; G3 counts the file's ops, pieces included. The pieces "
            f"re-read their layer's input: {self.extra_memory_access:,} elements of memory access ({share:.1f}%) "
            "more than the unsplit layers",
            [piece for pieces in self.pieces.values() for piece in pieces],
            {"split_layers": len(self.pieces), "pieces": count, "concatenations": self.concatenations,
             "extra_mac": self.extra_memory_access, "extra_mac_pct": round(share, 2)})


def regroup_split_layers(nodes: list[OpNode]) -> SplitLayers | None:
    """The layers of ``nodes`` (the ops of a file written with the folded lowering) with every layer cut into
    more than one piece whole again; None when there is no such layer. Pieces that do not fit back together
    (another op, kernel or output size) are left as they are."""
    groups: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        match = _PIECE.match(node.name)
        if match:
            groups.setdefault(match["layer"] + match["step"], []).append(i)
    merged: dict[int, OpNode] = {}  # index of a layer's first piece -> the layer
    pieces: dict[str, list[str]] = {}
    for name, indices in groups.items():
        layer = _merge(name, [nodes[i] for i in indices]) if len(indices) > 1 else None
        if layer is not None:
            merged[indices[0]] = layer
            pieces[name] = [nodes[i].name for i in indices]
    if not merged:
        return None
    absorbed = {i for name, indices in groups.items() if name in pieces for i in indices[1:]}
    layers, extra = [], 0
    for i, node in enumerate(nodes):
        if i in absorbed:
            continue
        layers.append(layer_cost(merged.get(i, node)))
        if i in merged:
            name = merged[i].name
            cut = sum(layer_cost(nodes[j]).memory_access for j in groups[name])
            extra += cut - layers[-1].memory_access
    concatenations = sum(node.op_type == "CONCATENATION" and bool(_GATHERED.search(node.name)) for node in nodes)
    return SplitLayers(layers=layers, pieces=pieces, concatenations=concatenations, extra_memory_access=extra)


def _merge(name: str, pieces: list[OpNode]) -> OpNode | None:
    """One op computing what ``pieces`` (NHWC, channels last) compute together, or None when they differ in
    op, kernel or output size. Pieces of a convolution read the same input; pieces of a channel-wise op (a
    depthwise convolution after the cut) read one piece each of the step before."""
    first = pieces[0]
    if not all(p.output_shapes and p.input_shapes for p in pieces) or any(
            p.op_type != first.op_type or p.kernel != first.kernel
            or p.output_shapes[0][:-1] != first.output_shapes[0][:-1] for p in pieces):
        return None
    channels = sum(p.output_shapes[0][-1] for p in pieces)
    same_input = all(p.inputs == first.inputs and p.input_shapes == first.input_shapes for p in pieces)
    input_shapes, in_channels, groups = first.input_shapes, first.in_channels, first.groups
    if not same_input:
        input_shapes = [(*first.input_shapes[0][:-1], sum(p.input_shapes[0][-1] for p in pieces))]
        in_channels = sum(p.in_channels or 0 for p in pieces) if first.in_channels is not None else None
        groups = in_channels if first.kind == "depthwise_conv" else groups
    merged = replace(
        first, name=name, input_shapes=input_shapes, output_shapes=[(*first.output_shapes[0][:-1], channels)],
        params=sum(p.params for p in pieces), weight_elements=sum(p.weight_elements for p in pieces),
        in_channels=in_channels, out_channels=channels if first.out_channels is not None else None, groups=groups,
        note=f"cut into {len(pieces)} pieces by the folded shuffle lowering")
    if first.kernel and in_channels:
        merged.kind = conv_kind(in_channels, channels, groups or 1, first.kernel)
    return merged
