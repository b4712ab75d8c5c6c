"""``calibration_set``: the images every int8 step calibrates on, the same for every format.

One spec means one set of images whichever file is made from it: a number of bundled photo crops (seed 1,
never the seed-0 crops the parity check compares on), an image folder, or a registry model's own data.
Models that carry their own data (the digits reference) calibrate on its *training* split; the held-out
split is what ``edgekit eval`` scores and is never calibrated on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import DataError

#: Images calibrated on when nothing is asked: ranges settle long before (measured by int8_quality.py).
DEFAULT_CALIBRATION_IMAGES = 100
#: A calibration folder is read up to this many images.
MAX_CALIBRATION_IMAGES = 1000
#: The bundled crops' seed: the parity check uses seed 0, so calibration never sees its images.
CALIBRATION_SEED = 1


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed float32 NCHW images, what they are (``description``, naming the split) and the
    ``split`` (``bundled``, ``folder``, ``digits-train``)."""

    images: np.ndarray
    description: str
    split: str

    def nhwc(self) -> np.ndarray:
        return np.ascontiguousarray(self.images.transpose(0, 2, 3, 1), dtype=np.float32)


def calibration_set(spec: str | int | os.PathLike[str] | None, handle) -> CalibrationSet:
    """The calibration images for ``handle`` (a ``ModelHandle``) from ``spec``.

    ``spec``: None (the registry model's own ``handle.calibration_data`` if it has any, else
    DEFAULT_CALIBRATION_IMAGES bundled crops), a number N of bundled crops, ``digits`` / ``digits:N`` (N
    images of the digits *training* split, every class represented), or an image folder (up to
    MAX_CALIBRATION_IMAGES images). Raises ``DataError`` for a bad count or a folder with no usable image.
    """
    from edgekit.data.inputs import load_inputs
    from edgekit.data.preprocess import preprocess

    if spec is None:
        spec = getattr(handle, "calibration_data", None)
    _, channels, height, width = (int(d) for d in handle.input_shape)
    text = None if spec is None else str(spec)
    if text is None or text.isdigit():
        count = DEFAULT_CALIBRATION_IMAGES if text is None else int(text)
        if count < 1:
            raise DataError("--calib N needs N >= 1 images")
        from edgekit.data.bundled import bundled_images

        photos = bundled_images(count, size=(height, width), seed=CALIBRATION_SEED)
        return CalibrationSet(preprocess(photos, handle.mean, handle.std, channels),
                              f"{count} bundled natural-image crops (not the parity check's)", "bundled")
    if (text == "digits" or text.startswith("digits:")) and not os.path.exists(text):
        from edgekit.data.digits import digits_images

        images, _ = digits_images("train", (height, width))
        count_text = text.partition(":")[2] or str(DEFAULT_CALIBRATION_IMAGES)
        if not count_text.isdigit() or not 1 <= int(count_text) <= len(images):
            raise DataError(f"--calib {text}: the digits training split has {len(images)} images; ask for 1 to "
                            f"{len(images)}, e.g. --calib digits:100")
        count = int(count_text)
        picked = images[np.linspace(0, len(images) - 1, count).round().astype(int)]  # every class represented
        return CalibrationSet(preprocess(picked, handle.mean, handle.std, channels),
                              f"{count} digits from the training split (never the held-out digits eval scores)",
                              "digits-train")
    inputs = load_inputs(spec, MAX_CALIBRATION_IMAGES, handle.input_shape, handle.mean, handle.std)
    return CalibrationSet(inputs.array, inputs.description, "folder")
