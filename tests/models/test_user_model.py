import sys
import textwrap

import pytest
import torch

from edgekit.errors import UserModelError
from edgekit.models import state_dict_sha256
from edgekit.models.user_model import factory_name, import_factory, is_factory_spec, load_factory

MODEL_FILE = """
import torch
from torch import nn

def make_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

def broken():
    raise ValueError("no such width")

def not_a_model():
    return {"weights": 1}

class Fused(nn.Module):
    def forward(self, image, depth, scale=1.0, *extra, mode="sum"):
        return image * scale + depth

def two_inputs():
    return Fused()

class Optional(nn.Module):
    def forward(self, x, mask=None):
        return x if mask is None else x * mask

def one_input_one_optional():
    return Optional()

CONSTANT = 3
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(MODEL_FILE)
    return path


def _message(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_file_factory_builds_the_model(model_file):
    model = load_factory(f"{model_file}:make_net")
    assert isinstance(model, torch.nn.Module)
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 2)


def test_file_factory_init_is_deterministic_and_rng_is_restored(model_file):
    torch.manual_seed(99)
    expected = torch.rand(2)
    torch.manual_seed(99)
    a = load_factory(f"{model_file}:make_net")
    b = load_factory(f"{model_file}:make_net")
    assert torch.equal(torch.rand(2), expected)
    assert state_dict_sha256(a) == state_dict_sha256(b)


def test_module_factory(tmp_path, monkeypatch):
    package = tmp_path / "userpkg_for_edgekit"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "zoo.py").write_text(MODEL_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_factory("userpkg_for_edgekit.zoo:make_net")
    assert isinstance(model, torch.nn.Sequential)
    sys.modules.pop("userpkg_for_edgekit.zoo", None)
    sys.modules.pop("userpkg_for_edgekit", None)


def test_file_can_import_its_siblings(tmp_path):
    (tmp_path / "blocks_for_edgekit_test.py").write_text("from torch import nn\nBLOCK = nn.Identity\n")
    (tmp_path / "main_net.py").write_text(
        "from blocks_for_edgekit_test import BLOCK\ndef make():\n    return BLOCK()\n"
    )
    assert isinstance(load_factory(f"{tmp_path / 'main_net.py'}:make"), torch.nn.Identity)
    assert str(tmp_path) not in sys.path
    sys.modules.pop("blocks_for_edgekit_test", None)


def test_factory_raising_is_named(model_file):
    with pytest.raises(UserModelError) as err:
        load_factory(f"{model_file}:broken")
    assert _message(err) == f"{model_file}:broken: broken() raised ValueError: no such width"


def test_factory_returning_non_module(model_file):
    with pytest.raises(
        UserModelError, match=r"not_a_model\(\) returned a dict, not a torch.nn.Module"
    ) as err:
        load_factory(f"{model_file}:not_a_model")
    _message(err)


def test_missing_attribute_lists_callables(model_file):
    with pytest.raises(UserModelError, match="has no attribute 'make'") as err:
        load_factory(f"{model_file}:make")
    assert "make_net" in _message(err)


def test_attribute_not_callable(model_file):
    with pytest.raises(UserModelError, match="CONSTANT is a int, not a callable"):
        import_factory(f"{model_file}:CONSTANT")


def test_missing_file(tmp_path):
    with pytest.raises(UserModelError, match="does not exist") as err:
        load_factory(f"{tmp_path / 'absent.py'}:make")
    _message(err)


def test_import_error_in_file(tmp_path):
    path = tmp_path / "bad_syntax.py"
    path.write_text(textwrap.dedent("def make(:\n    pass\n"))
    with pytest.raises(UserModelError, match="importing .*bad_syntax.py raised SyntaxError") as err:
        load_factory(f"{path}:make")
    _message(err)
    path2 = tmp_path / "bad_import.py"
    path2.write_text("import package_that_is_not_installed_anywhere\n")
    with pytest.raises(UserModelError, match="ModuleNotFoundError"):
        load_factory(f"{path2}:make")


def test_file_calling_sys_exit_is_contained(tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(UserModelError, match="SystemExit"):
        load_factory(f"{path}:make")


def test_missing_module():
    with pytest.raises(UserModelError, match="cannot import no_such_pkg_xyz.mod") as err:
        load_factory("no_such_pkg_xyz.mod:make")
    _message(err)


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ("nets.py:make", True),
        ("dir/sub/nets.py:make_net", True),
        ("pkg.mod:factory", True),
        ("shufflenet_v2_x1_0", False),
        ("nets.py", False),
        ("nets.py:", False),
        ("pkg.mod:1bad", False),
    ],
)
def test_spec_shapes(spec, ok):
    assert is_factory_spec(spec) is ok


def test_malformed_spec_raises():
    with pytest.raises(UserModelError, match="file.py:factory"):
        load_factory("nets.py")
    assert factory_name("a/b/nets.py:make_net") == "make_net"


def test_a_model_that_needs_more_inputs_than_shapes_given_is_refused_by_name(model_file):
    with pytest.raises(UserModelError) as exc_info:
        load_factory(f"{model_file}:two_inputs")
    message = _message(exc_info)
    assert "forward takes 2 inputs (image, depth) but 1 input shape was given" in message
    assert "pass --input-shape once per input, in forward's order, the NCHW image first" in message
    assert isinstance(load_factory(f"{model_file}:two_inputs", inputs=2), torch.nn.Module)


def test_more_shapes_than_forward_takes_are_refused(model_file):
    # an optional argument may be fed (x, mask), a third shape has nowhere to go; *args takes any count
    assert isinstance(load_factory(f"{model_file}:one_input_one_optional", inputs=2), torch.nn.Module)
    with pytest.raises(UserModelError, match=r"3 input shapes were given but the model's forward takes 2 \(x, mask\)"):
        load_factory(f"{model_file}:one_input_one_optional", inputs=3)
    assert isinstance(load_factory(f"{model_file}:two_inputs", inputs=5), torch.nn.Module)


def test_optional_forward_arguments_do_not_count_as_inputs(model_file):
    model = load_factory(f"{model_file}:one_input_one_optional")
    assert torch.equal(model(torch.ones(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))
