"""PyTorch -> .tflite (fp32 or full-integer int8), native NHWC, with no TensorFlow installed.

Route: the model is exported to ONNX as for ``--format onnx`` (TorchScript exporter, onnxsim, shuffle
recognition), lowered to edgekit's NHWC graph (weights permuted, never activations: zero layout
transposes), channel shuffles lowered for speed, quantized by edgekit's own int8 quantizer where asked,
and written with the flatbuffer bindings that ai-edge-litert ships. Parity is proven with LiteRT itself.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from edgekit.check import Progress
from edgekit.errors import DataError, ExportError
from edgekit.export import ptq_steps
from edgekit.export.onnx_export import DEFAULT_OPSET, prepare_export, shuffle_records
from edgekit.export.publish import provenance, publish
from edgekit.export.result import ExportResult
from edgekit.export.tflite.pixel_input import IN_MODEL
from edgekit.export.versions import tool_versions

#: The lowerings ``--shuffle`` accepts for TFLite (benchmarks/tflite_latency.py measures them). "auto" folds
#: where folding pays and uses the roundtrip form elsewhere.
TFLITE_SHUFFLE_LOWERINGS = ("auto", "folded", "roundtrip", "fused", "reshape")
DEFAULT_TFLITE_SHUFFLE = "auto"
#: When folding does not apply (or, for "auto", does not pay), the fastest lowering that always applies.
FOLD_FALLBACK = "roundtrip"
#: "auto" keeps the folded graph only while it has at most this many times the convolutions of the
#: unfolded one. Measured (XNNPACK, 1 thread): ShuffleNetV2 1.0x folds into 1.9x the convolutions and runs
#: about 5% faster than roundtrip; AugShuffleNet 1.0x folds into 4x (its crossover splits depthwise
#: convolutions too) and runs 9% slower, as the many narrow convolutions waste GEMM tiles.
MAX_FOLD_GROWTH = 2.5
DEFAULT_CALIBRATION_IMAGES = 100
#: A calibration folder is read up to this many images (ranges settle long before).
MAX_CALIBRATION_IMAGES = 1000


def export_tflite(
    model: str = "shufflenet_v2_x1_0",
    *,
    int8: bool = False,
    io: str = "int8",
    calib: str | Path | int | None = None,
    calib_method: str = "percentile",
    equalize: bool = True,
    optimal_rounding: bool = True,
    bias_correction: bool = True,
    fold_normalization: bool | None = None,
    weights: str | Path | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    output_dir: str | Path = "edgekit-out",
    shuffle_lowering: str = DEFAULT_TFLITE_SHUFFLE,
    check: bool = True,
    data: str | Path | None = None,
    samples: int = 8,
    progress: Progress | None = None,
) -> ExportResult:
    """Export to ``output_dir/<name>[_int8].tflite`` plus ``<name>[_int8].tflite.json`` and ``.html``.

    ``int8`` gives full-integer quantization (per-channel int8 weights, int8 activations) calibrated on
    ``calib``: an image folder, a number of bundled natural images, or None for
    DEFAULT_CALIBRATION_IMAGES bundled images (never the same crops the parity check uses). ``io`` is the
    type of the model's input and output for int8 models ("int8": an app feeds camera bytes; "float").
    ``calib_method``: ``minmax``, ``percentile`` (99.99th, the default: best measured) or ``mse``.
    ``equalize``: cross-layer equalization of the pointwise/depthwise pairs on the calibration images
    (``equalize_cross_layer``) before quantizing. ``optimal_rounding``: weights rounded by GPTQ to
    minimise each layer's output error on the calibration images (``round_weights_optimally``).
    ``bias_correction`` takes the mean output shift of weight rounding out of every bias.
    ``fold_normalization`` (default: for int8 files with int8 input): the model takes pixels
    (``q = pixel - 128``) and normalises inside its first convolutions, so the int8 input loses nothing
    (``pixel_input``); the report and the file's metadata say ``input_normalization: in-model``.
    Raises ExportError naming an op that cannot be lowered, DataError for unusable calibration data,
    ParityError when the result does not match PyTorch; nothing is written on failure.
    """
    from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
    from edgekit.export.tflite.inspect import xnnpack_partitions
    from edgekit.export.tflite.writer import write_tflite

    if shuffle_lowering not in TFLITE_SHUFFLE_LOWERINGS:
        raise ExportError(
            f"unknown --shuffle {shuffle_lowering!r} for TFLite; choose one of {', '.join(TFLITE_SHUFFLE_LOWERINGS)}"
        )
    if io not in ("int8", "float"):
        raise ExportError(f"unknown --io {io!r}; choose int8 or float")
    from edgekit.export.tflite.calibrate import CALIBRATION_METHODS

    if calib_method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown --calib-method {calib_method!r} for TFLite; choose one of "
                          f"{', '.join(CALIBRATION_METHODS)}")
    say = progress or (lambda _msg: None)
    # The ONNX graph only needs canonical shuffles here: the TFLite lowering picks their final form.
    prepared = prepare_export(model, weights=weights, pretrained=pretrained, input_shape=input_shape,
                              output_dir=output_dir, opset=DEFAULT_OPSET, shuffle_lowering="reshape", say=say)
    handle, out_dir, clock = prepared.handle, prepared.out_dir, prepared.clock
    onnx_model, matches = prepared.onnx_model, prepared.matches
    notes: list[str] = []
    calibration = None
    # fp32 files are equalized only when given calibration images: the reference ``--per-layer`` compares an
    # equalized int8 file with (equalization is exact in float, but rescales the tensors between the pairs).
    equalized = equalize and (int8 or calib is not None)
    if int8 or equalized:
        images, calibration = calibration_images(calib, handle)
        if equalized:
            onnx_model = ptq_steps.equalize(onnx_model, images.transpose(0, 3, 1, 2), notes, say)
        if int8 and optimal_rounding:
            onnx_model, _ = ptq_steps.round_weights(onnx_model, images.transpose(0, 3, 1, 2), 127, notes, say)
    say("lowering to native NHWC TFLite ops")
    graph, layout_transposes = onnx_to_tflite_graph(onnx_model)
    used, lowering_notes = lower_channel_shuffles(graph, shuffle_lowering)
    notes = lowering_notes + notes
    clock.lap("lower")
    precision = "int8" if int8 else "fp32"
    normalization = "caller"
    if fold_normalization is None:
        fold_normalization = int8 and io == "int8"
    if fold_normalization:
        normalization, images = _fold_normalization(graph, handle, images if int8 else None, notes)
    if int8:
        say(f"calibrating int8 ranges ({calib_method}) on {calibration}")
        from edgekit.export.tflite.calibrate import calibrate_ranges
        from edgekit.export.tflite.pixel_input import PIXEL_RANGE
        from edgekit.export.tflite.quantize import quantize_graph

        means: dict[str, np.ndarray] = {}
        ranges = calibrate_ranges(graph, images, method=calib_method, channel_means=means)
        if normalization == IN_MODEL:
            ranges[graph.inputs[0]] = PIXEL_RANGE
        graph = quantize_graph(graph, ranges, io=io, input_means=means if bias_correction else None)
        notes.append(f"calibration: {calib_method} on {calibration}; bias correction "
                     + ("on (weight-rounding shift taken out of every bias)" if bias_correction else "off"))
        clock.lap("quantize")
    fields = provenance(model, handle, weights=weights, pretrained=pretrained, shuffle_lowering=used,
                        precision=precision)
    fields.update(ptq_steps.equalization_fields(equalized, calib))
    in_q, out_q = _io_quantization(graph) if int8 else (None, None)
    app_fields = {"layout": "NHWC", "mean": list(handle.mean), "std": list(handle.std),
                  "input_normalization": normalization, "input_quantization": in_q, "output_quantization": out_q}
    content = write_tflite(graph, description=f"edgekit {handle.name} {precision}", metadata={**fields, **app_fields})
    partitions = xnnpack_partitions(content)
    clock.lap("write")
    stem = f"{handle.name}_int8" if int8 else handle.name

    def make_result(**measured) -> ExportResult:
        return ExportResult(
            model=handle.name,
            format="tflite",
            precision=precision,
            path=str(out_dir / f"{stem}.tflite"),
            report_path=str(out_dir / f"{stem}.tflite.json"),
            input_shape=tuple(handle.input_shape),
            weights_source=handle.weights_source,
            weights_sha256=handle.weights_sha256,
            opset=None,
            shuffle_lowering=used,
            versions=tool_versions("torch", "onnx", "onnxsim", "ai-edge-litert", "flatbuffers"),
            op_histogram=graph.histogram(),
            shuffles=shuffle_records(matches, used),
            passes=[],
            layout_transposes=layout_transposes,
            xnnpack_partitions=partitions,
            io=(io if int8 else "float"),
            input_quantization=in_q,
            output_quantization=out_q,
            calibration=calibration,
            notes=notes,
            **measured,
        )

    return publish(content, out_dir / f"{stem}.tflite", handle, make_result, clock=clock, check=check, data=data,
                   samples=samples, say=say)


def _fold_normalization(graph, handle, images: np.ndarray | None, notes: list[str]):
    """Fold the input normalisation into ``graph`` where it applies; the mode and the calibration images
    in the input's new units (pixels in [0, 1] when folded)."""
    from edgekit.export.tflite.pixel_input import PixelInputNotApplicable, take_pixel_input, to_pixels

    try:
        fold = take_pixel_input(graph, handle.mean, handle.std)
    except PixelInputNotApplicable as exc:
        notes.append(f"input normalisation not folded ({exc}): the int8 input is the normalised image")
        return "caller", images
    notes.append(f"input: pixels (int8 = pixel - 128); normalisation folded into {len(fold.convolutions)} "
                 "convolution(s), so quantizing the input loses nothing")
    return IN_MODEL, None if images is None else to_pixels(images, handle.mean, handle.std, channel_axis=3)


