"""The bundled digits split: fixed, disjoint, complete, and the images the reference model was trained on."""

import numpy as np
import pytest

from edgekit.data.digits import HELDOUT_IMAGES, digits_images, digits_split_indices
from edgekit.errors import DataError


def test_split_is_fixed_disjoint_and_complete():
    train, held = digits_split_indices("train"), digits_split_indices("heldout")
    assert len(held) == HELDOUT_IMAGES
    assert not set(train) & set(held)
    assert sorted({*train, *held}) == list(digits_split_indices("all"))
    np.testing.assert_array_equal(held, digits_split_indices("heldout"))
    # A digest of the split, so a change of sampling (which would invalidate the recorded accuracy) shows.
    assert int(held.sum()) == 557978 and held[:5].tolist() == [2, 12, 13, 15, 19]


def test_images_are_upsampled_grey_rgb_with_every_class():
    images, labels = digits_images("heldout", (32, 48))
    assert images.shape == (HELDOUT_IMAGES, 32, 48, 3) and images.dtype == np.uint8
    assert np.array_equal(images[..., 0], images[..., 2])
    assert set(labels.tolist()) == set(range(10))


def test_bad_split_and_size():
    with pytest.raises(DataError, match="unknown digits split"):
        digits_images("test")
    with pytest.raises(DataError, match="size"):
        digits_images("train", (0, 8))
