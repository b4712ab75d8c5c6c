import numpy as np
import pytest
from PIL import Image

from edgekit.data import ImageFolderReader, resize_center_crop
from edgekit.errors import DataError


def _photo(path, size=(300, 200), color=(200, 30, 30), fmt=None):
    rng = np.random.default_rng(len(str(path)))
    pixels = (rng.integers(0, 60, (size[1], size[0], 3)) + np.array(color) // 2).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    (tmp_path / "empty_class").mkdir()
    _photo(tmp_path / "cat" / "a.jpg")
    _photo(tmp_path / "cat" / "b.PNG", size=(180, 400))
    _photo(tmp_path / "dog" / "c.webp")
    _photo(tmp_path / "dog" / "d.bmp")
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = tmp_path / "dog" / "good.png"
    _photo(good)
    (tmp_path / "dog" / "truncated.png").write_bytes(good.read_bytes()[:200])
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    return tmp_path


def test_iterates_sorted_with_labels_and_skips_corrupt_files(tree):
    reader = ImageFolderReader(tree, size=(224, 224))
    assert reader.classes == ["cat", "dog"]
    assert len(reader) == 7  # .txt ignored, corrupt files still listed
    items = list(reader)
    assert len(items) == 5
    assert all(img.shape == (224, 224, 3) and img.dtype == np.uint8 for img, _ in items)
    assert [label for _, label in items] == [0, 0, 1, 1, 1]
    assert reader.skipped == 2
    assert sorted(p.rsplit("/", 1)[-1] for p in reader.skipped_files) == ["broken.jpg", "truncated.png"]
    assert all(reason for reason in reader.skip_reasons.values())
    list(reader)
    assert reader.skipped == 2  # recounted, not accumulated


def test_is_lazy(tree, monkeypatch):
    reader = ImageFolderReader(tree)
    calls = []
    original = reader.read
    monkeypatch.setattr(reader, "read", lambda f: calls.append(f) or original(f))
    first = next(iter(reader))
    assert first[0].shape == (224, 224, 3) and len(calls) == 1


def test_flat_folder_has_no_labels(tmp_path):
    _photo(tmp_path / "x.jpg")
    _photo(tmp_path / "y.png")
    reader = ImageFolderReader(tmp_path, size=(64, 64))
    assert reader.classes == []
    assert [label for _, label in reader] == [None, None]


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="contains no images") as err:
        ImageFolderReader(tmp_path)
    assert "\n" not in str(err.value)


def test_missing_and_non_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderReader(tmp_path / "nope")
    f = tmp_path / "file.jpg"
    _photo(f)
    with pytest.raises(DataError, match="is not a folder"):
        ImageFolderReader(f)


def test_resize_center_crop_like_torchvision_eval():
    # a 400x200 (w x h) image: shorter side 200 -> 256, width 512; centre crop 224 from (144, 16)
    pixels = np.zeros((200, 400, 3), np.uint8)
    pixels[:, 200:] = 255  # right half white
    out = np.asarray(resize_center_crop(Image.fromarray(pixels), (224, 224)))
    assert out.shape == (224, 224, 3)
    # the white edge sits at x = 256 in the resized image, i.e. 256 - 144 = 112 in the crop
    assert out[112, 100].max() == 0 and out[112, 124].min() == 255


def test_resize_center_crop_non_square():
    out = resize_center_crop(Image.new("RGB", (1000, 300)), (96, 160))
    assert out.size == (160, 96)
