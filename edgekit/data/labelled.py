"""Labelled images streamed in batches: a class-per-subfolder tree (ImageNet val style) or bundled digits.

Accuracy runs may cover 50,000 images, so nothing here holds more than one batch of pixels: a source
yields ``(uint8 (B, H, W, 3) RGB, int64 (B,) class index)`` batches, with class indices into ``.classes``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgekit.data.digits import DIGITS_CLASSES, SPLITS, digits_images
from edgekit.data.folder import ImageFolderReader, decode_rgb, describe_path, resize_center_crop
from edgekit.errors import DataError

Batch = tuple[np.ndarray, np.ndarray]


class LabelledFolder:
    """Images under ``root/<class name>/...``, decoded lazily, resized and centre-cropped to ``size``.

    ``.classes`` are the subfolder names holding images, sorted. Images that are not RGB (grayscale,
    RGBA, palette, CMYK, 16-bit ...) are converted to 8-bit RGB and counted per original mode in
    ``.converted``; undecodable files, and image names that are not regular files, are skipped and counted
    in ``.skipped`` (``.skip_reasons`` names them).
    Raises ``DataError`` when ``root`` is not a folder of images or has images outside class subfolders.
    """

    def __init__(self, root: str | os.PathLike[str], size: tuple[int, int]) -> None:
        self._reader = ImageFolderReader(root, size=size)
        self.root = self._reader.root
        self.size = self._reader.size
        self.classes = list(self._reader.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self._labelled: list[tuple[Path, int]] = []
        loose = []
        for file in self._reader.files:
            parts = file.relative_to(self.root).parts
            if len(parts) < 2:
                loose.append(file)
            else:
                self._labelled.append((file, index[parts[0]]))
        if loose or not self.classes:
            raise DataError(
                f"image folder {root} has {len(loose)} images outside class subfolders (e.g. {loose[0].name}); "
                "accuracy needs one subfolder per class, named like the model's labels (root/<class>/<image>)"
                if loose else f"image folder {root} has no class subfolders; put images under root/<class>/"
            )
        self.description = f"{len(self._labelled)} images in {len(self.classes)} class folders under {self.root}"
        self.converted: Counter[str] = Counter()
        self.skipped = len(self._reader.not_regular)
        self.skip_reasons: dict[str, str] = dict(self._reader.not_regular)

    def __len__(self) -> int:
        return len(self._labelled)

    def _read(self, file: Path) -> np.ndarray:
        rgb, mode = decode_rgb(file)
        if mode != "RGB":
            self.converted[mode] += 1
        return np.asarray(resize_center_crop(rgb, self.size), dtype=np.uint8)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of at most ``batch_size`` readable images in sorted path order."""
        self.converted = Counter()
        self.skipped = len(self._reader.not_regular)
        self.skip_reasons = dict(self._reader.not_regular)
        images: list[np.ndarray] = []
        labels: list[int] = []
        for file, label in self._labelled:
            try:
                images.append(self._read(file))
            except Exception as exc:  # any decoder failure skips the file, as the parity reader does
                self.skipped += 1
                self.skip_reasons[str(file)] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                continue
            labels.append(label)
            if len(images) == batch_size:
                yield np.stack(images), np.asarray(labels, dtype=np.int64)
                images, labels = [], []
        if images:
            yield np.stack(images), np.asarray(labels, dtype=np.int64)


class DigitsImages:
    """A split of scikit-learn's digits (see ``edgekit.data.digits``) as a labelled source."""

    def __init__(self, split: str, size: tuple[int, int]) -> None:
        if split not in SPLITS:
            raise DataError(f"unknown digits split {split!r}; use digits, digits:train or digits:all")
        self.split = split
        self.size = size
        self.classes = list(DIGITS_CLASSES)
        self._images, self._labels = digits_images(split, size)  # 600 x 64x64x3 bytes: small enough
        self.description = f"{len(self._labels)} scikit-learn digits ({split} split) at {size[0]}x{size[1]}"
        self.converted: Counter[str] = Counter()
        self.skipped = 0
        self.skip_reasons: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._labels)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self._labels), batch_size):
            yield self._images[start : start + batch_size], self._labels[start : start + batch_size]


def open_labelled(source: str | os.PathLike[str], size: tuple[int, int]) -> LabelledFolder | DigitsImages:
    """``"digits"`` (the held-out split), ``"digits:train"``, ``"digits:all"`` or a class-per-subfolder tree.

    Raises ``DataError`` for a missing folder, an unknown digits split, or a folder without class folders.
    """
    text = str(source)
    if text == "digits" or text.startswith("digits:"):
        split = text.partition(":")[2] or "heldout"
        if not Path(text).exists():
            return DigitsImages(split, size)
    if not Path(text).expanduser().is_dir():
        raise DataError(f"--data {text} is not a folder: {describe_path(Path(text).expanduser())}; pass an image "
                        "folder with one subfolder per class, or digits")
    return LabelledFolder(text, size)
