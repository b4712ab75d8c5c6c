"""Natural images that need no download: crops of the photos shipped inside scikit-image and scikit-learn.

Parity checks, BatchNorm calibration of untrained models and int8 calibration all want realistic inputs;
random noise hides errors that only show on natural image statistics. These photos are in the installed
wheels, so the set is available offline, and the crops are a pure function of ``(index, seed)``.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.errors import DataError

# Colour photos of everyday scenes. scikit-image 0.2x ships these inside the wheel (its other images are
# grayscale, synthetic, microscopy or astronomy, or are fetched on demand by pooch, which we never call).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")

# RandomResizedCrop-like sampling: a crop covering this fraction of the photo's area, with this aspect.
_AREA_RANGE = (0.25, 1.0)
_LOG_ASPECT_RANGE = (math.log(3 / 4), math.log(4 / 3))


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without executing it, so nothing (pooch included) is imported.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_photo_paths() -> list[Path]:
    """The bundled photos present on disk, in a fixed order (scikit-image's, then scikit-learn's)."""
    paths: list[Path] = []
    skimage_dir = _package_dir("skimage")
    if skimage_dir is not None:
        paths += [skimage_dir / "data" / name for name in SKIMAGE_PHOTOS]
    sklearn_dir = _package_dir("sklearn")
    if sklearn_dir is not None:
        paths += [sklearn_dir / "datasets" / "images" / name for name in SKLEARN_PHOTOS]
    return [p for p in paths if p.is_file()]


@lru_cache(maxsize=1)
def _photos() -> tuple[Image.Image, ...]:
    photos = []
    for path in bundled_photo_paths():
        with Image.open(path) as im:
            photos.append(im.convert("RGB"))
    if not photos:
        raise DataError(
            "no bundled photos found in the scikit-image / scikit-learn installs; "
            "reinstall them or pass a folder of images with --data FOLDER"
        )
    return tuple(photos)


def _crop(photo: Image.Image, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    width, height = photo.size
    area = width * height
    for _ in range(10):
        target_area = area * rng.uniform(*_AREA_RANGE)
        aspect = math.exp(rng.uniform(*_LOG_ASPECT_RANGE))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            break
    else:  # the photo is too elongated for the sampled aspects: fall back to its largest centred square
        w = h = min(width, height)
    left = int(rng.integers(0, width - w + 1))
    top = int(rng.integers(0, height - h + 1))
    flip = bool(rng.integers(0, 2))
    out_h, out_w = size
    crop = photo.resize((out_w, out_h), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
    if flip:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.uint8)


def bundled_images(count: int, size: tuple[int, int] = (224, 224), seed: int = 0) -> np.ndarray:
    """``count`` deterministic random crops of the bundled photos, as uint8 ``(count, H, W, 3)`` RGB.

    ``size`` is ``(height, width)``. Crop ``i`` cycles through the photos and depends only on
    ``(seed, i)``, so ``bundled_images(8)`` equals ``bundled_images(32)[:8]``. Raises ``DataError`` when
    ``count`` or ``size`` is not positive or no bundled photo is installed.
    """
    if count < 1:
        raise DataError(f"bundled images: count must be at least 1, got {count}")
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"bundled images: size must be (height, width) with positive values, got {size}")
    photos = _photos()
    out = np.empty((count, size[0], size[1], 3), dtype=np.uint8)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        out[i] = _crop(photos[i % len(photos)], rng, (int(size[0]), int(size[1])))
    return out
