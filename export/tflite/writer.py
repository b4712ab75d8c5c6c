"""Serialise an edgekit NHWC graph to a .tflite flatbuffer with the schema bindings LiteRT ships.

No TensorFlow: ``ai_edge_litert.schema_py_generated`` has the object API (``ModelT.Pack``). Output is
deterministic: opcodes in first-use order, tensors and buffers in graph order, no timestamps.
"""

from __future__ import annotations

import json

import flatbuffers
import numpy as np

from edgekit.errors import ExportError
from edgekit.export.tflite.ir import Graph, Quant
from edgekit.file_metadata import read_tflite_metadata

_IDENTIFIER = b"TFL3"
_ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _tensor_type(schema, dtype: str) -> int:
    types = {
        "float32": schema.TensorType.FLOAT32,
        "int8": schema.TensorType.INT8,
        "uint8": schema.TensorType.UINT8,
        "int32": schema.TensorType.INT32,
        "int64": schema.TensorType.INT64,
        "int16": schema.TensorType.INT16,
    }
    return types[dtype]


def _padding(schema, value: str) -> int:
    return schema.Padding.SAME if value == "SAME" else schema.Padding.VALID


def _options(schema, kind: str, o: dict):
    """(BuiltinOptions type, options object) for one op kind."""
    act = _ACTIVATIONS[o.get("activation", "NONE")]
    B = schema.BuiltinOptions
    if kind == "CONV_2D":
        sh, sw = o.get("stride", (1, 1))
        return B.Conv2DOptions, schema.Conv2DOptionsT(
            padding=_padding(schema, o.get("padding", "VALID")), strideH=sh, strideW=sw,
            fusedActivationFunction=act, dilationHFactor=o.get("dilation", (1, 1))[0],
            dilationWFactor=o.get("dilation", (1, 1))[1],
        )
    if kind == "DEPTHWISE_CONV_2D":
        sh, sw = o.get("stride", (1, 1))
        return B.DepthwiseConv2DOptions, schema.DepthwiseConv2DOptionsT(
            padding=_padding(schema, o.get("padding", "VALID")), strideH=sh, strideW=sw,
            depthMultiplier=o.get("depth_multiplier", 1), fusedActivationFunction=act,
            dilationHFactor=o.get("dilation", (1, 1))[0], dilationWFactor=o.get("dilation", (1, 1))[1],
        )
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        sh, sw = o["stride"]
        fh, fw = o["filter"]
        return B.Pool2DOptions, schema.Pool2DOptionsT(
            padding=_padding(schema, o.get("padding", "VALID")), strideH=sh, strideW=sw,
            filterHeight=fh, filterWidth=fw, fusedActivationFunction=act,
        )
    if kind == "CONCATENATION":
        return B.ConcatenationOptions, schema.ConcatenationOptionsT(axis=o["axis"], fusedActivationFunction=act)
    if kind == "SPLIT":
        return B.SplitOptions, schema.SplitOptionsT(numSplits=o["num_splits"])
    if kind == "RESHAPE":
        return B.ReshapeOptions, schema.ReshapeOptionsT(newShape=list(o["new_shape"]))
    if kind == "TRANSPOSE":
        return B.TransposeOptions, schema.TransposeOptionsT()
    if kind in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        return B.ReducerOptions, schema.ReducerOptionsT(keepDims=bool(o.get("keep_dims", False)))
    if kind == "FULLY_CONNECTED":
        return B.FullyConnectedOptions, schema.FullyConnectedOptionsT(
            fusedActivationFunction=act, keepNumDims=bool(o.get("keep_num_dims", False)),
        )
    if kind == "ADD":
        return B.AddOptions, schema.AddOptionsT(fusedActivationFunction=act)
    if kind == "MUL":
        return B.MulOptions, schema.MulOptionsT(fusedActivationFunction=act)
    # tensor kinds of lower_tensor that _more_options lacks
    if kind == "BROADCAST_TO":
        return B.BroadcastToOptions, schema.BroadcastToOptionsT()
    if kind == "PAD":
        return B.PadOptions, schema.PadOptionsT()
    if kind == "PADV2":
        return B.PadV2Options, schema.PadV2OptionsT()
    if kind == "SLICE":
        return B.SliceOptions, schema.SliceOptionsT()
    if kind == "QUANTIZE":
        return B.QuantizeOptions, schema.QuantizeOptionsT()
    if kind == "DEQUANTIZE":
        return B.DequantizeOptions, schema.DequantizeOptionsT()
    # pointwise and spatial kinds of lower_pointwise / lower_spatial
    if kind == "TRANSPOSE_CONV":
        sh, sw = o.get("stride", (1, 1))
        return B.TransposeConvOptions, schema.TransposeConvOptionsT(
            padding=_padding(schema, o.get("padding", "VALID")), strideH=sh, strideW=sw, fusedActivationFunction=act,
        )
    if kind in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        cls = schema.ResizeBilinearOptionsT if kind == "RESIZE_BILINEAR" else schema.ResizeNearestNeighborOptionsT
        options = cls(alignCorners=bool(o.get("align_corners", False)),
                      halfPixelCenters=bool(o.get("half_pixel_centers", False)))
        return (B.ResizeBilinearOptions if kind == "RESIZE_BILINEAR" else B.ResizeNearestNeighborOptions), options
    if kind == "DEPTH_TO_SPACE":
        return B.DepthToSpaceOptions, schema.DepthToSpaceOptionsT(blockSize=int(o["block_size"]))
    if kind == "MIRROR_PAD":
        mode = schema.MirrorPadMode.REFLECT if o["mode"] == "REFLECT" else schema.MirrorPadMode.SYMMETRIC
        return B.MirrorPadOptions, schema.MirrorPadOptionsT(mode=mode)
    if kind == "LEAKY_RELU":
        return B.LeakyReluOptions, schema.LeakyReluOptionsT(alpha=float(o["alpha"]))
    if kind == "GELU":
        return B.GeluOptions, schema.GeluOptionsT(approximate=bool(o.get("approximate", False)))
    if kind in ("MAXIMUM", "MINIMUM"):
        return B.MaximumMinimumOptions, schema.MaximumMinimumOptionsT()
    if kind in ("RELU_N1_TO_1", "RELU_0_TO_1", "PRELU", "ELU", "EXP", "LOG", "SQRT", "RSQRT", "NEG", "ABS"):
        return B.NONE, None
    if kind in ("RELU", "RELU6", "LOGISTIC", "HARD_SWISH", "TANH"):
        if kind == "HARD_SWISH":
            return B.HardSwishOptions, schema.HardSwishOptionsT()
        return B.NONE, None
    extra = _more_options(schema, kind, o, act)
    if extra is not None:
        return extra
    raise ExportError(f"the TFLite writer has no op {kind}; export with --format onnx instead")


