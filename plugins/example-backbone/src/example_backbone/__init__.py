"""example-backbone: a third-party localkit plugin with one backbone and one scoring rule.

``example_convnet`` (group ``splitnet.backbones``) is a small CNN for 32x32 images and
``median`` (group ``scoredist.rules``) scores a sample by the median of its judges' scores.
Both are declared in ``pyproject.toml``; nothing here imports splitnet or scoredist.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__version__ = "0.1.0"

__all__ = ["ExampleConvNet", "example_convnet", "median"]


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution, batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ExampleConvNet(nn.Module):
    """Three stages of two 3x3 convolutions, global average pooling and a linear classifier.

    The second and third stages halve the resolution and double the channels.

    Args:
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        width: channels of the first stage.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, num_classes)``.
    """

    default_input_size = (3, 32, 32)

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn_relu(in_channels, width), conv_bn_relu(width, width))
        self.stage2 = nn.Sequential(conv_bn_relu(width, 2 * width, 2), conv_bn_relu(2 * width, 2 * width))
        self.stage3 = nn.Sequential(conv_bn_relu(2 * width, 4 * width, 2), conv_bn_relu(4 * width, 4 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))


def example_convnet(
    *, num_classes: int = 10, in_channels: int = 3, width: int = 16, **kwargs: Any
) -> ExampleConvNet:
    """The ``example_convnet`` entry of ``splitnet.backbones``; unknown keywords are ignored.

    Example:
        >>> example_convnet(num_classes=4)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """
    return ExampleConvNet(num_classes, in_channels, width)


def median(judge_scores: Any, difficulty: Any = None, **kwargs: Any) -> Any:
    """The ``median`` entry of ``scoredist.rules``: the judges' median, times the difficulty when given.

    With an even number of judges it is the mean of the two middle scores. Returns a tensor
    for a tensor input and an array otherwise; unknown keywords are ignored.

    Raises:
        ValueError: judge scores that are not ``(N, J)``, or a difficulty that is not ``(N,)``.

    Example:
        >>> median([[7.0, 9.0, 8.0, 1.0]]).tolist()
        [7.5]
    """
    scores = torch.as_tensor(judge_scores, dtype=torch.float64)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"rule 'median' needs judge scores of shape (N, J), got {tuple(scores.shape)}")
    final = scores.quantile(0.5, dim=1)
    if difficulty is not None:
        difficulty = torch.as_tensor(difficulty, dtype=torch.float64)
        if difficulty.shape != final.shape:
            raise ValueError(
                f"rule 'median' needs one difficulty per sample, shape ({len(final)},), "
                f"got {tuple(difficulty.shape)}"
            )
        final = final * difficulty
    return final if torch.is_tensor(judge_scores) else final.numpy()
