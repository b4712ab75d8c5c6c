"""TorchRuntime: reference outputs, scoped threads, restored train flag, output flattening."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from runtime_models import INPUT_SHAPE, random_input, torch_reference
from torch import nn

from edgekit.errors import DataError, EdgekitError
from edgekit.runtimes.torch_runtime import TorchRuntime


def test_runs_module(cnn):
    x = random_input((2, *INPUT_SHAPE[1:]))
    with TorchRuntime(cnn) as rt:
        assert rt.name == "torch" and rt.version == torch.__version__ and rt.precision == "fp32"
        assert rt.outputs == []  # an eager module declares its outputs only by running
        (y,) = rt.run(x)
        assert y.dtype == np.float32
        assert [o.shape for o in rt.outputs] == [(None, 5)]
    np.testing.assert_array_equal(y, torch_reference(cnn, x))


def test_threads_are_scoped_to_run(cnn):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with TorchRuntime(cnn, threads=1) as rt:
            rt.run(random_input())
            assert rt.settings == {"threads": 1}
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_train_flag_restored_and_eval_used():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Dropout(0.9)).train()
    x = random_input((1, 3, 4, 4))
    with TorchRuntime(model) as rt:
        first, second = rt.run(x)[0], rt.run(x)[0]
    np.testing.assert_array_equal(first, second)  # dropout off: eval mode during run
    assert model.training


class MultiOutput(nn.Module):
    def forward(self, x):
        return {"logits": x.mean((2, 3)), "extra": (x * 2, [x[:, :1]])}


def test_nested_outputs_are_flattened_in_order():
    x = random_input((1, 3, 4, 4))
    with TorchRuntime(MultiOutput()) as rt:
        logits, doubled, first_channel = rt.run(x)
        assert [o.layout for o in rt.outputs] == [None, "NCHW", "NCHW"]
    np.testing.assert_allclose(logits, x.mean((2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(doubled, x * 2)
    np.testing.assert_array_equal(first_channel, x[:, :1])


def test_input_shape_checks_inputs(cnn):
    with TorchRuntime(cnn, input_shape=INPUT_SHAPE) as rt:
        assert rt.inputs[0].shape == (None, 3, 16, 16) and rt.inputs[0].layout == "NCHW"
        rt.run(random_input((4, 3, 16, 16)))  # any batch
        with pytest.raises(DataError, match="does not fit"):
            rt.run(random_input((1, 3, 32, 32)))


def test_bad_inputs_and_outputs():
    with pytest.raises(EdgekitError, match="nn.Module"):
        TorchRuntime(object())
    with TorchRuntime(nn.Identity()) as rt:
        with pytest.raises(DataError, match="uint8"):
            rt.run(np.zeros(INPUT_SHAPE, np.uint8))

    class ReturnsNone(nn.Module):
        def forward(self, x):
            return None

    with TorchRuntime(ReturnsNone()) as rt, pytest.raises(EdgekitError, match="returned NoneType"):
        rt.run(random_input())
