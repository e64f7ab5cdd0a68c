"""The CIFAR ResNets of He et al. (2016) used throughout the InfoPro paper.

Three stages of BasicBlocks with 16, 32 and 64 channels and a 3x3 stem, for 32x32 inputs;
depth = 6n + 2. A shortcut changes shape through a 1x1 convolution and batch norm, as in
the InfoPro reference code. The factories are registered in ``splitnet.backbones``
through splitnet's own pyproject.toml, the same route a plugin takes.
"""

from __future__ import annotations

from torch import nn

# Hand-picked cut points of the InfoPro paper (Wang et al., ICLR 2021), from the public
# reference code's networks/configs.py: [stage, block] means "after block `block` of layer
# `stage`", [0, 0] "after the stem". "infopro" is its InfoPro table; "infopro*" and
# "infopro*-stl10" its InfoPro_balanced_memory splits for CIFAR-10 and STL-10 (they differ at K=3).
_PAPER_CUTS = {
    32: {
        "infopro": {
            2: [[2, 1]],
            3: [[1, 4], [2, 4]],
            4: [[1, 2], [2, 1], [3, 0]],
            8: [[1, 0], [1, 2], [1, 4], [2, 1], [2, 3], [3, 0], [3, 2]],
            16: [
                [0, 0],
                [1, 0],
                [1, 1],
                [1, 2],
                [1, 3],
                [1, 4],
                [2, 0],
                [2, 1],
                [2, 2],
                [2, 3],
                [2, 4],
                [3, 0],
                [3, 1],
                [3, 2],
                [3, 3],
            ],
        },
    },
    110: {
        "infopro": {
            2: [[2, 8]],
            3: [[1, 17], [2, 17]],
            4: [[1, 11], [2, 7], [3, 3]],
            8: [[1, 4], [1, 11], [2, 0], [2, 7], [2, 14], [3, 3], [3, 10]],
            16: [
                [1, 1],
                [1, 4],
                [1, 7],
                [1, 10],
                [1, 13],
                [1, 16],
                [2, 1],
                [2, 4],
                [2, 7],
                [2, 11],
                [2, 15],
                [3, 1],
                [3, 5],
                [3, 9],
                [3, 13],
            ],
        },
        "infopro*": {
            2: [[1, 14]],
            3: [[1, 9], [2, 2]],
            4: [[1, 6], [1, 14], [2, 8]],
        },
        "infopro*-stl10": {
            2: [[1, 14]],
            3: [[1, 8], [2, 1]],
            4: [[1, 6], [1, 14], [2, 8]],
        },
    },
}


def _cut_label(stage: int, block: int) -> str:
    return "stem" if stage == 0 else f"layer{stage}.{block}"


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images.

    Args:
        depth: 20, 32, 44, 56, 110, 1202 or any 6n + 2.
        num_classes: size of the classifier output.
        in_chans: input channels.
        widths: channels of the three stages.

    Attributes:
        named_plans: the paper's hand-picked cuts for this depth, ``{name: {K: [labels]}}``,
            usable as ``splitnet.plan(model, 4, balance="infopro")``; all at block outputs.
    """

    default_input_size = (3, 32, 32)

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3, widths=(16, 32, 64)):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.depth = depth
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        in_planes = widths[0]
        for i, width in enumerate(widths):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(in_planes, width, stride=2 if (i > 0 and b == 0) else 1))
                in_planes = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_classes = num_classes
        self.named_plans = {
            name: {k: [_cut_label(*c) for c in cuts] for k, cuts in plans.items()}
            for name, plans in _PAPER_CUTS.get(depth, {}).items()
        }
        for m in self.modules():  # as the reference initialises it: normal(0, sqrt(2 / (k * k * out)))
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


def _factory(depth: int):
    def create(
        *,
        num_classes: int = 10,
        in_chans: int = 3,
        widths: tuple[int, int, int] = (16, 32, 64),
        pretrained: bool = False,
    ) -> CifarResNet:
        if pretrained:
            raise ValueError(
                f"cifar_resnet{depth} has no pretrained weights (it is trained from scratch): drop pretrained=True"
            )
        return CifarResNet(depth, num_classes=num_classes, in_chans=in_chans, widths=tuple(widths))

    create.__name__ = f"cifar_resnet{depth}"
    create.__doc__ = (
        f"CIFAR ResNet-{depth} ({(depth - 2) // 6} BasicBlocks per stage, 16/32/64 channels). Options: "
        "``num_classes``, ``in_chans``, ``widths``; ``pretrained=True`` is an error (no weights exist)."
    )
    return create


cifar_resnet20 = _factory(20)
cifar_resnet32 = _factory(32)
cifar_resnet44 = _factory(44)
cifar_resnet56 = _factory(56)
cifar_resnet110 = _factory(110)
cifar_resnet1202 = _factory(1202)
