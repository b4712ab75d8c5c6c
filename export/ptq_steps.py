"""The post-training quantization steps both int8 exporters run on the fp32 ONNX graph, with their notes.

``export_tflite`` and ``export_onnx_int8`` call these in the same order (equalize, then round weights) so
the two formats get the same model, and record the same facts in their reports and metadata.
"""

from __future__ import annotations

import numpy as np

from edgekit.progress import Progress


def equalization_fields(equalized: bool, calib) -> dict[str, str]:
    """Metadata that lets ``--per-layer`` rebuild an equalized file's float reference: whether it was
    equalized and on which calibration set (a count or digits spec; "folder" for a directory, whose path
    is not stored, so the reference needs ``--calib DIR``)."""
    if not equalized:
        return {"equalized": "false"}
    text = "default" if calib is None else str(calib)
    return {"equalized": "true", "equalization_calib": text if is_reproducible_calib(text) else "folder"}


def is_reproducible_calib(text: str) -> bool:
    """Whether a calibration spec names data edgekit generates or ships (a count, ``digits``), as opposed to
    a folder; only such specs are stored in or taken from a file's metadata."""
    return text == "default" or text.isdigit() or text == "digits" or text.startswith("digits:")


def equalize(onnx_model, images_nchw: np.ndarray, notes: list[str], say: Progress):
    """``equalize_cross_layer`` with a progress line and a report note; returns the new model."""
    from edgekit.export.cross_layer_equalization import equalize_cross_layer

    say("equalizing pointwise/depthwise channel ranges across layers")
    model, result = equalize_cross_layer(onnx_model, np.ascontiguousarray(images_nchw))
    notes.append(f"cross-layer equalization: {result.pairs_pointwise_depthwise} pointwise->depthwise and "
                 f"{result.pairs_depthwise_pointwise} depthwise->pointwise pairs rescaled")
    return model


def round_weights(onnx_model, images_nchw: np.ndarray, qmax: int, notes: list[str], say: Progress):
    """``round_weights_optimally`` with a progress line and a report note; returns ``(model, result)``."""
    from edgekit.export.optimal_rounding import round_weights_optimally

    say(f"rounding weights to minimise each layer's output error (GPTQ, {qmax * 2 + 1} levels)")
    model, result = round_weights_optimally(onnx_model, np.ascontiguousarray(images_nchw), qmax=qmax)
    notes.append(f"optimal weight rounding (GPTQ) on {result.layers} layers, biases corrected: layer output error "
                 f"from weight rounding x{result.mean_error_ratio:.2f} of nearest rounding on average")
    return model, result
