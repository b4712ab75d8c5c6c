"""Labelled sources for accuracy runs: class folders streamed in batches, non-RGB images counted, digits."""

import numpy as np
import pytest
from PIL import Image

from edgekit.data.labelled import DigitsImages, LabelledFolder, open_labelled
from edgekit.errors import DataError


def write_tree(root, modes=("RGB", "RGB", "L", "RGBA")):
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i, mode in enumerate(modes):
            Image.new(mode, (40, 30), color=(i * 40, 10, 200, 128)[: len(mode)] if mode != "L" else 90).save(
                root / cls / f"{i}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"not a jpeg")


def test_folder_streams_batches_with_labels_and_counts_conversions(tmp_path):
    write_tree(tmp_path)
    source = LabelledFolder(tmp_path, (16, 16))
    assert source.classes == ["cat", "dog"] and len(source) == 9
    batches = list(source.batches(3))
    assert [len(labels) for _, labels in batches] == [3, 3, 2]  # never more than one batch of pixels
    labels = np.concatenate([labels for _, labels in batches])
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert batches[0][0].shape == (3, 16, 16, 3) and batches[0][0].dtype == np.uint8
    assert dict(source.converted) == {"L": 2, "RGBA": 2}
    assert source.skipped == 1 and "broken.jpg" in next(iter(source.skip_reasons))


def test_images_outside_class_folders_are_refused(tmp_path):
    write_tree(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="outside class subfolders"):
        LabelledFolder(tmp_path, (16, 16))


def test_open_labelled_digits_and_bad_paths(tmp_path):
    digits = open_labelled("digits", (16, 16))
    assert isinstance(digits, DigitsImages) and len(digits) == 600
    assert len(open_labelled("digits:train", (16, 16))) == 1197
    with pytest.raises(DataError, match="unknown digits split"):
        open_labelled("digits:nope", (16, 16))
    with pytest.raises(DataError, match="not a folder"):
        open_labelled(tmp_path / "missing", (16, 16))
