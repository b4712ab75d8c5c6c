"""Small helpers the graph passes share: lookups over an ONNX graph and the edit that applies a rewrite.

Every pass reads the graph through a ``GraphIndex`` (who produces and who consumes each tensor, constant
values, static shapes) and writes through ``apply_rewrites``, which splices new nodes in, drops the old
ones, restores topological order and removes whatever became dead. New names come from ``NameAllocator``
and are derived from the names of the matched nodes, so running a pass twice on the same bytes gives the
same bytes.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Split and Unsqueeze take their sizes/axes as inputs from opset 13 on; the passes emit that spelling.
MIN_OPSET_FOR_INPUT_SIZES = 13


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default ("" / "ai.onnx") operator set the model imports, 0 if none."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 0


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor whose shape ONNX shape inference can pin to concrete integers."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # a graph shape inference cannot type is still a graph we can leave alone
        inferred = model
    shapes: dict[str, tuple[int, ...]] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes


def attribute(node: onnx.NodeProto, name: str, default=None):
    """The value of ``node``'s attribute ``name``, or ``default`` when it is absent."""
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


class GraphIndex:
    """Read-only lookups over one model's main graph, built once per pass."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.by_name: dict[str, onnx.NodeProto] = {n.name: n for n in self.nodes}
        self.position: dict[str, int] = {n.name: i for i, n in enumerate(self.nodes)}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for out in node.output:
                if out:
                    self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers.setdefault(inp, []).append(node)
        self.initializers = {init.name: init for init in graph.initializer}
        self.graph_inputs = {v.name for v in graph.input}
        self.graph_outputs = {v.name for v in graph.output}
        self.shapes = static_shapes(model)

    def shape(self, tensor: str) -> tuple[int, ...] | None:
        return self.shapes.get(tensor)

    def consumers_of(self, tensor: str) -> list[onnx.NodeProto]:
        return self.consumers.get(tensor, [])

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The node that is the sole reader of ``tensor``; None if it has several or is a graph output."""
        readers = self.consumers_of(tensor)
        if tensor in self.graph_outputs or len(readers) != 1:
            return None
        # A node reading the tensor twice is still one reader, but then it is not a simple chain link.
        if sum(1 for i in readers[0].input if i == tensor) != 1:
            return None
        return readers[0]

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of ``tensor`` if it is a Constant or an initializer no graph input overrides."""
        if tensor in self.initializers and tensor not in self.graph_inputs:
            return numpy_helper.to_array(self.initializers[tensor])
        node = self.producer.get(tensor)
        if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return None
        for attr in node.attribute:
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
            if attr.name == "value_int":
                return np.array(attr.i, dtype=np.int64)
            if attr.name == "value_ints":
                return np.array(list(attr.ints), dtype=np.int64)
            if attr.name == "value_float":
                return np.array(attr.f, dtype=np.float32)
            if attr.name == "value_floats":
                return np.array(list(attr.floats), dtype=np.float32)
        return None

    def int_constant(self, tensor: str) -> list[int] | None:
        """An integer constant as a flat list of Python ints, None if not a constant integer tensor."""
        if not tensor:
            return None
        value = self.constant(tensor)
        if value is None or value.dtype.kind not in "iu":
            return None
        return [int(v) for v in value.reshape(-1)]


def ensure_node_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` in which every node has a unique name (passes refer to nodes by name).

    Exporters name every node; this only fills blanks or duplicates, as ``<op_type>_<position>``.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    seen: set[str] = set()
    taken = {n.name for n in out.graph.node if n.name}
    for i, node in enumerate(out.graph.node):
        if not node.name or node.name in seen:
            base = f"{node.op_type}_{i}"
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            node.name = name
            taken.add(name)
        seen.add(node.name)
    return out


class NameAllocator:
    """Hands out node and tensor names not yet used in a model, derived from a given base name."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        used: set[str] = set()
        for node in graph.node:
            used.add(node.name)
            used.update(node.input)
            used.update(node.output)
        used.update(v.name for v in [*graph.input, *graph.output, *graph.value_info])
        used.update(i.name for i in graph.initializer)
        self._used = used

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name


@dataclass
class Rewrite:
    """One local edit: drop ``remove`` (node names), add ``nodes`` and ``initializers``."""

    remove: Sequence[str]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    detail: str = ""


