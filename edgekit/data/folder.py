"""A lazily decoded folder of images, with torchvision's evaluation resize and centre crop."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.errors import DataError
from edgekit.fileio import file_type_name, open_regular_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# torchvision's ImageNet evaluation transform: Resize(256) then CenterCrop(224), i.e. resize by 256/224.
RESIZE_RATIO = 256 / 224


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def describe_path(path: str | os.PathLike[str]) -> str:
    """What ``path`` is, for an error message: ``it is a named pipe (FIFO)``, ``it does not exist``..."""
    try:
        return f"it is a {file_type_name(os.stat(path).st_mode)}"
    except OSError as exc:
        return "it does not exist" if isinstance(exc, FileNotFoundError) else f"it cannot be read ({exc.strerror})"


def _why_not_regular(path: Path) -> str | None:
    """Why ``path`` must not be opened (``a named pipe (FIFO), not a regular file``), or None for a regular
    file and for one ``stat`` cannot see, such as a dangling link (opening it reports why)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else f"a {file_type_name(mode)}, not a regular file"


# Full scale of the pixel values of PIL's deep modes; an 8-bit pixel is round(value * 255 / full scale).
_UINT16_FULL = 65535
_INT_FULL_SCALES = (255, _UINT16_FULL, 2**31 - 1)


def to_rgb8(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, with deep pixel values scaled rather than clipped.

    PIL's own ``convert("RGB")`` clips 16- and 32-bit grayscale at 255, which turns a 16-bit PNG white.
    Here 16-bit modes (``I;16``, ``I;16B``...) map ``v`` to ``round(v / 257)``. PIL's 32-bit ``I`` mode
    does not say how many bits the file used, so its values scale by the smallest of 8, 16 and 31 bits
    that holds the image's largest value; float ``F`` images in [0, 1] scale by 255, larger ones like ``I``.
    Negative values become 0. 16-bit RGB files already decode to 8-bit RGB in PIL (the high byte).
    """
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image.convert("RGB")
    values = np.asarray(image).astype(np.float32)
    if image.mode.startswith("I;16"):
        full = _UINT16_FULL
    else:
        top = float(values.max(initial=0.0))
        full = 1.0 if image.mode == "F" and top <= 1.0 else next((f for f in _INT_FULL_SCALES if top <= f), top)
    gray = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def decode_rgb(file: str | os.PathLike[str]) -> tuple[Image.Image, str]:
    """Decode an image file to 8-bit RGB (see ``to_rgb8``). Out: the image and the file's own PIL mode.

    Only regular files are opened (``open_regular_file``), so a named pipe among the images cannot hang the
    reader. Raises ``NotRegularFileError``, OSError or PIL's errors for a file that cannot be decoded.
    """
    with open_regular_file(file) as handle, Image.open(handle) as im:
        im.load()
        return to_rgb8(im), im.mode


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
    counts them and ``.skipped_files`` / ``.skip_reasons`` name them. Image names that are not regular
    files (a named pipe, socket or device, which could block a read forever) are never opened: they are
    listed in ``.not_regular`` (path -> why) and counted among the skipped.

    Raises ``DataError`` when ``path`` does not exist, is not a folder, or holds no image files.
    """

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int] = (224, 224)) -> None:
        root = Path(path).expanduser()
        if not root.exists():
            raise DataError(f"image folder {path} does not exist; pass a folder of JPEG/PNG images")
        if not root.is_dir():
            raise DataError(f"{path} is not a folder: {describe_path(root)}; pass a folder of JPEG/PNG images")
        if len(size) != 2 or min(size) < 1:
            raise DataError(f"image size must be (height, width) with positive values, got {size}")
        self.root = root
        self.size = (int(size[0]), int(size[1]))
        self.classes: list[str] = sorted(
            entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")
        )
        self._class_index = {name: i for i, name in enumerate(self.classes)}
        named = sorted(
            Path(dirpath) / name
            for dirpath, _, filenames in os.walk(root)
            for name in filenames
            if _is_image_name(name)
        )
        self.not_regular: dict[str, str] = {str(f): why for f in named if (why := _why_not_regular(f))}
        self.files: list[Path] = [f for f in named if str(f) not in self.not_regular]
        if not self.files and self.not_regular:
            first, why = next(iter(self.not_regular.items()))
            raise DataError(
                f"image folder {path} holds no regular image files ({first} is {why}); pass a folder of JPEG/PNG "
                "files"
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
        self._reset_skips()

    def _reset_skips(self) -> None:
        """Forget the files an iteration skipped; the ones that are not regular files always count."""
        self.skipped = len(self.not_regular)
        self.skipped_files: list[str] = list(self.not_regular)
        self.skip_reasons: dict[str, str] = dict(self.not_regular)

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
        rgb, _ = decode_rgb(file)
        return np.asarray(resize_center_crop(rgb, self.size), dtype=np.uint8)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        self._reset_skips()  # each pass recounts, so iterating twice does not double the skip count
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
