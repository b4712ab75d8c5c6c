"""A lazily decoded folder of images, with torchvision's evaluation resize and centre crop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# torchvision's ImageNet evaluation transform: Resize(256) then CenterCrop(224), i.e. resize by 256/224.
RESIZE_RATIO = 256 / 224


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def resize_center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize ``image`` so it covers ``size * 256/224``, then centre-crop ``size`` (``(height, width)``).

    For a square ``size`` this is torchvision's ``Resize(int(size*256/224))`` + ``CenterCrop(size)``:
    the shorter side becomes 256 for 224.
    """
    out_h, out_w = size
    width, height = image.size
    scale = max(out_h * RESIZE_RATIO / height, out_w * RESIZE_RATIO / width)
    new_w = max(out_w, int(width * scale))
    new_h = max(out_h, int(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    # torchvision's CenterCrop rounds the offsets the same way.
    top = int(round((new_h - out_h) / 2.0))
    left = int(round((new_w - out_w) / 2.0))
    return image.crop((left, top, left + out_w, top + out_h))


class ImageFolderReader:
    """Iterate ``(uint8 (H, W, 3) RGB array, label or None)`` over the images in a folder, decoding lazily.

    Files with a JPEG/PNG/BMP/WebP suffix are found recursively and visited in sorted path order. As in
    torchvision's ``ImageFolder``, each immediate subfolder is a class: ``.classes`` lists their names
    sorted and an image's label is its class index; images directly in ``path`` get label ``None``. Each
    image is resized and centre-cropped to ``size`` (``(height, width)``) like torchvision's evaluation
    transform. Files that cannot be decoded are skipped; after (or during) an iteration ``.skipped``
    counts them and ``.skipped_files`` / ``.skip_reasons`` name them.

    Raises ``DataError`` when ``path`` does not exist, is not a folder, or holds no image files.
    """

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int] = (224, 224)) -> None:
        root = Path(path).expanduser()
        if not root.exists():
            raise DataError(f"image folder {path} does not exist; pass a folder of JPEG/PNG images")
        if not root.is_dir():
            raise DataError(f"{path} is not a folder; pass a folder of JPEG/PNG images")
        if len(size) != 2 or min(size) < 1:
            raise DataError(f"image size must be (height, width) with positive values, got {size}")
        self.root = root
        self.size = (int(size[0]), int(size[1]))
        self.classes: list[str] = sorted(
            entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")
        )
        self._class_index = {name: i for i, name in enumerate(self.classes)}
        self.files: list[Path] = sorted(
            Path(dirpath) / name
            for dirpath, dirnames, filenames in os.walk(root)
            for name in filenames
            if _is_image_name(name)
        )
        if not self.files:
            raise DataError(
                f"image folder {path} contains no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "pass a folder of images"
            )
        # Classes are only the subfolders that hold images, as ImageFolder does.
        used = {self._label_of(f) for f in self.files}
        self.classes = [c for c in self.classes if self._class_index[c] in used]
        self._class_index = {name: i for i, name in enumerate(self.classes)}
        self.skipped = 0
        self.skipped_files: list[str] = []
        self.skip_reasons: dict[str, str] = {}

    def _label_of(self, file: Path) -> int | None:
        parts = file.relative_to(self.root).parts
        if len(parts) < 2:
            return None
        return self._class_index.get(parts[0])

    def __len__(self) -> int:
        """Number of image files found (some may turn out unreadable)."""
        return len(self.files)

    def read(self, file: Path) -> np.ndarray:
        """Decode one file to a resized, centre-cropped uint8 ``(H, W, 3)`` RGB array (PIL errors raise)."""
        with Image.open(file) as im:
            im.load()
            rgb = im.convert("RGB")
        return np.asarray(resize_center_crop(rgb, self.size), dtype=np.uint8)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        # Each pass recounts, so iterating twice does not double the skip count.
        self.skipped = 0
        self.skipped_files = []
        self.skip_reasons = {}
        for file in self.files:
            try:
                image = self.read(file)
            except Exception as exc:  # any decoder failure (OSError, DecompressionBombError...) = skip
                self.skipped += 1
                self.skipped_files.append(str(file))
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                self.skip_reasons[str(file)] = f"{type(exc).__name__}: {first_line}"
                continue
            yield image, self._label_of(file)
