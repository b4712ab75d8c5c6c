"""``shufflenet_v2_digits``: a small ShuffleNetV2 trained on scikit-learn's digits, edgekit's test reference.

A trained network with real labels is what makes int8 accuracy claims checkable: untrained weights have
tiny logit margins, so any quantization noise flips classes. Same architecture as torchvision's (channel
shuffle included), narrower: Table 5's repeats with the stage widths below, on 64x64 upsampled digits.
The weights (``shufflenet_v2_digits.pt``, under 1 MB) come from ``benchmarks/train_digits.py`` and carry
their own metadata; the numbers here repeat it so ``edgekit models`` needs no file read.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.models.registry import register_model
from edgekit.models.shufflenetv2 import STAGES_REPEATS, ShuffleNetV2

DIGITS_STAGES_OUT_CHANNELS = (24, 48, 96, 192, 256)
DIGITS_INPUT_SHAPE = (1, 3, 64, 64)
#: Mean and standard deviation of the training digits' pixels in [0, 1] (the same in all 3 channels).
DIGITS_MEAN = (0.3051,) * 3
DIGITS_STD = (0.3247,) * 3
DIGITS_WEIGHTS = Path(__file__).with_name("shufflenet_v2_digits.pt")


@register_model(
    "shufflenet_v2_digits",
    family="shufflenetv2-digits",
    width=None,
    params=195_370,
    macs=2_633_344,
    task="classification",
    pure_cnn=True,
    input_shape=DIGITS_INPUT_SHAPE,
    mean=DIGITS_MEAN,
    std=DIGITS_STD,
    labels=tuple(str(d) for d in range(10)),
    default_weights=str(DIGITS_WEIGHTS),
    heldout_top1=99.5,  # percent of the 600 held-out digits, fp32; also in the weights file's metadata
    calibration_data="digits",
    description="ShuffleNetV2 (stage widths 48/96/192) trained on scikit-learn's digits at 64x64; test reference",
)
def shufflenet_v2_digits(num_classes: int = 10) -> ShuffleNetV2:
    """ShuffleNetV2 with stage widths ``DIGITS_STAGES_OUT_CHANNELS`` and 10 classes."""
    return ShuffleNetV2(STAGES_REPEATS, DIGITS_STAGES_OUT_CHANNELS, num_classes)
