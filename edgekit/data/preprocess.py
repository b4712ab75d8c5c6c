"""uint8 NHWC RGB images to the float32 NCHW tensors a classifier takes (scale, normalise, transpose)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.errors import DataError

# ITU-R 601-2 luma, the weights PIL's convert("L") uses, so grayscale matches what users get from PIL.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _per_channel(values: Sequence[float], channels: int, what: str) -> np.ndarray:
    arr = np.asarray(tuple(values), dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise DataError(
            f"preprocess: {what} has {arr.size} values for {channels} channels; pass one per channel"
        )
    return arr.reshape(1, channels, 1, 1)


def preprocess(
    images: np.ndarray, mean: Sequence[float], std: Sequence[float], channels: int = 3
) -> np.ndarray:
    """Turn uint8 ``(N, H, W, 3)`` RGB images into float32 ``(N, channels, H, W)`` model input.

    Pixels are scaled to [0, 1], converted to grayscale when ``channels == 1``, then normalised as
    ``(x - mean) / std`` per channel (torchvision's ``ToTensor`` + ``Normalize``). ``mean`` and ``std``
    have one value per channel, or a single value for all. Raises ``DataError`` for another array layout,
    a channel count other than 1 or 3, mismatched ``mean``/``std`` lengths or a zero ``std``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"preprocess: expected uint8 images of shape (N, H, W, 3), got {images.shape}")
    if channels not in (1, 3):
        raise DataError(f"preprocess: images can feed 1 or 3 input channels, not {channels}")
    mean_arr = _per_channel(mean, channels, "mean")
    std_arr = _per_channel(std, channels, "std")
    if np.any(std_arr == 0):
        raise DataError("preprocess: std contains 0; pass non-zero standard deviations")
    x = images.astype(np.float32) / np.float32(255.0)
    if channels == 1:
        x = (x @ _LUMA)[..., None]
    x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray((x - mean_arr) / std_arr, dtype=np.float32)