def lower_channel_shuffles(graph, lowering: str) -> tuple[str, list[str]]:
    """Lower every SHUFFLE in ``graph``; returns the lowering used and notes (e.g. why folding fell back)."""
    from edgekit.export.tflite.fold_shuffles import FoldNotApplicable, fold_shuffles
    from edgekit.export.tflite.shuffle import lower_shuffles

    notes: list[str] = []
    if lowering in ("auto", "folded"):
        if not any(op.kind == "SHUFFLE" for op in graph.ops):
            return "folded", notes
        candidate = copy.deepcopy(graph)
        try:
            info = fold_shuffles(candidate)
        except FoldNotApplicable as exc:
            notes.append(f"folded lowering not applicable ({exc}); used {FOLD_FALLBACK}")
            info = None
        if info is not None:
            growth = _conv_count(candidate) / max(1, _conv_count(graph))
            summary = (f"folding gives {info['convolutions']} convolutions from {info['routed_tensors']} routed "
                       f"tensors and {info['concatenations']} concatenations, {growth:.1f}x the convolutions")
            if lowering == "folded" or growth <= MAX_FOLD_GROWTH:
                graph.ops, graph.tensors = candidate.ops, candidate.tensors
                notes.append(summary + " (no TRANSPOSE, no SPLIT)")
                return "folded", notes
            notes.append(f"{summary} > {MAX_FOLD_GROWTH}x, where narrow convolutions cost more than the "
                         f"shuffles save; used {FOLD_FALLBACK} (force with --shuffle folded)")
        lowering = FOLD_FALLBACK
    lower_shuffles(graph, lowering)
    return lowering, notes


