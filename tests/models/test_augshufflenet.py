import pytest
import torch

from edgekit.models import channel_shuffle, list_models, shuffle_lowering
from edgekit.models.augshufflenet import AugShuffleBlock, AugShuffleNet
from edgekit.models.registry import build_architecture
from edgekit.models.shufflenetv2 import STAGES_OUT_CHANNELS, InvertedResidual

WIDTHS = ("x0_5", "x1_0", "x1_5", "x2_0")


@pytest.mark.parametrize("width", WIDTHS)
def test_forward_shape_at_every_width(width):
    model = build_architecture(f"augshufflenet_{width}").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("width", WIDTHS)
def test_fewer_parameters_and_macs_than_shufflenetv2(width):
    infos = {i.name: i for i in list_models()}
    aug, base = infos[f"augshufflenet_{width}"], infos[f"shufflenet_v2_{width}"]
    assert aug.params < base.params
    assert aug.macs < base.macs
    assert aug.family == "augshufflenet" and aug.pretrained_url is None


def test_only_stride1_blocks_of_stages_3_and_4_are_augmented():
    model = build_architecture("augshufflenet_x1_0")
    for stage in (model.stage2, model.stage3, model.stage4):
        assert isinstance(stage[0], InvertedResidual) and stage[0].stride == 2
    assert all(isinstance(b, InvertedResidual) for b in model.stage2)
    assert all(isinstance(b, AugShuffleBlock) for b in list(model.stage3)[1:] + list(model.stage4)[1:])
    # everything outside the augmented blocks keeps torchvision's ShuffleNetV2 keys and shapes
    base = build_architecture("shufflenet_v2_x1_0").state_dict()
    aug = model.state_dict()
    shared = [
        k for k in aug if not k.startswith(tuple(f"stage{s}.{i}." for s in (3, 4) for i in range(1, 8)))
    ]
    assert shared and all(aug[k].shape == base[k].shape for k in shared)


def test_block_keys_are_readable():
    keys = list(AugShuffleBlock(232).state_dict())
    assert keys[0] == "branch_conv0.0.weight"
    assert "branch_dwconv.0.weight" in keys
    assert "crossover_conv.0.weight" in keys
    assert "crossover_conv.1.running_var" in keys


@pytest.mark.parametrize(
    ("channels", "c1", "c2"), [(232, 88, 72), (464, 174, 145), (96, 36, 30), (976, 366, 305)]
)
def test_split_sizes_keep_channel_count(channels, c1, c2):
    block = AugShuffleBlock(channels)
    assert block.splits == (c1, c2, c2)
    assert sum(block.splits) == channels
    assert block.crossover_conv[0].in_channels == channels // 2 == c1 // 2 + c2
    assert block.branch_dwconv[0].groups == c1
    assert block(torch.randn(1, channels, 7, 7)).shape == (1, channels, 7, 7)


def test_block_wiring_matches_definition():
    torch.manual_seed(0)
    block = AugShuffleBlock(16).eval()  # c1 = 6, c2 = c3 = 5
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        x1, x2, x3 = x[:, :6], x[:, 6:11], x[:, 11:]
        # conv0 has BN but no ReLU: the depthwise input may be negative
        dw = block.branch_dwconv(block.branch_conv0[1](block.branch_conv0[0](x1)))
        p1, p2 = dw[:, :3], dw[:, 3:]
        out = block.crossover_conv(torch.cat([p2, x2], 1))
        expected = channel_shuffle(torch.cat([out, x3, p1], 1), 4)
        assert torch.allclose(block(x), expected)
        with shuffle_lowering("reshape_permute"):
            assert torch.equal(block(x), expected)
    assert len(block.branch_conv0) == 2  # Conv2d + BatchNorm2d only


def test_shuffle_groups_follow_split_ratio():
    assert AugShuffleBlock(232).shuffle_groups == 4
    assert AugShuffleBlock(232, r=0.5).shuffle_groups == 2
    assert AugShuffleBlock(232, r=0.5).splits == (116, 58, 58)


@pytest.mark.parametrize("r", [0.0, -0.1, 0.51, 1.0])
def test_invalid_split_ratio_is_rejected(r):
    with pytest.raises(ValueError, match=r"\(0, 0.5\]"):
        AugShuffleBlock(232, r=r)
    with pytest.raises(ValueError, match=r"\(0, 0.5\]"):
        AugShuffleNet([4, 8, 4], STAGES_OUT_CHANNELS["x1_0"], r=r)


def test_split_ratio_too_small_for_channels():
    with pytest.raises(ValueError, match="empty"):
        AugShuffleBlock(8, r=0.05)
