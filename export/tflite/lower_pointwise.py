"""Lowering of elementwise ONNX ops (activations, arithmetic) to TFLite ops.

A mixin of ``from_onnx._Lowering``: handlers ``op_<OnnxType>`` use its ``use``/``define``/``emit`` helpers.
"""

from __future__ import annotations


class PointwiseOps:
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
