"""Lowering of tensor-shaped ONNX ops (reshape, flatten, concat, split, slice, reductions, Gemm) to TFLite.

A mixin of ``from_onnx._Lowering``: handlers ``op_<OnnxType>`` use its ``use``/``define``/``emit`` helpers and
its layout bookkeeping (4-D activations are NHWC in the IR).
"""

from __future__ import annotations

import numpy as np

from edgekit.export.tflite.lowering_utils import NCHW_TO_NHWC_AXIS
from edgekit.export.tflite.lowering_utils import attrs as _attrs
from edgekit.export.tflite.lowering_utils import clean as _clean


class TensorOps:
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
        axis = self.ir_axis(node.input[0], _attrs(node).get("axis", 0))
        out = self.define(node.output[0])
        inputs = [self.use(i) for i in node.input]
        self.emit("CONCATENATION", inputs, [out], node, axis=axis)
        if all(i in self.nonnegative for i in inputs):
            self.nonnegative.add(out)

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
        axis = self.ir_axis(node.input[0], onnx_axis)
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
        self.slice(x, out, self.ir_axis(node.input[0], onnx_axis), start, end - start, node)
