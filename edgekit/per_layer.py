"""Per-layer int8 error: where in the graph a quantized model departs from its float reference.

``per_layer_errors`` rebuilds the fp32 model the int8 file quantized from the PyTorch reference, with the
exporters' own pipeline stopped before weight rounding (``ptq_steps.prepare_model(reference=True)``: same
ONNX export and shuffle lowering, equalized and input-folded as the file was, and for TFLite the same
lowering, so tensor names match the int8 file's), runs both on the same inputs and reports SQNR and cosine
per quantized activation in graph order. ONNX: every quantized activation is exposed as a graph output and
the int8 QDQ graph runs with optimizations off (the QDQ network simulated in float): this localises
quantization error, and whether ONNX Runtime's integer kernels compute that network faithfully is the
kernel check of ``edgekit check``. TFLite: both files run on LiteRT's reference kernels with all tensors
preserved, and int8 tensors are dequantized with their own scale and zero point.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekit.errors import DataError, ModelFileError
from edgekit.progress import Progress, quiet

#: A layer whose SQNR is this many dB below its quantized inputs' is flagged: its error power at least
#: doubled there.
JUMP_DB = 3.0


@dataclass
class LayerError:
    """Quantization error of one activation tensor. ``jump_db`` is how many dB of SQNR were lost
    relative to the worst quantized input of the op producing it (``None`` where it has none)."""

    index: int
    tensor: str
    op: str
    node: str
    sqnr_db: float
    cosine: float
    max_abs: float
    jump_db: float | None
    flagged: bool = False


@dataclass
class PerLayerReport:
    """The result of ``per_layer_errors``: one ``LayerError`` per quantized tensor, in graph order."""

    KIND: ClassVar[str] = "per_layer"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    file: str
    reference: str
    samples: int
    data: str
    mode: str
    layers: list[LayerError]
    unmatched: int = 0
    suggestions: list[str] = field(default_factory=list)


def quantized_tensors(int8_model) -> list[tuple[str, str, str, list[str]]]:
    """``(float tensor, its quantized-then-dequantized name, producing node, quantized input tensors)`` for
    every activation quantized by a QuantizeLinear -> DequantizeLinear pair, in graph order."""
    graph = int8_model.graph
    initializers = {i.name for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dq_of: dict[str, str] = {}  # float tensor -> its DequantizeLinear output
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers:
            for dq in consumers.get(node.output[0], []):
                if dq.op_type == "DequantizeLinear":
                    dq_of[node.input[0]] = dq.output[0]
    float_of = {dq: x for x, dq in dq_of.items()}
    producer = {out: node for node in graph.node for out in node.output}
    found = []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in dq_of:
            x = node.input[0]
            made_by = producer.get(x)
            inputs = [float_of[i] for i in (made_by.input if made_by is not None else []) if i in float_of]
            found.append((x, dq_of[x], made_by.name if made_by is not None else "(graph input)", inputs))
    return found


def _op_label(node) -> str:
    if node is None:
        return "input"
    if node.op_type == "Conv":
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        return "Conv (depthwise)" if group > 1 else "Conv"
    return node.op_type


def per_layer_errors(
    exported: str | os.PathLike[str],
    *,
    model: str | None = None,
    weights: str | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    data: str | os.PathLike[str] | None = None,
    samples: int = 8,
    threads: int = 1,
    calib: str | None = None,
    progress: Progress | None = None,
) -> PerLayerReport:
    """Compare every quantized activation of int8 ONNX ``exported`` with the fp32 reference, layer by layer.

    The reference is the model named in the file's edgekit metadata (or ``model``), rebuilt and exported
    to fp32 ONNX with the file's shuffle lowering, and equalized and input-folded as the file was
    (``calib``: the calibration folder an equalized file was made with; other calibration sets are
    recorded in the file). ``data``/``samples`` as for ``check_parity``. Returns a
    ``PerLayerReport`` with flagged error jumps and suggested remedies. Raises ``ModelFileError`` for a
    file that is not int8 ONNX, ``DataError`` when no float reference is known or the graphs' tensor names
    do not match, and the errors of ``edgekit.models.resolve``.
    """
    import onnx

    from edgekit.data import load_inputs
    from edgekit.export.ptq_steps import is_reproducible_calib
    from edgekit.file_metadata import read_metadata
    from edgekit.input_contract import EXTRA_INPUTS_KEY
    from edgekit.runtimes.observer import ActivationObserver
    from edgekit.runtimes.vetting import vet_model_file

    path = Path(exported)
    say = progress or quiet
    meta = read_metadata(path)
    if meta.get(EXTRA_INPUTS_KEY):
        raise DataError(f"{path.name} takes inputs after the image, and --per-layer compares files with one image "
                        "input; check it without --per-layer (its outputs are compared on every input)")
    if meta.get("equalized") == "true" and not is_reproducible_calib(meta.get("equalization_calib", "default")):
        # A folder's path is never stored, and a file is never trusted to choose which files edgekit reads.
        if calib is None:
            raise DataError(f"{path.name} was equalized on a calibration folder, so its float reference must be too: "
                            "pass --calib DIR with the folder it was exported with")
        meta = {**meta, "equalization_calib": str(calib)}
    if path.suffix.lower() in (".onnx", ".tflite"):  # engines below open it without delegates or fusions
        vet_model_file(path, xnnpack=False, optimization="disable")
    if path.suffix.lower() == ".tflite":
        return _tflite_per_layer(path, meta, model=model, weights=weights, pretrained=pretrained,
                                 input_shape=input_shape, data=data, samples=samples, say=say)
    if path.suffix.lower() != ".onnx":
        raise ModelFileError(f"--per-layer works on int8 .onnx and .tflite files; {path.name} is neither")
    int8_model = onnx.load(str(path))
    found = quantized_tensors(int8_model)
    if not found:
        raise ModelFileError(f"{path.name} has no quantized activations (QuantizeLinear/DequantizeLinear); "
                             "--per-layer compares an int8 QDQ file with its float model")
    handle = _reference(path, meta, model, weights, pretrained, input_shape, samples)
    say(f"exporting the fp32 reference {handle.name} to compare {len(found)} quantized tensors")
    from edgekit.export.passes.fold_input_normalization import PIXELS

    pixel_tensor = PIXELS
    # A file that reads pixels through a folded first Conv is compared with a folded reference (exact in float).
    pixel_file = any(n.name.startswith(PIXELS + "_") for n in int8_model.graph.node)
    fp32 = _fp32_reference(handle, meta, _lowering(meta, "reshape"), pixel_file, say)
    if pixel_file:
        # A fused per-channel QuantizeLinear reads the normalised (padded) input and stands for the pixels.
        fused = next((n for n in int8_model.graph.node if n.name == PIXELS + "_quantize"), None)
        pixel_tensor = fused.input[0] if fused is not None else PIXELS
    fp32_names = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}
    # The quantizer renames a graph output it quantizes (logits -> logits_QuantizeLinear_Input).
    suffix = "_QuantizeLinear_Input"
    reference_name = {x: x[: -len(suffix)] if x not in fp32_names and x.endswith(suffix) else x for x, *_ in found}
    if pixel_tensor in reference_name:
        reference_name[pixel_tensor] = PIXELS
    matched = [f for f in found if reference_name[f[0]] in fp32_names]
    if len(matched) < len(found) / 2:
        raise DataError(f"only {len(matched)} of {len(found)} quantized tensors of {path.name} exist in the fp32 "
                        f"export of {handle.name}; is --model the model this file was quantized from?")
    fp32_outputs = [reference_name[x] for x, *_ in matched]
    int8_outputs = [dq for _, dq, *_ in matched]
    reference = ActivationObserver(fp32, fp32_outputs, threads=threads, optimization="all")
    quantized = ActivationObserver(int8_model, int8_outputs, threads=threads, optimization="disable")
    inputs = load_inputs(data, samples, handle.input_shape, handle.mean, handle.std)
    say(f"running both on {inputs.array.shape[0]} inputs from {inputs.description}")
    step = int(handle.input_shape[0])
    usable = inputs.array[: inputs.array.shape[0] // step * step]
    acc = _Accumulator(len(matched))
    feed = _declared_input(meta)
    chunk = step * max(1, min(reference.batch, quantized.batch) // step)
    for start in range(0, len(usable), chunk):
        x = usable[start : start + chunk]
        refs, gots = reference.run(x), quantized.run(feed(x))
        for i in range(0, len(x), step):  # statistics per model-sized sample, as the file runs
            acc.add([refs[n][i : i + step] for n in fp32_outputs], [gots[n][i : i + step] for n in int8_outputs])
    producer = {out: node for node in int8_model.graph.node for out in node.output}
    layers = acc.layers([(x, "input" if x == pixel_tensor else _op_label(producer.get(x)), node, inputs_)
                         for x, _dq, node, inputs_ in matched])
    report = PerLayerReport(
        file=str(path), reference=f"pytorch:{handle.name} exported to fp32 ONNX", samples=acc.samples * step,
        data=inputs.description, mode="int8 QDQ graph simulated in float (ONNX Runtime, optimizations off)",
        layers=layers, unmatched=len(found) - len(matched),
    )
    report.suggestions = suggest_remedies(layers, meta)
    return report


def _fp32_reference(handle, meta: dict[str, str], shuffle_lowering: str, pixel_input: bool, say):
    """The fp32 ONNX model an edgekit int8 file quantized, rebuilt by the exporters' own pipeline
    (``ptq_steps.prepare_model`` with ``reference=True``): exported with ``shuffle_lowering``, equalized on the
    calibration set the file records, and with the normalisation folded when ``pixel_input``."""
    from edgekit.export.onnx_export import DEFAULT_OPSET, simplify, torch_to_onnx
    from edgekit.export.passes import apply_shuffle_passes
    from edgekit.export.ptq_steps import prepare_model

    fp32 = simplify(torch_to_onnx(handle.module, handle.input_shape, DEFAULT_OPSET))
    fp32, _, _ = apply_shuffle_passes(fp32, shuffle_lowering)
    equalized = meta.get("equalized") == "true"
    images = None
    if equalized:
        from edgekit.data.calibration import calibration_set

        say("equalizing the fp32 reference as the int8 file was")
        spec = meta.get("equalization_calib", "default")
        images = calibration_set(None if spec == "default" else spec, handle).images
    return prepare_model(fp32, images, mean=handle.mean, std=handle.std, equalize=equalized,
                         fold_normalization=pixel_input, reference=True).model


def _declared_input(meta: dict[str, str]):
    """A function from normalised NCHW batches to what the file's declared input contract takes (bytes as
    uint8 codes, pixels in [0, 1]); the identity for files that take the normalised image."""
    from edgekit.input_contract import METADATA_KEY, InputContract
    from edgekit.runtimes.base import TensorSpec, pixel_normalization, pixels_from_normalized

    normalization = pixel_normalization(meta)
    if normalization is None:
        return lambda x: x
    contract = InputContract.from_metadata(meta[METADATA_KEY])
    spec = TensorSpec("input", tuple(contract.shape), contract.dtype, "NCHW", contract.scale, contract.zero_point)
    return lambda x: pixels_from_normalized(x, normalization, spec)


def _lowering(meta: dict[str, str], default: str) -> str:
    """The shuffle lowering a file records (``default`` when it records none, or ``none``: no shuffles)."""
    recorded = meta.get("shuffle_lowering")
    return default if recorded in (None, "", "none") else recorded


def _reference(path: Path, meta: dict[str, str], model, weights, pretrained, input_shape, samples: int):
    """The float reference ``path`` is compared with, after checking ``samples`` fits its input shape."""
    from edgekit.limits import check_samples
    from edgekit.models import resolve
    from edgekit.models.file_reference import reference_for_file

    ref = reference_for_file(path, meta, model=model, weights=weights, pretrained=pretrained,
                             input_shape=input_shape, purpose="compare per layer")
    handle = resolve(ref.spec, weights=weights, pretrained=ref.pretrained, input_shape=ref.input_shape,
                     mean=ref.mean, std=ref.std)
    check_samples(samples, handle.input_shape)
    return handle


class _Accumulator:
    """Error statistics per tensor, summed over samples so nothing but one sample's tensors is held."""

    def __init__(self, count: int) -> None:
        self.signal, self.noise = np.zeros(count), np.zeros(count)
        self.cos_sum, self.max_abs = np.zeros(count), np.zeros(count)
        self.samples = 0

    def add(self, refs: list[np.ndarray], gots: list[np.ndarray]) -> None:
        for i, (r, g) in enumerate(zip(refs, gots, strict=True)):
            r64, g64 = np.asarray(r, np.float64).ravel(), np.asarray(g, np.float64).ravel()
            d = g64 - r64
            self.signal[i] += float(r64 @ r64)
            self.noise[i] += float(d @ d)
            norms = np.linalg.norm(r64) * np.linalg.norm(g64)
            self.cos_sum[i] += float(r64 @ g64 / norms) if norms > 0 else 1.0
            self.max_abs[i] = max(self.max_abs[i], float(np.max(np.abs(d))) if d.size else 0.0)
        self.samples += 1

    def layers(self, tensors: list[tuple[str, str, str, list[str]]]) -> list[LayerError]:
        """``tensors``: ``(name, op label, node, quantized input names)`` in the accumulated order."""
        out: list[LayerError] = []
        sqnr_of: dict[str, float] = {}
        for i, (name, op, node, inputs) in enumerate(tensors):
            noise, signal = self.noise[i], self.signal[i]
            sqnr = math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-300) / noise)
            sqnr_of[name] = sqnr
            before = [sqnr_of[q] for q in inputs if q in sqnr_of]
            jump = None
            if before and math.isfinite(min(before)) and math.isfinite(sqnr):
                jump = round(min(before) - sqnr, 3)
            out.append(LayerError(i, name, op, node, sqnr, float(self.cos_sum[i] / max(self.samples, 1)),
                                  float(self.max_abs[i]), jump, flagged=jump is not None and jump >= JUMP_DB))
        return out


