"""Small real models for the benchmark tests: a tiny CNN as fp32 ONNX, int8 (QDQ) ONNX and fp32 TFLite."""

from __future__ import annotations

import warnings
from pathlib import Path

import flatbuffers
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as schema
from torch import nn

INPUT_SHAPE = (1, 3, 16, 16)


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def tiny_onnx(path: Path) -> Path:
    """The TinyCNN (seeded) exported to ONNX with a fixed batch of 1."""
    torch.manual_seed(0)
    model = TinyCNN().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(INPUT_SHAPE), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False)
    return path


def tiny_onnx_int8(fp32: Path, path: Path) -> Path:
    """``fp32`` quantised to int8 QDQ with ONNX Runtime's static quantiser on seeded noise."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.items = iter([{"input": rng.uniform(-1, 1, INPUT_SHAPE).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ)
    return path


def tiny_tflite(path: Path) -> Path:
    """A float32 TFLite model: NHWC (1, 16, 16, 3) input, one 3x3 CONV_2D with ReLU, seeded weights."""
    rng = np.random.default_rng(2)
    weight = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)  # (O, H, W, C) as TFLite stores it
    bias = rng.normal(0, 0.1, 8).astype(np.float32)
    buffers = [schema.BufferT()]

    def buffer(array: np.ndarray) -> int:
        buffers.append(schema.BufferT(data=np.frombuffer(array.tobytes(), dtype=np.uint8)))
        return len(buffers) - 1

    def tensor(name, shape, buf=0):
        return schema.TensorT(shape=list(shape), type=schema.TensorType.FLOAT32, buffer=buf, name=name)

    tensors = [tensor("input", (1, 16, 16, 3)), tensor("weight", weight.shape, buffer(weight)),
               tensor("bias", bias.shape, buffer(bias)), tensor("output", (1, 14, 14, 8))]
    options = schema.Conv2DOptionsT(padding=schema.Padding.VALID, strideW=1, strideH=1,
                                    fusedActivationFunction=schema.ActivationFunctionType.RELU)
    op = schema.OperatorT(opcodeIndex=0, inputs=[0, 1, 2], outputs=[3],
                          builtinOptionsType=schema.BuiltinOptions.Conv2DOptions, builtinOptions=options)
    graph = schema.SubGraphT(tensors=tensors, inputs=[0], outputs=[3], operators=[op], name="main")
    code = schema.OperatorCodeT(deprecatedBuiltinCode=schema.BuiltinOperator.CONV_2D,
                                builtinCode=schema.BuiltinOperator.CONV_2D, version=1)
    model = schema.ModelT(version=3, operatorCodes=[code], subgraphs=[graph], description="edgekit bench test",
                          buffers=buffers)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path
