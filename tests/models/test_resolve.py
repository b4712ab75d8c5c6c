import pytest
import torch

from edgekit.errors import DataError, UnknownModelError, UserModelError, WeightsError
from edgekit.models import ModelHandle, parse_input_shape, resolve, state_dict_sha256
from edgekit.models.weights import INIT_SOURCE

FACTORY = """
from torch import nn

def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))

def gray_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
"""


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "user_nets.py"
    path.write_text(FACTORY)
    return path


def test_registry_model_handle():
    handle = resolve("shufflenet_v2_x0_5")
    assert isinstance(handle, ModelHandle)
    assert handle.name == "shufflenet_v2_x0_5"
    assert handle.family == "shufflenetv2"
    assert handle.input_shape == (1, 3, 224, 224)
    assert handle.weights_source == INIT_SOURCE
    assert handle.weights_sha256 == state_dict_sha256(handle.module)
    assert handle.mean == (0.485, 0.456, 0.406) and handle.std == (0.229, 0.224, 0.225)
    assert not handle.module.training


def test_registry_input_shape_override_and_channel_check():
    assert resolve("shufflenet_v2_x0_5", input_shape="4,3,160,160").input_shape == (4, 3, 160, 160)
    with pytest.raises(DataError, match="takes 3 input channels"):
        resolve("shufflenet_v2_x0_5", input_shape=(1, 1, 224, 224))


def test_user_factory_needs_input_shape(factory_file):
    with pytest.raises(UserModelError, match="pass --input-shape 1,3,224,224") as err:
        resolve(f"{factory_file}:tiny_net")
    assert "\n" not in str(err.value)


def test_user_factory_handle(factory_file):
    handle = resolve(f"{factory_file}:tiny_net", input_shape="1,3,32,32")
    assert handle.name == "tiny_net"
    assert handle.family == "user"
    assert handle.input_shape == (1, 3, 32, 32)
    assert handle.weights_source == "factory"
    assert handle.mean == (0.485, 0.456, 0.406)
    assert not handle.module.training
    # deterministic without weights: the factory runs under a fixed seed
    assert (
        resolve(f"{factory_file}:tiny_net", input_shape="1,3,32,32").weights_sha256 == handle.weights_sha256
    )


def test_user_factory_grayscale_defaults(factory_file):
    handle = resolve(f"{factory_file}:gray_net", input_shape=(1, 1, 28, 28))
    assert handle.mean == (0.449,) and handle.std == (0.226,)


def test_user_factory_with_weights(factory_file, tmp_path):
    trained = resolve(f"{factory_file}:tiny_net", input_shape="1,3,32,32").module
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    path = tmp_path / "tiny.pth"
    torch.save(trained.state_dict(), path)
    handle = resolve(f"{factory_file}:tiny_net", weights=path, input_shape="1,3,32,32")
    assert handle.weights_source == f"file:{path}"
    assert handle.weights_sha256 == state_dict_sha256(trained)

    torch.save({"0.weight": torch.zeros(4, 3, 5, 5)}, tmp_path / "other.pth")
    with pytest.raises(
        WeightsError, match=r"shape of 0\.weight is \(4, 3, 5, 5\).*is this a tiny_net state dict"
    ):
        resolve(f"{factory_file}:tiny_net", weights=tmp_path / "other.pth", input_shape="1,3,32,32")


def test_user_factory_pretrained_refused(factory_file):
    with pytest.raises(WeightsError, match="--weights FILE"):
        resolve(f"{factory_file}:tiny_net", pretrained=True, input_shape="1,3,32,32")


def test_unknown_specs():
    with pytest.raises(UnknownModelError, match="known models: augshufflenet_x0_5"):
        resolve("mobilenet_v9")
    with pytest.raises(UnknownModelError, match="file.py:factory"):
        resolve("my_model.py")


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("1,3,224,224", (1, 3, 224, 224)),
        ("1x3x96x128", (1, 3, 96, 128)),
        (" 2, 1, 28, 28 ", (2, 1, 28, 28)),
        ((1, 3, 8, 8), (1, 3, 8, 8)),
        ("(1, 3, 64, 64)", (1, 3, 64, 64)),
    ],
)
def test_parse_input_shape(text, shape):
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["1,3,224", "1,3,224,224,1", "1,3,a,224", "1,0,224,224", "", "-1,3,2,2"])
def test_parse_input_shape_errors(text):
    with pytest.raises(DataError, match="1,3,224,224") as err:
        parse_input_shape(text)
    assert "\n" not in str(err.value)
