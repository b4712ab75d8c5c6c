import dataclasses

import pytest
import torch

from edgekit.errors import UnknownModelError, WeightsError
from edgekit.models import ModelInfo, create, list_models, register_model
from edgekit.models.registry import build_architecture, count_macs, model_names

EXPECTED_NAMES = {
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "augshufflenet_x0_5",
    "augshufflenet_x1_0",
    "augshufflenet_x1_5",
    "augshufflenet_x2_0",
}
#: Test reference trained by edgekit (models/digits.py), not an ImageNet network.
REFERENCE_NAMES = {"shufflenet_v2_digits"}


def test_list_models_describes_every_model():
    infos = list_models()
    assert {i.name for i in infos} >= EXPECTED_NAMES | REFERENCE_NAMES  # the zoo: test_zoo_registry.py
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    for info in (i for i in infos if i.name in EXPECTED_NAMES):
        assert isinstance(info, ModelInfo)
        assert info.input_shape == (1, 3, 224, 224)
        assert info.params > 1_000_000 and info.macs > 30_000_000
        assert info.description
        assert info.width in (0.5, 1.0, 1.5, 2.0)
    x1 = next(i for i in infos if i.name == "shufflenet_v2_x1_0")
    assert x1.family == "shufflenetv2"
    assert x1.pretrained_url == "https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth"
    assert x1.metadata["acc1"] == 69.362
    assert x1.metadata["mean"] == (0.485, 0.456, 0.406)
    assert {f.name for f in dataclasses.fields(ModelInfo)} >= {
        "name",
        "family",
        "width",
        "params",
        "macs",
        "input_shape",
        "description",
        "pretrained_url",
    }


def test_torchvision_accuracies_travel_with_builders():
    acc = {i.name: i.metadata["acc1"] for i in list_models() if i.family == "shufflenetv2"}
    assert acc == {
        "shufflenet_v2_x0_5": 60.552,
        "shufflenet_v2_x1_0": 69.362,
        "shufflenet_v2_x1_5": 72.996,
        "shufflenet_v2_x2_0": 76.230,
    }


def test_count_macs_by_hand():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),  # 8*4*4 outputs x 3*9
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),  # 8*4*4 x 1*9
        torch.nn.Flatten(),
        torch.nn.Linear(128, 10),  # 10 x 128
    )
    assert count_macs(model, (1, 3, 4, 4)) == 128 * 27 + 128 * 9 + 1280


def test_unknown_name_lists_known_models_on_one_line():
    with pytest.raises(UnknownModelError) as err:
        create("shufflenet_v3")
    message = str(err.value)
    assert "\n" not in message
    assert "shufflenet_v3" in message
    for name in EXPECTED_NAMES:
        assert name in message


def test_weights_and_pretrained_together_are_refused():
    with pytest.raises(WeightsError, match="not both"):
        create("shufflenet_v2_x0_5", weights="x.pth", pretrained=True)


def test_pretrained_for_model_without_published_weights():
    with pytest.raises(WeightsError, match="no published pretrained weights"):
        create("augshufflenet_x0_5", pretrained=True)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("shufflenet_v2_x1_0")(lambda: torch.nn.Identity())


def test_build_leaves_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_architecture("shufflenet_v2_x0_5")
    assert torch.equal(torch.rand(3), expected)


def test_model_names_sorted():
    assert model_names() == sorted(model_names())
    assert set(model_names()) >= EXPECTED_NAMES | REFERENCE_NAMES