def _more_options(schema, kind: str, o: dict, act: int):
    """Options of the op kinds the general lowering emits beyond ShuffleNetV2's (None for an unknown kind)."""
    B = schema.BuiltinOptions
    simple = {"SUB": (B.SubOptions, schema.SubOptionsT), "DIV": (B.DivOptions, schema.DivOptionsT)}
    if kind in simple:
        options_type, make = simple[kind]
        return options_type, make(fusedActivationFunction=act)
    if kind in ("MAXIMUM", "MINIMUM"):
        return B.MaximumMinimumOptions, schema.MaximumMinimumOptionsT()
    if kind == "SQUARED_DIFFERENCE":
        return B.SquaredDifferenceOptions, schema.SquaredDifferenceOptionsT()
    if kind == "SQUARE":
        return B.SquareOptions, schema.SquareOptionsT()
    if kind == "POW":
        return B.PowOptions, schema.PowOptionsT()
    if kind == "EXP":
        return B.ExpOptions, schema.ExpOptionsT()
    if kind == "ABS":
        return B.AbsOptions, schema.AbsOptionsT()
    if kind == "NEG":
        return B.NegOptions, schema.NegOptionsT()
    if kind in ("RSQRT", "SQRT", "LOG", "PRELU", "ELU", "RELU_N1_TO_1", "RELU_0_TO_1"):
        return B.NONE, None
    if kind == "GELU":
        return B.GeluOptions, schema.GeluOptionsT(approximate=bool(o.get("approximate", False)))
    if kind == "LEAKY_RELU":
        return B.LeakyReluOptions, schema.LeakyReluOptionsT(alpha=float(o["alpha"]))
    if kind == "SOFTMAX":
        return B.SoftmaxOptions, schema.SoftmaxOptionsT(beta=float(o.get("beta", 1.0)))
    if kind == "BATCH_MATMUL":
        return B.BatchMatMulOptions, schema.BatchMatMulOptionsT(adjX=bool(o.get("adj_x", False)),
                                                                 adjY=bool(o.get("adj_y", False)))
    if kind in ("SUM", "REDUCE_MAX"):
        return B.ReducerOptions, schema.ReducerOptionsT(keepDims=bool(o.get("keep_dims", False)))
    if kind == "GATHER":
        return B.GatherOptions, schema.GatherOptionsT(axis=int(o.get("axis", 0)), batchDims=0)
    if kind == "STRIDED_SLICE":
        return B.StridedSliceOptions, schema.StridedSliceOptionsT(
            beginMask=int(o.get("begin_mask", 0)), endMask=int(o.get("end_mask", 0)),
            shrinkAxisMask=int(o.get("shrink_axis_mask", 0)))
    if kind == "MIRROR_PAD":
        mode = schema.MirrorPadMode.SYMMETRIC if o.get("mode") == "SYMMETRIC" else schema.MirrorPadMode.REFLECT
        return B.MirrorPadOptions, schema.MirrorPadOptionsT(mode=mode)
    if kind in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"):
        options_type, make = ((B.ResizeBilinearOptions, schema.ResizeBilinearOptionsT) if kind == "RESIZE_BILINEAR"
                              else (B.ResizeNearestNeighborOptions, schema.ResizeNearestNeighborOptionsT))
        return options_type, make(alignCorners=bool(o.get("align_corners", False)),
                                  halfPixelCenters=bool(o.get("half_pixel_centers", False)))
    if kind == "TRANSPOSE_CONV":
        sh, sw = o.get("stride", (1, 1))
        return B.TransposeConvOptions, schema.TransposeConvOptionsT(
            padding=_padding(schema, o.get("padding", "VALID")), strideH=sh, strideW=sw, fusedActivationFunction=act)
    return None


