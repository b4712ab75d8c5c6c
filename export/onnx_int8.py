"""PyTorch -> int8 ONNX (QDQ, per-channel weights): edgekit's activation ranges, mapped by ONNX Runtime's quantizer.

The fp32 graph is the one ``export_onnx`` writes (same exporter, onnxsim and shuffle passes). edgekit observes
it on calibration images from ``edgekit.data`` and computes every activation range with the estimator the
TFLite backend uses (``activation_ranges``); ONNX Runtime's ``QDQQuantizer`` only turns those ranges and the
weights into Q/DQ pairs (the calibration ``quantize_static`` would run never runs). Weight range follows the
CPU the model will run on (``edgekit.cpu_features``): 7-bit weights where the integer kernels lack int8 dot
products. Where the quantized graph is too far from fp32 on the calibration images, its first convolutions
stay in float (``float_first_layers``): BatchNorm networks amplify quantization noise most there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.cpu_features import CpuTarget, cpu_target
from edgekit.data.extra_inputs import describe_extra_inputs, extra_inputs_by_name
from edgekit.errors import ExportError
from edgekit.export import ptq_steps
from edgekit.export.activation_ranges import (
    DEFAULT_PERCENTILE,
    ONE_PASS_METHODS,
    RANGE_METHODS,
    RangePass,
    estimate_ranges,
)
from edgekit.export.float_first_layers import keep_first_layers_float
from edgekit.export.onnx_export import (
    DEFAULT_OPSET,
    extra_input_fields,
    finalize,
    op_histogram,
    prepare_export,
    refuse_int8_extra_inputs,
    shuffle_records,
)
from edgekit.export.onnx_input import (
    onnx_extra_inputs,
    onnx_input_contract,
    onnx_output_facts,
    retarget_quantized_input,
)
from edgekit.export.passes.fold_input_normalization import PIXEL_RANGE, PIXELS
from edgekit.export.passes.graph_utils import drop_unread_initializers
from edgekit.export.publish import provenance, publish
from edgekit.export.result import ExportResult, PassRecord
from edgekit.export.versions import tool_versions
from edgekit.input_contract import DEFAULT_INPUT, METADATA_KEY, resolve_io, usage_line
from edgekit.progress import Progress, quiet

#: The shared estimator's methods, as for TFLite. ONNX Runtime 1.32's entropy calibration, offered before, gave
#: exactly the minmax ranges (all 187 calibrated tensors of ShuffleNetV2 1.0x and of the digits model, ORT's
#: own EntropyCalibrater against its MinMaxCalibrater), so it was dropped.
CALIB_METHODS = RANGE_METHODS
#: Measured by benchmarks/onnx_int8_quality.py (see its docstring): percentile is best or tied.
DEFAULT_CALIB_METHOD = "percentile"
#: Activation storage type. uint8 feeds MLAS's native u8 x s8 kernels; int8 activations cost a conversion:
#: ShuffleNetV2 1.0x at 1 thread runs 3.37 ms with uint8, 4.43 ms with int8, 5.45 ms in fp32 (AMD EPYC,
#: ORT 1.32); same accuracy, as both are asymmetric 8-bit.
DEFAULT_ACTIVATION_TYPE = "uint8"
#: Plain Reshape -> Transpose -> Reshape shuffles: in int8 they beat the fused form (digits model 0.26 vs
#: 0.33 ms), as ORT drops their Q/DQ pairs and moves bytes, while a fused Split adds a requantize.
INT8_SHUFFLE_LOWERING = "reshape"


def calibration_inputs(calib: str | int | None, handle) -> tuple[np.ndarray, str]:
    """float32 NCHW calibration images for ``handle`` and a description: ``calibration_set``'s, the same
    images the TFLite exporter calibrates on. Raises ``DataError`` when none are usable."""
    from edgekit.data.calibration import calibration_set

    found = calibration_set(calib, handle)
    return found.images, found.description


def quantize_onnx_model(
    onnx_model,
    images_nchw: np.ndarray,
    *,
    method: str = DEFAULT_CALIB_METHOD,
    reduce_range: bool = False,
    activation_type: str = DEFAULT_ACTIVATION_TYPE,
    percentile: float = DEFAULT_PERCENTILE,
    ranges: dict[str, tuple[float, float]] | None = None,
    extra: dict[str, np.ndarray] | None = None,
):
    """Quantize an fp32 ``onnx.ModelProto`` to QDQ int8 (per-channel symmetric int8 weights, int8
    activations, ``activation_type`` "uint8" or "int8") calibrated on ``images_nchw``; returns the quantized
    ``onnx.ModelProto``. A graph folded by ``fold_input_normalization`` keeps its Pad/Mul/Add prologue in
    float and its pixels quantized on the pixel grid (range [0, 1]).

    edgekit computes every activation range itself (``observed_ranges``: the estimator the TFLite backend
    uses, ``method`` and ``percentile`` as there; ``ranges`` brings those of ``calibration_tensors`` already
    gathered, by GPTQ's pass); ONNX Runtime's ``QDQQuantizer`` only maps those ranges
    and the weights to Q/DQ pairs, as ``quantize_static`` does after its own calibration, except that every
    Concat's inputs and output share one range (``share_concat_ranges``), as in TFLite.

    Raises ``ExportError`` for an unknown ``method`` or ``activation_type``, a graph ONNX Runtime cannot run,
    or a failure inside ONNX Runtime's quantizer.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    if method not in CALIB_METHODS:
        raise ExportError(f"unknown --calib-method {method!r}; choose one of {', '.join(CALIB_METHODS)}")
    activation_types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    if activation_type not in activation_types:
        raise ExportError(f"unknown activation type {activation_type!r}; choose uint8 or int8")
    options = {}
    prologue = [n.name for n in onnx_model.graph.node if n.name.startswith(PIXELS + "_")]
    if prologue:
        options["TensorQuantOverrides"] = {PIXELS: [{"rmin": np.float32(PIXEL_RANGE[0]),
                                                   "rmax": np.float32(PIXEL_RANGE[1])}]}
    model, op_types = _quantizer_input(onnx_model, activation_types[activation_type],
                                       options.get("TensorQuantOverrides"))
    names = tensors_to_calibrate(model, op_types)
    wanted = set(names)
    known = {name: r for name, r in (ranges or {}).items() if name in wanted}
    missing = [name for name in names if name not in known]
    if missing:
        known.update(observed_ranges(onnx_model, images_nchw, missing, method=method, percentile=percentile,
                                     extra=extra))
    ranges = {name: known[name] for name in names}
    ranges = share_concat_ranges(model, ranges, keep=set(options.get("TensorQuantOverrides", {})))
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()})
    try:
        quantizer = QDQQuantizer(model, True, reduce_range, QuantType.QInt8, activation_types[activation_type],
                                 tensors, [], prologue, op_types, options)
        quantizer.quantize_model()
        quantizer.model.topological_sort()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"ONNX Runtime's QDQ quantizer failed: {type(exc).__name__}: {first}") from None
    quantized = quantizer.model.model
    return fuse_pixel_prologue(quantized) if prologue else quantized


