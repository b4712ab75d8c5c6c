"""Per-layer ops of a .tflite file, read straight from its flatbuffer (no interpreter, so custom ops the
local LiteRT cannot resolve are still read, as kind ``other``).

Shapes are NHWC as stored. A fused activation (``CONV_2D`` with ReLU) costs nothing extra: the runtime
applies it while the output is still in registers. Ops are named after their first output tensor, which
is also how LiteRT's profiler names them.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.analysis.costs import OpNode, conv_kind
from edgekit.errors import ModelFileError

_KINDS = {
    "RELU": "elementwise", "RELU6": "elementwise", "RELU_N1_TO_1": "elementwise", "LOGISTIC": "elementwise",
    "TANH": "elementwise", "HARD_SWISH": "elementwise", "LEAKY_RELU": "elementwise", "PRELU": "elementwise",
    "ADD": "elementwise", "SUB": "elementwise", "MUL": "elementwise", "DIV": "elementwise", "ADD_N": "elementwise",
    "SOFTMAX": "elementwise", "QUANTIZE": "elementwise", "DEQUANTIZE": "elementwise",
    "MAX_POOL_2D": "pool", "AVERAGE_POOL_2D": "pool", "MEAN": "pool", "REDUCE_MAX": "pool", "SUM": "pool",
    "CONCATENATION": "concat", "SPLIT": "split", "SPLIT_V": "split", "UNPACK": "split", "SLICE": "slice",
    "STRIDED_SLICE": "slice", "GATHER": "slice", "TRANSPOSE": "transpose", "RESHAPE": "reshape",
    "SQUEEZE": "reshape", "EXPAND_DIMS": "reshape", "PAD": "pad", "PADV2": "pad", "MIRROR_PAD": "pad",
}

_SHAPE_ARGUMENT_KINDS = ("pool", "concat", "split", "slice", "transpose", "reshape", "pad")


def _builtin_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def tflite_nodes(path: str | Path) -> tuple[list[OpNode], list[list[int]], list[str]]:
    """The ops of the first subgraph of a .tflite file in execution order, its input shapes and notes.

    Raises ``ModelFileError`` when the file is missing or not a TFLite flatbuffer.
    """
    from ai_edge_litert import schema_py_generated as schema

    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist; pass an .onnx or .tflite file or a model name") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAsModel(content, 0)
        graph = model.Subgraphs(0)
        names = _builtin_names(schema)
        notes = [] if model.SubgraphsLength() == 1 else [
            f"{model.SubgraphsLength()} subgraphs; only the first (the main graph) is analysed"]

        def is_constant(index: int) -> bool:
            buffer = model.Buffers(graph.Tensors(index).Buffer())
            return buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)

        def shape(index: int) -> tuple[int, ...]:
            tensor = graph.Tensors(index)
            return tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

        nodes: list[OpNode] = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            op_type = names.get(builtin, f"BUILTIN_{builtin}")
            if op_type == "CUSTOM":
                op_type = (code.CustomCode() or b"CUSTOM").decode("utf-8", "replace")
            ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
            ins = [t for t in ins if t >= 0]
            act_in = [t for t in ins if not is_constant(t)]
            consts = [t for t in ins if is_constant(t)]
            first_out = graph.Tensors(outs[0]).Name().decode("utf-8", "replace") if outs else f"op{i}"
            node = OpNode(
                name=first_out, op_type=op_type, kind=_KINDS.get(op_type, "other"),
                input_shapes=[shape(t) for t in act_in], output_shapes=[shape(t) for t in outs],
                # constants of data-movement ops are shapes and axes, not parameters
                params=0 if _KINDS.get(op_type) in _SHAPE_ARGUMENT_KINDS else sum(_count(shape(t)) for t in consts),
                inputs=[str(t) for t in act_in], outputs=[str(t) for t in outs],
            )
            if op_type in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) > 1 and act_in:
                w = shape(ins[1])
                in_shape, out_shape = node.input_shapes[0], node.output_shapes[0]
                c_in = in_shape[-1]
                if op_type == "CONV_2D":  # filter (O, kh, kw, I/g)
                    c_out, kernel, groups = w[0], (w[1], w[2]), max(c_in // max(w[3], 1), 1)
                else:  # filter (1, kh, kw, C*multiplier)
                    c_out, kernel, groups = w[3], (w[1], w[2]), c_in
                node.in_channels, node.out_channels, node.groups, node.kernel = c_in, c_out, groups, kernel
                node.out_hw = out_shape[1] * out_shape[2] if len(out_shape) == 4 else None
                node.kind = conv_kind(c_in, c_out, groups, kernel)
                node.weight_elements = _count(w)
            elif op_type == "FULLY_CONNECTED" and len(ins) > 1:
                w = shape(ins[1])
                if len(w) == 2:
                    node.kind, node.in_channels, node.out_channels, node.weight_elements = "fc", w[1], w[0], _count(w)
            if node.kind == "other":
                node.note = f"unknown op {op_type}"
            nodes.append(node)
        inputs = [list(shape(int(t))) for t in graph.InputsAsNumpy()] if graph.InputsLength() else []
    except ModelFileError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer fails anywhere while being read
        raise ModelFileError(f"{path} is not a readable TFLite model ({exc.__class__.__name__}: {exc})") from None
    return nodes, inputs, notes


def _count(shape) -> int:
    total = 1
    for d in shape:
        total *= max(int(d), 1)
    return total