def _quant(schema, q: Quant | None):
    if q is None:
        return None
    return schema.QuantizationParametersT(
        scale=[float(s) for s in np.asarray(q.scale).ravel()],
        zeroPoint=[int(z) for z in np.asarray(q.zero_point).ravel()],
        quantizedDimension=int(q.axis),
    )


def write_tflite(graph: Graph, *, description: str = "edgekit", metadata: dict | None = None) -> bytes:
    """Serialise ``graph``; ``metadata`` (JSON-able) is embedded as the model metadata entry "edgekit"."""
    schema = _schema()
    buffers = [schema.BufferT()]  # buffer 0: the conventional empty buffer
    index: dict[str, int] = {}
    tensors = []
    for name, t in graph.tensors.items():
        buffer = 0
        if t.data is not None:
            raw = np.ascontiguousarray(t.data).tobytes()
            buffers.append(schema.BufferT(data=np.frombuffer(raw, dtype=np.uint8)))
            buffer = len(buffers) - 1
        index[name] = len(tensors)
        tensors.append(schema.TensorT(
            shape=[int(d) for d in t.shape], type=_tensor_type(schema, t.dtype), buffer=buffer, name=name,
            quantization=_quant(schema, t.quant),
        ))
    opcodes: list[int] = []
    operators = []
    for op in graph.ops:
        code = getattr(schema.BuiltinOperator, op.kind)
        if code not in opcodes:
            opcodes.append(code)
        options_type, options = _options(schema, op.kind, op.options)
        operators.append(schema.OperatorT(
            opcodeIndex=opcodes.index(code),
            inputs=[index[n] if n else -1 for n in op.inputs],
            outputs=[index[n] for n in op.outputs],
            builtinOptionsType=options_type,
            builtinOptions=options,
        ))
    subgraph = schema.SubGraphT(
        tensors=tensors, inputs=[index[n] for n in graph.inputs], outputs=[index[n] for n in graph.outputs],
        operators=operators, name="main",
    )
    # Builtin codes below 127 must also go in the deprecated int8 field, which runtimes still read first.
    codes = [
        schema.OperatorCodeT(deprecatedBuiltinCode=min(c, 127), builtinCode=c, version=max(
            _op_version(graph, op) for op in graph.ops if getattr(schema.BuiltinOperator, op.kind) == c))
        for c in opcodes
    ]
    meta = []
    if metadata is not None:
        blob = json.dumps(metadata, sort_keys=True).encode("utf-8")
        buffers.append(schema.BufferT(data=np.frombuffer(blob, dtype=np.uint8)))
        meta.append(schema.MetadataT(name="edgekit", buffer=len(buffers) - 1))
    model = schema.ModelT(
        version=3, operatorCodes=codes, subgraphs=[subgraph], description=description, buffers=buffers,
        metadata=meta or None,
    )
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