#: Ops whose output ONNX Runtime's QDQQuantizer quantizes with the parameters of their first input
#: (``quantize_output_same_as_input``; Pad where its pad value allows): they move or select values.
SAME_SCALE_AS_INPUT = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Split", "Gather",
                                 "GatherElements", "MaxPool", "AveragePool", "Resize", "Pad", "TopK"})


def share_concat_ranges(model, ranges: dict[str, tuple[float, float]], *, keep=frozenset()
                        ) -> dict[str, tuple[float, float]]:
    """``ranges`` with the inputs and output of every Concat, and the tensors ONNX Runtime quantizes with
    their input's parameters (``SAME_SCALE_AS_INPUT``) chained to them, given one range: the union of
    theirs. Names in ``keep`` (fixed by an override) keep their own, and so does a Relu or Clip output whose
    class reaches past what the activation lets through (``_activation_limits``): ONNX Runtime removes such
    activations and lets the output's quantization do the clipping, which a wider range would not.

    Why: ONNX Runtime's quantizer gives each Concat input and its output their own scales, so its
    QLinearConcat rounds every input a second time, onto the output's grid (a ShuffleNet block's
    pass-through half once per block). With one scale, as TFLite's int8 spec and edgekit's TFLite backend
    (``tflite.quantize.shared_quant_classes``) have it, the Concat only copies codes. ShuffleNetV2 1.0x,
    200 bundled crops, logit cosine to fp32: plain PTQ 0.98122 -> 0.98209, every step 0.98424 -> 0.98501.
    """
    edges = []
    for node in model.graph.node:
        if node.op_type == "Concat":
            sources = list(node.input)
        elif node.op_type in SAME_SCALE_AS_INPUT:
            sources = list(node.input[:1])
        else:
            continue
        edges += [(a, b) for a in sources for b in node.output if a in ranges and b in ranges]
    limits = _activation_limits(model)
    alone = set(keep)
    while True:
        classes = _classes([(a, b) for a, b in edges if a not in alone and b not in alone])
        union = {}
        for members in classes:
            lo, hi = min(ranges[m][0] for m in members), max(ranges[m][1] for m in members)
            union.update((m, (lo, hi)) for m in members)
        clipped = {m for m, (lo, hi) in union.items() if m in limits and not limits[m][0] <= lo <= hi <= limits[m][1]}
        if not clipped:
            return {**ranges, **union}
        alone |= clipped


