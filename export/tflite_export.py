"""PyTorch -> .tflite (fp32 or full-integer int8), native NHWC, with no TensorFlow installed.

Route: the model is exported to ONNX as for ``--format onnx`` (TorchScript exporter, onnxsim, shuffle
recognition), lowered to edgekit's NHWC graph (weights permuted, never activations: zero layout
transposes), channel shuffles lowered for speed, quantized by edgekit's own int8 quantizer where asked,
and written with the flatbuffer bindings that ai-edge-litert ships. Parity is proven with LiteRT itself.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from edgekit.data.extra_inputs import describe_extra_inputs, extra_inputs_by_name
from edgekit.errors import ExportError
from edgekit.export import ptq_steps
from edgekit.export.onnx_export import (
    DEFAULT_OPSET,
    extra_input_fields,
    prepare_export,
    refuse_int8_extra_inputs,
    shuffle_records,
)
from edgekit.export.publish import provenance, publish
from edgekit.export.result import ExportResult
from edgekit.export.tflite.pixel_input import IN_MODEL, PIXEL_RANGE, lower_pixel_fills, to_pixels
from edgekit.export.versions import tool_versions
from edgekit.input_contract import (
    DEFAULT_INPUT,
    METADATA_KEY,
    PIXEL_STEP,
    ExtraInputInfo,
    InputContract,
    resolve_io,
    usage_line,
)
from edgekit.progress import Progress, quiet

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


def export_tflite(
    model: str = "shufflenet_v2_x1_0",
    *,
    int8: bool = False,
    input_kind: str = DEFAULT_INPUT,
    io: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    labels: list[str] | None = None,
    calib: str | Path | int | None = None,
    calib_method: str = "percentile",
    equalize: bool = True,
    optimal_rounding: bool = True,
    bias_correction: bool = True,
    float_first_layers: bool = True,
    weights: str | Path | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    output_dir: str | Path = "edgekit-out",
    shuffle_lowering: str = DEFAULT_TFLITE_SHUFFLE,
    check: bool = True,
    data: str | Path | None = None,
    samples: int = 8,
    progress: Progress | None = None,
    extra_input_shapes: tuple[tuple[int, ...], ...] = (),
    extra_data: str | Path | None = None,
) -> ExportResult:
    """Export to ``output_dir/<name>[_int8].tflite`` plus ``<name>[_int8].tflite.json`` and ``.html``.

    ``int8`` gives full-integer quantization (per-channel int8 weights, int8 activations) calibrated on ``calib``
    (``edgekit.data.calibration_set``: an image folder, a number of bundled natural images, ``digits[:N]``, or None
    for the model's own training data or 100 bundled crops the parity check never uses). ``input_kind``
    (``input_contract.INPUT_KINDS``): what the file takes, ``bytes`` (uint8 camera pixels, the default), ``pixels``
    (float in [0, 1]) or ``normalized``; for the first two the normalisation is folded into the model
    (``passes.fold_input_normalization``, its border lowered by ``pixel_input``), so an int8 file quantizes its input
    losslessly. ``io`` (int8 only): the edge types, ``uint8``
    (default for bytes: what MediaPipe takes), ``int8`` (``pixel - 128``, no edge ops) or ``float`` (default
    otherwise). ``mean``/``std``: a user factory's input normalisation (default ImageNet's, with a notice). The file
    carries standard TFLite Model Metadata (``support_metadata``: image properties, normalisation in the input's
    units, stats, and ``labels`` (default: the registry model's) packed as ``labels.txt``), so MediaPipe Tasks,
    Android Studio's model binding and the TFLite Support library read it as it is.
    ``calib_method``: ``minmax``, ``percentile`` (``activation_ranges.DEFAULT_PERCENTILE``, the default: best
    measured) or ``mse``.
    The post-training steps run on the fp32 ONNX graph in the order ONNX runs them (``ptq_steps.prepare_model``):
    ``equalize`` (cross-layer equalization of the pointwise/depthwise pairs on the calibration images), the
    normalisation fold, ``optimal_rounding`` (GPTQ weight rounding) and ``bias_correction`` (the mean output
    shift of rounding taken out of the biases of layers GPTQ did not round); the activation ranges are computed
    on that ONNX graph too (``calibrate.onnx_ranges``, through each lowered tensor's ``origin``), and TFLite only
    maps the result to int8 ops. ``float_first_layers``: where the all-int8 graph misses
    ``float_first_layers.TARGET_COSINE`` against fp32 on the calibration images, its first layers stay in float
    (``mixed_precision.quantize_with_float_fallback``: as few as reach it, within a share of the multiply-adds;
    the notes say which and what they cost in cosine). The file's
    metadata declares its ``input_contract``; the report's ``usage`` says what to feed and how to read it.
    ``extra_input_shapes``: a user factory's inputs after the image (``models.resolve``); the file takes them as
    float32 (4-D ones NHWC; an int8 file quantizes them inside), declared in both metadata. int8 calibrates them
    on ``extra_data`` (an ``.npz`` of their values, required with them), row ``i`` beside calibration image ``i``.
    Raises ExportError naming an op that cannot be lowered, DataError for unusable calibration data,
    ParityError when the result does not match PyTorch; nothing is written on failure.
    """
    from edgekit.export.tflite.inspect import xnnpack_delegation
    from edgekit.export.tflite.writer import write_tflite

    if shuffle_lowering not in TFLITE_SHUFFLE_LOWERINGS:
        raise ExportError(
            f"unknown --shuffle {shuffle_lowering!r} for TFLite; choose one of {', '.join(TFLITE_SHUFFLE_LOWERINGS)}"
        )
    in_dtype = resolve_io(input_kind, io, int8)
    refuse_int8_extra_inputs(int8, extra_input_shapes, extra_data)
    from edgekit.export.tflite.calibrate import CALIBRATION_METHODS

    if calib_method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown --calib-method {calib_method!r} for TFLite; choose one of "
                          f"{', '.join(CALIBRATION_METHODS)}")
    say = progress or quiet
    # The ONNX graph only needs canonical shuffles here: the TFLite lowering picks their final form.
    prepared = prepare_export(model, weights=weights, pretrained=pretrained, input_shape=input_shape,
                              output_dir=output_dir, opset=DEFAULT_OPSET, shuffle_lowering="reshape", say=say,
                              mean=mean, std=std, extra_input_shapes=extra_input_shapes, extra_data=extra_data)
    handle, out_dir, clock = prepared.handle, prepared.out_dir, prepared.clock
    onnx_model, matches = prepared.onnx_model, prepared.matches
    notes: list[str] = []
    calibration = None
    pixel_input = input_kind != "normalized"
    # The fold is exact and needs no images: the graph is lowered with it before any calibration work, so
    # that a model the lowering or the int8 mapping cannot take fails in seconds, naming every such op at
    # once (issue 13: up to 108 s of GPTQ used to come first).
    ready = ptq_steps.prepare_model(onnx_model, None, mean=handle.mean, std=handle.std, equalize=False,
                                    fold_normalization=pixel_input, reference=True)
    if int8 and pixel_input and not ready.pixel_input:
        raise ExportError(f"this model cannot take pixels in int8 ({ready.fold_refusal}); pass --input normalized")
    say("lowering to native NHWC TFLite ops")
    graph, used, lowering_notes, layout_transposes = lower_to_tflite(ready.model, shuffle_lowering)
    if int8:
        from edgekit.export.tflite.quantize import int8_plan

        note = int8_plan(graph).note()
        if note:
            notes.append(note)
    # fp32 files are equalized only when given calibration images: the reference ``--per-layer`` compares an
    # equalized int8 file with (equalization is exact in float, but rescales the tensors between the pairs).
    equalized = equalize and (int8 or calib is not None)
    gathered = None
    if int8 or equalized:
        images, calibration = calibration_images(calib, handle)
        extra = extra_inputs_by_name(handle, len(images))
        calibration += describe_extra_inputs(handle)
        if int8 and optimal_rounding:  # the ranges ride on GPTQ's pass over the images
            from edgekit.export.tflite.calibrate import range_pass

            gathered = range_pass(graph, ready.model, len(images), method=calib_method)
        ready = ptq_steps.prepare_model(onnx_model, images.transpose(0, 3, 1, 2), mean=handle.mean, std=handle.std,
                                        equalize=equalized, fold_normalization=pixel_input,
                                        optimal_rounding=optimal_rounding, bias_correction=bias_correction,
                                        reference=not int8, ranges=gathered, say=say, extra=extra)
        graph, used, lowering_notes, layout_transposes = lower_to_tflite(ready.model, shuffle_lowering)
    if not matches:
        used = "none"  # the model has no channel shuffle: nothing was lowered
    notes = lowering_notes + notes + ready.notes
    clock.lap("lower")
    precision = "int8" if int8 else "fp32"
    normalization = "caller"
    if pixel_input:
        normalization = IN_MODEL
        if not ready.pixel_input:  # fp32 only: int8 refused above
            _normalize_in_model(graph, handle.mean, handle.std)
            notes.append(f"input normalisation applied by a MUL and an ADD in the model ({ready.fold_refusal})")
    if int8:
        say(f"calibrating int8 ranges ({calib_method}) on {calibration}")
        from edgekit.export.tflite.calibrate import channels_last, onnx_ranges
        from edgekit.export.tflite.mixed_precision import quantize_with_float_fallback
        from edgekit.export.tflite.quantize import quantize_graph

        normalized = images.transpose(0, 3, 1, 2)  # what the ONNX graph takes
        if pixel_input:
            images = to_pixels(images, handle.mean, handle.std, channel_axis=3)
        calibrated = onnx_ranges(graph, ready.model, normalized, images, method=calib_method, gathered=gathered,
                                 extra=extra)
        notes.append(calibrated.note())
        ranges = calibrated.ranges
        if pixel_input:
            ranges[graph.inputs[0]] = PIXEL_RANGE
        edge = {"uint8": "uint8", "int8": "int8", "float32": "float"}[in_dtype]
        # Weights arrive rounded and biases corrected (prepare_model): quantizing them is exact.
        if float_first_layers:
            say("measuring the int8 graph against fp32 on the calibration images")
            graph, float_layers = quantize_with_float_fallback(graph, ranges, images, io=edge,
                                                               extra=channels_last(extra))
            notes.append(float_layers.note())
        else:
            graph = quantize_graph(graph, ranges, io=edge)
        notes.append(f"calibration: {calib_method} on {calibration}")
        clock.lap("quantize")
    elif input_kind == "bytes":
        _take_bytes(graph)
    contract = _input_contract(graph, input_kind, handle)
    further = _extra_inputs(graph)
    outputs = _output_facts(graph)
    usage = usage_line(contract, outputs, further)
    fields = provenance(model, handle, weights=weights, pretrained=pretrained, shuffle_lowering=used,
                        precision=precision, shuffles=len(matches))
    fields.update(ptq_steps.equalization_fields(equalized, calib))
    in_q, out_q = _io_quantization(graph)
    app_fields = {"layout": "NHWC", "mean": list(handle.mean), "std": list(handle.std),
                  "input_normalization": normalization, "input_quantization": in_q, "output_quantization": out_q,
                  METADATA_KEY: contract.to_metadata(), **extra_input_fields(further)}
    content = write_tflite(graph, description=f"edgekit {handle.name} {precision}", metadata={**fields, **app_fields})
    content = _with_app_metadata(content, graph, contract, handle, precision, labels, notes, further)
    delegation = xnnpack_delegation(content)
    partitions, left_out = delegation.partitions, delegation.undelegated
    if left_out:  # invisible in the partition count when they sit at the graph's ends
        kinds = ", ".join(f"{kind} x{left_out.count(kind)}" for kind in dict.fromkeys(left_out))
        notes.append(f"ops XNNPACK does not take, run by LiteRT's builtin kernels: {kinds}")
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
            io=in_dtype,
            input_contract=json.loads(contract.to_metadata()),
            usage=usage,
            extra_inputs=[e.to_dict() for e in further],
            input_quantization=in_q,
            output_quantization=out_q,
            calibration=calibration,
            notes=notes,
            **measured,
        )

    return publish(content, out_dir / f"{stem}.tflite", handle, make_result, clock=clock, check=check, data=data,
                   samples=samples, say=say)


def _normalize_in_model(graph, mean, std) -> None:
    """Prepend ``x * (1 / std) + (-mean / std)`` per channel to an fp32 NHWC graph, so it takes pixels."""
    from edgekit.export.tflite.ir import Op

    x = graph.inputs[0]
    scale = graph.add_constant("edgekit_input_scale", (1.0 / np.asarray(std, np.float64)).astype(np.float32))
    shift = graph.add_constant("edgekit_input_shift",
                               (-np.asarray(mean, np.float64) / np.asarray(std, np.float64)).astype(np.float32))
    scaled = graph.add_tensor("edgekit_input_scaled", graph.shape(x))
    normalized = graph.add_tensor("edgekit_input_normalized", graph.shape(x))
    graph.replace_uses(x, normalized)
    graph.ops[0:0] = [Op("MUL", [x, scale], [scaled], {}, "input"),
                      Op("ADD", [scaled, shift], [normalized], {}, "input")]


def _take_bytes(graph) -> None:
    """Make an fp32 graph that takes pixels in [0, 1] take their uint8 bytes: one DEQUANTIZE (scale 1/255)."""
    from edgekit.export.tflite.ir import Op, Quant

    x = graph.inputs[0]
    raw = graph.add_tensor(x + "_uint8", graph.shape(x), "uint8", Quant.per_tensor(PIXEL_STEP, 0))
    graph.ops.insert(0, Op("DEQUANTIZE", [raw], [x], {}, "input"))
    graph.inputs[0] = raw


def _with_app_metadata(content: bytes, graph, contract: InputContract, handle, precision: str, labels,
                       notes: list[str], extra: list[ExtraInputInfo]) -> bytes:
    """``content`` with standard TFLite Model Metadata describing ``contract``, the inputs after the image
    (``extra``) and the outputs (labels packed for a classifier whose class count they match). Images of 1 or 3
    channels only; others get a note."""
    from edgekit import __version__
    from edgekit.export.tflite.support_metadata import (
        AppMetadata,
        FeatureInfo,
        InputInfo,
        OutputInfo,
        with_support_metadata,
    )
    from edgekit.models import registry

    _, height, width, channels = contract.shape
    if channels not in (1, 3) or len(graph.outputs) < 1:
        notes.append(f"no standard TFLite metadata: it describes 1- or 3-channel images, this input has {channels}")
        return content
    given = labels is not None
    if labels is None and registry.is_registered(handle.name):
        labels = registry.model_metadata(handle.name).get("labels")
    if contract.dtype in ("uint8", "int8"):  # what MediaPipe's uint8 path and TFLite Support's casts expect
        offset = contract.zero_point + (128 if contract.dtype == "int8" else 0)
        mean, std = [float(offset)], [round(1.0 / contract.scale, 3)]  # 255, not float32 1/255 inverted
        low, high = [0.0], [255.0]
    else:
        mean, std = contract.normalization_options()
        low, high = ([0.0], [1.0]) if contract.kind == "pixels" else (
            [-m / s for m, s in zip(contract.mean, contract.std, strict=True)],
            [(1 - m) / s for m, s in zip(contract.mean, contract.std, strict=True)])
    outputs = []
    for i, name in enumerate(graph.outputs):
        classes = graph.tensors[name].shape[-1] if graph.tensors[name].shape else 0
        fits = labels is not None and i == 0 and len(labels) == classes
        if labels is not None and i == 0 and not fits:
            if given:
                raise ExportError(f"--labels has {len(labels)} labels but the model's output {name!r} has {classes} "
                                  "classes; pass one label per class, in output order")
            notes.append(f"labels not packed: {len(labels)} labels for {classes} outputs")
        outputs.append(OutputInfo(name=name, description="scores, one per class" if fits else "model output",
                                  labels=list(labels) if fits else None))
    meta = AppMetadata(
        name=handle.name, description=f"{handle.name} ({precision}) exported by edgekit; input: {contract.describe()}",
        version=None, author=f"edgekit {__version__}", license=None,
        input=InputInfo(name=graph.inputs[0], description=contract.describe(),
                        color_space="RGB" if channels == 3 else "GRAYSCALE", mean=mean, std=std, min=low, max=high,
                        height=height, width=width),
        outputs=outputs,
        extra_inputs=[FeatureInfo(name=e.name, description=f"{e.describe()}, fed as it is") for e in extra],
    )
    return with_support_metadata(content, meta)


def _input_contract(graph, input_kind: str, handle) -> InputContract:
    t = graph.tensors[graph.inputs[0]]
    scale = zero_point = None
    if t.quant is not None:
        scale = float(np.asarray(t.quant.scale).ravel()[0])
        zero_point = int(np.asarray(t.quant.zero_point).ravel()[0])
    return InputContract(kind=input_kind, dtype=t.dtype, layout="NHWC", shape=tuple(t.shape),
                         mean=tuple(handle.mean), std=tuple(handle.std), scale=scale, zero_point=zero_point)


def _extra_inputs(graph) -> list[ExtraInputInfo]:
    """The inputs after the image, as the file takes them (4-D ones NHWC, as the lowering lays them out)."""
    extra = []
    for name in graph.inputs[1:]:
        shape = tuple(int(d) for d in graph.shape(name))
        extra.append(ExtraInputInfo(name, shape, "NHWC" if len(shape) == 4 else None))
    return extra


def _output_facts(graph) -> list[dict]:
    facts = []
    for name in graph.outputs:
        t = graph.tensors[name]
        fact = {"name": name, "dtype": t.dtype, "shape": list(t.shape)}
        if t.quant is not None and t.dtype != "float32":
            fact["scale"] = float(np.asarray(t.quant.scale).ravel()[0])
            fact["zero_point"] = int(np.asarray(t.quant.zero_point).ravel()[0])
        facts.append(fact)
    return facts


def lower_to_tflite(onnx_model, shuffle_lowering: str):
    """The fp32 TFLite graph of a prepared fp32 ONNX model (``ptq_steps.prepare_model``), channel shuffles
    lowered: ``(graph, lowering used, notes, layout transposes)``. A folded input normalisation makes the
    graph take pixels. Raises ExportError listing every op that cannot be lowered."""
    from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph

    graph, layout_transposes = onnx_to_tflite_graph(onnx_model)
    used, notes = lower_channel_shuffles(graph, shuffle_lowering)
    lower_pixel_fills(graph)  # after the shuffles: folding them reads every CONCATENATION as channel routing
    return graph, used, notes, layout_transposes


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
    """NHWC float32 calibration images and a description (``edgekit.data.calibration.calibration_set``, the
    same images the ONNX exporter calibrates on). Raises DataError when none are usable."""
    from edgekit.data.calibration import calibration_set

    found = calibration_set(calib, handle)
    return found.nhwc(), found.description


def _io_quantization(graph) -> tuple[dict | None, dict | None]:
    def params(name: str) -> dict | None:
        q = graph.tensors[name].quant
        if q is None:
            return None
        return {"scale": float(np.asarray(q.scale).ravel()[0]), "zero_point": int(np.asarray(q.zero_point).ravel()[0])}

    return params(graph.inputs[0]), params(graph.outputs[0])