def _conv_count(graph) -> int:
    return sum(op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") for op in graph.ops)


def calibration_images(calib, handle) -> tuple[np.ndarray, str]:
    """NHWC float32 calibration images and a description. Raises DataError when none are usable."""
    from edgekit.data import bundled_images, load_inputs, preprocess

    n, c, h, w = handle.input_shape
    if calib is None or isinstance(calib, int) or (isinstance(calib, str) and calib.isdigit()):
        count = DEFAULT_CALIBRATION_IMAGES if calib is None else int(calib)
        if count < 1:
            raise DataError("--calib N needs N >= 1 images")
        # seed 1: different crops from the seed-0 crops that the parity check compares on
        photos = bundled_images(count, size=(h, w), seed=1)
        images = preprocess(photos, handle.mean, handle.std, c)
        description = f"{count} bundled natural-image crops"
    else:
        inputs = load_inputs(calib, MAX_CALIBRATION_IMAGES, handle.input_shape, handle.mean, handle.std)
        images = inputs.array
        description = inputs.description
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1), dtype=np.float32), description


def _io_quantization(graph) -> tuple[dict | None, dict | None]:
    def params(name: str) -> dict | None:
        q = graph.tensors[name].quant
        if q is None:
            return None
        return {"scale": float(np.asarray(q.scale).ravel()[0]), "zero_point": int(np.asarray(q.zero_point).ravel()[0])}

    return params(graph.inputs[0]), params(graph.outputs[0])
