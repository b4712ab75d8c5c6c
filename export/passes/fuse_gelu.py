"""Pass: fuse a GELU spelled out in elementwise ops into one Gelu node.

Before opset 20 PyTorch exports ``nn.GELU()`` as ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (Div, Erf, Add, Mul, Mul)
and ``nn.GELU(approximate="tanh")`` as ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``. TFLite has
a GELU op (XNNPACK runs it) but no erf. The pass finds each Erf or Tanh, walks back to the one tensor ``x`` its
argument is computed from and forward through ``+ 1`` and the products with ``x`` and 0.5, then proves the
region is a GELU by evaluating it on sample values (so every spelling and operand order is recognised, and
nothing that merely looks alike is fused). The fused node is ``com.microsoft.Gelu`` (erf) or
``com.microsoft.FastGelu`` (tanh): opset-17 models have no standard Gelu, and ONNX Runtime runs both, so the
pass's result can be checked; it is meant for the TFLite lowering, not for ``.onnx`` files.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph_utils import GraphIndex, NameAllocator, Rewrite, apply_rewrites, ensure_node_names
from .result import PassResult

NAME = "fuse_gelu"
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow"}
_MAX_ARGUMENT_NODES = 6  # x^3 * c + x, times sqrt(2/pi): five nodes in the tanh form


def fuse_gelu(model: onnx.ModelProto) -> PassResult:
    """Replace every elementwise GELU (erf or tanh form) with one Gelu/FastGelu node (domain com.microsoft)
    whose output keeps the region's output name. Returns a PassResult with a new model."""
    model = ensure_node_names(model)
    graph = model.graph
    index = GraphIndex(model)
    consts = {}
    for node in graph.node:
        for name in node.input:
            value = index.constant(name) if name else None
            if value is not None:
                consts[name] = value
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    names = NameAllocator(model)
    position = {n.name: k for k, n in enumerate(graph.node)}
    rewrites, used = [], set()
    for node in graph.node:
        if node.op_type not in ("Erf", "Tanh") or node.name in used:
            continue
        region = _match(node, consts, producers, readers, outputs)
        if region is None:
            continue
        x, nodes, out = region
        nodes = sorted(nodes, key=lambda n: position[n.name])
        approximate = _verify(nodes, x, out, consts, model)
        if approximate is None:
            continue
        used.update(n.name for n in nodes)
        op = "FastGelu" if approximate else "Gelu"
        fused = helper.make_node(op, [x], [out], name=names.fresh(nodes[-1].name + "_gelu"), domain="com.microsoft")
        rewrites.append(Rewrite([n.name for n in nodes], [fused], [], f"{len(nodes)} nodes -> {op} ({out})"))
    if not rewrites:
        return PassResult(NAME, model, 0, [])
    fused_model = apply_rewrites(model, rewrites)
    if not any(o.domain == "com.microsoft" for o in fused_model.opset_import):
        fused_model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return PassResult(NAME, fused_model, len(rewrites), [r.detail for r in rewrites])


def _sole_reader(name: str, readers, outputs) -> onnx.NodeProto | None:
    users = readers.get(name, [])
    return users[0] if len(users) == 1 and name not in outputs else None


def _match(core, consts, producers, readers, outputs):
    """(x, region nodes in graph order, output name) around the Erf/Tanh ``core``, or None."""
    # backwards: the argument's nodes, down to the single non-constant tensor they read
    argument, frontier, sources = [], [core.input[0]], set()
    while frontier:
        name = frontier.pop()
        producer = producers.get(name)
        if name in consts or (producer is not None and producer.op_type == "Constant"):
            continue
        if producer is None or producer.op_type not in _ELEMENTWISE or len(argument) >= _MAX_ARGUMENT_NODES:
            sources.add(name)
            continue
        if producer not in argument:
            argument.append(producer)
            frontier.extend(producer.input)
    if len(sources) != 1 or not argument:
        return None
    x = sources.pop()
    # forwards: + 1, then up to two products (with x, 0.5 or x * 0.5)
    add = _sole_reader(core.output[0], readers, outputs)
    if add is None or add.op_type != "Add":
        return None
    tail, name = [add], add.output[0]
    for _ in range(2):
        mul = _sole_reader(name, readers, outputs)
        if mul is None or mul.op_type != "Mul":
            break
        other = [i for i in mul.input if i != name]
        halves = producers.get(other[0]) if other else None
        if halves is not None and halves.op_type == "Mul" and x in halves.input and len(readers[other[0]]) == 1:
            tail.append(halves)  # (x * 0.5) * (1 + erf(...))
        tail.append(mul)
        name = mul.output[0]
    nodes = [*argument, core, *tail]
    inside = {o for n in nodes for o in n.output}
    for n in nodes:  # intermediate tensors must not be read outside the region
        for o in n.output:
            if o != name and (o in outputs or any(r not in nodes for r in readers.get(o, []))):
                return None
    if any(i not in inside and i != x and i not in consts and producers.get(i) is not None
           and producers[i].op_type != "Constant" for n in nodes for i in n.input):
        return None
    return x, nodes, name


def _verify(nodes, x: str, out: str, consts, model) -> bool | None:
    """Evaluate the region on sample values: False for the erf GELU, True for the tanh one, None otherwise."""
    from onnx.reference import ReferenceEvaluator

    samples = np.linspace(-6.0, 6.0, 97, dtype=np.float32)
    needed = sorted({i for n in nodes for i in n.input if i in consts})
    inits = [numpy_helper.from_array(np.asarray(consts[name]), name) for name in needed]
    graph = helper.make_graph(
        nodes, "gelu_region",
        [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [len(samples)])],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)], inits)
    opset = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    try:
        (got,) = ReferenceEvaluator(helper.make_model(graph, opset_imports=opset)).run(None, {x: samples})
    except Exception:
        return None
    v = samples.astype(np.float64)
    erf_form = 0.5 * v * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))
    tanh_form = 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    got = np.asarray(got, dtype=np.float64).ravel()
    if got.shape != v.shape:
        return None
    if np.allclose(got, erf_form, rtol=1e-5, atol=1e-6):
        return False
    if np.allclose(got, tanh_form, rtol=1e-5, atol=1e-6):
        return True
    return None
