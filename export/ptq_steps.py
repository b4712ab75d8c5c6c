"""The post-training quantization steps, run once, in one order, on the fp32 ONNX graph for both formats.

``prepare_model`` is the pipeline ``export_tflite`` and ``export_onnx_int8`` both call: cross-layer
equalization, the input normalisation folded into the first convolution, GPTQ weight rounding (with its
bias correction), then bias correction for the layers GPTQ did not round. The backends only map what it
returns (rounded weights, corrected biases, a first convolution that reads pixels) to ONNX QDQ or TFLite
int8 ops, after calibrating ranges on it. With ``reference=True`` it stops before rounding: the fp32 model
an int8 file approximates, which ``--per-layer`` compares with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.export.activation_ranges import RangePass
from edgekit.export.cross_layer_equalization import equalize_cross_layer
from edgekit.export.optimal_rounding import round_weights_optimally
from edgekit.export.passes.fold_input_normalization import fold_input_normalization
from edgekit.export.weight_rounding import correct_weight_rounding
from edgekit.progress import Progress, quiet


@dataclass
class PreparedModel:
    """What ``prepare_model`` returns: the fp32 ONNX ``model`` (its input still the normalised image),
    whether its first convolution reads pixels (``pixel_input``; else ``fold_refusal`` says why not, when
    the fold was asked for) and one report note per step."""

    model: object
    pixel_input: bool = False
    fold_refusal: str | None = None
    notes: list[str] = field(default_factory=list)


def prepare_model(
    onnx_model,
    images_nchw: np.ndarray | None,
    *,
    mean,
    std,
    equalize: bool = True,
    fold_normalization: bool = True,
    optimal_rounding: bool = True,
    bias_correction: bool = True,
    qmax: int = 127,
    reference: bool = False,
    ranges: RangePass | None = None,
    say: Progress = quiet,
    extra: dict[str, np.ndarray] | None = None,
) -> PreparedModel:
    """Run the post-training steps on the fp32 ``onnx_model`` in their one order; returns a ``PreparedModel``.

    1. ``equalize``: cross-layer equalization on ``images_nchw`` (``equalize_cross_layer``);
    2. ``fold_normalization``: ``(x - mean) / std`` folded into the first Conv (``fold_input_normalization``),
       so it reads pixels that int8 quantizes losslessly; where it does not apply, ``fold_refusal`` says why;
    3. ``optimal_rounding``: weights rounded by GPTQ on ``images_nchw`` to ``qmax`` levels a side (127 for
       int8, 64 for 7-bit weights), each rounded layer's bias corrected (``round_weights_optimally``);
    4. ``bias_correction``: the mean shift of nearest rounding taken out of the biases of the layers still off
       their grid (all of them without GPTQ; ``weight_rounding.correct_weight_rounding``).

    ``reference=True`` stops after step 2: the fp32 model the int8 file quantizes, before any rounding.
    ``ranges``: activation ranges GPTQ's pass over ``images_nchw`` gathers on the way (on the graph after step 2,
    before rounding, which moves no calibrated range measurably: ShuffleNetV2 1.0x ONNX int8 logit cosine 0.98506
    with them, 0.98501 with ranges observed after rounding); left unfed (``ranges.seen == 0``) without GPTQ.
    ``images_nchw``: float32 NCHW normalised images (the model's input); None only when no step needs them.
    ``extra``: values of the model's inputs after the image by name, one row per image.
    The input model is not modified. Raises ``ExportError`` for images that do not fit the model.
    """
    notes: list[str] = []
    model = onnx_model
    if equalize:
        say("equalizing pointwise/depthwise channel ranges across layers")
        model, cle = equalize_cross_layer(model, _needs(images_nchw, "equalization"), extra=extra)
        notes.append(f"cross-layer equalization: {cle.pairs_pointwise_depthwise} pointwise->depthwise and "
                     f"{cle.pairs_depthwise_pointwise} depthwise->pointwise pairs rescaled")
    pixel_input, refusal = False, None
    if fold_normalization:
        folded = fold_input_normalization(model, mean, std)
        if folded.changed:
            model, pixel_input = folded.model, True
            notes.append("input normalisation folded into the first convolution: it reads pixels in [0, 1], "
                         "which int8 quantizes losslessly, and its border holds the mean pixel")
        else:
            refusal = folded.details[0]
            notes.append(f"input normalisation not folded ({refusal})")
    if reference:
        return PreparedModel(model, pixel_input, refusal, notes)
    rounded_by_gptq = False
    if optimal_rounding:
        say(f"rounding weights to minimise each layer's output error (GPTQ, {qmax * 2 + 1} levels)")
        model, rounding = round_weights_optimally(model, _needs(images_nchw, "GPTQ"), qmax=qmax, ranges=ranges,
                                                  extra=extra)
        notes.append(f"optimal weight rounding (GPTQ) on {rounding.layers} layers, biases corrected: layer output "
                     f"error from weight rounding x{rounding.mean_error_ratio:.2f} of nearest rounding on average")
        rounded_by_gptq = True
    if bias_correction:
        model, corrected = correct_weight_rounding(model, images_nchw, qmax=qmax, extra=extra)
        if corrected.corrected:
            notes.append(f"bias correction: nearest-rounding shift taken out of {len(corrected.corrected)} "
                         "layers' biases" + (" (those GPTQ did not round)" if rounded_by_gptq else ""))
        elif rounded_by_gptq:
            notes.append("bias correction: done by GPTQ for every layer it rounded; no other layer to correct")
    elif rounded_by_gptq:
        notes.append("bias correction off for layers GPTQ did not round")
    return PreparedModel(model, pixel_input, refusal, notes)


def _needs(images_nchw: np.ndarray | None, step: str) -> np.ndarray:
    if images_nchw is None:
        raise ValueError(f"{step} needs calibration images")
    return np.ascontiguousarray(images_nchw)


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
