"""Lower an exported ONNX graph (NCHW) to edgekit's NHWC TFLite graph, with no layout transposes.

Every 4-D activation becomes NHWC once, at the input; weights are permuted instead of activations, and
axes of Concat/Split/Slice/Reduce are remapped. Channel shuffles (already canonical Reshape -> Transpose
-> Reshape after edgekit's ONNX passes) become one ``SHUFFLE`` pseudo-op that the shuffle lowerings in
``edgekit.export.tflite.shuffle`` replace with real TFLite ops. Explicit PAD is emitted only where
TFLite's SAME padding differs from PyTorch's symmetric padding.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.errors import ExportError
from edgekit.export.tflite.ir import Graph, Op

NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


class _Lowering:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in self.model.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in [*self.model.graph.input, *self.model.graph.value_info, *self.model.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
        self.g = Graph()
        self.names: dict[str, str] = {}  # ONNX tensor -> IR tensor
        self.nhwc: set[str] = set()  # ONNX tensors whose IR tensor is NHWC
        self.nonnegative: set[str] = set()  # IR tensors known >= 0 (after a ReLU), for max-pool padding
        self.layout_transposes = 0
        self.onnx_users: dict[str, int] = {}
        for node in self.model.graph.node:
            for name in node.input:
                self.onnx_users[name] = self.onnx_users.get(name, 0) + 1
        self.onnx_outputs = {o.name for o in self.model.graph.output}

    # --- helpers ------------------------------------------------------------------------------------

    def onnx_shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise ExportError(f"tensor {name!r} has no static shape; export with a fixed --input-shape")
        return self.shapes[name]

    def ir_shape_of(self, name: str) -> tuple[int, ...]:
        shape = self.onnx_shape(name)
        return to_nhwc(shape) if len(shape) == 4 else shape

    def define(self, onnx_name: str, dtype: str = "float32") -> str:
        shape = self.onnx_shape(onnx_name)
        ir = self.g.add_tensor(_clean(onnx_name), to_nhwc(shape) if len(shape) == 4 else shape, dtype)
        self.names[onnx_name] = ir
        if len(shape) == 4:
            self.nhwc.add(onnx_name)
        return ir

    def use(self, onnx_name: str) -> str:
        if onnx_name in self.names:
            return self.names[onnx_name]
        if onnx_name in self.consts:
            value = self.consts[onnx_name]
            if value.ndim == 4:
                value = value.transpose(0, 2, 3, 1)
            ir = self.g.add_constant(_clean(onnx_name), value.astype(np.float32) if value.dtype == np.float64
                                     else value)
            self.names[onnx_name] = ir
            return ir
        raise ExportError(f"tensor {onnx_name!r} is used before it is computed")

    def emit(self, kind: str, inputs: list[str], outputs: list[str], node, **options) -> Op:
        op = Op(kind, inputs, outputs, options, name=node.name if node is not None else "")
        self.g.ops.append(op)
        return op

    def unsupported(self, node, why: str = "") -> ExportError:
        detail = f" ({why})" if why else ""
        return ExportError(
            f"ONNX op {node.op_type} (node {node.name or node.output[0]}) has no TFLite lowering in edgekit{detail};"
            " --format onnx still works"
        )

    # --- driver -------------------------------------------------------------------------------------

    def run(self) -> Graph:
        from edgekit.export.passes import find_channel_shuffles

        graph = self.model.graph
        for inp in graph.input:
            if inp.name in self.consts:
                continue
            ir = self.define(inp.name)
            self.g.inputs.append(ir)
        shuffles = {m.nodes[0]: m for m in find_channel_shuffles(self.model) if m.canonical}
        skip: set[str] = set()
        for node in graph.node:
            if node.name in skip or node.op_type == "Constant":
                continue
            if node.name in shuffles:
                match = shuffles[node.name]
                skip.update(match.nodes)
                out = self.define(match.outputs[0])
                self.emit("SHUFFLE", [self.use(match.input)], [out], node, groups=match.groups)
                if self.names[match.input] in self.nonnegative:
                    self.nonnegative.add(out)
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                raise self.unsupported(node)
            handler(node)
        for out in graph.output:
            self.g.outputs.append(self.use(out.name))
        self.g.remove_unused()
        return self.g

    # --- ops ----------------------------------------------------------------------------------------

    def op_Conv(self, node) -> None:
        a = _attrs(node)
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.unsupported(node, "dilated convolution")
        weight = self.consts.get(node.input[1])
        if weight is None or weight.ndim != 4:
            raise self.unsupported(node, "weights are not a constant 4-D tensor")
        out_c, in_per_group, kh, kw = weight.shape
        group = int(a.get("group", 1))
        bias = self.consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(out_c, np.float32)
        x = self.use(node.input[0])
        in_shape = self.onnx_shape(node.input[0])
        strides = tuple(a.get("strides", [1, 1]))
        x, padding = self.padding(node, x, in_shape, (kh, kw), strides, a.get("pads", [0, 0, 0, 0]), pad_value=0.0)
        name = _clean(node.output[0])
        b = self.g.add_constant(name + "_bias", bias.astype(np.float32))
        out = self.define(node.output[0])
        if group == 1:
            w = self.g.add_constant(name + "_filter", weight.transpose(0, 2, 3, 1).astype(np.float32))
            self.emit("CONV_2D", [x, w, b], [out], node, stride=strides, padding=padding)
        elif group == in_shape[1] and in_per_group == 1:
            w = self.g.add_constant(name + "_filter", weight.transpose(1, 2, 3, 0).astype(np.float32))
            self.emit("DEPTHWISE_CONV_2D", [x, w, b], [out], node, stride=strides, padding=padding,
                      depth_multiplier=out_c // group)
        else:  # grouped convolution: TFLite infers the groups from the filter's input depth
            w = self.g.add_constant(name + "_filter", weight.transpose(0, 2, 3, 1).astype(np.float32))
            self.emit("CONV_2D", [x, w, b], [out], node, stride=strides, padding=padding)

    def padding(self, node, x: str, in_shape, kernel, strides, pads, pad_value: float) -> tuple[str, str]:
        """Return the (possibly padded) input and the TFLite padding mode matching ONNX ``pads``."""
        top, left, bottom, right = (int(p) for p in pads)
        if top == left == bottom == right == 0:
            return x, "VALID"
        same = True
        for size, k, s, before, after in zip(in_shape[2:], kernel, strides, (top, left), (bottom, right), strict=True):
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            if (before, after) != (total // 2, total - total // 2) or (size + before + after - k) // s + 1 != out:
                same = False
        if same:
            return x, "SAME"
        n, h, w, c = self.g.shape(x)
        paddings = self.g.int32_constant(_clean(node.name or node.output[0]) + "_paddings",
                                         [[0, 0], [top, bottom], [left, right], [0, 0]])
        padded = self.g.add_tensor(x + "_padded", (n, h + top + bottom, w + left + right, c))
        if pad_value == 0.0:
            self.emit("PAD", [x, paddings], [padded], node)
        else:
            fill = self.g.add_constant(x + "_pad_value", np.array(pad_value, dtype=np.float32))
            self.emit("PADV2", [x, paddings, fill], [padded], node)
        if x in self.nonnegative:
            self.nonnegative.add(padded)
        return padded, "VALID"

    def op_Relu(self, node) -> None:
        self._activation(node, "RELU")

    def op_Clip(self, node) -> None:
        lo = self.consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        hi = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0:
            self._activation(node, "RELU6")
        else:
            raise self.unsupported(node, "only Clip(0, 6) (ReLU6) is supported")

    def _activation(self, node, kind: str) -> None:
        x = self.use(node.input[0])
        op = self.g.producers().get(x)
        fusable = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "CONCATENATION")
        sole_reader = self.onnx_users.get(node.input[0], 0) == 1 and node.input[0] not in self.onnx_outputs
        if op is not None and op.kind in fusable and op.options.get("activation", "NONE") == "NONE" and sole_reader:
            op.options["activation"] = kind
            self.names[node.output[0]] = x
            if node.input[0] in self.nhwc:
                self.nhwc.add(node.output[0])
            self.nonnegative.add(x)
            return
        out = self.define(node.output[0])
        self.emit(kind, [x], [out], node)
        self.nonnegative.add(out)

    def op_Sigmoid(self, node) -> None:
        self.emit("LOGISTIC", [self.use(node.input[0])], [self.define(node.output[0])], node)

    def op_HardSwish(self, node) -> None:
        self.emit("HARD_SWISH", [self.use(node.input[0])], [self.define(node.output[0])], node)

    def op_MaxPool(self, node) -> None:
        a = _attrs(node)
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.unsupported(node, "ceil_mode or dilation")
        x = self.use(node.input[0])
        kernel, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
        # Padding a max pool with zeros is exact when the input is >= 0 (after a ReLU): every window keeps
        # at least one real value. PAD with zeros is delegated to XNNPACK; PADV2 with -inf is not.
        fill = 0.0 if x in self.nonnegative else float(np.finfo(np.float32).min)
        x, padding = self.padding(node, x, self.onnx_shape(node.input[0]), kernel, strides,
                                  a.get("pads", [0, 0, 0, 0]), pad_value=fill)
        out = self.define(node.output[0])
        self.emit("MAX_POOL_2D", [x], [out], node, filter=kernel, stride=strides, padding=padding)
        if x in self.nonnegative:
            self.nonnegative.add(out)

    def op_AveragePool(self, node) -> None:
        a = _attrs(node)
        if any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0):
            raise self.unsupported(node, "padded or ceil-mode average pooling")
        out = self.define(node.output[0])
        self.emit("AVERAGE_POOL_2D", [self.use(node.input[0])], [out], node, filter=tuple(a["kernel_shape"]),
                  stride=tuple(a.get("strides", [1, 1])), padding="VALID")

    def op_GlobalAveragePool(self, node) -> None:
        axes = self.g.int32_constant("mean_axes", [1, 2])
        self.emit("MEAN", [self.use(node.input[0]), axes], [self.define(node.output[0])], node, keep_dims=True)

    def op_ReduceMean(self, node) -> None:
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = [int(v) for v in self.consts[node.input[1]]]
        rank = len(self.onnx_shape(node.input[0]))
        axes = sorted(int(v) % rank for v in axes)
        if rank == 4:
            axes = sorted(NCHW_TO_NHWC_AXIS[v] for v in axes)
        keep = bool(a.get("keepdims", 1))
        if rank == 4 and not keep and axes != [1, 2]:
            raise self.unsupported(node, "only spatial means can drop dimensions")
        x = self.use(node.input[0])
        out = self.define(node.output[0])
        self.emit("MEAN", [x, self.g.int32_constant("mean_axes", axes)], [out], node, keep_dims=keep)

    def op_Gemm(self, node) -> None:
        a = _attrs(node)
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            raise self.unsupported(node, "scaled or transposed-A Gemm")
        weight = self.consts.get(node.input[1])
        if weight is None:
            raise self.unsupported(node, "weights are not constant")
        if not a.get("transB", 0):
            weight = weight.T
        bias = self.consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(weight.shape[0])
        name = _clean(node.output[0])
        w = self.g.add_constant(name + "_weights", np.ascontiguousarray(weight, dtype=np.float32))
        b = self.g.add_constant(name + "_bias", bias.astype(np.float32))
        x = self.flat(node.input[0], node)
        self.emit("FULLY_CONNECTED", [x, w, b], [self.define(node.output[0])], node)

    def flat(self, onnx_name: str, node) -> str:
        """The IR tensor for ``onnx_name`` as the 2-D (N, features) tensor its NCHW flattening means."""
        x = self.use(onnx_name)
        shape = self.onnx_shape(onnx_name)
        if len(shape) != 4:
            return x
        n, c, h, w = shape
        if h * w != 1:  # NHWC and NCHW flatten differently: this one costs a layout transpose
            perm = self.g.int32_constant("to_nchw", [0, 3, 1, 2])
            t = self.g.add_tensor(x + "_nchw", (n, c, h, w))
            self.emit("TRANSPOSE", [x, perm], [t], node)
            self.layout_transposes += 1
            x = t
        out = self.g.add_tensor(x + "_flat", (n, c * h * w))
        self.emit("RESHAPE", [x, self.g.int32_constant("flat_shape", [n, c * h * w])], [out], node,
                  new_shape=(n, c * h * w))
        return out

    def op_Flatten(self, node) -> None:
        if _attrs(node).get("axis", 1) != 1:
            raise self.unsupported(node, "Flatten with axis != 1")
        self.names[node.output[0]] = self.flat(node.input[0], node)

    def op_Reshape(self, node) -> None:
        in_shape = self.onnx_shape(node.input[0])
        out_shape = self.onnx_shape(node.output[0])
        if len(in_shape) == 4 and len(out_shape) == 2 and out_shape[0] == in_shape[0]:
            self.names[node.output[0]] = self.flat(node.input[0], node)
            return
        if len(in_shape) != 4 and len(out_shape) != 4:
            out = self.define(node.output[0])
            self.emit("RESHAPE", [self.use(node.input[0]), self.g.int32_constant("shape", out_shape)], [out], node,
                      new_shape=out_shape)
            return
        raise self.unsupported(node, f"reshape {in_shape} -> {out_shape} is not a channel shuffle or a flatten")

    def op_Concat(self, node) -> None:
        axis = self._axis(node.input[0], _attrs(node).get("axis", 0))
        out = self.define(node.output[0])
        inputs = [self.use(i) for i in node.input]
        self.emit("CONCATENATION", inputs, [out], node, axis=axis)
        if all(i in self.nonnegative for i in inputs):
            self.nonnegative.add(out)

    def _axis(self, onnx_name: str, axis: int) -> int:
        rank = len(self.onnx_shape(onnx_name))
        axis = int(axis) % rank
        return NCHW_TO_NHWC_AXIS[axis] if rank == 4 else axis

    def op_Split(self, node) -> None:
        a = _attrs(node)
        shape = self.onnx_shape(node.input[0])
        onnx_axis = int(a.get("axis", 0)) % len(shape)
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(v) for v in self.consts[node.input[1]]]
        elif "split" in a:
            sizes = [int(v) for v in a["split"]]
        else:
            sizes = [shape[onnx_axis] // len(node.output)] * len(node.output)
        axis = self._axis(node.input[0], onnx_axis)
        x = self.use(node.input[0])
        outs = [self.define(o) for o in node.output]
        if len(set(sizes)) == 1:
            self.emit("SPLIT", [self.g.int32_constant("split_axis", np.array(axis)), x], outs, node,
                      num_splits=len(outs))
        else:  # SPLIT_V is not delegated to XNNPACK; SLICE is
            start = 0
            for out, size in zip(outs, sizes, strict=True):
                self.slice(x, out, axis, start, size, node)
                start += size
        for out in outs:
            if x in self.nonnegative:
                self.nonnegative.add(out)

    def slice(self, x: str, out: str, axis: int, start: int, size: int, node) -> None:
        shape = self.g.shape(x)
        begin = [0] * len(shape)
        sizes = list(shape)
        begin[axis], sizes[axis] = start, size
        self.emit("SLICE", [x, self.g.int32_constant("slice_begin", begin), self.g.int32_constant("slice_size", sizes)],
                  [out], node)

    def op_Slice(self, node) -> None:
        shape = self.onnx_shape(node.input[0])
        starts = [int(v) for v in self.consts[node.input[1]]]
        ends = [int(v) for v in self.consts[node.input[2]]]
        axes = [int(v) for v in self.consts[node.input[3]]] if len(node.input) > 3 and node.input[3] else list(
            range(len(starts)))
        steps = [int(v) for v in self.consts[node.input[4]]] if len(node.input) > 4 and node.input[4] else [1] * len(
            starts)
        if len(axes) != 1 or steps != [1]:
            raise self.unsupported(node, "only unit-step slices along one axis")
        onnx_axis = axes[0] % len(shape)
        dim = shape[onnx_axis]
        start = max(0, starts[0] + dim if starts[0] < 0 else min(starts[0], dim))
        end = max(0, ends[0] + dim if ends[0] < 0 else min(ends[0], dim))
        x = self.use(node.input[0])
        out = self.define(node.output[0])
        self.slice(x, out, self._axis(node.input[0], onnx_axis), start, end - start, node)

    def _binary(self, node, kind: str) -> None:
        a, b = self.use(node.input[0]), self.use(node.input[1])
        for onnx_name in node.input:
            value = self.consts.get(onnx_name)
            if value is not None and value.ndim not in (0, 1, 4) and len(self.onnx_shape(node.output[0])) == 4:
                raise self.unsupported(node, "broadcast constant of unsupported rank")
        self.emit(kind, [a, b], [self.define(node.output[0])], node)

    def op_Add(self, node) -> None:
        self._binary(node, "ADD")

    def op_Mul(self, node) -> None:
        self._binary(node, "MUL")

    def op_Identity(self, node) -> None:
        self.names[node.output[0]] = self.use(node.input[0])
        if node.input[0] in self.nhwc:
            self.nhwc.add(node.output[0])


def to_nhwc(shape) -> tuple[int, ...]:
    n, c, h, w = shape
    return (n, h, w, c)


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _clean(name: str) -> str:
    return name.strip("/").replace("/", ".") or "t"


def onnx_to_tflite_graph(model: onnx.ModelProto) -> tuple[Graph, int]:
    """Lower a simplified, shuffle-canonical ONNX model to an NHWC graph.

    Returns the graph and the number of layout transposes it needed (0 for ShuffleNetV2). Raises
    ExportError naming the first op and node that cannot be lowered.
    """
    lowering = _Lowering(model)
    graph = lowering.run()
    return graph, lowering.layout_transposes
