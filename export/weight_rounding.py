"""Bias correction for weight rounding, shared by the TFLite and ONNX int8 exporters.

Rounding a layer's weights ``W`` to ``Wq`` moves each of its outputs by ``(Wq - W) . x``. Over the data
that averages to ``(Wq - W) . E[x]`` per output channel, a systematic shift the next layers inherit and
that grows with depth; subtracting it from the bias removes it (Nagel et al. 2019, "Data-Free
Quantization", section 4.2, with ``E[x]`` measured on the calibration images instead of derived from
BatchNorm statistics). It matters most where inputs have a large mean: after ReLU, and for pixel inputs.
"""

from __future__ import annotations

import numpy as np


def weight_rounding_shift(kind: str, error: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """Mean output shift per output channel that the weight error ``error`` (rounded minus float, in the
    op's TFLite filter layout) causes on inputs with per-channel mean ``input_mean``.

    CONV_2D filters are OHWI (grouped when I is a fraction of the input channels), DEPTHWISE_CONV_2D
    filters 1HW(C*multiplier), FULLY_CONNECTED weights OI.
    """
    mean = np.asarray(input_mean, np.float64).reshape(-1)
    error = np.asarray(error, np.float64)
    if kind == "DEPTHWISE_CONV_2D":
        per_channel = error.sum(axis=(0, 1, 2))
        multiplier = len(per_channel) // len(mean)
        return per_channel * np.repeat(mean, multiplier)
    if kind == "FULLY_CONNECTED":
        return error @ mean
    out_c, in_per_group = error.shape[0], error.shape[-1]
    groups = len(mean) // in_per_group
    group_mean = mean.reshape(groups, in_per_group)[np.arange(out_c) // (out_c // groups)]
    return (error.sum(axis=(1, 2)) * group_mean).sum(axis=1)


def symmetric_per_channel_rounding(weights: np.ndarray, axis: int, qmax: int = 127) -> np.ndarray:
    """``weights`` rounded to symmetric integers in [-qmax, qmax] with one scale per index of ``axis``
    (``max|w| / qmax``), returned as floats: what int8 (qmax 127) or 7-bit (64) weights compute with."""
    w = np.asarray(weights, dtype=np.float64)
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.abs(w).max(axis=reduce, keepdims=True)
    scale = np.where(absmax > 0, absmax / qmax, 1.0)
    return np.clip(np.round(w / scale), -qmax, qmax) * scale