def _tflite_per_layer(path: Path, meta, *, model, weights, pretrained, input_shape, data, samples, say):
    from edgekit.data import load_inputs
    from edgekit.export.tflite.pixel_input import to_pixels
    from edgekit.export.tflite.writer import write_tflite
    from edgekit.export.tflite_export import lower_to_tflite
    from edgekit.runtimes.observer import LiteRTObserver

    q = LiteRTObserver(path)
    details = q.by_index
    ops = q.ops
    quantized = {}  # tensor index -> (op label, node) for int8 activations that ops produce
    # A uint8 file's input edge (DEQUANTIZE + QUANTIZE, delegate_uint8_edges) makes the int8 input.
    from_input = {int(t) for op in ops if op["op_name"] == "DEQUANTIZE" and int(op["inputs"][0]) == q.input["index"]
                  for t in op["outputs"]} | {q.input["index"]}
    for op in ops:
        for t in op["outputs"]:
            d = details[int(t)]
            if d["dtype"] == np.int8 and d["quantization"][0] > 0:
                # list a uint8 file's int8 input as the input, as for int8 files
                edge = op["op_name"] == "QUANTIZE" and int(op["inputs"][0]) in from_input
                quantized[int(t)] = ("input", "(graph input)") if edge else (op["op_name"], f"op {op['index']}")
    if not quantized:
        raise ModelFileError(f"{path.name} has no int8 activations; --per-layer compares an int8 file with its "
                             "float model")
    handle = _reference(path, meta, model, weights, pretrained, input_shape, samples)
    pixels = meta.get("input_normalization") == "in-model"  # the int8 file reads pixels: its reference too
    say(f"exporting the fp32 TFLite reference {handle.name} to compare {len(quantized)} int8 tensors")
    # The ONNX graph with canonical shuffles, lowered with the file's own shuffle lowering, as export_tflite does.
    reference = _fp32_reference(handle, meta, "reshape", pixels, say)
    graph, _, _, _ = lower_to_tflite(reference, _lowering(meta, "auto"))
    ref = LiteRTObserver(write_tflite(graph))
    ref_index = {name: d["index"] for name, d in ref.tensors.items()}
    input_names = {int(t): details[int(t)]["name"] for op in ops for t in op["inputs"] if int(t) in details}
    tensors, pairs = [], []
    in_index = q.input["index"]
    for op in ops:
        for t in (int(v) for v in op["outputs"]):
            name = details[t]["name"]
            # An edge QUANTIZE renamed the int8 output (logits -> logits_int8) so the uint8 one keeps the name.
            if name.endswith("_int8") and name not in ref_index and name[: -len("_int8")] in ref_index:
                name = name[: -len("_int8")]
            # The pixel fill only copies the input and constant mean pixels (rounded to whole codes at the
            # border): not a layer that loses anything worth flagging.
            if t in quantized and name in ref_index and "_pixel_fill" not in name:
                inputs = [input_names[int(i)] for i in op["inputs"] if int(i) in quantized or int(i) == in_index]
                tensors.append((name, *quantized[t], inputs))
                pairs.append((ref_index[name], t))
    input_name = details[in_index]["name"]
    if in_index not in quantized and details[in_index]["quantization"][0] > 0 and input_name in ref_index:
        tensors.insert(0, (input_name, "input", "(graph input)", []))
        pairs.insert(0, (ref_index[input_name], in_index))
    compared = {q_idx for _, q_idx in pairs}
    unmatched = sum(1 for t in quantized if t not in compared and "_pixel_fill" not in details[t]["name"])
    inputs = load_inputs(data, samples, handle.input_shape, handle.mean, handle.std)
    say(f"running both on {inputs.array.shape[0]} inputs from {inputs.description}")
    acc = _Accumulator(len(pairs))
    q_in = q.input
    scale, zero = q_in["quantization"]
    for image in inputs.array:
        x = np.ascontiguousarray(image.transpose(1, 2, 0)[None], dtype=np.float32)
        if pixels:
            x = to_pixels(x, handle.mean, handle.std, channel_axis=3)
        ref.run(x)
        if np.issubdtype(q_in["dtype"], np.integer):  # int8 pixel - 128, or uint8 bytes
            info = np.iinfo(q_in["dtype"])
            q.run(np.clip(np.round(x / scale) + zero, info.min, info.max).astype(q_in["dtype"]))
        else:
            q.run(x)
        refs, gots = [], []
        for r_idx, q_idx in pairs:
            s, z = details[q_idx]["quantization"]
            refs.append(ref.value(r_idx))
            gots.append((q.value(q_idx).astype(np.float32) - z) * s)
        acc.add(refs, gots)
    layers = acc.layers(tensors)
    report = PerLayerReport(
        file=str(path), reference=f"pytorch:{handle.name} exported to fp32 TFLite", samples=acc.samples,
        data=inputs.description, mode="LiteRT reference kernels, all tensors preserved, int8 dequantized",
        layers=layers, unmatched=max(0, unmatched),
    )
    report.suggestions = suggest_remedies(layers, meta)
    return report