def _classes(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The connected components of the tensors named in ``edges``, each in first-seen order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    classes: dict[str, list[str]] = {}
    for name in parent:
        classes.setdefault(find(name), []).append(name)
    return list(classes.values())


def _activation_limits(model) -> dict[str, tuple[float, float]]:
    """``{output: (lo, hi)}`` of every Relu and Clip: the values it lets through (a Clip bound that is not
    a constant allows no range at all)."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    limits = {}
    for node in model.graph.node:
        if node.op_type == "Relu":
            limits[node.output[0]] = (0.0, np.inf)
        elif node.op_type == "Clip":
            bounds = [-np.inf, np.inf]
            for i, name in ((0, "min"), (1, "max")):
                attribute = [a.f for a in node.attribute if a.name == name]  # opset < 11
                given = node.input[i + 1] if len(node.input) > i + 1 else ""
                if attribute:
                    bounds[i] = float(attribute[0])
                elif given:
                    bounds[i] = float(inits[given]) if given in inits else (np.inf, -np.inf)[i]
            limits[node.output[0]] = (bounds[0], bounds[1])
    return limits


def calibration_tensors(onnx_model, activation_type: str = DEFAULT_ACTIVATION_TYPE) -> list[str]:
    """The tensors ``quantize_onnx_model`` ranges for ``onnx_model``, named before any calibration work."""
    from onnxruntime.quantization import QuantType

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    return tensors_to_calibrate(*_quantizer_input(onnx_model, types[activation_type], None))


def _quantizer_input(onnx_model, activation_type, overrides):
    """``quantize_static``'s own preparation, without its calibration: the model with value types from shape
    inference and the opset its Q/DQ types need, and every op type ONNX Runtime can quantize."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.quant_utils import update_opset_version
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    model = update_opset_version(onnx.shape_inference.infer_shapes(onnx_model), QuantType.QInt8, activation_type,
                                 overrides)
    return model, sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def tensors_to_calibrate(model, op_types) -> list[str]:
    """The float activations ONNX Runtime's quantizer may quantize: inputs and outputs of every node of an op
    type in ``op_types`` that shape inference typed float (``CalibraterBase.select_tensors_to_calibrate``'s
    rule), initializers excluded; in graph order."""
    import onnx

    typed = {v.name: v for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    initializers = {t.name for t in model.graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    names = []
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        for name in [*node.input, *node.output]:
            value = typed.get(name)
            if (value is not None and name not in initializers and value.type.HasField("tensor_type")
                    and value.type.tensor_type.elem_type in floats):
                names.append(name)
    return list(dict.fromkeys(names))


def viewed(views: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray] | None]], values, keys=None) -> dict:
    """``{key: the view's values}`` from one batch of observed ``values`` (a view without a function is its
    tensor), for ``keys`` (default: every view)."""
    out = {}
    for key in views if keys is None else keys:
        tensor, view = views[key]
        out[key] = values[tensor] if view is None else view(values[tensor])
    return out


