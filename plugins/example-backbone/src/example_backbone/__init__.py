"""localkit-example-backbone: a third-party localkit plugin with a backbone, an objective and a rule.

``example_convnet`` (group ``splitnet.backbones``) is a small CNN for 32x32 images,
``example_probe`` (group ``splitnet.objectives``) trains the features at a cut through a
linear probe, and ``median`` (group ``scoredist.rules``) scores a sample by the median of
its judges' scores. All are declared in ``pyproject.toml``; nothing here imports splitnet
or scoredist, only the small registry distribution whose ``CutContext`` the objective takes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from localkit_registry import CutContext

__version__ = "0.1.0"

__all__ = ["ExampleConvNet", "LinearProbe", "example_convnet", "example_probe", "median"]


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


def example_convnet(*, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> ExampleConvNet:
    """The ``example_convnet`` entry of ``splitnet.backbones``; its keywords are its options.

    Example:
        >>> example_convnet(num_classes=4)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """
    return ExampleConvNet(num_classes, in_channels, width)


class LinearProbe(nn.Module):
    """A local objective: global average pooling, dropout, a linear classifier, cross-entropy.

    Args:
        channels: channels of the features at the cut.
        num_classes: classes of the task.
        dropout: dropout probability before the classifier.
    """

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        return F.cross_entropy(self.classifier(self.dropout(pooled)), targets.long())


def example_probe(context: CutContext, *, dropout: float = 0.0) -> LinearProbe:
    """The ``example_probe`` entry of ``splitnet.objectives``: a :class:`LinearProbe` for one cut.

    splitnet calls it once per cut with the cut's frozen ``context`` and the user's options
    as keywords (``--objective-opt dropout=0.1``); an option it does not declare is an error
    naming ``dropout``.

    Raises:
        ValueError: features that are not ``NCHW`` maps, or a task other than classification.

    Example:
        >>> context = CutContext(feature_shape=(16, 32, 32), num_classes=10)
        >>> example_probe(context, dropout=0.1).classifier
        Linear(in_features=16, out_features=10, bias=True)
    """
    if context.layout != "NCHW" or context.task != "classification":
        raise ValueError(
            f"objective 'example_probe' needs NCHW features and a classification task, "
            f"got {context.layout} features for {context.task}"
        )
    return LinearProbe(context.feature_shape[0], context.num_classes, float(dropout))


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
