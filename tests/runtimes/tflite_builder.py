"""Tiny TFLite flatbuffers for tests, written with the schema module that ships inside ai_edge_litert.

TensorFlow is not a dependency, so the LiteRT tests cannot convert a model; instead they build one
CONV_2D or FULLY_CONNECTED op directly with the flatbuffer object API (``ModelT`` and friends). The
float variants take PyTorch-layout weights so a test can compare against ``torch.nn.functional``; the
int8 variants follow the TFLite int8 spec (int8 activations with a zero point, symmetric per-channel
int8 weights, int32 bias with scale ``input_scale * weight_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_TFLITE_IDENTIFIER = b"TFL3"
_TENSOR_TYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int32): schema.TensorType.INT32,
}


@dataclass
class Quant:
    """Quantisation of one tensor: per-tensor when ``scale`` has one entry, else per-channel."""

    scale: list[float]
    zero_point: list[int]
    axis: int = 0

    def to_schema(self) -> schema.QuantizationParametersT:
        return schema.QuantizationParametersT(
            scale=[float(s) for s in self.scale],
            zeroPoint=[int(z) for z in self.zero_point],
            quantizedDimension=self.axis,
        )


class _Graph:
    """Accumulates buffers and tensors of a single-subgraph model."""

    def __init__(self) -> None:
        self.buffers = [schema.BufferT()]  # buffer 0 is the conventional empty buffer
        self.tensors: list[schema.TensorT] = []

    def activation(self, name: str, shape, dtype, quant: Quant | None = None, dynamic_batch=False) -> int:
        index = self._tensor(name, shape, dtype, 0, quant)
        if dynamic_batch:
            self.tensors[index].shapeSignature = [-1, *self.tensors[index].shape[1:]]
        return index

    def constant(self, name: str, value: np.ndarray, quant: Quant | None = None) -> int:
        self.buffers.append(schema.BufferT(data=np.frombuffer(value.tobytes(), dtype=np.uint8)))
        return self._tensor(name, value.shape, value.dtype, len(self.buffers) - 1, quant)

    def _tensor(self, name, shape, dtype, buffer, quant) -> int:
        self.tensors.append(
            schema.TensorT(
                shape=[int(d) for d in shape],
                type=_TENSOR_TYPES[np.dtype(dtype)],
                buffer=buffer,
                name=name,
                quantization=quant.to_schema() if quant else None,
            )
        )
        return len(self.tensors) - 1

    def serialize(self, opcode: int, options_type: int, options, inputs, output) -> bytes:
        op = schema.OperatorT(
            opcodeIndex=0,
            inputs=list(inputs),
            outputs=[output],
            builtinOptionsType=options_type,
            builtinOptions=options,
        )
        subgraph = schema.SubGraphT(
            tensors=self.tensors, inputs=[inputs[0]], outputs=[output], operators=[op], name="main"
        )
        # Opcodes below 127 must also be written to the deprecated int8 field the runtime still reads.
        code = schema.OperatorCodeT(deprecatedBuiltinCode=opcode, builtinCode=opcode, version=1)
        model = schema.ModelT(
            version=3,
            operatorCodes=[code],
            subgraphs=[subgraph],
            description="edgekit test model",
            buffers=self.buffers,
        )
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
        return bytes(builder.Output())


def conv2d_float(
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    height: int,
    width: int,
    batch: int = 1,
    dynamic_batch: bool = False,
) -> bytes:
    """A float32 CONV_2D model, NHWC input ``(batch, height, width, C)``, VALID padding, stride 1.

    ``weight`` is PyTorch-layout ``(O, C, KH, KW)`` float32 and ``bias`` is ``(O,)``. With
    ``dynamic_batch`` the input and output shape signatures carry -1 as their batch.
    """
    out_c, in_c, kh, kw = weight.shape
    g = _Graph()
    x = g.activation("input", (batch, height, width, in_c), np.float32, dynamic_batch=dynamic_batch)
    w = g.constant("weight", np.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=np.float32))
    b = g.constant("bias", bias.astype(np.float32))
    y = g.activation(
        "output", (batch, height - kh + 1, width - kw + 1, out_c), np.float32, dynamic_batch=dynamic_batch
    )
    options = schema.Conv2DOptionsT(padding=schema.Padding.VALID, strideW=1, strideH=1)
    return g.serialize(
        schema.BuiltinOperator.CONV_2D, schema.BuiltinOptions.Conv2DOptions, options, [x, w, b], y
    )


@dataclass
class Int8Conv:
    """An int8 CONV_2D model and the quantisation it was built with."""

    content: bytes
    input_quant: Quant
    output_quant: Quant
    weight_scales: np.ndarray
    weight_q: np.ndarray  # int8, PyTorch layout (O, C, KH, KW)
    bias_q: np.ndarray  # int32

    def reference(self, x_nchw: np.ndarray) -> np.ndarray:
        """What the int8 model computes for float NCHW input, in float (NCHW), using the quantised
        weights: the exact integer convolution, requantised with round-half-away-from-zero."""
        s_in, z_in = self.input_quant.scale[0], self.input_quant.zero_point[0]
        s_out, z_out = self.output_quant.scale[0], self.output_quant.zero_point[0]
        xq = np.clip(_round_away(x_nchw / s_in) + z_in, -128, 127).astype(np.int64) - z_in
        out_c, in_c, kh, kw = self.weight_q.shape
        n, _, h, w = xq.shape
        acc = np.zeros((n, out_c, h - kh + 1, w - kw + 1), dtype=np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xq[:, :, i : i + h - kh + 1, j : j + w - kw + 1]
                acc += np.einsum("nchw,oc->nohw", patch, self.weight_q[:, :, i, j].astype(np.int64))
        acc += self.bias_q.astype(np.int64)[None, :, None, None]
        multiplier = (s_in * self.weight_scales / s_out)[None, :, None, None]
        yq = np.clip(_round_away(acc * multiplier) + z_out, -128, 127)
        return ((yq - z_out) * s_out).astype(np.float32)


def conv2d_int8(
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    height: int,
    width: int,
    input_range: tuple[float, float],
    output_range: tuple[float, float],
    batch: int = 1,
) -> Int8Conv:
    """An int8 CONV_2D model (int8 input and output) quantised from float PyTorch-layout weights.

    Activations are asymmetric int8 over the given float ranges; weights are symmetric per output
    channel, as the TFLite converter produces them.
    """
    out_c, in_c, kh, kw = weight.shape
    in_q = _asymmetric(*input_range)
    out_q = _asymmetric(*output_range)
    w_scales = np.abs(weight).reshape(out_c, -1).max(axis=1) / 127.0
    w_scales = np.where(w_scales == 0, 1.0, w_scales).astype(np.float32)
    w_q = np.clip(_round_away(weight / w_scales[:, None, None, None]), -127, 127).astype(np.int8)
    b_scales = (in_q.scale[0] * w_scales).astype(np.float32)
    b_q = _round_away(bias / b_scales).astype(np.int32)

    g = _Graph()
    x = g.activation("input", (batch, height, width, in_c), np.int8, in_q)
    w = g.constant(
        "weight",
        np.ascontiguousarray(w_q.transpose(0, 2, 3, 1)),
        Quant(w_scales.tolist(), [0] * out_c, axis=0),
    )
    b = g.constant("bias", b_q, Quant(b_scales.tolist(), [0] * out_c, axis=0))
    y = g.activation("output", (batch, height - kh + 1, width - kw + 1, out_c), np.int8, out_q)
    options = schema.Conv2DOptionsT(padding=schema.Padding.VALID, strideW=1, strideH=1)
    content = g.serialize(
        schema.BuiltinOperator.CONV_2D, schema.BuiltinOptions.Conv2DOptions, options, [x, w, b], y
    )
    return Int8Conv(content, in_q, out_q, w_scales, w_q, b_q)


def fully_connected_float(weight: np.ndarray, bias: np.ndarray, *, batch: int = 1) -> bytes:
    """A float32 FULLY_CONNECTED model: input ``(batch, in)``, ``weight`` ``(out, in)`` as in nn.Linear."""
    out_f, in_f = weight.shape
    g = _Graph()
    x = g.activation("input", (batch, in_f), np.float32)
    w = g.constant("weight", np.ascontiguousarray(weight, dtype=np.float32))
    b = g.constant("bias", bias.astype(np.float32))
    y = g.activation("output", (batch, out_f), np.float32)
    return g.serialize(
        schema.BuiltinOperator.FULLY_CONNECTED,
        schema.BuiltinOptions.FullyConnectedOptions,
        schema.FullyConnectedOptionsT(),
        [x, w, b],
        y,
    )


def _asymmetric(lo: float, hi: float) -> Quant:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
    return Quant([scale], [zero_point])


def _round_away(v: np.ndarray) -> np.ndarray:
    # TFLite rounds half away from zero (std::round), not half to even like np.round.
    return np.sign(v) * np.floor(np.abs(v) + 0.5)
