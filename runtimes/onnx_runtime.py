"""ONNX Runtime (CPU execution provider) for ``.onnx`` files."""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np
import onnxruntime as ort

from edgekit.errors import EdgekitError, ModelFileError
from edgekit.input_contract import METADATA_KEY, InputContract

from .base import (
    Runtime,
    TensorSpec,
    batch_chunks,
    check_model_file,
    check_threads,
    collect_outputs,
    declared_layouts,
    file_metadata_or_empty,
    guess_layout,
    one_line,
    pixel_normalization,
    pixels_from_normalized,
    to_model_layout,
)

OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}
_FLOAT_TYPES = ("float32", "float16", "float64")
_QUANTIZED_TYPES = ("int8", "uint8", "int16", "uint16")
_QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
}


class OnnxRuntime(Runtime):
    """An ``onnxruntime.InferenceSession`` on the CPU execution provider.

    ``threads`` sets ``intra_op_num_threads`` (``inter_op_num_threads`` is 1: CNNs are one chain of ops);
    ``optimization`` is one of ``"disable"``, ``"basic"``, ``"extended"``, ``"all"``. A 4-D input whose
    last dimension looks like channels is treated as NHWC: input is fed transposed and 4-D outputs come
    back transposed to NCHW. Integer inputs are
    supported when the graph's first consumer is a ``DequantizeLinear`` with constant scale and zero
    point (ONNX QDQ with int8 I/O); integer outputs produced by a ``QuantizeLinear`` are dequantised.
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 1, optimization: str = "all") -> None:
        self.path = check_model_file(path, "ONNX")
        self.threads = check_threads(threads)
        if optimization not in OPTIMIZATION_LEVELS:
            raise EdgekitError(
                f"unknown ONNX Runtime optimization level {optimization!r}; "
                f"use one of {', '.join(OPTIMIZATION_LEVELS)}"
            )
        self.optimization = optimization
        self.version = ort.__version__

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        options.log_severity_level = 3  # errors only: library code does not print warnings
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own pybind exception classes
            raise ModelFileError(
                f"ONNX Runtime cannot load {self.path} ({_ort_reason(exc)}); re-export the model"
            ) from exc

        session_inputs = self._session.get_inputs()
        in_dtypes = [_ORT_TYPES.get(i.type, i.type) for i in session_inputs]
        out_dtypes = [_ORT_TYPES.get(o.type, o.type) for o in self._session.get_outputs()]
        qparams = _qdq_params(self.path, in_dtypes, out_dtypes)
        contract = file_metadata_or_empty(self.path)
        self.pixel_input = pixel_normalization(contract)
        layouts = declared_layouts(contract)
        if contract.get(METADATA_KEY) and session_inputs:
            declared = InputContract.from_metadata(contract[METADATA_KEY])
            if declared.scale is not None:  # e.g. uint8 bytes cast in the model: the contract gives the codes
                qparams.setdefault(session_inputs[0].name, (declared.scale, declared.zero_point))

        self.inputs = []
        for arg, dtype in zip(session_inputs, in_dtypes, strict=True):
            shape = _shape(arg.shape)
            scale, zero_point = qparams.get(arg.name, (None, None))
            if dtype not in _FLOAT_TYPES and scale is None:
                raise ModelFileError(
                    f"{self.path} input '{arg.name}' is {dtype} with no DequantizeLinear giving its scale; "
                    "export the model with float inputs (or QDQ int8 inputs)"
                )
            layout = layouts.get(arg.name, guess_layout(shape, "NCHW"))
            self.inputs.append(TensorSpec(arg.name, shape, dtype, layout, scale, zero_point))
        self.outputs = []
        channels_last = bool(self.inputs) and self.inputs[0].layout == "NHWC"
        for arg, dtype in zip(self._session.get_outputs(), out_dtypes, strict=True):
            shape = _shape(arg.shape)
            scale, zero_point = qparams.get(arg.name, (None, None))
            layout = ("NHWC" if channels_last else "NCHW") if len(shape) == 4 else None
            self.outputs.append(TensorSpec(arg.name, shape, dtype, layout, scale, zero_point))

    @cached_property
    def precision(self) -> str:
        """``"int8"`` if the graph quantises (QDQ or integer ops, int8/uint8 weights), ``"fp16"`` if it
        holds float16 weights or I/O, else ``"fp32"``. Parses the file once, on first use."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        initializer_types = {init.data_type for init in graph.initializer}
        if any(node.op_type in _QUANTIZED_OPS for node in graph.node) or initializer_types & {
            onnx.TensorProto.INT8,
            onnx.TensorProto.UINT8,
        }:
            return "int8"
        io_types = {spec.dtype for spec in self.inputs + self.outputs}
        if onnx.TensorProto.FLOAT16 in initializer_types or "float16" in io_types:
            return "fp16"
        return "fp32"

    @property
    def settings(self) -> dict[str, object]:
        """``threads`` and ``optimization``."""
        return {"threads": self.threads, "optimization": self.optimization}

    def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        prepared = [self._prepare(x, spec, first=i == 0)
                    for i, (x, spec) in enumerate(zip(xs, self.inputs, strict=True))]
        names = [spec.name for spec in self.inputs]
        results = [self._session.run(None, dict(zip(names, chunk, strict=True)))
                   for chunk in batch_chunks(prepared, self.inputs)]
        return collect_outputs(results, self.outputs)

    def _prepare(self, x: np.ndarray, spec: TensorSpec, first: bool) -> np.ndarray:
        """One caller input as the session takes it: pixels for a pixel-input image, else in the model's layout
        and dtype (quantized with the input's scale/zero point when it is integer)."""
        if first and self.pixel_input is not None and x.ndim == 4:
            return pixels_from_normalized(x, self.pixel_input, spec)
        x = to_model_layout(x, spec)
        if spec.scale is not None:
            # ONNX QuantizeLinear rounds half to even, which is what np.rint does.
            info = np.iinfo(spec.dtype)
            q = np.rint(x / spec.scale) + spec.zero_point
            return np.clip(q, info.min, info.max).astype(spec.dtype)
        return x.astype(spec.dtype) if spec.dtype != "float32" else x

    def _close(self) -> None:
        del self._session


