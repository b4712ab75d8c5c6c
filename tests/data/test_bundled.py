import hashlib
import subprocess
import sys

import numpy as np
import pytest

from edgekit.data import bundled_images, bundled_photo_paths
from edgekit.errors import DataError


def test_photos_ship_inside_installed_packages():
    paths = bundled_photo_paths()
    names = {p.name for p in paths}
    assert {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "china.jpg", "flower.jpg"} <= names
    assert all(p.is_file() and ("site-packages" in str(p) or "dist-packages" in str(p)) for p in paths)


def test_shape_dtype_and_content():
    images = bundled_images(10)
    assert images.shape == (10, 224, 224, 3) and images.dtype == np.uint8
    # natural photos: every crop has texture, and crops differ from each other
    assert all(img.std() > 15 for img in images)
    assert len({img.tobytes() for img in images}) == 10


def test_deterministic_and_prefix_stable():
    a = bundled_images(12, seed=0)
    assert np.array_equal(a, bundled_images(12, seed=0))
    assert np.array_equal(a[:5], bundled_images(5, seed=0))
    assert not np.array_equal(a, bundled_images(12, seed=1))


def test_non_square_size_is_height_width():
    assert bundled_images(2, size=(96, 160)).shape == (2, 96, 160, 3)


def test_same_bytes_in_a_fresh_process():
    code = (
        "from edgekit.data import bundled_images; import hashlib; "
        "print(hashlib.sha256(bundled_images(6)).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == hashlib.sha256(bundled_images(6)).hexdigest()


def test_never_imports_downloaders():
    # skimage.data would set up pooch; we read the files straight from the package folders.
    code = (
        "import sys; from edgekit.data import bundled_images; bundled_images(3); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pooch', 'skimage', 'sklearn')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize(("count", "size"), [(0, (224, 224)), (2, (0, 224)), (2, (224,))])
def test_bad_arguments(count, size):
    with pytest.raises(DataError):
        bundled_images(count, size=size)
