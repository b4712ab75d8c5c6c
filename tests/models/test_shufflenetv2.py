import pytest
import torch

from edgekit.models import list_models, shuffle_lowering
from edgekit.models.registry import build_architecture
from edgekit.models.shufflenetv2 import InvertedResidual, ShuffleNetV2, shufflenet_v2_x1_0

# torchvision's published parameter counts.
TORCHVISION_PARAMS = {
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
    "shufflenet_v2_x1_5": 3_503_624,
    "shufflenet_v2_x2_0": 7_393_996,
}


def _model(name):
    return build_architecture(name)


def _bn(prefix):
    return [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def torchvision_x1_0_keys():
    """torchvision's shufflenet_v2_x1_0 state_dict keys, written out from its module layout."""
    keys = ["conv1.0.weight", *_bn("conv1.1")]
    for stage, repeats in (("stage2", 4), ("stage3", 8), ("stage4", 4)):
        for block in range(repeats):
            p = f"{stage}.{block}"
            if block == 0:  # downsampling: branch1 = dw conv, BN, 1x1 conv, BN, ReLU
                keys += [f"{p}.branch1.0.weight", *_bn(f"{p}.branch1.1")]
                keys += [f"{p}.branch1.2.weight", *_bn(f"{p}.branch1.3")]
            # branch2 = 1x1 conv, BN, ReLU, dw conv, BN, 1x1 conv, BN, ReLU
            keys += [f"{p}.branch2.0.weight", *_bn(f"{p}.branch2.1")]
            keys += [f"{p}.branch2.3.weight", *_bn(f"{p}.branch2.4")]
            keys += [f"{p}.branch2.5.weight", *_bn(f"{p}.branch2.6")]
    keys += ["conv5.0.weight", *_bn("conv5.1"), "fc.weight", "fc.bias"]
    return keys


def test_x1_0_has_torchvisions_parameter_count():
    model = _model("shufflenet_v2_x1_0")
    assert sum(p.numel() for p in model.parameters()) == 2_278_604


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision_and_metadata(name):
    info = {i.name: i for i in list_models()}[name]
    assert info.params == TORCHVISION_PARAMS[name]
    assert info.metadata["params"] == TORCHVISION_PARAMS[name]


def test_x1_0_state_dict_keys_are_torchvisions_in_order():
    keys = list(_model("shufflenet_v2_x1_0").state_dict())
    assert keys == torchvision_x1_0_keys()
    assert "stage3.7.branch2.7.running_var" not in keys  # branch2.7 is a ReLU: no state


def test_x1_0_shapes_of_sample_keys():
    sd = _model("shufflenet_v2_x1_0").state_dict()
    assert sd["conv1.0.weight"].shape == (24, 3, 3, 3)
    assert sd["stage2.0.branch1.0.weight"].shape == (24, 1, 3, 3)
    assert sd["stage2.0.branch1.2.weight"].shape == (58, 24, 1, 1)
    assert sd["stage3.1.branch2.0.weight"].shape == (116, 116, 1, 1)
    assert sd["stage4.3.branch2.3.weight"].shape == (232, 1, 3, 3)
    assert sd["conv5.0.weight"].shape == (1024, 464, 1, 1)
    assert sd["fc.weight"].shape == (1000, 1024)


def test_x1_0_macs_match_paper():
    info = {i.name: i for i in list_models()}["shufflenet_v2_x1_0"]
    assert info.metadata["paper_mflops"] == 146
    assert abs(info.macs - 146e6) / 146e6 < 0.01


@pytest.mark.parametrize(
    ("name", "mflops"),
    [("shufflenet_v2_x0_5", 41), ("shufflenet_v2_x1_5", 299), ("shufflenet_v2_x2_0", 591)],
)
def test_other_widths_macs_near_paper(name, mflops):
    info = {i.name: i for i in list_models()}[name]
    assert abs(info.macs / 1e6 - mflops) / mflops < 0.02


def test_forward_shape_and_lowerings_agree():
    torch.manual_seed(0)
    model = shufflenet_v2_x1_0().eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        a = model(x)
        with shuffle_lowering("reshape_permute"):
            b = model(x)
    assert a.shape == (2, 1000)
    assert torch.equal(a, b)


def test_forward_uses_spatial_mean_before_fc():
    model = ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 128], num_classes=10).eval()
    features = []
    model.fc.register_forward_hook(lambda _m, inputs, _o: features.append(inputs[0]))
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        model(x)
        manual = model.conv5(model.stage4(model.stage3(model.stage2(model.maxpool(model.conv1(x)))))).mean(
            [2, 3]
        )
    assert torch.allclose(features[0], manual)


def test_inverted_residual_validation():
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(8, 8, 4)
    with pytest.raises(ValueError, match="inp == oup"):
        InvertedResidual(8, 16, 1)
    with pytest.raises(ValueError):
        ShuffleNetV2([4, 8], [24, 116, 232, 464, 1024])
