import numpy as np
import pytest

from edgekit.data import preprocess
from edgekit.errors import DataError


def test_scales_normalises_and_transposes():
    images = np.zeros((2, 4, 5, 3), np.uint8)
    images[0, :, :, 0] = 255
    images[1, 1, 2] = (51, 102, 153)
    out = preprocess(images, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32 and out.flags.c_contiguous
    assert np.allclose(out[0, 0], 1.0) and np.allclose(out[0, 1], -2.0)
    assert np.allclose(out[1, :, 1, 2], [(0.2 - 0.5) / 0.5, (0.4 - 0.5) / 0.25, (0.6 - 0.5) / 0.5])


def test_imagenet_normalisation_matches_formula():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = preprocess(images, mean, std)
    expected = ((images / 255.0 - np.array(mean)) / np.array(std)).transpose(0, 3, 1, 2)
    assert np.allclose(out, expected, atol=1e-5)


def test_grayscale_uses_luma():
    images = np.zeros((1, 2, 2, 3), np.uint8)
    images[0, 0, 0] = (255, 0, 0)
    images[0, 1, 1] = (0, 255, 0)
    out = preprocess(images, mean=(0.0,), std=(1.0,), channels=1)
    assert out.shape == (1, 1, 2, 2)
    assert np.isclose(out[0, 0, 0, 0], 0.299) and np.isclose(out[0, 0, 1, 1], 0.587)


@pytest.mark.parametrize(
    ("shape", "mean", "channels"),
    [
        ((2, 4, 4), (0.5,) * 3, 3),
        ((1, 4, 4, 4), (0.5,) * 3, 3),
        ((1, 4, 4, 3), (0.5,) * 2, 3),
        ((1, 4, 4, 3), (0.5,) * 3, 2),
    ],
)
def test_bad_inputs(shape, mean, channels):
    with pytest.raises(DataError):
        preprocess(np.zeros(shape, np.uint8), mean, (0.2,) * len(mean), channels)


def test_zero_std():
    with pytest.raises(DataError, match="std"):
        preprocess(np.zeros((1, 2, 2, 3), np.uint8), (0.5,) * 3, (0.2, 0.0, 0.2))
