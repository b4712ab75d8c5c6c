"""The model inputs parity, calibration and accuracy runs share: bundled photo crops or a user's folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from edgekit.data.bundled import bundled_images
from edgekit.data.folder import ImageFolderReader, describe_path
from edgekit.data.preprocess import preprocess
from edgekit.errors import DataError


@dataclass
class InputSet:
    """Preprocessed model inputs.

    ``array`` is float32 ``(N, C, H, W)``; ``description`` says where they came from, for reports;
    ``skipped`` counts unreadable files passed over; ``labels`` holds the class index of each image when
    they came from a class-per-subfolder tree (``None`` entries otherwise, or ``None`` for bundled images).
    """

    array: np.ndarray
    description: str
    skipped: int = 0
    labels: list[int | None] | None = None


def check_data_source(source: str | os.PathLike[str] | None) -> None:
    """Fail fast on a ``--data`` value ``load_inputs`` would refuse later: not ``bundled``, not ``digits`` and
    not an existing folder. Reads no image. Raises ``DataError``."""
    if source is None or str(source) in ("bundled", "digits"):
        return
    path = Path(source).expanduser()
    if not path.is_dir():
        raise DataError(
            f"input data {source} is not a folder: {describe_path(path)}; pass a folder of images or 'bundled'"
        )


def load_inputs(
    source: str | os.PathLike[str] | None,
    count: int,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
) -> InputSet:
    """Load ``count`` images for a model taking ``input_shape`` ``(N, C, H, W)``, preprocessed.

    ``source`` ``None`` or ``"bundled"`` gives crops of the photos shipped with scikit-image/scikit-learn;
    ``"digits"`` the held-out split of scikit-learn's digits (``edgekit.data.digits``);
    a folder gives its first ``count`` readable images (fewer if it has fewer), resized and centre-cropped
    to ``(H, W)``. ``C`` (1 or 3) picks grayscale or RGB; ``mean``/``std`` normalise per channel.
    Raises ``DataError`` for a bad count or shape, a source that is neither, or a folder without a single
    readable image.
    """
    if count < 1:
        raise DataError(f"number of input images must be at least 1, got {count}")
    if len(input_shape) != 4:
        raise DataError(f"input shape must be N,C,H,W (4 values), got {tuple(input_shape)}")
    _, channels, height, width = (int(v) for v in input_shape)
    size = (height, width)

    if source is None or str(source) == "bundled":
        images = bundled_images(count, size=size)
        desc = f"{count} crops of the photos bundled with scikit-image and scikit-learn at {height}x{width}"
        return InputSet(preprocess(images, mean, std, channels), desc, 0, None)

    if str(source) == "digits" and not Path(source).exists():
        from edgekit.data.digits import HELDOUT_IMAGES, digits_images

        images, labels = digits_images("heldout", size)
        n = min(count, HELDOUT_IMAGES)
        desc = f"{n} held-out scikit-learn digits at {height}x{width}"
        return InputSet(preprocess(images[:n], mean, std, channels), desc, 0, [int(v) for v in labels[:n]])

    check_data_source(source)
    path = Path(source).expanduser()
    reader = ImageFolderReader(path, size=size)
    pairs = list(islice(iter(reader), count))
    if not pairs:
        raise DataError(
            f"image folder {source}: {len(reader)} files, all unreadable "
            f"(first: {reader.skipped_files[0]}); pass a folder of valid JPEG/PNG images"
        )
    images = np.stack([image for image, _ in pairs])
    labels = [label for _, label in pairs]
    desc = f"{len(pairs)} images from {path} at {height}x{width}"
    if reader.skipped:
        desc += f" ({reader.skipped} unreadable skipped)"
    return InputSet(preprocess(images, mean, std, channels), desc, reader.skipped, labels)
