"""Session fixtures for the runtime tests: a small CNN and its ONNX exports (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from runtime_models import INPUT_SHAPE, ChannelsLastConv, SmallCNN, export_onnx, make_cnn


@pytest.fixture(scope="session")
def cnn() -> SmallCNN:
    return make_cnn()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime-models")


@pytest.fixture(scope="session")
def cnn_onnx(cnn, models_dir) -> Path:
    """The CNN exported with a fixed batch of 1."""
    return export_onnx(cnn, torch.zeros(INPUT_SHAPE), models_dir / "cnn.onnx")


@pytest.fixture(scope="session")
def cnn_onnx_dynamic(cnn, models_dir) -> Path:
    """The CNN exported with a dynamic batch dimension."""
    return export_onnx(cnn, torch.zeros(INPUT_SHAPE), models_dir / "cnn_dynamic.onnx", dynamic_batch=True)


@pytest.fixture(scope="session")
def channels_last_model() -> ChannelsLastConv:
    torch.manual_seed(3)
    return ChannelsLastConv().eval()


@pytest.fixture(scope="session")
def channels_last_onnx(channels_last_model, models_dir) -> Path:
    return export_onnx(channels_last_model, torch.zeros(1, 16, 16, 3), models_dir / "nhwc.onnx")
