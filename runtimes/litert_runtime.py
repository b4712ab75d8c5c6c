"""The LiteRT (TensorFlow Lite) interpreter for ``.tflite`` files, from ai-edge-litert or tflite-runtime."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError, ModelFileError

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


def load_interpreter_module() -> tuple[Any, Any, str, str]:
    """The installed LiteRT interpreter: ``(Interpreter, OpResolverType, package name, version)``.

    Prefers ``ai_edge_litert`` and falls back to ``tflite_runtime``. Raises ``EdgekitError`` when
    neither is installed.
    """
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "ai-edge-litert", ai_edge_litert.__version__
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "tflite-runtime", tflite_runtime.__version__
    except ImportError:
        raise EdgekitError(
            "no LiteRT interpreter is installed; pip install ai-edge-litert to run .tflite models"
        ) from None


def interpreter_with_random_inputs(content: bytes, threads: int, *, int_span: int | None = None):
    """A LiteRT interpreter (default delegate: XNNPACK) for the model ``content`` with every input set to seeded
    random values, ready to ``invoke()`` for timing: integers over the input type's range (within
    ``+-int_span`` when given), floats standard normal."""
    interpreter = load_interpreter_module()[0](model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            lo, hi = (info.min, info.max) if int_span is None else (max(info.min, -int_span), min(info.max, int_span))
            x = rng.integers(lo, hi, size=detail["shape"], endpoint=True)
        else:
            x = rng.standard_normal(detail["shape"])
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(x, dtype=dtype))
    return interpreter


class LiteRTRuntime(Runtime):
    """A LiteRT ``Interpreter`` over a ``.tflite`` file.

    ``threads`` is the interpreter's ``num_threads``. ``xnnpack=True`` keeps LiteRT's default of
    delegating supported ops to XNNPACK; ``xnnpack=False`` opens the interpreter with
    ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` so every op runs on the builtin kernels.
    4-D inputs are NHWC unless their shape says NCHW; NCHW input is transposed to match, and 4-D outputs
    of an NHWC model are transposed back to NCHW. int8/uint8/int16 inputs are quantised with the input's
    scale and zero point (rounding half away from zero, as TFLite's QUANTIZE op does) and integer
    outputs are dequantised. A file whose edgekit metadata says ``input_normalization: in-model`` (an int8
    export that takes pixels) gets the caller's normalised input turned back into pixels in [0, 1] with
    the metadata's mean and std first, so callers pass the same input to every file. A batch larger
    than a fixed model batch runs in model-sized chunks; a
    dynamic batch is resized to fit.
    """

    name = "litert"

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 1, xnnpack: bool = True) -> None:
        self.path = check_model_file(path, "TFLite")
        self.threads = check_threads(threads)
        self.xnnpack = bool(xnnpack)
        interpreter_cls, resolver, self.package, self.version = load_interpreter_module()
        resolver_type = resolver.AUTO if self.xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interpreter = interpreter_cls(
                model_path=str(self.path),
                num_threads=self.threads,
                experimental_op_resolver_type=resolver_type,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(
                f"LiteRT cannot load {self.path} ({one_line(exc)}); re-export the model"
            ) from exc

        input_details = self._interpreter.get_input_details()
        metadata = file_metadata_or_empty(self.path)
        layouts = declared_layouts(metadata)
        self._input_indices = [int(d["index"]) for d in input_details]
        self._output_indices = [int(d["index"]) for d in self._interpreter.get_output_details()]
        self.inputs = [self._spec(d, layouts.get(d["name"], guess_layout(_signature(d), "NHWC")))
                       for d in input_details]
        channels_last = bool(self.inputs) and self.inputs[0].layout == "NHWC"
        self.outputs = [
            self._spec(d, ("NHWC" if channels_last else "NCHW") if len(_signature(d)) == 4 else None)
            for d in self._interpreter.get_output_details()
        ]
        self._resized_to = [tuple(int(v) for v in d["shape"]) for d in input_details]
        # (mean, std) when the file takes pixels (bytes or pixels contract, or an older in-model file)
        self.pixel_input = pixel_normalization(metadata)

    def _spec(self, detail: dict, layout: str | None) -> TensorSpec:
        shape = _signature(detail)
        dtype = np.dtype(detail["dtype"]).name
        scales = detail["quantization_parameters"]["scales"]
        if len(scales) > 1:
            raise ModelFileError(
                f"{self.path} tensor '{detail['name']}' is quantised per channel; "
                "edgekit needs per-tensor quantisation on model inputs and outputs"
            )
        scale, zero_point = detail["quantization"]
        if scale == 0.0 or dtype.startswith("float"):
            return TensorSpec(detail["name"], shape, dtype, layout)
        return TensorSpec(detail["name"], shape, dtype, layout, float(scale), int(zero_point))

    @cached_property
    def precision(self) -> str:
        """``"int8"`` if any tensor is int8/uint8/int16 (full or dynamic-range quantisation), ``"fp16"`` if
        any is float16 (float16 weights), else ``"fp32"``. The model's own inputs and outputs do not count: a
        float model that takes uint8 pixels (``--input bytes``) is fp32."""
        edges = {d["index"] for d in self._interpreter.get_input_details() + self._interpreter.get_output_details()}
        dtypes = {np.dtype(d["dtype"]).name for d in self._interpreter.get_tensor_details() if d["index"] not in edges}
        if dtypes & {"int8", "uint8", "int16"}:
            return "int8"
        if "float16" in dtypes:
            return "fp16"
        return "fp32"

    @property
    def settings(self) -> dict[str, object]:
        """``threads`` and ``xnnpack``."""
        return {"threads": self.threads, "xnnpack": self.xnnpack}

    def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        prepared = []
        for i, (x, spec) in enumerate(zip(xs, self.inputs, strict=True)):
            if i == 0 and self.pixel_input is not None and x.ndim == 4:
                prepared.append(pixels_from_normalized(x, self.pixel_input, spec))
            else:
                prepared.append(_quantize(to_model_layout(x, spec), spec))
        results = [self._invoke(chunk) for chunk in batch_chunks(prepared, self.inputs)]
        return collect_outputs(results, self.outputs)

    def _invoke(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        for i, (index, x) in enumerate(zip(self._input_indices, xs, strict=True)):
            if x.shape != self._resized_to[i]:
                # Only reached for a dynamic dimension: fixed ones were checked or split into batches.
                self._interpreter.resize_tensor_input(index, list(x.shape))
                self._interpreter.allocate_tensors()
                self._resized_to[i] = x.shape
        # every resize first: allocate_tensors may drop what an earlier input was set to
        for index, x in zip(self._input_indices, xs, strict=True):
            self._interpreter.set_tensor(index, x)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(i) for i in self._output_indices]

    def _close(self) -> None:
        del self._interpreter


def _signature(detail: dict) -> tuple[int | None, ...]:
    """A tensor's shape with None for dynamic dimensions (LiteRT marks them -1 in ``shape_signature``)."""
    signature = detail.get("shape_signature")
    if signature is None or len(signature) != len(detail["shape"]):
        signature = detail["shape"]
    return tuple(int(d) if d >= 0 else None for d in signature)


def _quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float input in the model's layout -> the model's input dtype."""
    if spec.scale is None:
        return x if spec.dtype == "float32" else x.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    scaled = x / np.float32(spec.scale)
    # TFLite rounds half away from zero (std::round); np.rint would round half to even.
    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + spec.zero_point
    return np.ascontiguousarray(np.clip(q, info.min, info.max).astype(spec.dtype))