def observed_ranges(
    onnx_model,
    images_nchw: np.ndarray,
    names: list[str],
    *,
    method: str = DEFAULT_CALIB_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
    views: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, tuple[float, float]]:
    """``(lo, hi)`` of the tensors ``names`` of the fp32 ``onnx_model`` over ``images_nchw``: the model runs in
    the activation observer (several images per run where its batch allows) and the shared estimator
    (``activation_ranges.estimate_ranges``) reduces the values. ``views`` (TFLite: a channel subset of a
    tensor, a scaled tensor) asks for the ranges of values derived from the observed tensors instead:
    ``{key: (tensor, function of a batch of it)}``, the result keyed alike. Raises ``ExportError`` when ONNX
    Runtime cannot run the model on the images."""
    from edgekit.runtimes.observer import ActivationObserver, ObservationError

    images = np.ascontiguousarray(images_nchw, dtype=np.float32)
    if views is None:
        views = {name: (name, None) for name in names}
    try:
        with ActivationObserver(onnx_model, names, extra=extra) as observer:

            def observe(keys):
                for start, values in zip(range(0, len(images), observer.batch), observer.iterate(images),
                                         strict=True):
                    yield min(observer.batch, len(images) - start), viewed(views, values, keys)

            return estimate_ranges(observe, list(views), len(images), method=method, percentile=percentile)
    except ObservationError as exc:
        raise ExportError(f"ONNX Runtime could not run the fp32 graph on the calibration images ({exc.reason})")\
            from None


