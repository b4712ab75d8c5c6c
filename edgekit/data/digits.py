"""scikit-learn's handwritten digits as a labelled image set: a fixed train/held-out split at any size.

The 1,797 8x8 digits ship inside scikit-learn's wheel, so real labelled images are available offline on
every CI run. They train edgekit's reference classifier (``benchmarks/train_digits.py``) and let int8
claims be checked against real labels (``edgekit eval MODEL --data digits``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from edgekit.errors import DataError

DIGITS_CLASSES = tuple(str(d) for d in range(10))
#: Images held out from training; the split is a fixed permutation, the same on every machine.
HELDOUT_IMAGES = 600
SPLIT_SEED = 0
SPLITS = ("train", "heldout", "all")


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16 (ink counts of a 4x4 block); scale to 0..255 grey levels.
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def digits_split_indices(split: str) -> np.ndarray:
    """Indices into scikit-learn's digits of ``split`` ("train", "heldout" or "all"), in a fixed order.

    Raises ``DataError`` for another split name.
    """
    if split not in SPLITS:
        raise DataError(f"unknown digits split {split!r}; choose one of {', '.join(SPLITS)}")
    count = len(_digits()[1])
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    if split == "all":
        return np.arange(count)
    return np.sort(order[:HELDOUT_IMAGES] if split == "heldout" else order[HELDOUT_IMAGES:])


def upsample_digit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One uint8 ``(8, 8)`` digit to a uint8 ``(H, W, 3)`` RGB image (bilinear, grey in all channels)."""
    grey = Image.fromarray(image, mode="L").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.repeat(np.asarray(grey, dtype=np.uint8)[..., None], 3, axis=2)


def digits_images(split: str = "heldout", size: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """The digits of ``split`` as uint8 ``(N, H, W, 3)`` RGB images and int64 labels 0-9.

    ``size`` is ``(height, width)``. Raises ``DataError`` for an unknown split or a non-positive size.
    """
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"digits: size must be (height, width) with positive values, got {size}")
    images, labels = _digits()
    idx = digits_split_indices(split)
    out = np.stack([upsample_digit(images[i], (int(size[0]), int(size[1]))) for i in idx])
    return out, labels[idx]
