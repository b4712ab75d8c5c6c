import numpy as np
import pytest
from PIL import Image

from edgekit.data import InputSet, bundled_images, load_inputs, preprocess
from edgekit.errors import DataError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.mark.parametrize("source", [None, "bundled"])
def test_bundled_source(source):
    inputs = load_inputs(source, 4, (1, 3, 128, 96), MEAN, STD)
    assert isinstance(inputs, InputSet)
    assert inputs.array.shape == (4, 3, 128, 96) and inputs.array.dtype == np.float32
    assert np.array_equal(inputs.array, preprocess(bundled_images(4, size=(128, 96)), MEAN, STD))
    assert "bundled" in inputs.description and inputs.skipped == 0


def test_grayscale_input_shape():
    inputs = load_inputs(None, 2, (1, 1, 28, 28), (0.449,), (0.226,))
    assert inputs.array.shape == (2, 1, 28, 28)


def test_folder_source_takes_first_readable(tmp_path):
    (tmp_path / "0_bad.jpg").write_bytes(b"garbage")
    for i in range(1, 5):
        Image.new("RGB", (64, 48), (i * 40, 10, 10)).save(tmp_path / f"{i}.png")
    inputs = load_inputs(tmp_path, 3, (1, 3, 32, 32), MEAN, STD)
    assert inputs.array.shape == (3, 3, 32, 32)
    assert inputs.skipped == 1 and "1 unreadable skipped" in inputs.description
    # first readable images in sorted order: 1.png, 2.png, 3.png
    red = inputs.array[:, 0, 0, 0] * STD[0] + MEAN[0]
    assert np.allclose(red, [40 / 255, 80 / 255, 120 / 255], atol=1e-6)
    assert inputs.labels == [None, None, None]


def test_folder_with_fewer_images_than_count(tmp_path):
    Image.new("RGB", (40, 40)).save(tmp_path / "only.jpg")
    assert load_inputs(str(tmp_path), 8, (1, 3, 16, 16), MEAN, STD).array.shape == (1, 3, 16, 16)


def test_all_unreadable(tmp_path):
    for name in ("a.jpg", "b.png", "c.webp"):
        (tmp_path / name).write_bytes(b"nope")
    with pytest.raises(DataError, match="3 files, all unreadable") as err:
        load_inputs(tmp_path, 4, (1, 3, 32, 32), MEAN, STD)
    assert "\n" not in str(err.value)


def test_bad_sources_and_arguments(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_inputs(tmp_path / "missing", 2, (1, 3, 32, 32), MEAN, STD)
    with pytest.raises(DataError, match="at least 1"):
        load_inputs(None, 0, (1, 3, 32, 32), MEAN, STD)
    with pytest.raises(DataError, match="N,C,H,W"):
        load_inputs(None, 1, (3, 32, 32), MEAN, STD)