def int64_initializer(names: NameAllocator, base: str, values: Iterable[int]) -> onnx.TensorProto:
    """A fresh 1-D int64 initializer holding ``values`` (shapes, split sizes, axes)."""
    return numpy_helper.from_array(np.asarray(list(values), dtype=np.int64), names.fresh(base))


def apply_rewrites(model: onnx.ModelProto, rewrites: Sequence[Rewrite]) -> onnx.ModelProto:
    """A copy of ``model`` with every rewrite applied, nodes in topological order, dead code removed.

    New nodes are placed where the first node they replace stood; a stable topological sort then fixes
    any node that has to move, keeping the original order everywhere else.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    anchor: dict[str, list[onnx.NodeProto]] = {}
    removed: set[str] = set()
    position = {n.name: i for i, n in enumerate(graph.node)}
    for rw in rewrites:
        first = min(rw.remove, key=lambda name: position[name])
        anchor.setdefault(first, []).extend(rw.nodes)
        removed.update(rw.remove)
        graph.initializer.extend(rw.initializers)
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.extend(anchor.get(node.name, []))
        if node.name not in removed:
            nodes.append(node)
    nodes = _stable_toposort(graph, nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    remove_dead_code(out)
    return out


def _stable_toposort(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Kahn's algorithm that always emits the ready node that came first, so valid orders are kept."""
    available = {v.name for v in graph.input} | {i.name for i in graph.initializer} | {""}
    producer_index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            producer_index[out] = i
    waiting_on: list[int] = []
    dependents: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        deps = {producer_index[t] for t in node.input if t not in available and t in producer_index}
        waiting_on.append(len(deps))
        for d in sorted(deps):
            dependents.setdefault(d, []).append(i)
    ready = [i for i, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in dependents.get(i, []):
            waiting_on[j] -= 1
            if waiting_on[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):  # a cycle: not ours to fix, leave the order as it was
        return nodes
    return [nodes[i] for i in order]


def remove_dead_code(model: onnx.ModelProto) -> None:
    """In place: drop nodes nothing reads, then initializers and value_info nothing refers to."""
    graph = model.graph
    outputs = {v.name for v in graph.output}
    while True:
        read = set(outputs)
        for node in graph.node:
            read.update(node.input)
            read.update(_subgraph_reads(node))
        keep = [n for n in graph.node if any(o in read for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    inputs = {v.name for v in graph.input}
    inits = [i for i in graph.initializer if i.name in read or i.name in inputs]
    if len(inits) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(inits)
    produced = {o for n in graph.node for o in n.output}
    infos = [v for v in graph.value_info if v.name in produced]
    if len(infos) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(infos)


def drop_unread_initializers(graph: onnx.GraphProto) -> None:
    """In place: drop the initializers no node reads (after a rewrite that replaced or removed their readers)."""
    read = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Names a control-flow node's subgraphs read from the enclosing scope (conservatively: all inputs)."""
    reads: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            for inner in sub.node:
                reads.update(inner.input)
                reads.update(_subgraph_reads(inner))
    return reads


def make_node(
    op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str, **attrs
) -> onnx.NodeProto:
    """``onnx.helper.make_node`` with the name required, so no pass forgets to give one."""
    return helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs)


def split_node(
    model: onnx.ModelProto,
    names: NameAllocator,
    base: str,
    source: str,
    axis: int,
    sizes: Sequence[int],
    outputs: Sequence[str],
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """A Split of ``source`` along ``axis`` into ``sizes`` named ``outputs``, in the spelling the model's
    opset wants (sizes as an input from opset 13, as an attribute before)."""
    name = names.fresh(f"{base}/split")
    if default_opset(model) < MIN_OPSET_FOR_INPUT_SIZES:
        return [make_node("Split", [source], outputs, name, axis=axis, split=[int(s) for s in sizes])], []
    split = int64_initializer(names, f"{base}/split_sizes", sizes)
    return [make_node("Split", [source, split.name], outputs, name, axis=axis)], [split]


def tensor_reads(graph: onnx.GraphProto) -> Counter:
    """How often each tensor name is read: node inputs (subgraphs included) and graph outputs."""
    reads: Counter = Counter(o.name for o in graph.output)
    for node in graph.node:
        reads.update(i for i in node.input if i)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                reads.update(tensor_reads(sub))
    return reads
