"""The model zoo's registry: torchvision key compatibility, literal counts, metadata, and a listing that builds
nothing.

How the torchvision expectation was derived (``torchvision_state_dicts.json``): torchvision cannot be
installed beside this project's torch, so its 0.29.1 wheel was downloaded from PyPI (``pip download
torchvision --no-deps``), unpacked outside the project, and its pure-Python model definitions imported with
the two lines that load its compiled operators removed from ``torchvision/__init__.py`` (the classifiers use
none of them). Each builder's ``state_dict()`` with default arguments gave the key count, a sha256 over the
sorted ``key:shape`` lines, a few spot keys, the parameter total, and its DEFAULT weights' URL and acc@1. The
same session also loaded each torchvision state dict (with randomised BatchNorm statistics) into edgekit's
builder and compared outputs on random inputs: identical to the last bit for all nine. That comparison needs
torchvision and is not repeated here; the keys, shapes and counts below are.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgekit.models import create, list_models, model_names
from edgekit.models.registry import build_architecture, count_params_and_macs, model_info, model_metadata
from edgekit.models.shufflenetv2 import IMAGENET_LABELS

EXPECTED = json.loads(Path(__file__).with_name("torchvision_state_dicts.json").read_text())["models"]
ZOO = {
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet50", "efficientnet_b0",
    "efficientnet_lite0", "mnasnet1_0", "ghostnet", "regnet_y_400mf", "squeezenet1_1", "unet_small",
    "deeplabv3_mobilenet", "yolo_tiny", "convnext_atto", "mobilevit_xxs",
}
TASKS = {"classification", "segmentation", "detection"}


def _key_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return sorted((k, list(v.shape)) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_state_dict_matches_torchvision(name):
    expected = EXPECTED[name]
    model = build_architecture(name)
    pairs = _key_shapes(model)
    text = "\n".join(f"{k}:{'x'.join(map(str, s))}" for k, s in pairs)
    assert len(pairs) == expected["count"]
    for key, shape in expected["spot"].items():
        assert list(model.state_dict()[key].shape) == shape, key
    assert sum(p.numel() for p in model.parameters()) == expected["params"]
    assert hashlib.sha256(text.encode()).hexdigest() == expected["sha256"]
    meta = model_metadata(name)
    assert meta["pretrained_url"] == expected["url"]
    assert meta["acc1"] == expected["acc1"]


def test_torchvision_layout_file_loads_with_weights(tmp_path):
    # A file with torchvision's keys (here: the architecture's own, written as torch.save writes a state dict).
    source = build_architecture("mobilenet_v3_small")
    with torch.no_grad():
        for p in source.parameters():
            p.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(source.state_dict(), path)
    loaded = create("mobilenet_v3_small", weights=path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_zoo_metadata():
    infos = {i.name: i for i in list_models()}
    assert ZOO <= set(infos)
    for name in ZOO:
        info = infos[name]
        assert info.task in TASKS, name
        assert isinstance(info.pure_cnn, bool), name
        assert len(info.input_shape) == 4 and info.input_shape[:2] == (1, 3), name
        assert info.description and info.family, name
        assert info.metadata["mean"] == (0.485, 0.456, 0.406) and info.metadata["std"] == (0.229, 0.224, 0.225)
        if info.task == "classification":
            assert info.metadata["labels"] == IMAGENET_LABELS, name
            assert info.input_shape[2:] in ((224, 224), (256, 256)), name
    assert {n for n in ZOO if not infos[n].pure_cnn} == {"convnext_atto", "mobilevit_xxs"}
    assert infos["unet_small"].task == infos["deeplabv3_mobilenet"].task == "segmentation"
    assert len(infos["unet_small"].metadata["labels"]) == 21
    assert infos["yolo_tiny"].task == "detection" and len(infos["yolo_tiny"].metadata["labels"]) == 80


def test_every_registration_carries_literal_counts():
    # model_info reads these instead of building the model: the listing's speed depends on it.
    for name in model_names():
        meta = model_metadata(name)
        assert isinstance(meta.get("params"), int) and isinstance(meta.get("macs"), int), name
        assert (model_info(name).params, model_info(name).macs) == (meta["params"], meta["macs"])


def test_importing_and_listing_builds_no_model():
    # A fresh interpreter: count every nn.Module constructed while importing the registry and listing it.
    code = (
        "import torch\n"
        "built = []\n"
        "init = torch.nn.Module.__init__\n"
        "def counting(self, *a, **k):\n"
        "    built.append(type(self).__name__)\n"
        "    init(self, *a, **k)\n"
        "torch.nn.Module.__init__ = counting\n"
        "import edgekit.models as m\n"
        "assert len(m.list_models()) >= 25\n"
        "print(len(built))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "0"


def test_unet_and_deeplab_map_pixels_to_classes():
    x = torch.zeros(1, 3, 64, 96)
    for name in ("unet_small", "deeplabv3_mobilenet"):
        with torch.no_grad():
            assert build_architecture(name).eval()(x).shape == (1, 21, 64, 96), name


def test_deeplab_backbone_keeps_output_stride_16():
    model = build_architecture("deeplabv3_mobilenet").eval()
    with torch.no_grad():
        assert model.backbone(torch.zeros(1, 3, 256, 256)).shape[-2:] == (16, 16)
    dilations = {m.dilation[0] for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)}
    assert dilations == {1, 2}


def test_yolo_tiny_heads_at_strides_16_and_32():
    with torch.no_grad():
        p16, p32 = build_architecture("yolo_tiny").eval()(torch.zeros(1, 3, 256, 256))
    assert p16.shape == (1, 255, 16, 16) and p32.shape == (1, 255, 8, 8)


def test_mobilevit_fold_inverts_unfold():
    block = build_architecture("mobilevit_xxs").layer3[1]
    x = torch.arange(2 * 64 * 8 * 6, dtype=torch.float32).reshape(2, 64, 8, 6)
    patches = block.unfold(x)
    assert patches.shape == (2 * 4, 4 * 3, 64)
    # sequence 0 of image 0 holds the top-left pixel of every 2x2 patch, channels last
    assert torch.equal(patches[0, 1], x[0, :, 0, 2])
    assert torch.equal(block.fold(patches, tuple(x.shape)), x)


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_literal_counts_equal_the_architecture(name):
    # Every registered model's literal params/MACs, recounted from the built architecture (a forward pass).
    meta = model_metadata(name)
    assert count_params_and_macs(name) == (meta["params"], meta["macs"])


def test_deterministic_init_covers_zoo_layers_without_touching_global_rng():
    # Dropout, a transposed conv, LayerNorm and a hidden Linear: the zoo's layers beyond ShuffleNet's.
    from edgekit.models.weights import deterministic_init, state_dict_sha256

    def net() -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(8, 8, 2, stride=2), torch.nn.BatchNorm2d(8), torch.nn.Dropout(0.5),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.LayerNorm(8),
            torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 10),
        )

    hashes = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = net()  # PyTorch's default init draws from the global generator: different per seed
        state = torch.random.get_rng_state()
        deterministic_init(model, (1, 3, 32, 32), (0.5,) * 3, (0.25,) * 3)
        assert torch.equal(torch.random.get_rng_state(), state)
        hashes.append(state_dict_sha256(model))
        assert 0.2 < float(model[9].weight.detach().std()) < 0.5  # 1/sqrt(8) = 0.35, not the classifier's 0.01
    assert hashes[0] == hashes[1]


def test_the_catalog_matches_the_registry():
    # edgekit models prints the catalog; a registration that changed without it fails here.
    from edgekit.model_catalog import read_catalog
    from edgekit.models.catalog import registry_entries

    assert read_catalog() == registry_entries(), "the catalog is stale: run python -m edgekit.models.catalog"


def test_edgekit_models_lists_the_registry_without_importing_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgekit.cli import main\n"
        "result = CliRunner().invoke(main, ['models'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('torch' in sys.modules, len(result.output.splitlines()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    from edgekit.models import model_names

    assert out.stdout.split() == ["False", str(len(model_names()) + 2)]  # a header line and a rule


def test_a_damaged_catalog_falls_back_to_the_registry(tmp_path):
    from edgekit.model_catalog import read_catalog

    bad = tmp_path / "catalog.json"
    bad.write_text('[{"name": "x"}]')
    assert read_catalog(bad) is None and read_catalog(tmp_path / "missing.json") is None