def _shape(dims: list) -> tuple[int | None, ...]:
    """ORT reports dynamic dimensions as strings or None; edgekit uses None."""
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in dims)


def _ort_reason(exc: Exception) -> str:
    """The useful tail of an ORT error, without its ``[ONNXRuntimeError] : 7 : ... failed:`` preamble."""
    text = str(exc)
    if "failed:" in text:
        text = text.rsplit("failed:", 1)[1]
    return one_line(text) or type(exc).__name__


def _qdq_params(path, in_dtypes: list[str], out_dtypes: list[str]) -> dict[str, tuple[float, int]]:
    """Scale and zero point of integer graph inputs/outputs, read from the DequantizeLinear that consumes
    an input or the QuantizeLinear that produces an output. Empty when all I/O is float (the common
    case, which then never parses the file a second time)."""
    if not any(d in _QUANTIZED_TYPES for d in in_dtypes + out_dtypes):
        return {}
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t

    def scalar(name: str) -> float | None:
        tensor = constants.get(name)
        if tensor is None:
            return None
        value = numpy_helper.to_array(tensor)
        return value.item() if value.size == 1 else None

    def params(node) -> tuple[float, int] | None:
        scale = scalar(node.input[1]) if len(node.input) > 1 else None
        zero_point = scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else 0
        if scale is None or zero_point is None:
            return None
        return float(scale), int(zero_point)

    found: dict[str, tuple[float, int]] = {}
    graph_inputs = {i.name for i in graph.input}
    graph_outputs = {o.name for o in graph.output}
    # An integer input may reach its DequantizeLinear through ops that only move codes (the mean-pixel
    # border strips joined by Concat): follow those.
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for name in graph_inputs:
        frontier, seen = [name], set()
        while frontier:
            tensor = frontier.pop()
            for node in readers.get(tensor, []):
                if node.op_type == "DequantizeLinear" and node.input[0] == tensor:
                    p = params(node)
                    if p is not None:
                        found.setdefault(name, p)
                elif node.op_type in ("Concat", "Pad", "Reshape", "Transpose") and node.output[0] not in seen:
                    seen.add(node.output[0])
                    frontier.append(node.output[0])
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] in graph_outputs:
            p = params(node)
            if p is not None:
                found.setdefault(node.output[0], p)
    return found
