"""ShuffleNetV2 (Ma et al., ECCV 2018), layer for layer and key for key the network torchvision ships.

The module tree and ``state_dict`` key names match ``torchvision.models.shufflenetv2`` exactly, so
torchvision's pretrained files load unchanged (``stage2.0.branch1.0.weight`` ...). Channel shuffle goes
through ``edgekit.models.channel_shuffle`` so the exporter can choose how it is spelled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from edgekit.models.channel_shuffle import channel_shuffle
from edgekit.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The ImageNet-1k class names in output order, as torchvision's weights metadata lists them
#: (torchvision/models/_meta.py, _IMAGENET_CATEGORIES), shipped as package data.
IMAGENET_LABELS = tuple(
    (Path(__file__).with_name("imagenet_labels.txt")).read_text(encoding="utf-8").splitlines()
)

STAGES_REPEATS = (4, 8, 4)
STAGES_OUT_CHANNELS = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


class InvertedResidual(nn.Module):
    """ShuffleNetV2's unit: channel split + one conv branch (stride 1), or two conv branches (stride 2)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if not (1 <= stride <= 3):
            raise ValueError(f"illegal stride value {stride}")
        self.stride = stride
        branch_features = oup // 2
        if stride == 1 and inp != branch_features << 1:
            raise ValueError(
                f"a stride-1 block needs inp == oup (got inp={inp}, oup={oup}): half of the input is passed "
                "through unchanged"
            )

        if stride > 1:
            self.branch1 = nn.Sequential(
                self.depthwise_conv(inp, inp, kernel_size=3, stride=stride, padding=1),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),
            )
        else:
            # Empty, but present: torchvision has it, and an empty Sequential adds no state_dict keys.
            self.branch1 = nn.Sequential()

        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
            self.depthwise_conv(branch_features, branch_features, kernel_size=3, stride=stride, padding=1),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, kernel_size=1, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
        )

    @staticmethod
    def depthwise_conv(
        i: int, o: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False
    ) -> nn.Conv2d:
        return nn.Conv2d(i, o, kernel_size, stride, padding, bias=bias, groups=i)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


#: Builds the stride-1 block of a stage: ``(stage_name, channels) -> nn.Module``.
Stride1Block = Callable[[str, int], nn.Module]


def _inverted_residual_stride1(stage_name: str, channels: int) -> nn.Module:
    return InvertedResidual(channels, channels, 1)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 configured like the paper's Table 5: repeats per stage and output channels per stage.

    ``stages_repeats`` has 3 entries (stage2..stage4); ``stages_out_channels`` has 5 (conv1, the three
    stages, conv5). ``stride1_block`` lets a variant (AugShuffleNet) replace the stride-1 blocks of chosen
    stages while keeping everything else, key names included.
    """

    def __init__(
        self,
        stages_repeats: list[int] | tuple[int, ...],
        stages_out_channels: list[int] | tuple[int, ...],
        num_classes: int = 1000,
        stride1_block: Stride1Block = _inverted_residual_stride1,
    ) -> None:
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError("expected stages_repeats as list of 3 positive ints")
        if len(stages_out_channels) != 5:
            raise ValueError("expected stages_out_channels as list of 5 positive ints")
        self._stage_out_channels = list(stages_out_channels)

        input_channels = 3
        output_channels = self._stage_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        input_channels = output_channels

        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.stage2: nn.Sequential
        self.stage3: nn.Sequential
        self.stage4: nn.Sequential
        stage_names = [f"stage{i}" for i in (2, 3, 4)]
        for name, repeats, output_channels in zip(
            stage_names, stages_repeats, self._stage_out_channels[1:], strict=False
        ):
            seq: list[nn.Module] = [InvertedResidual(input_channels, output_channels, 2)]
            for _ in range(repeats - 1):
                seq.append(stride1_block(name, output_channels))
            setattr(self, name, nn.Sequential(*seq))
            input_channels = output_channels

        output_channels = self._stage_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(output_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.maxpool(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.conv5(x)
        x = x.mean([2, 3])  # global average pool, spelled as torchvision does
        return self.fc(x)


def _meta(width: str, *, params: int, macs: int, acc1: float, mflops: int) -> dict:
    # Numbers from torchvision's weight metadata (params, ImageNet-1k acc@1 with its eval transforms) and
    # the ShuffleNetV2 paper (Table 8 MFLOPs, i.e. multiply-adds).
    w = float(width[1:].replace("_", "."))
    return dict(
        family="shufflenetv2",
        width=w,
        params=params,
        macs=macs,  # counted by registry.count_params_and_macs (tests/models/test_zoo_registry.py checks it)
        task="classification",
        pure_cnn=True,
        acc1=acc1,
        paper_mflops=mflops,
        input_shape=(1, 3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        labels=IMAGENET_LABELS,
        description=f"ShuffleNetV2 {w}x (torchvision layout; ImageNet acc@1 {acc1} with pretrained weights)",
    )


@register_model(
    "shufflenet_v2_x0_5",
    **_meta("x0_5", params=1_366_792, macs=40_476_448, acc1=60.552, mflops=41),
    pretrained_url="https://download.pytorch.org/models/shufflenetv2_x0.5-f707e7126e.pth",
)
def shufflenet_v2_x0_5(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 0.5x, torchvision's ``shufflenet_v2_x0_5`` architecture."""
    return ShuffleNetV2(STAGES_REPEATS, STAGES_OUT_CHANNELS["x0_5"], num_classes)


@register_model(
    "shufflenet_v2_x1_0",
    **_meta("x1_0", params=2_278_604, macs=144_907_992, acc1=69.362, mflops=146),
    pretrained_url="https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth",
)
def shufflenet_v2_x1_0(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 1.0x, torchvision's ``shufflenet_v2_x1_0`` architecture."""
    return ShuffleNetV2(STAGES_REPEATS, STAGES_OUT_CHANNELS["x1_0"], num_classes)


@register_model(
    "shufflenet_v2_x1_5",
    **_meta("x1_5", params=3_503_624, macs=295_759_392, acc1=72.996, mflops=299),
    pretrained_url="https://download.pytorch.org/models/shufflenetv2_x1_5-3c479a10.pth",
)
def shufflenet_v2_x1_5(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 1.5x, torchvision's ``shufflenet_v2_x1_5`` architecture."""
    return ShuffleNetV2(STAGES_REPEATS, STAGES_OUT_CHANNELS["x1_5"], num_classes)


@register_model(
    "shufflenet_v2_x2_0",
    **_meta("x2_0", params=7_393_996, macs=583_253_464, acc1=76.230, mflops=591),
    pretrained_url="https://download.pytorch.org/models/shufflenetv2_x2_0-8be3c8ee.pth",
)
def shufflenet_v2_x2_0(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 2.0x, torchvision's ``shufflenet_v2_x2_0`` architecture."""
    return ShuffleNetV2(STAGES_REPEATS, STAGES_OUT_CHANNELS["x2_0"], num_classes)
