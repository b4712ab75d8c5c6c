"""Per-layer ops of an ONNX file, with shapes from ONNX shape inference.

Every node the file has is an op that runs, so the data movement of a channel shuffle is counted as it
was exported (Reshape/Transpose/Reshape, or a fused Split). Ops the analysis does not know become kind
``other`` with their op type as the name; their tensors still count as memory access. Shapes that
inference cannot resolve count as one element per unknown dimension, and the analysis says so.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.analysis.costs import OpNode, conv_kind
from edgekit.errors import ModelFileError

_KINDS = {
    "Relu": "elementwise", "Clip": "elementwise", "Sigmoid": "elementwise", "HardSwish": "elementwise",
    "HardSigmoid": "elementwise", "Tanh": "elementwise", "LeakyRelu": "elementwise", "PRelu": "elementwise",
    "Add": "elementwise", "Sub": "elementwise", "Mul": "elementwise", "Div": "elementwise", "Sum": "elementwise",
    "BatchNormalization": "elementwise", "Softmax": "elementwise", "Erf": "elementwise", "Neg": "elementwise",
    "QuantizeLinear": "elementwise", "DequantizeLinear": "elementwise", "Dropout": "elementwise",
    "MaxPool": "pool", "AveragePool": "pool", "GlobalAveragePool": "pool", "GlobalMaxPool": "pool",
    "ReduceMean": "pool", "ReduceMax": "pool",
    "Concat": "concat", "Split": "split", "Slice": "slice", "Gather": "slice", "Transpose": "transpose",
    "Reshape": "reshape", "Flatten": "reshape", "Squeeze": "reshape", "Unsqueeze": "reshape", "Identity": "reshape",
    "Pad": "pad",
}
# Nodes that only compute shapes or constants: they are folded away by any runtime.
_SKIP = {"Constant", "Shape", "ConstantOfShape", "Size"}


def onnx_nodes(path: str | Path) -> tuple[list[OpNode], list[list[int]], list[str]]:
    """The ops of an ONNX file in graph order, its input shapes and notes.

    Raises ``ModelFileError`` when the file is missing or not a readable ONNX model.
    """
    import onnx

    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist; pass an .onnx or .tflite file or a model name") from None
    except Exception as exc:  # onnx raises DecodeError and friends for corrupt files
        raise ModelFileError(f"{path} is not a readable ONNX model ({exc.__class__.__name__})") from None
    notes: list[str] = []
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        notes.append(f"ONNX shape inference failed ({exc.__class__.__name__}); unknown shapes count as 1 element")
    graph = model.graph
    consts = {i.name: tuple(int(d) for d in i.dims) for i in graph.initializer}
    const_values = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts.update({o: () for o in node.output})
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    inputs = [list(shapes.get(i.name, ())) for i in graph.input if i.name not in consts]
    nodes: list[OpNode] = []
    unknown_shapes = 0
    for index, node in enumerate(graph.node):
        if node.op_type in _SKIP:
            continue
        act_in = [n for n in node.input if n and n not in consts]
        weights = [n for n in node.input if n and n in consts]
        outs = [n for n in node.output if n]
        unknown_shapes += sum(1 for n in act_in + outs if n not in shapes)
        op = OpNode(
            name=node.name or f"{node.op_type}_{index}", op_type=node.op_type, kind=_KINDS.get(node.op_type, "other"),
            input_shapes=[shapes.get(n, ()) for n in act_in], output_shapes=[shapes.get(n, ()) for n in outs],
            params=sum(_count(consts[n]) for n in weights if n in const_values),
            inputs=act_in, outputs=outs,
        )
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv") and weights:
            w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
            w = consts.get(w_name, ())
            if len(w) == 4:
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                groups = int(attrs.get("group", 1))
                in_shape, out_shape = op.input_shapes[0], op.output_shapes[0]
                c_in = in_shape[1] if len(in_shape) == 4 and in_shape[1] > 0 else w[1] * groups
                op.in_channels, op.out_channels, op.groups, op.kernel = c_in, w[0], groups, (w[2], w[3])
                op.out_hw = out_shape[2] * out_shape[3] if len(out_shape) == 4 else None
                op.kind = conv_kind(c_in, w[0], groups, (w[2], w[3]))
                op.weight_elements = _count(w)
        elif node.op_type in ("Gemm", "MatMul") and weights:
            w = consts[weights[0]]
            if len(w) == 2:
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                in_f, out_f = (w[1], w[0]) if attrs.get("transB", 0) else (w[0], w[1])
                op.kind, op.in_channels, op.out_channels, op.weight_elements = "fc", in_f, out_f, _count(w)
        if op.kind == "other":
            op.note = f"unknown op {node.op_type}"
        nodes.append(op)
    if unknown_shapes:
        notes.append(f"{unknown_shapes} tensor shapes unknown to ONNX shape inference count as 1 element each")
    return nodes, inputs, notes


def _count(shape) -> int:
    total = 1
    for d in shape:
        total *= max(int(d), 1)
    return total
