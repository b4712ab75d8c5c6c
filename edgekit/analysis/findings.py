"""ShuffleNetV2's four guidelines (Ma et al., ECCV 2018, section 2) as findings about one analysed graph.

- G1, equal channel width minimises MAC: a 1x1 convolution whose memory access is well above the bound
  ``2*sqrt(hw*B) + B/hw`` that its FLOPs B allow (reached at c1 = c2).
- G2, excessive group convolution increases MAC: each group count, what it costs over a dense 1x1
  convolution with the same FLOPs and input.
- G3, fragmentation reduces parallelism: stretches of the graph where several branches are live at once.
- G4, element-wise ops are not negligible: their share of memory access (and of measured time).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

from edgekit.analysis.costs import COMPUTE_KINDS, OpNode, g1_lower_bound
from edgekit.analysis.results import Finding, LayerCost

#: A 1x1 convolution is flagged when its MAC exceeds the G1 bound by this fraction (c1:c2 = 1:3 on a
#: large map is about 15%; the paper's 1:2 is 6%, 1:6 43%).
G1_EXCESS = 0.15
#: A stretch of the graph with at least this many live branches is flagged (the paper's 4-fragment-parallel).
G3_BRANCHES = 3
#: Element-wise ops above this share of the memory access are flagged.
G4_SHARE = 0.20
_MAX_NAMED = 8


def segments(nodes: list[OpNode]) -> list[tuple[list[int], int]]:
    """Split the ops (in execution order) where a single tensor carries everything forward.

    Out: ``(op indices, branches)`` per segment, ``branches`` being the most tensors live at once inside
    it (1 for a plain chain; 2 for a ShuffleNetV2 unit or a residual block; 4 for four parallel convs).
    """
    remaining: dict[str, int] = defaultdict(int)
    produced = set()
    for node in nodes:
        for key in node.inputs:
            remaining[key] += 1
        produced.update(node.outputs)
    live = {k for k in remaining if k not in produced}
    out: list[tuple[list[int], int]] = []
    current: list[int] = []
    width = 1
    for i, node in enumerate(nodes):
        current.append(i)
        for key in node.inputs:
            remaining[key] -= 1
            if remaining[key] <= 0:
                live.discard(key)
        live.update(k for k in node.outputs if remaining.get(k, 0) > 0)
        width = max(width, len(live))
        if len(live) <= 1:
            out.append((current, width))
            current, width = [], 1
    if current:
        out.append((current, width))
    return out


def segment_label(names: list[str]) -> str:
    """A readable name for a segment: the longest common module path of its ops, else first..last."""
    prefix = os.path.commonprefix(names).rstrip("./#:")
    if len(prefix) >= 2 and len(names) > 1:
        return prefix
    return names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"


def _named(layers: list[str]) -> str:
    shown = ", ".join(layers[:_MAX_NAMED])
    return shown + (f" and {len(layers) - _MAX_NAMED} more" if len(layers) > _MAX_NAMED else "")


def g1_findings(layers: list[LayerCost], excess_limit: float = G1_EXCESS) -> list[Finding]:
    """A ``warn`` per dense 1x1 convolution whose MAC exceeds the G1 bound by ``excess_limit`` or more;
    an ``info`` naming the worst one when none does."""
    found, worst = [], None
    for layer in layers:
        if layer.kind != "conv1x1" or not layer.out_hw or not layer.mult_adds:
            continue
        batch = max(layer.output_shapes[0][0], 1) if layer.output_shapes and layer.output_shapes[0] else 1
        hw, flops = layer.out_hw * batch, layer.mult_adds
        bound = g1_lower_bound(hw, flops)
        excess = layer.memory_access / bound - 1.0
        c1, c2 = layer.in_channels or 0, layer.out_channels or 0
        figures = {"c1": c1, "c2": c2, "hw": hw, "flops": flops, "mac": layer.memory_access,
                   "bound": round(bound, 1), "excess_pct": round(100 * excess, 1)}
        if worst is None or excess > worst[0]:
            worst = (excess, layer.name, figures)
        if excess >= excess_limit:
            ratio = max(c1, c2) / max(min(c1, c2), 1)
            found.append(Finding(
                "G1", "warn",
                f"{layer.name}: 1x1 conv {c1}->{c2} channels (1:{ratio:.1f}) accesses {layer.memory_access:,} "
                f"elements, {100 * excess:.0f}% above the {bound:,.0f} that its {flops:,} mult-adds need at "
                f"equal widths (2*sqrt(hwB) + B/hw, hw = {hw}); balance input and output channels",
                [layer.name], figures))
    if not found and worst is not None:
        found.append(Finding(
            "G1", "info",
            f"no 1x1 convolution is {100 * excess_limit:.0f}% or more above the G1 MAC bound; the most "
            f"unbalanced is {worst[1]} ({worst[2]['c1']}->{worst[2]['c2']}, {worst[2]['excess_pct']}% above)",
            [worst[1]], worst[2]))
    return found


def g2_findings(layers: list[LayerCost]) -> list[Finding]:
    """One finding per group count of the group (non-depthwise) convolutions: the MAC they add over dense
    1x1 convolutions with the same input and FLOPs (``warn`` from g = 4 on)."""
    by_groups: dict[int, list[LayerCost]] = defaultdict(list)
    for layer in layers:
        if layer.kind == "group_conv":
            by_groups[layer.groups or 1].append(layer)
    found = []
    for groups, members in sorted(by_groups.items()):
        mac = sum(m.memory_access for m in members)
        # same input and FLOPs with g = 1: c2/g outputs, c1*c2/g weights; only the output side shrinks
        dense = sum(m.memory_access - _elements(m.output_shapes) * (1 - 1 / groups) for m in members)
        extra = mac / dense - 1.0 if dense else 0.0
        found.append(Finding(
            "G2", "warn" if groups >= 4 else "info",
            f"{len(members)} group convolution(s) with g = {groups} ({_named([m.name for m in members])}) access "
            f"{mac:,} elements, {100 * extra:.0f}% more than dense convolutions with the same input and FLOPs "
            f"would; MAC grows with g at fixed FLOPs (hw*c1 + B*g/c1 + B/hw)",
            [m.name for m in members], {"groups": groups, "mac": mac, "dense_mac": round(dense), "extra_pct":
                                        round(100 * extra, 1)}))
    if not found:
        found.append(Finding("G2", "info", "no group convolutions (depthwise convolutions are counted under G4)"))
    return found


def g3_findings(layers: list[LayerCost], parts: list[tuple[list[int], int]],
                branch_limit: int = G3_BRANCHES) -> list[Finding]:
    """A ``warn`` per stretch with ``branch_limit`` or more live branches, and an ``info`` summary:
    op count, stretches with parallel branches and compute ops per stretch."""
    found = []
    parallel = [(idx, width) for idx, width in parts if width > 1]
    for idx, width in parallel:
        if width >= branch_limit:
            names = [layers[i].name for i in idx]
            convs = sum(layers[i].kind in COMPUTE_KINDS for i in idx)
            found.append(Finding(
                "G3", "warn",
                f"{layers[idx[0]].block}: {width} parallel branches with {convs} compute ops in {len(idx)} ops; "
                "each fragment is a separate kernel launch and a synchronisation point: fewer, wider ops run faster",
                names, {"branches": width, "ops": len(idx), "compute_ops": convs}))
    compute = [layer for layer in layers if layer.kind in COMPUTE_KINDS]
    mean_ops = sum(len(idx) for idx, _ in parallel) / len(parallel) if parallel else 0.0
    widest = max((w for _, w in parts), default=1)
    found.append(Finding(
        "G3", "info",
        f"{len(layers)} ops ({len(compute)} with mult-adds, {_mean(compute):,.0f} mult-adds each on average); "
        f"{len(parallel)} stretches run parallel branches (at most {widest} at once, {mean_ops:.1f} ops each)",
        [], {"ops": len(layers), "compute_ops": len(compute), "parallel_stretches": len(parallel),
             "max_branches": widest, "ops_per_parallel_stretch": round(mean_ops, 2)}))
    return found


def g4_findings(layers: list[LayerCost], measured_share: float | None = None,
                share_limit: float = G4_SHARE) -> list[Finding]:
    """Element-wise ops' share of memory access (and of measured time when known); the paper also counts
    depthwise convolutions as element-wise (high MAC/FLOPs), reported as a second figure."""
    total = sum(layer.memory_access for layer in layers) or 1
    elementwise = [layer for layer in layers if layer.kind == "elementwise"]
    depthwise = [layer for layer in layers if layer.kind == "depthwise_conv"]
    share = sum(layer.memory_access for layer in elementwise) / total
    fusable = [layer for layer in elementwise if layer.note and layer.note.startswith("fusable")]
    unfused_share = share - sum(layer.memory_access for layer in fusable) / total
    dw_share = sum(layer.memory_access for layer in depthwise) / total
    kinds = sorted({layer.op_type for layer in elementwise})
    message = (f"{len(elementwise)} element-wise ops ({', '.join(kinds) or 'none'}) have no mult-adds but "
               f"{100 * share:.1f}% of the memory access")
    if depthwise:
        message += (f"; with the {len(depthwise)} depthwise convolutions, as the paper counts them, "
                    f"{100 * (share + dw_share):.1f}%")
    if fusable:
        message += (f"; {len(fusable)} of them are activations right after a convolution that runtimes fuse, "
                    f"leaving {100 * unfused_share:.1f}%")
    figures = {"elementwise_mac_pct": round(100 * share, 2),
               "with_depthwise_mac_pct": round(100 * (share + dw_share), 2),
               "unfused_mac_pct": round(100 * unfused_share, 2)}
    if measured_share is not None:
        message += f"; measured: {100 * measured_share:.1f}% of the time"
        figures["elementwise_time_pct"] = round(100 * measured_share, 2)
    warn = unfused_share >= share_limit or (measured_share is not None and measured_share >= share_limit)
    if warn:
        message += "; fuse them into the convolutions or remove them (ShuffleNetV2 uses concat, not add)"
    return [Finding("G4", "warn" if warn else "info", message, [layer.name for layer in elementwise], figures)]


def all_findings(layers: list[LayerCost], parts: list[tuple[list[int], int]], *,
                 measured_elementwise_share: float | None = None, g1_excess: float = G1_EXCESS,
                 designed_layers: list[LayerCost] | None = None) -> list[Finding]:
    """G1..G4 findings, warnings first within each guideline. ``designed_layers``: the layers as the network
    was designed, where the file cut some into pieces (``folded_shuffles``); G1 is about a layer's channel
    widths, so it judges those."""
    return (g1_findings(designed_layers or layers, g1_excess) + g2_findings(layers) + g3_findings(layers, parts)
            + g4_findings(layers, measured_elementwise_share))


def _elements(shapes) -> int:
    return sum(math.prod(max(int(d), 1) for d in s) for s in shapes)


def _mean(layers: list[LayerCost]) -> float:
    return sum(layer.mult_adds for layer in layers) / len(layers) if layers else 0.0