def fuse_pixel_prologue(model):
    """Turn the float ``Mul(std) -> Add(mean) -> QuantizeLinear(1/255, 0)`` prologue of a pixel-input QDQ
    model into one per-channel ``QuantizeLinear`` of the normalised input, so the fold costs no extra ops.

    ``round((x * std + m) * 255) == round(x / (1 / (255 * std)) + round(255 * m))`` for every pixel value,
    because ``255 * x * std + 255 * m`` is a whole number there and the zero point only moves it by the
    fraction ``round(255 * m) - 255 * m`` (less than 1/2); the DequantizeLinear after it is unchanged. On
    inputs that are not pixels the codes differ from the float prologue's by at most one step. Returns the
    model unchanged when the prologue is not in that form.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes = {n.name: n for n in graph.node}
    inits = {t.name: t for t in graph.initializer}
    mul, add = nodes.get(PIXELS + "_mul"), nodes.get(PIXELS + "_add")
    quantize = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == PIXELS]
    readers = [n for n in graph.node if PIXELS in n.input]
    if mul is None or add is None or len(quantize) != 1 or len(readers) != 1:
        return model
    q = quantize[0]
    scale = numpy_helper.to_array(inits[q.input[1]]).astype(np.float64)
    zero = numpy_helper.to_array(inits[q.input[2]])
    if scale.size != 1 or zero.size != 1 or int(zero.ravel()[0]) != 0 or zero.dtype != np.uint8:
        return model
    std = numpy_helper.to_array(inits[mul.input[1]]).astype(np.float64).ravel()
    mean = numpy_helper.to_array(inits[add.input[1]]).astype(np.float64).ravel()
    step = float(scale.ravel()[0])
    channel_scale = numpy_helper.from_array((step / std).astype(np.float32), PIXELS + "_quantize_scale")
    channel_zero = numpy_helper.from_array(np.clip(np.round(mean / step), 0, 255).astype(np.uint8),
                                           PIXELS + "_quantize_zero_point")
    graph.initializer.extend([channel_scale, channel_zero])
    fused = helper.make_node("QuantizeLinear", [mul.input[0], channel_scale.name, channel_zero.name], list(q.output),
                             PIXELS + "_quantize", axis=1)
    index = list(graph.node).index(q)
    graph.node.remove(q)
    graph.node.insert(index, fused)
    graph.node.remove(mul)
    graph.node.remove(add)
    drop_unread_initializers(graph)
    return model


def export_onnx_int8(
    model: str = "shufflenet_v2_x1_0",
    *,
    calib: str | int | None = None,
    calib_method: str = DEFAULT_CALIB_METHOD,
    target_cpu: str | None = None,
    equalize: bool = True,
    optimal_rounding: bool = True,
    bias_correction: bool = True,
    float_first_layers: bool = True,
    fold_normalization: bool = True,
    input_kind: str = DEFAULT_INPUT,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    weights: str | Path | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    output_dir: str | Path = "edgekit-out",
    shuffle_lowering: str = INT8_SHUFFLE_LOWERING,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    data: str | Path | None = None,
    samples: int = 8,
    progress: Progress | None = None,
    extra_input_shapes: tuple[tuple[int, ...], ...] = (),
    extra_data: str | Path | None = None,
) -> ExportResult:
    """Export to ``output_dir/<name>_int8.onnx`` (QDQ int8) with its report ``<name>_int8.json``/``.html``.

    ``calib``: see ``calibration_inputs``. ``calib_method``: ``minmax``, ``percentile``
    (``activation_ranges.DEFAULT_PERCENTILE``) or ``mse``, as for TFLite. ``target_cpu``: the CPU the model
    will run on (``cpu_features.TARGET_CPUS``; default this machine); without int8 dot products, weights are
    quantized to 7 bits (``reduce_range``).
    ``equalize``: cross-layer equalization of pointwise/depthwise pairs (``equalize_cross_layer``).
    ``optimal_rounding``: GPTQ weight rounding on the calibration images (``round_weights_optimally``).
    ``fold_normalization`` folds the input normalisation into the first Conv (``fold_input_normalization``:
    its quantization becomes lossless); ``input_kind``: what the file takes, NCHW (``bytes``: uint8 codes,
    the default; ``pixels``: float [0, 1]; ``normalized``), for the first two the fold is required;
    ``mean``/``std``: a user factory's input normalisation (default ImageNet's, with a notice);
    ``bias_correction`` takes the mean shift of weight rounding out of the biases of layers GPTQ did not round
    (the steps run in ``ptq_steps.prepare_model``'s one order, as for TFLite). The first convolutions are kept
    in float (unless ``float_first_layers`` is false) when that is needed to reach
    ``float_first_layers.TARGET_COSINE`` on the calibration images (``keep_first_layers_float``; the report's notes
    say how many). The parity check compares with PyTorch and the integer kernels with the float-simulated QDQ
    graph. Raises ``ExportError``, ``DataError``, ``ParityError``, and ``resolve``'s errors; nothing is written on
    failure. ``extra_input_shapes``: a user factory's inputs after the image, calibrated on ``extra_data`` (an
    ``.npz`` of their values, required with them), row ``i`` beside calibration image ``i``.
    """
    from edgekit.export.passes import SHUFFLE_LOWERINGS

    refuse_int8_extra_inputs(True, extra_input_shapes, extra_data)
    if shuffle_lowering not in SHUFFLE_LOWERINGS:
        raise ExportError(f"unknown --shuffle {shuffle_lowering!r}; choose one of {', '.join(SHUFFLE_LOWERINGS)}")
    if calib_method not in CALIB_METHODS:
        raise ExportError(f"unknown --calib-method {calib_method!r}; choose one of {', '.join(CALIB_METHODS)}")
    resolve_io(input_kind, None, int8=True)
    if input_kind != "normalized" and not fold_normalization:
        raise ExportError(f"--input {input_kind} needs the normalisation folded into the model; pass --input "
                          "normalized to keep it outside")
    target: CpuTarget = cpu_target(target_cpu)
    say = progress or quiet
    prepared = prepare_export(model, weights=weights, pretrained=pretrained, input_shape=input_shape,
                              output_dir=output_dir, opset=opset, shuffle_lowering=shuffle_lowering, say=say,
                              mean=mean, std=std, extra_input_shapes=extra_input_shapes, extra_data=extra_data)
    handle, out_dir, clock = prepared.handle, prepared.out_dir, prepared.clock
    onnx_model, pass_results, matches = prepared.onnx_model, prepared.pass_results, prepared.matches
    images, calibration = calibration_inputs(calib, handle)
    extra = extra_inputs_by_name(handle, len(images))
    calibration += describe_extra_inputs(handle)
    weight_bits = 7 if target.reduce_range else 8
    say(f"quantizing to int8 ({calib_method} calibration on {calibration}; {weight_bits}-bit weights for "
        f"{target.name}: {target.evidence})")
    # The ranges ride on GPTQ's pass over the images (the graph's tensors are named before any image runs).
    gathered = None
    if optimal_rounding and calib_method in ONE_PASS_METHODS:
        names = calibration_tensors(ptq_steps.prepare_model(onnx_model, None, mean=handle.mean, std=handle.std,
                                                            equalize=False, fold_normalization=fold_normalization,
                                                            reference=True).model)
        gathered = RangePass(names, len(images), method=calib_method)
    ready = ptq_steps.prepare_model(onnx_model, images, mean=handle.mean, std=handle.std, equalize=equalize,
                                    fold_normalization=fold_normalization, optimal_rounding=optimal_rounding,
                                    bias_correction=bias_correction, qmax=64 if target.reduce_range else 127,
                                    ranges=gathered, say=say, extra=extra)
    onnx_model, improvements = ready.model, ready.notes
    ranges = gathered.ranges() if gathered is not None and gathered.seen else None
    quantized = quantize_onnx_model(onnx_model, images, method=calib_method, reduce_range=target.reduce_range,
                                    ranges=ranges, extra=extra)
    if float_first_layers:
        say("measuring the int8 graph against fp32 on the calibration images")
        quantized, float_layers = keep_first_layers_float(quantized, onnx_model, images, extra=extra)
        improvements.append(float_layers.note())
    quantized = retarget_quantized_input(quantized, handle.mean, input_kind)
    contract = onnx_input_contract(quantized, input_kind, handle.mean, handle.std)
    further = onnx_extra_inputs(quantized)
    clock.lap("quantize")
    fields = provenance(model, handle, weights=weights, pretrained=pretrained, shuffle_lowering=shuffle_lowering,
                        precision="int8", shuffles=len(matches))
    fields.update(ptq_steps.equalization_fields(equalize, calib))
    fields.update(calib_method=calib_method, reduce_range=str(target.reduce_range).lower(),
                  target_cpu=target.name)
    fields[METADATA_KEY] = contract.to_metadata()
    fields.update(extra_input_fields(further))
    content = finalize(quantized, fields)
    clock.lap("finalize")
    notes = [
        f"calibration: {calib_method}" + (f" ({DEFAULT_PERCENTILE}th percentile)" if calib_method == "percentile"
                                           else "") + f" on {calibration}",
        f"target CPU {target.name}: {target.evidence}; " + (
            "7-bit weights (reduce_range), because integer kernels without int8 dot products can overflow "
            "int16 intermediate sums with 8-bit weights" if target.reduce_range
            else "8-bit weights (int8 dot products accumulate in int32)"),
        f"activations {DEFAULT_ACTIVATION_TYPE} (asymmetric, per tensor; one scale across each Concat); weights int8 "
        "per channel (symmetric)",
        *improvements,
    ]

    def make_result(**measured) -> ExportResult:
        return ExportResult(
            model=handle.name, format="onnx", precision="int8",
            path=str(out_dir / f"{handle.name}_int8.onnx"), report_path=str(out_dir / f"{handle.name}_int8.json"),
            input_shape=tuple(handle.input_shape), weights_source=handle.weights_source,
            weights_sha256=handle.weights_sha256, opset=opset, shuffle_lowering=shuffle_lowering,
            versions=tool_versions("torch", "onnx", "onnxsim", "onnxruntime"),
            op_histogram=op_histogram(quantized), shuffles=shuffle_records(matches, shuffle_lowering),
            passes=[PassRecord(name=r.name, changed=r.changed, details=list(r.details)) for r in pass_results],
            calibration=calibration, calib_method=calib_method, reduce_range=target.reduce_range,
            target_cpu=f"{target.name} ({target.evidence})", notes=notes, io=contract.dtype,
            input_contract=json.loads(contract.to_metadata()),
            usage=usage_line(contract, onnx_output_facts(quantized), further),
            extra_inputs=[e.to_dict() for e in further], **measured,
        )

    return publish(content, out_dir / f"{handle.name}_int8.onnx", handle, make_result, clock=clock, check=check,
                   data=data, samples=samples, say=say)
