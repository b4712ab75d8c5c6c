"""Lowering of spatial ONNX ops (convolutions, padding, pooling) to NHWC TFLite ops.

A mixin of ``from_onnx._Lowering``: handlers ``op_<OnnxType>`` use its ``use``/``define``/``emit`` helpers.
"""

from __future__ import annotations

import numpy as np

from edgekit.export.tflite.lowering_utils import attrs as _attrs
from edgekit.export.tflite.lowering_utils import clean as _clean


class SpatialOps:
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
