"""Lowering of elementwise ONNX activations and unary math to TFLite ops.

A mixin of ``from_onnx._Lowering``: handlers ``op_<OnnxType>`` use its ``use``/``define``/``emit``/``operand``
helpers. Binary arithmetic (Add/Sub/Mul/Div/Pow) lives in ``lower_tensor``.

TFLite op kinds emitted here: RELU, RELU6, RELU_N1_TO_1 (or fused into the producer's activation), MAXIMUM,
MINIMUM, ADD and MUL (HardSigmoid, with fused RELU6), LOGISTIC, HARD_SWISH, TANH, GELU, LEAKY_RELU, PRELU,
ELU, EXP, LOG, SQRT, DIV (Reciprocal: 1 / x), NEG, ABS. Every one of them is delegated to XNNPACK by LiteRT
2.3; RELU_0_TO_1 is not, so Clip(0, 1) is RELU + MINIMUM. A GELU spelled out as Div/Erf/Add/Mul (the erf
form) or Mul/Add/Tanh (the tanh form) becomes one Gelu node in ``edgekit.export.passes.fuse_gelu`` first;
an Erf anywhere else is refused (TFLite has no erf).
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.export.tflite.ir import Origin
from edgekit.export.tflite.lowering_utils import attrs as _attrs
from edgekit.export.tflite.lowering_utils import clean as _clean

_FUSABLE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV", "CONCATENATION",
            "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE_CONV")
_FUSED = ("RELU", "RELU6", "RELU_N1_TO_1")  # XNNPACK runs these fused activations (not TANH or SIGN_BIT)


class PointwiseOps:
    # --- clamps -------------------------------------------------------------------------------------

    def op_Relu(self, node) -> None:
        self._activation(node, "RELU")

    def op_Clip(self, node) -> None:
        a = _attrs(node)
        lo, hi = a.get("min"), a.get("max")  # opset < 11
        for k, name in ((1, "lo"), (2, "hi")):
            if len(node.input) > k and node.input[k]:
                if node.input[k] not in self.consts:
                    raise self.unsupported(node, "min/max are not constants")
                value = float(np.asarray(self.consts[node.input[k]]).ravel()[0])
                lo, hi = (value, hi) if name == "lo" else (lo, value)
        lo = -math.inf if lo is None else float(lo)
        hi = math.inf if hi is None else float(hi)
        self._clamp(node, node.input[0], node.output[0], lo, hi)

    def _clamp(self, node, onnx_in: str, onnx_out: str, lo: float, hi: float) -> None:
        """``onnx_out = min(max(onnx_in, lo), hi)``: a (fused) RELU/RELU6/RELU_N1_TO_1 where one matches,
        else RELU or MAXIMUM followed by MINIMUM."""
        named = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, math.inf): "RELU"}
        if (lo, hi) in named:
            self._activation(node, named[(lo, hi)], onnx_in, onnx_out)
            return
        x = self.use(onnx_in)
        if lo == 0.0:
            x = self._fused_or_emitted(node, x, onnx_in, "RELU", last=False)
        elif lo > -math.inf:
            x = self._with_constant(node, "MAXIMUM", x, lo, None if hi < math.inf else onnx_out)
        if hi < math.inf:
            x = self._with_constant(node, "MINIMUM", x, hi, onnx_out)
        if lo >= 0:
            self.nonnegative.add(x)

    def _with_constant(self, node, kind: str, x: str, value: float, onnx_out: str | None) -> str:
        c = self.g.add_constant(_clean(node.name or node.output[0]) + f"_{kind.lower()}",
                                np.array(value, dtype=np.float32))
        out = self.define(onnx_out) if onnx_out else self.g.add_tensor(x + f"_{kind.lower()}", self.g.shape(x))
        self.emit(kind, [x, c], [out], node)
        return out

    def _fused_or_emitted(self, node, x: str, onnx_in: str, kind: str, last: bool, onnx_out: str | None = None) -> str:
        """``kind`` applied to IR tensor ``x``: fused into its producer when this node is its only reader,
        else a new op (into ``onnx_out``'s tensor when ``last``)."""
        producer = self.g.producers().get(x)
        sole_reader = self.onnx_users.get(onnx_in, 0) == 1 and onnx_in not in self.onnx_outputs
        if (producer is not None and producer.kind in _FUSABLE and kind in _FUSED and sole_reader
                and producer.options.get("activation", "NONE") == "NONE"):
            producer.options["activation"] = kind
            if kind != "RELU_N1_TO_1":
                self.nonnegative.add(x)
            return x
        out = self.define(onnx_out) if last else self.g.add_tensor(x + f"_{kind.lower()}", self.g.shape(x))
        self.emit(kind, [x], [out], node)
        if kind != "RELU_N1_TO_1":
            self.nonnegative.add(out)
        return out

    def _activation(self, node, kind: str, onnx_in: str | None = None, onnx_out: str | None = None) -> None:
        onnx_in, onnx_out = onnx_in or node.input[0], onnx_out or node.output[0]
        x = self.use(onnx_in)
        y = self._fused_or_emitted(node, x, onnx_in, kind, last=True, onnx_out=onnx_out)
        if y == x:  # fused: the output is the producer's tensor
            self.names[onnx_out] = x

    def op_HardSigmoid(self, node) -> None:
        """``clamp(alpha * x + beta, 0, 1)``. For PyTorch's alpha = 1/6 it is ``relu6(x + 3) * (1/6)``: ADD with a
        fused RELU6, then MUL. PyTorch divides by 6 instead; measured on 2**18 values in [-4, 4], MUL is within
        6e-8 of PyTorch (75% bit-equal) on XNNPACK and the builtin kernels, DIV is bit-equal, but DIV has no int8
        kernel in XNNPACK and MUL has. Other alphas: MUL, ADD with fused RELU, MINIMUM 1. After a convolution (a
        squeeze-excite gate) the ADD later joins its bias (``fold_add_into_bias``) and the MUL the next
        convolution's weights (``fold_scale_into_next_conv``)."""
        a = _attrs(node)
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        if alpha <= 0:
            raise self.unsupported(node, "alpha <= 0")
        x = self.use(node.input[0])
        name = _clean(node.output[0])
        if math.isclose(1.0 / alpha, 6.0, rel_tol=1e-6):
            shifted = self.g.add_tensor(name + "_shifted", self.g.shape(x))
            self.origins[shifted] = Origin(node.output[0], scale=1.0 / alpha)  # relu6(x + 3) is 6 * hardsigmoid(x)
            self.emit("ADD", [x, self.g.add_constant(name + "_shift", np.array(beta / alpha, np.float32))], [shifted],
                      node, activation="RELU6")
            out = self.define(node.output[0])
            self.emit("MUL", [shifted, self.g.add_constant(name + "_alpha", np.array(alpha, np.float32))], [out], node)
        else:
            scaled = self.g.add_tensor(name + "_scaled", self.g.shape(x))
            self.origins[scaled] = Origin(node.input[0], scale=alpha)
            self.emit("MUL", [x, self.g.add_constant(name + "_alpha", np.array(alpha, np.float32))], [scaled], node)
            shifted = self.g.add_tensor(name + "_shifted", self.g.shape(x))
            self.emit("ADD", [scaled, self.g.add_constant(name + "_beta", np.array(beta, np.float32))], [shifted],
                      node, activation="RELU")
            out = self._with_constant(node, "MINIMUM", shifted, 1.0, node.output[0])
        self.nonnegative.add(out)

    # --- smooth activations ------------------------------------------------------------------------

    def _unary(self, node, kind: str, **options) -> str:
        out = self.define(node.output[0])
        self.emit(kind, [self.use(node.input[0])], [out], node, **options)
        return out

    def op_Sigmoid(self, node) -> None:
        self.nonnegative.add(self._unary(node, "LOGISTIC"))

    def op_HardSwish(self, node) -> None:
        self._unary(node, "HARD_SWISH")

    def op_Tanh(self, node) -> None:
        self._unary(node, "TANH")

    def op_Gelu(self, node) -> None:
        approximate = _attrs(node).get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        if approximate not in ("none", "tanh"):
            raise self.unsupported(node, f"approximate={approximate}")
        self._unary(node, "GELU", approximate=approximate == "tanh")

    def op_FastGelu(self, node) -> None:  # com.microsoft, from fuse_gelu: the tanh approximation
        if len(node.input) > 1 and node.input[1]:
            raise self.unsupported(node, "FastGelu with a bias input")
        self._unary(node, "GELU", approximate=True)

    def op_LeakyRelu(self, node) -> None:
        self._unary(node, "LEAKY_RELU", alpha=float(_attrs(node).get("alpha", 0.01)))

    def op_PRelu(self, node) -> None:
        if node.input[1] not in self.consts:
            raise self.unsupported(node, "the slope is not a constant")
        x = self.use(node.input[0])
        slope = self.operand(node.input[1], node.output[0])
        out = self.define(node.output[0])
        self.emit("PRELU", [x, slope], [out], node)

    def op_Elu(self, node) -> None:
        if float(_attrs(node).get("alpha", 1.0)) != 1.0:
            raise self.unsupported(node, "TFLite ELU has alpha 1 only")
        self._unary(node, "ELU")

    def op_Erf(self, node) -> None:
        raise self.unsupported(node, "TFLite has no erf; edgekit lowers it only inside a GELU "
                                     "(x * 0.5 * (1 + erf(x / sqrt(2))))")

    # --- unary math ---------------------------------------------------------------------------------

    def op_Exp(self, node) -> None:
        self.nonnegative.add(self._unary(node, "EXP"))

    def op_Log(self, node) -> None:
        self._unary(node, "LOG")

    def op_Sqrt(self, node) -> None:
        self.nonnegative.add(self._unary(node, "SQRT"))

    def op_Neg(self, node) -> None:
        self._unary(node, "NEG")

    def op_Abs(self, node) -> None:
        self.nonnegative.add(self._unary(node, "ABS"))

    def op_Reciprocal(self, node) -> None:
        x = self.use(node.input[0])
        one = self.g.add_constant(_clean(node.output[0]) + "_one", np.array(1.0, np.float32))
        out = self.define(node.output[0])
        self.emit("DIV", [one, x], [out], node)