def suggest_remedies(layers: list[LayerError], meta: dict[str, str], top: int = 3) -> list[str]:
    """Remedies for the ``top`` largest flagged error jumps, from the op that made them and the file's
    quantization settings (``meta``: edgekit metadata with ``calib_method``)."""
    flagged = sorted((layer for layer in layers if layer.flagged), key=lambda layer: -(layer.jump_db or 0))[:top]
    out = []
    for layer in flagged:
        where = f"{layer.tensor} ({layer.op}, node {layer.node}) loses {layer.jump_db:.1f} dB"
        if layer.index == 0 or layer.op == "input":
            out.append(f"{where}: keep the input and first convolution in float")
        elif "depthwise" in layer.op.lower():
            out.append(f"{where}: keep this depthwise convolution in float; a 3x3 depthwise filter sums only 9 "
                       "products per output, so quantization noise is not averaged out")
        elif meta.get("calib_method") == "minmax":
            out.append(f"{where}: its range is set by rare extremes; recalibrate with --calib-method percentile")
        elif meta.get("calib_method") is None:
            out.append(f"{where}: if rare extremes set its range, percentile calibration gives finer steps; "
                       "else keep this layer in float")
        else:
            out.append(f"{where}: keep this layer in float, or calibrate on more images like the deployment data")
    if not flagged and layers:
        worst = min(layers, key=lambda layer: layer.sqnr_db)
        out.append(f"no layer loses {JUMP_DB:g} dB or more; error accumulates gradually (lowest SQNR "
                   f"{worst.sqnr_db:.1f} dB at {worst.tensor})")
    return out
