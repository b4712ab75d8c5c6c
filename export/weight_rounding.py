"""Bias correction for weight rounding, run once on the fp32 ONNX graph for both int8 formats.

Rounding a layer's weights ``W`` to ``Wq`` moves each of its outputs by ``(Wq - W) . x``. Over the data
that averages to ``(Wq - W) . E[x]`` per output channel, a systematic shift the next layers inherit and
that grows with depth; subtracting it from the bias removes it (Nagel et al. 2019, "Data-Free
Quantization", section 4.2, with ``E[x]`` measured on the calibration images instead of derived from
BatchNorm statistics). It matters most where inputs have a large mean: after ReLU, and for pixel inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def weight_rounding_shift(error: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """Mean output shift per output channel that the weight error ``error`` (rounded minus float) of an ONNX
    Conv or Gemm causes on inputs with per-channel mean ``input_mean``.

    Conv weights are OIHW, I the input channels of one group (a depthwise Conv has I = 1; output channel o
    reads group ``o // (O / groups)``); Gemm weights are OI (``x @ W^T``), one group.
    """
    mean = np.asarray(input_mean, np.float64).reshape(-1)
    error = np.asarray(error, np.float64)
    per_input = error.reshape(error.shape[0], error.shape[1], -1).sum(axis=2)
    out_c, in_per_group = per_input.shape
    groups = len(mean) // in_per_group
    group_mean = mean.reshape(groups, in_per_group)[np.arange(out_c) // (out_c // groups)]
    return (per_input * group_mean).sum(axis=1)


def symmetric_per_channel_rounding(weights: np.ndarray, axis: int, qmax: int = 127) -> np.ndarray:
    """``weights`` rounded to symmetric integers in [-qmax, qmax] with one scale per index of ``axis``
    (``max|w| / qmax``), returned as floats: what int8 (qmax 127) or 7-bit (64) weights compute with."""
    w = np.asarray(weights, dtype=np.float64)
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.abs(w).max(axis=reduce, keepdims=True)
    scale = np.where(absmax > 0, absmax / qmax, 1.0)
    return np.clip(np.round(w / scale), -qmax, qmax) * scale


#: A layer counts as already rounded (by GPTQ) when every weight is this close to its grid, in steps: a
#: weight rounded to nearest moves by up to half a step.
ON_GRID = 1e-3


@dataclass
class BiasCorrection:
    """What ``correct_weight_rounding`` did: the layers whose biases absorbed their rounding shift, and the
    layers left alone because their weights already lie on their grid (rounded by GPTQ, bias corrected)."""

    corrected: list[str] = field(default_factory=list)
    on_grid: list[str] = field(default_factory=list)


def correct_weight_rounding(onnx_model, images_nchw: np.ndarray | None, *, qmax: int = 127, extra=None):
    """A copy of the fp32 ``onnx_model`` whose Conv and Gemm biases absorb the mean output shift that
    rounding their weights to symmetric per-channel integers (``symmetric_per_channel_rounding``, ``qmax``
    127 for int8, 64 for ONNX Runtime's ``reduce_range``) will cause; returns ``(model, BiasCorrection)``.

    Layers whose weights already lie on that grid are left as they are, and when none is left the images are
    not run. ``E[x]`` per input channel comes from running ``images_nchw`` (float32 NCHW, the model's input)
    through the model (``runtimes.observer``). A layer without a bias gets one. Layers whose weights or bias
    are not constants read only by them, and Gemms that are not ``x @ W^T + c``, are not touched.
    """
    import copy

    import onnx
    from onnx import helper, numpy_helper

    from edgekit.export.passes.graph_utils import tensor_reads

    model = copy.deepcopy(onnx_model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    reads = tensor_reads(graph)
    result = BiasCorrection()
    layers = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if node.input[1] not in inits or reads[node.input[1]] != 1 or (
                bias is not None and (bias not in inits or reads[bias] != 1)):
            continue
        if node.op_type == "Gemm" and (attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0
                                       or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0
                                       or bias is not None and len(inits[bias].dims) != 1):
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        if node.op_type == "Conv" and w.ndim != 4:
            continue
        error = symmetric_per_channel_rounding(w, 0, qmax) - w
        absmax = np.abs(w).reshape(len(w), -1).max(axis=1)
        step = np.where(absmax > 0, absmax / qmax, 1.0).reshape((-1,) + (1,) * (w.ndim - 1))
        name = node.name or node.output[0]
        if np.all(np.abs(error) <= ON_GRID * step):
            result.on_grid.append(name)
            continue
        layers.append((node, error, name))
    if not layers:
        return model, result
    means = _channel_means(model, sorted({node.input[0] for node, _, _ in layers}), images_nchw, extra)
    for node, error, name in layers:
        shift = weight_rounding_shift(error, means[node.input[0]])
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            inits[node.input[2]].CopyFrom(numpy_helper.from_array((bias - shift).astype(np.float32), node.input[2]))
        else:
            tensor = numpy_helper.from_array((-shift).astype(np.float32), f"{node.output[0]}_rounding_bias")
            graph.initializer.append(tensor)
            if len(node.input) == 2:  # layers have at least data and weights (checked above)
                node.input.append(tensor.name)
            else:
                node.input[2] = tensor.name
        result.corrected.append(name)
    onnx.checker.check_model(model)
    return model, result


def _channel_means(model, names: list[str], images_nchw: np.ndarray, extra=None) -> dict[str, np.ndarray]:
    """Mean over images and positions, per channel (axis 1), of the named tensors of the fp32 ``model``."""
    from edgekit.runtimes.observer import ActivationObserver

    sums = {name: 0.0 for name in names}
    with ActivationObserver(model, names, extra=extra) as observer:
        for values in observer.iterate(images_nchw):
            for name, value in values.items():
                # per image, as a run on one image would: the same sums, whatever the batch
                axes = tuple(range(2, value.ndim))
                sums[name] = sums[name] + value.mean(axis=axes, dtype=np.float64).sum(axis=0)
    return {name: total / len(images_nchw) for name, total in sums.items()}
