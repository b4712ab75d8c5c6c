"""The "folded" channel-shuffle lowering: no TRANSPOSE, no SPLIT, routing folded into convolutions.

Concat, shuffle and split only move channels, and the order of channels inside a tensor is free as long
as every reader is told: a 1x1 (or any regular) convolution reads its input channels in whatever order
its weights say. So instead of materialising shuffled tensors:

1. trace every channel that a routing op (CONCATENATION/SHUFFLE/SPLIT/SLICE on channels) produces back
   to the convolution that computed it;
2. group each such convolution's output channels by their *fate*, the set of routed tensors that read
   them, and emit one convolution per fate group (the same weight rows, split);
3. give each reader of a routed tensor one CONCATENATION of the groups due there (nothing at all when a
   single group suffices), and permute the reader's weights to the order of that concatenation;
   channel-wise readers (PAD, depthwise convolution, max pool) pass the permutation on to their readers.

The result computes exactly the same function. It applies when every routed channel comes from a regular
convolution, possibly through channel-wise ops that nothing else reads (a depthwise convolution, PAD, an
activation: such a chain is cut into channel groups as a whole, as in AugShuffleNet's crossover), and
every routed tensor ends in a convolution; otherwise ``fold_shuffles`` raises ``FoldNotApplicable`` and
the caller falls back to another lowering.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgekit.export.tflite.ir import Graph, Op, Origin

ROUTING = ("CONCATENATION", "SHUFFLE", "SPLIT", "SLICE")
CHANNELWISE = ("PAD", "MAX_POOL_2D", "RELU", "RELU6", "AVERAGE_POOL_2D")
#: XNNPACK (ai-edge-litert 2.3) delegates CONCATENATION with at most this many inputs.
MAX_CONCAT_INPUTS = 5


class FoldNotApplicable(Exception):
    """The graph has routing the folded lowering cannot express; the message says where."""


def _channels(graph: Graph, op: Op, chans: dict[str, list]) -> list[list]:
    """Channel sources of each output of routing op ``op``."""
    src = lambda name: chans.get(name) or [(name, i) for i in range(graph.shape(name)[-1])]  # noqa: E731
    if op.kind == "CONCATENATION":
        if op.options.get("axis") != 3 or op.options.get("activation", "NONE") != "NONE":
            raise FoldNotApplicable(f"{op.name}: concatenation not on channels")
        return [[c for name in op.inputs for c in src(name)]]
    if op.kind == "SHUFFLE":
        x = src(op.inputs[0])
        g = op.options["groups"]
        perm = np.arange(len(x)).reshape(g, len(x) // g).T.reshape(-1)
        return [[x[i] for i in perm]]
    if op.kind == "SPLIT":
        axis = int(graph.tensors[op.inputs[0]].data.reshape(-1)[0])
        if axis != 3:
            raise FoldNotApplicable(f"{op.name}: split not on channels")
        x = src(op.inputs[1])
        size = len(x) // op.options["num_splits"]
        return [x[i * size:(i + 1) * size] for i in range(op.options["num_splits"])]
    # SLICE
    begin = graph.tensors[op.inputs[1]].data
    size = graph.tensors[op.inputs[2]].data
    shape = graph.shape(op.inputs[0])
    if any(b != 0 for b in begin[:3]) or tuple(size[:3]) != shape[:3]:
        raise FoldNotApplicable(f"{op.name}: slice not on channels")
    x = src(op.inputs[0])
    return [x[int(begin[3]):int(begin[3]) + int(size[3])]]


def fold_shuffles(graph: Graph) -> dict:
    """Rewrite ``graph`` in place; returns counts for the report. Raises FoldNotApplicable (graph untouched)."""
    producers = graph.producers()
    chans: dict[str, list] = {}
    routing_ops = [op for op in graph.ops if op.kind in ROUTING]
    for op in routing_ops:
        for out, channels in zip(op.outputs, _channels(graph, op, chans), strict=True):
            chans[out] = channels
    if not routing_ops:
        return {"routed_tensors": 0}
    consumers = graph.consumers()
    routed = set(chans)
    # Routed tensors that a non-routing op (or the graph output) reads: these get materialised.
    sinks = [t for t in chans if any(c.kind not in ROUTING for c in consumers.get(t, [])) or t in graph.outputs]
    for t in sinks:
        if t in graph.outputs:
            raise FoldNotApplicable(f"routed tensor {t} is a graph output")
        if any(c.kind in ROUTING for c in consumers.get(t, [])):
            raise FoldNotApplicable(f"routed tensor {t} is read by routing and compute ops alike")
    order = {out: i for i, op in enumerate(graph.ops) for out in op.outputs}
    sources = sorted({s for t in sinks for s, _ in chans[t]}, key=lambda n: order.get(n, -1))
    chains = {s: _source_chain(graph, s, producers, consumers) for s in sources}
    for s in sources:
        if any(c.kind not in ROUTING for c in consumers.get(s, [])):
            raise FoldNotApplicable(f"{s} is read both directly and through routing")
    # Fate of each source channel: the sinks that read it.
    fate: dict[tuple[str, int], list[int]] = defaultdict(list)
    for k, t in enumerate(sinks):
        for c in chans[t]:
            fate[c].append(k)
    # Check that every permutation can be absorbed before changing anything.
    for t in sinks:
        _check_absorbable(graph, t, consumers)

    # Phase 1: fate groups of every source convolution (tensors only; the ops come last, because a source
    # convolution may itself read a routed tensor and have its weights permuted in phase 2).
    group_of: dict[tuple[str, int], str] = {}
    group_channels: dict[str, list[int]] = {}
    group_source: dict[str, str] = {}
    for s in sources:
        keys: dict[tuple[int, ...], list[int]] = {}
        for i in range(graph.shape(s)[-1]):
            if (s, i) in fate:
                keys.setdefault(tuple(fate[(s, i)]), []).append(i)
        for n, (_key, rows) in enumerate(sorted(keys.items(), key=lambda kv: kv[1][0])):
            out = graph.add_tensor(f"{s}_fate{n}", (*graph.shape(s)[:3], len(rows)), origin=_rows(graph, s, rows))
            group_channels[out] = rows
            group_source[out] = s
            for r in rows:
                group_of[(s, r)] = out
    concat_ops: dict[str, list[Op]] = {}
    layout: dict[str, tuple[str, np.ndarray]] = {}
    concat_count = 0
    for t in sinks:
        groups: list[str] = []
        for c in chans[t]:
            if group_of[c] not in groups:
                groups.append(group_of[c])
        groups.sort(key=lambda name: list(group_of.values()).index(name))
        order = [(group_source[name], r) for name in groups for r in group_channels[name]]
        position = {c: i for i, c in enumerate(chans[t])}
        perm = np.array([position[c] for c in order])  # physical channel j holds routed channel perm[j]
        ops, physical = _concat_tree(graph, groups, t)
        concat_ops[t] = ops
        layout[t] = (physical, perm)
        concat_count += len(ops)
        readers = consumers.get(t, [])
        for reader in readers:
            reader.inputs = [physical if n == t else n for n in reader.inputs]
        # Only the readers of this routed tensor see the new order; a group tensor may feed other concats.
        _absorb(graph, readers, perm, graph.consumers())
    # Phase 3: one copy of each source chain per fate group, from the (possibly permuted) weights.
    new_ops: dict[int, list[Op]] = defaultdict(list)
    replaced: set[int] = set()
    for out, s in group_source.items():
        chain = chains[s]
        replaced.update(graph.ops.index(op) for op in chain)
        new_ops[graph.ops.index(chain[-1])].extend(_split_chain(graph, chain, group_channels[out], out))
    conv_count = len(group_source)
    # Rebuild the op list: group convs where their conv stood, concats right before their first reader.
    first_reader = {}
    for ops in concat_ops.values():
        physical = ops[-1].outputs[0] if ops else None
        if physical:
            idx = min(i for i, op in enumerate(graph.ops) if physical in op.inputs)
            first_reader.setdefault(idx, []).extend(ops)
    rebuilt: list[Op] = []
    for i, op in enumerate(graph.ops):
        rebuilt.extend(first_reader.get(i, []))
        if i in new_ops:
            rebuilt.extend(new_ops[i])
        if i in replaced:
            continue
        if op.kind in ROUTING and any(o in routed for o in op.outputs):
            continue
        rebuilt.append(op)
    graph.ops = _topological(rebuilt)
    graph.remove_unused()
    return {"routed_tensors": len(sinks), "convolutions": conv_count, "concatenations": concat_count,
            "layout": layout}


def _source_chain(graph: Graph, source: str, producers, consumers) -> list[Op]:
    """The ops from a regular convolution to ``source`` through channel-wise ops (depthwise conv, PAD,
    activations), each intermediate read by nothing else: such a chain can be cut into channel groups."""
    chain: list[Op] = []
    tensor = source
    while True:
        op = producers.get(tensor)
        if op is None:
            raise FoldNotApplicable(f"routed channels of {source} come from a graph input")
        chain.insert(0, op)
        if op.kind == "CONV_2D":
            return chain
        depthwise = op.kind == "DEPTHWISE_CONV_2D" and op.options.get("depth_multiplier", 1) == 1
        if not (depthwise or op.kind in CHANNELWISE):
            raise FoldNotApplicable(f"routed channels of {source} come from {op.kind} {op.name}")
        tensor = op.inputs[0]
        if len(consumers.get(tensor, [])) != 1 or tensor in graph.outputs:
            raise FoldNotApplicable(f"{tensor} feeds {source} and other ops too")


def _split_chain(graph: Graph, chain: list[Op], rows: list[int], out: str) -> list[Op]:
    """A copy of ``chain`` computing only channels ``rows`` of its result, written to ``out``."""
    ops: list[Op] = []
    x = chain[0].inputs[0]
    for k, op in enumerate(chain):
        last = k == len(chain) - 1
        name = out if last else graph.add_tensor(f"{out}_{op.kind.lower()}", (*graph.shape(op.outputs[0])[:3],
                                                                                len(rows)),
                                                 origin=_rows(graph, op.outputs[0], rows))
        inputs = [x, *op.inputs[1:]]
        if op.kind == "CONV_2D":
            inputs[1] = graph.add_constant(out + "_filter", graph.tensors[op.inputs[1]].data[rows])
            inputs[2] = graph.add_constant(out + "_bias", graph.tensors[op.inputs[2]].data[rows])
        elif op.kind == "DEPTHWISE_CONV_2D":
            inputs[1] = graph.add_constant(out + "_dw_filter", graph.tensors[op.inputs[1]].data[..., rows])
            inputs[2] = graph.add_constant(out + "_dw_bias", graph.tensors[op.inputs[2]].data[rows])
        ops.append(Op(op.kind, inputs, [name], dict(op.options), op.name))
        x = name
    return ops


def _rows(graph: Graph, name: str, rows: list[int]) -> Origin | None:
    """The ONNX origin of channels ``rows`` of tensor ``name`` (None when ``name`` has none)."""
    origin = graph.tensors[name].origin
    return None if origin is None else origin.restricted(rows)


def _concat_tree(graph: Graph, groups: list[str], routed: str) -> tuple[list[Op], str]:
    """CONCATENATION ops joining ``groups`` (at most MAX_CONCAT_INPUTS inputs each); returns ops and result."""
    if len(groups) == 1:
        return [], groups[0]
    ops: list[Op] = []
    level = list(groups)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), MAX_CONCAT_INPUTS):
            part = level[i:i + MAX_CONCAT_INPUTS]
            if len(part) == 1:
                nxt.append(part[0])
                continue
            shape = graph.shape(part[0])
            out = graph.add_tensor(routed + "_gathered", (*shape[:3], sum(graph.shape(p)[-1] for p in part)))
            ops.append(Op("CONCATENATION", part, [out], {"axis": 3}, "fold_shuffles"))
            nxt.append(out)
        level = nxt
    return ops, level[0]


def _check_absorbable(graph: Graph, tensor: str, consumers) -> None:
    for reader in consumers.get(tensor, []):
        if reader.kind in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        if reader.kind == "DEPTHWISE_CONV_2D" and reader.options.get("depth_multiplier", 1) == 1:
            _check_absorbable(graph, reader.outputs[0], consumers)
        elif reader.kind in CHANNELWISE:
            _check_absorbable(graph, reader.outputs[0], consumers)
        else:
            raise FoldNotApplicable(f"{reader.kind} {reader.name} cannot absorb a channel permutation")
        if reader.outputs[0] in graph.outputs:
            raise FoldNotApplicable(f"{reader.outputs[0]} is a graph output")


def _absorb(graph: Graph, readers: list[Op], perm: np.ndarray, consumers) -> None:
    """Make ``readers`` correct when channel j of the tensor they read is logical channel perm[j]."""
    for reader in readers:
        if reader.kind in ("CONV_2D", "FULLY_CONNECTED"):
            w = graph.tensors[reader.inputs[1]]
            groups_in = w.data.shape[-1]
            if groups_in != len(perm):
                raise FoldNotApplicable(f"{reader.name}: grouped convolution cannot absorb a permutation")
            new = graph.add_constant(reader.inputs[1] + "_perm", w.data[..., perm])
            reader.inputs[1] = new
        elif reader.kind == "DEPTHWISE_CONV_2D":
            w, b = graph.tensors[reader.inputs[1]], graph.tensors[reader.inputs[2]]
            reader.inputs[1] = graph.add_constant(reader.inputs[1] + "_perm", w.data[..., perm])
            reader.inputs[2] = graph.add_constant(reader.inputs[2] + "_perm", b.data[perm])
            _absorb(graph, consumers.get(reader.outputs[0], []), perm, consumers)
        else:  # channel-wise op (checked by _check_absorbable): its output is permuted the same way
            _absorb(graph, consumers.get(reader.outputs[0], []), perm, consumers)


def _topological(ops: list[Op]) -> list[Op]:
    """Stable topological order (keeps the given order where dependencies allow)."""
    produced_by = {o: i for i, op in enumerate(ops) for o in op.outputs}
    done: set[int] = set()
    out: list[Op] = []

    def visit(i: int) -> None:
        if i in done:
            return
        done.add(i)
        for name in ops[i].inputs:
            j = produced_by.get(name)
            if j is not None:
                visit(j)
        out.append(ops[i])

    for i in range(len(ops)):
        visit(i)
    return out