# Versions TensorFlow's converter gives int8 ops (tensorflow/lite/tools/versioning/op_version.cc); the
# resolver only registers the versions a kernel knows, so e.g. RESHAPE stays 1 whatever the type.
_INT8_VERSIONS = {
    "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "TRANSPOSE": 2, "SPLIT": 2, "SLICE": 2, "PAD": 2,
    "PADV2": 2, "MAX_POOL_2D": 2, "AVERAGE_POOL_2D": 2, "CONCATENATION": 2, "MEAN": 2, "ADD": 2, "MUL": 2,
    "RELU": 2, "RELU6": 2, "LOGISTIC": 2, "TANH": 2, "DEQUANTIZE": 2,
    "SUB": 2, "MAXIMUM": 2, "MINIMUM": 2, "SQUARED_DIFFERENCE": 2, "RSQRT": 2, "EXP": 2, "LOG": 2, "ABS": 2,
    "GELU": 2, "SOFTMAX": 2, "BATCH_MATMUL": 2, "SUM": 2, "REDUCE_MAX": 2, "GATHER": 2, "STRIDED_SLICE": 2,
    "MIRROR_PAD": 2, "RESIZE_NEAREST_NEIGHBOR": 2, "RESIZE_BILINEAR": 2, "REDUCE_MIN": 2, "DEPTH_TO_SPACE": 2,
}


def _op_version(graph: Graph, op) -> int:
    if op.kind == "TRANSPOSE_CONV":  # inputs: output shape, filter, data, optional bias
        if len(op.inputs) > 3 and op.inputs[3]:
            return 3
        return 2 if graph.tensors[op.inputs[1]].dtype == "int8" else 1
    if op.kind.startswith("RESIZE_") and (op.options.get("half_pixel_centers") or (
            op.kind == "RESIZE_NEAREST_NEIGHBOR" and op.options.get("align_corners"))):
        return 3
    if op.kind == "BROADCAST_TO":  # version 1 was withdrawn: 2 is float, 3 quantized
        return 3 if graph.tensors[op.inputs[0]].dtype == "int8" else 2
    data = op.inputs[1] if op.kind == "SPLIT" else op.inputs[0]
    if graph.tensors[data].dtype != "int8":
        return 1
    if op.kind == "TRANSPOSE" and len(graph.tensors[data].shape) > 4:
        return 4
    return _INT8_VERSIONS.get(op.kind, 1)


def with_tflite_metadata(content: bytes, fields: dict) -> bytes:
    """``content`` re-serialised with ``fields`` merged into its "edgekit" metadata entry (added if absent);
    tensors, operators, buffers, other metadata entries and packed files (labels) are carried over unchanged."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    merged = {**read_tflite_metadata(content), **fields}
    blob = np.frombuffer(json.dumps(merged, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if m.name in (b"edgekit", "edgekit")]
    if entries:
        model.buffers[entries[0].buffer].data = blob
    else:
        model.buffers.append(schema.BufferT(data=blob))
        model.metadata = [*(model.metadata or []), schema.MetadataT(name="edgekit", buffer=len(model.buffers) - 1)]
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    # Files packed after the model (labels) are addressed from the start of the file: pack them again.
    from edgekit.export.tflite.support_metadata import append_associated_files, read_associated_files

    return append_associated_files(bytes(builder.Output()), read_associated_files(content))
