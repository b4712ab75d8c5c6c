"""The shared helpers of edgekit.runtimes.base: layout guessing, layout conversion, batching."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import DataError
from edgekit.runtimes.base import TensorSpec, batches, guess_layout, one_line, to_model_layout


@pytest.mark.parametrize(
    ("shape", "default", "expected"),
    [
        ((1, 3, 224, 224), "NHWC", "NCHW"),
        ((1, 224, 224, 3), "NCHW", "NHWC"),
        ((None, 1, 28, 28), "NHWC", "NCHW"),
        ((1, 28, 28, 1), "NCHW", "NHWC"),
        ((1, 3, 8, 3), "NHWC", "NHWC"),  # ambiguous: the engine's convention decides
        ((1, 3, 8, 3), "NCHW", "NCHW"),
        ((1, 16, 16, 32), "NCHW", "NCHW"),
        ((1, 1000), "NCHW", None),
    ],
)
def test_guess_layout(shape, default, expected):
    assert guess_layout(shape, default) == expected


def test_to_model_layout_transposes_for_nhwc():
    spec = TensorSpec("x", (1, 4, 5, 3), "float32", "NHWC")
    x = np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5)
    out = to_model_layout(x, spec)
    assert out.shape == (1, 4, 5, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out.transpose(0, 3, 1, 2), x)
    with pytest.raises(DataError, match="1x4x5x3 does not fit the model's input 'x' \\(1x3x4x5, NCHW\\)"):
        to_model_layout(out, spec)


def test_batches():
    x = np.zeros((6, 2), np.float32)
    assert len(batches(x, None)) == 1
    assert len(batches(x, 6)) == 1
    assert [len(b) for b in batches(x, 2)] == [2, 2, 2]
    with pytest.raises(DataError, match="batch of 6 does not split into the model's fixed batch of 4"):
        batches(x, 4)


def test_one_line():
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 500)) == 200
