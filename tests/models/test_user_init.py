"""User factories without --weights: untrained BatchNorm models get the registry's calibrated init; models
with weights of their own (loaded by the factory, or without BatchNorm) keep what the factory built."""

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.check import check_exported_file
from edgekit.data import load_inputs
from edgekit.errors import WeightsError
from edgekit.export.request import ExportRequest, export
from edgekit.models import resolve, state_dict_sha256
from edgekit.models.user_model import batchnorm_never_measured
from edgekit.models.weights import INIT_SOURCE

NETS = '''
import os
import torch
from torch import nn


def bn_net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def loads_its_own():
    model = bn_net()
    model.load_state_dict(torch.load(os.environ["EDGEKIT_TEST_CHECKPOINT"], weights_only=True))
    return model


def no_bn_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
'''
SHAPE = (1, 3, 32, 32)


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "init_nets.py"
    path.write_text(NETS)
    return path


def _logits(handle) -> np.ndarray:
    x = load_inputs(None, 8, handle.input_shape, handle.mean, handle.std).array
    with torch.no_grad():
        return handle.module(torch.from_numpy(x)).numpy()


def test_untrained_batchnorm_model_gets_the_calibrated_init(nets):
    handle = resolve(f"{nets}:bn_net", input_shape=SHAPE)
    assert handle.weights_source == INIT_SOURCE == "init:seed=0,bn-calibrated"
    assert not batchnorm_never_measured(handle.module) and not handle.module.training
    bn = handle.module[1]
    assert float(bn.running_var.min()) > 0 and float(bn.running_mean.abs().max()) > 0
    spread = float(_logits(handle).std(axis=1).mean())  # the head is scaled to logits of std 1 on photos
    assert 0.3 < spread < 3
    again = resolve(f"{nets}:bn_net", input_shape=SHAPE)
    assert again.weights_sha256 == handle.weights_sha256  # `edgekit check` rebuilds the same reference


def test_factory_that_loads_its_own_weights_keeps_them(nets, tmp_path, monkeypatch):
    trained = resolve(f"{nets}:bn_net", input_shape=SHAPE).module
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(1.5)
    checkpoint = tmp_path / "trained.pth"
    torch.save(trained.state_dict(), checkpoint)
    monkeypatch.setenv("EDGEKIT_TEST_CHECKPOINT", str(checkpoint))
    handle = resolve(f"{nets}:loads_its_own", input_shape=SHAPE)
    assert handle.weights_source == "factory"
    assert handle.weights_sha256 == state_dict_sha256(trained)


def test_model_without_batchnorm_keeps_the_factory_init(nets):
    handle = resolve(f"{nets}:no_bn_net", input_shape=SHAPE)
    assert handle.weights_source == "factory"
    torch.manual_seed(0)  # load_factory runs the factory under seed 0
    expected = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, 5))
    assert handle.weights_sha256 == state_dict_sha256(expected)


def test_weights_file_is_applied_as_given(nets, tmp_path):
    torch.manual_seed(1)  # a state dict whose BatchNorms never ran: --weights still means these weights
    raw = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1),
                        nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    path = tmp_path / "raw.pth"
    torch.save(raw.state_dict(), path)
    handle = resolve(f"{nets}:bn_net", weights=path, input_shape=SHAPE)
    assert handle.weights_source == f"file:{path}"
    assert handle.weights_sha256 == state_dict_sha256(raw)  # --weights is never re-initialised


def test_batchnorm_never_measured():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert batchnorm_never_measured(model)
    model.train()(torch.randn(2, 3, 8, 8))  # one training step measures statistics
    assert not batchnorm_never_measured(model)
    assert not batchnorm_never_measured(nn.Sequential(nn.Conv2d(3, 4, 3)))  # no BatchNorm at all
    assert not batchnorm_never_measured(nn.Sequential(nn.BatchNorm2d(4, track_running_stats=False)))


def test_export_says_which_init_it_used(nets, tmp_path):
    said = []
    result = export(ExportRequest(f"{nets}:bn_net", input_shape=SHAPE, output_dir=tmp_path), progress=said.append)
    assert result.weights_source == INIT_SOURCE and result.parity.passed
    assert any("BatchNorm layers never measured statistics" in line and INIT_SOURCE in line for line in said)


def test_check_refuses_a_file_whose_factory_now_builds_other_weights(nets, tmp_path):
    result = export(ExportRequest(f"{nets}:no_bn_net", input_shape=SHAPE, output_dir=tmp_path, check=False))
    assert check_exported_file(result.path, model=f"{nets}:no_bn_net").passed
    nets.write_text(NETS.replace("nn.Linear(8, 5))", "nn.Linear(8, 5)).apply(lambda m: nn.init.zeros_(m.bias) "
                                 "if isinstance(m, nn.Linear) else None)"))
    with pytest.raises(WeightsError, match=r"no_bn_net now builds weights .* other than those no_bn_net.onnx was "
                                           r"exported with .*--weights FILE, or re-export it"):
        check_exported_file(result.path, model=f"{nets}:no_bn_net")
