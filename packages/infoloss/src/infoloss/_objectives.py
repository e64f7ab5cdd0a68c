"""The local objectives that infoloss registers in ``splitnet.objectives``.

Each objective class is its own factory: splitnet calls it once per cut as
``Objective(context, **options)`` with the cut's frozen :class:`CutContext`, and it returns
a module whose ``forward(features, inputs, targets)`` is the scalar local loss; it owns its
auxiliary nets. The options are the class's keyword parameters, so a misspelled one is an
error naming them. Options may be strings, as they come from ``--objective-opt name=value``.
``infopro``, ``greedy_aux`` and ``dgl`` are the classes under their entry-point names.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from localkit_registry import CutContext

from ._aux import DGL_TYPES, AuxHead, DenseAuxHead, DGLHead, parse_aux_config
from ._decoder import INTERPOLATE_MODES, ReconstructionDecoder
from ._lambdas import paper_lambdas
from ._layout import FeatureLayout
from ._losses import RECON_LOSSES, at_least_float32, linear_schedule, reconstruction_loss, supcon_loss
from ._options import parse_bool, parse_choice, parse_float, parse_int, parse_pair

TASK_LOSSES = ("contrast", "cross_entropy")
IGNORE_INDEX = 255
_RANGE_TOLERANCE = 1e-4

log = logging.getLogger(__name__)


class _CutObjective(nn.Module):
    """What every objective of one cut shares: its context, and the input checks."""

    name = "objective"

    def __init__(self, context: CutContext, check_inputs: Any):
        super().__init__()
        if not isinstance(context, CutContext):
            raise TypeError(
                f"{self.name}: the first argument must be the cut's localkit_registry.CutContext, "
                f"got {type(context).__name__}; build one with CutContext(feature_shape=..., num_classes=...)"
            )
        self.context = context
        self.index, self.num_cuts = context.index, context.num_cuts
        self.owner = f"{self.name} (cut {self.index} of {self.num_cuts})"
        self.task = context.task
        self.num_classes = context.num_classes
        self.check_inputs = parse_bool(self.owner, "check_inputs", check_inputs)
        self.layout = FeatureLayout(
            context.feature_shape,
            context.layout,
            context.token_grid,
            context.num_prefix_tokens,
            owner=self.owner,
        )

    def _build(self, factory: Any, *args: Any, **kwargs: Any) -> nn.Module:
        """Build an auxiliary net, naming this objective and cut in any error."""
        try:
            return factory(*args, **kwargs)
        except ValueError as error:
            raise ValueError(f"{self.owner}: {error}") from error

    def _check(
        self,
        features: torch.Tensor,
        targets: torch.Tensor,
        images: torch.Tensor | None = None,
        image_range: bool = False,
    ) -> None:
        """Shapes always; label (and, with ``image_range``, ``[0, 1]`` image) ranges when ``check_inputs``.

        The range checks cost one host synchronisation together.
        """
        self.layout.check(features)
        batch = features.shape[0]
        dense = self.task == "segmentation"
        expected = "(B, H, W)" if dense else "(B,)"
        if targets.dim() != (3 if dense else 1) or targets.shape[0] != batch:
            raise ValueError(
                f"{self.owner}: {self.task} targets must be {expected} with B = {batch}, "
                f"got {tuple(targets.shape)}"
            )
        if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
            raise ValueError(f"{self.owner}: targets must be integer class indices, got {targets.dtype}")
        if images is not None and images.shape[0] != batch:
            raise ValueError(f"{self.owner}: {images.shape[0]} inputs for a batch of {batch} features")
        if not self.check_inputs or batch == 0 or features.is_meta:
            return  # (meta tensors, as in a plan made on the meta device, have no values to check)
        labels = targets.masked_fill(targets == IGNORE_INDEX, 0) if dense else targets
        stats = [labels.min(), labels.max()]
        if image_range:
            stats += [images.min(), images.max()]
        values = torch.stack([s.float() for s in stats]).tolist()
        low, high = values[0], values[1]
        if low < 0 or high >= self.num_classes:
            allowed = f"0 .. {self.num_classes - 1}" + (f" or {IGNORE_INDEX} (ignored)" if dense else "")
            raise ValueError(
                f"{self.owner}: labels must be in {allowed}, got values from {low:g} to {high:g}; "
                "check num_classes and the dataset's targets"
            )
        if image_range and (values[2] < -_RANGE_TOLERANCE or values[3] > 1 + _RANGE_TOLERANCE):
            raise ValueError(
                f"{self.owner}: the reconstruction target is the input image in [0, 1], but the inputs "
                f"range from {values[2]:g} to {values[3]:g}; they look normalised: pass input_mean and "
                "input_std (the normalisation the dataset applied)"
            )


class _TaskTerm(nn.Module):
    """The task-relevant term through an auxiliary head: SupCon, cross-entropy or dense CE."""

    def __init__(
        self,
        owner: _CutObjective,
        *,
        loss: str,
        config: str,
        widen: float,
        feature_dim: int,
        channels: int | None,
        temperature: float = 0.07,
    ):
        super().__init__()
        self.loss = loss
        self.dense = owner.task == "segmentation"
        self.temperature = temperature
        layout = owner.layout
        shape = {
            "feature_shape": layout.shape,
            "layout": layout.layout,
            "token_grid": layout.token_grid,
            "num_prefix_tokens": layout.num_prefix_tokens,
            "config": config,
            "widen": widen,
            "hidden_dim": feature_dim,
            "channels": channels,
        }
        if self.dense:
            self.head = owner._build(DenseAuxHead, num_classes=owner.num_classes, **shape)
        else:
            out = feature_dim if loss == "contrast" else owner.num_classes
            self.head = owner._build(AuxHead, out_features=out, **shape)

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.long()
        if self.dense:
            logits = at_least_float32(self.head(features, size=targets.shape[-2:]))
            total = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
            return total / (targets != IGNORE_INDEX).sum().clamp(min=1)
        output = self.head(features)
        if self.loss == "contrast":
            return supcon_loss(output, targets, temperature=self.temperature)
        return F.cross_entropy(at_least_float32(output), targets)


def _common_options(owner: str, widen: Any, feature_dim: Any, aux_channels: Any, aux_config: Any) -> dict:
    widen = parse_float(owner, "widen", widen)
    if widen <= 0:
        raise ValueError(f"{owner}: option widen={widen!r} must be positive")
    feature_dim = parse_int(owner, "feature_dim", feature_dim)
    unset = aux_channels is None or str(aux_channels).strip().lower() in ("", "none")
    channels = None if unset else parse_int(owner, "aux_channels", aux_channels)
    if feature_dim < 1 or (channels is not None and channels < 1):
        raise ValueError(f"{owner}: feature_dim and aux_channels must be positive")
    try:
        parse_aux_config(aux_config)
    except ValueError as error:
        raise ValueError(f"{owner}: option aux_config: {error}") from None
    return {"widen": widen, "feature_dim": feature_dim, "channels": channels, "config": str(aux_config)}


def _per_channel(owner: str, name: str, value: Any, channels: int, dims: int) -> torch.Tensor:
    stats = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if stats.numel() not in (1, channels):
        raise ValueError(f"{owner}: {name} has {stats.numel()} values for {channels} input channels")
    return stats.expand(channels).reshape(1, channels, *([1] * dims)).clone()


class InfoProObjective(_CutObjective):
    """InfoPro's local loss at one cut: ``lambda_recon * reconstruction + lambda_task * task term``.

    Wang et al., "Revisiting Locally Supervised Learning: an Alternative to End-to-end
    Training", ICLR 2021. The reconstruction term (:class:`ReconstructionDecoder`, BCE or
    MSE against the un-normalised input) estimates ``I(h, x)``; the task term (an
    :class:`AuxHead` with the supervised contrastive loss, or cross-entropy) estimates
    ``I(h, y)``. The weights move linearly from their first-cut to their last-cut values
    (:func:`linear_schedule`). An auxiliary net whose weight is 0 at this cut is not built.

    Options are keywords; numbers may be given as strings, and an unknown one is a
    ``TypeError`` (splitnet reports it as an ``OptionError`` naming these).

    Args:
        context: the cut (splitnet passes it; see docs/plugins.md). Reconstruction needs
            its ``input_shape``, and ``input_mean``/``input_std`` when inputs are normalised.
        task_loss: ``"contrast"`` (SupCon) or ``"cross_entropy"``; default ``"contrast"``
            for classification and ``"cross_entropy"`` for segmentation (the only one
            supported there).
        recon: ``"bce"`` (default, the paper's) or ``"mse"``.
        lambda_recon: reconstruction weight, a constant or a ``(first, last)`` pair (``"5,0"``);
            default: the reference code's for the context's ``backbone``, ``dataset``,
            ``named_plan`` and K (:func:`paper_lambdas`, with its documented fallbacks). Where
            the values come from is in ``lambda_source`` and in the objective's ``repr``.
        lambda_task: task-term weight, the same way.
        aux_config: auxiliary head, one of :data:`AUX_CONFIGS` (default ``"1c2f"``).
        widen: width multiplier of the auxiliary nets (1).
        feature_dim: contrastive embedding size and hidden size of the heads (128).
        temperature: SupCon temperature (0.07).
        interpolate: ``"bilinear"`` (default) or ``"nearest"`` upsampling in the decoder.
        aux_channels: width of the head's convolutions (default: the doubling rule).
        check_inputs: check label and image ranges on every call (one host sync; True).

    Raises:
        TypeError: ``context`` is not a :class:`CutContext`.
        ValueError: invalid options, a context it cannot serve (reconstruction asked for
            features without a spatial layout or without ``input_shape``), both weights 0
            at this cut, contrast with segmentation targets.

    Example:
        >>> import torch
        >>> context = CutContext(feature_shape=(16, 32, 32), num_classes=10, input_shape=(3, 32, 32),
        ...     index=0, num_cuts=3)
        >>> objective = InfoProObjective(context)
        >>> loss = objective(torch.randn(8, 16, 32, 32), torch.rand(8, 3, 32, 32), torch.randint(10, (8,)))
        >>> loss.shape
        torch.Size([])
    """

    name = "infopro"

    def __init__(
        self,
        context: CutContext,
        *,
        task_loss: str | None = None,
        recon: str = "bce",
        lambda_recon: Any = None,
        lambda_task: Any = None,
        aux_config: str = "1c2f",
        widen: Any = 1.0,
        feature_dim: Any = 128,
        temperature: Any = 0.07,
        interpolate: str = "bilinear",
        aux_channels: Any = None,
        check_inputs: Any = True,
    ):
        super().__init__(context, check_inputs)
        owner = self.owner
        dense = self.task == "segmentation"
        default_loss = "cross_entropy" if dense else "contrast"
        self.task_loss = parse_choice(owner, "task_loss", task_loss or default_loss, TASK_LOSSES)
        if dense and self.task_loss == "contrast":
            raise ValueError(
                f"{owner}: the contrastive task term needs one label per sample; for segmentation "
                "targets use task_loss=cross_entropy"
            )
        self.recon = parse_choice(owner, "recon", recon, RECON_LOSSES)
        interpolate = parse_choice(owner, "interpolate", interpolate, INTERPOLATE_MODES)
        self.temperature = parse_float(owner, "temperature", temperature)
        if self.temperature <= 0:
            raise ValueError(f"{owner}: option temperature={temperature!r} must be positive")
        heads = _common_options(owner, widen, feature_dim, aux_channels, aux_config)

        self.lambda_recon_pair, self.lambda_task_pair, self.lambda_source = self._lambdas(
            lambda_recon, lambda_task
        )
        self.lambda_recon = linear_schedule(*self.lambda_recon_pair, self.index, self.num_cuts)
        self.lambda_task = linear_schedule(*self.lambda_task_pair, self.index, self.num_cuts)
        if self.lambda_recon == 0 and self.lambda_task == 0:
            raise ValueError(
                f"{owner}: lambda_recon {self.lambda_recon_pair} and lambda_task {self.lambda_task_pair} "
                "are both 0 at this cut, so the module before it would not learn; choose weights "
                "that are positive at every cut"
            )

        self.decoder: ReconstructionDecoder | None = None
        self.register_buffer("input_mean", None, persistent=False)
        self.register_buffer("input_std", None, persistent=False)
        if self.lambda_recon > 0:
            self._init_reconstruction(heads["widen"], interpolate)
        self.task_term = (
            _TaskTerm(self, loss=self.task_loss, temperature=self.temperature, **heads)
            if self.lambda_task > 0
            else None
        )

    def _lambdas(self, lambda_recon: Any, lambda_task: Any) -> tuple[tuple, tuple, str]:
        """The ``(first, last)`` weights: the user's, else the reference code's for this network, data and K."""
        context = self.context
        default = paper_lambdas(
            self.num_cuts, backbone=context.backbone, dataset=context.dataset, named_plan=context.named_plan
        )
        recon = (
            default.lambda_recon
            if lambda_recon is None
            else parse_pair(self.owner, "lambda_recon", lambda_recon)
        )
        task = (
            default.lambda_task if lambda_task is None else parse_pair(self.owner, "lambda_task", lambda_task)
        )
        if lambda_recon is not None and lambda_task is not None:
            return recon, task, "given"
        source = default.describe()
        if lambda_recon is not None or lambda_task is not None:
            source = (
                f"{'lambda_recon' if lambda_task is None else 'lambda_task'} given, the other from {source}"
            )
        log.debug("%s: lambdas from %s", self.owner, source)
        return recon, task, source

    def _init_reconstruction(self, widen: float, interpolate: str) -> None:
        owner, context = self.owner, self.context
        if not self.layout.has_geometry:
            raise ValueError(
                f"{owner}: reconstruction needs spatial features, got {self.layout.describe()}; "
                "pass token_grid for NLC tokens, or lambda_recon=0"
            )
        if context.input_shape is None:
            raise ValueError(f"{owner}: reconstruction needs input_shape (one input sample's shape)")
        self.decoder = self._build(
            ReconstructionDecoder,
            self.layout.shape,
            context.input_shape,
            layout=self.layout.layout,
            token_grid=self.layout.token_grid,
            num_prefix_tokens=self.layout.num_prefix_tokens,
            widen=widen,
            interpolate=interpolate,
        )
        if context.input_mean is not None:
            channels, dims = self.decoder.input_shape[0], len(self.decoder.input_shape) - 1
            self.input_mean = _per_channel(owner, "input_mean", context.input_mean, channels, dims)
            self.input_std = _per_channel(owner, "input_std", context.input_std, channels, dims)

    def reconstruction_target(self, inputs: torch.Tensor) -> torch.Tensor:
        """The ``[0, 1]`` image the decoder predicts: ``inputs * std + mean``, clamped to ``[0, 1]``.

        Clamping only removes rounding noise, or values that augmentations applied after
        normalisation (random erasing) pushed out of range.
        """
        image = at_least_float32(inputs)
        if self.input_mean is not None:
            image = image * self.input_std + self.input_mean
        return image.clamp(0.0, 1.0)

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The weighted local loss of this cut.

        Args:
            features: the features at the cut, in the layout given at construction.
            inputs: the (normalised) input batch of the network, ``(B, *input_shape)``.
            targets: ``(B,)`` labels, or ``(B, H, W)`` for segmentation.

        Returns:
            The scalar loss.

        Raises:
            ValueError: shapes that differ from the ones this objective was built for,
                labels outside ``0 .. num_classes - 1``, or inputs outside ``[0, 1]``
                without ``input_mean``/``input_std``.
        """
        if self.decoder is not None:
            expected = self.decoder.input_shape
            if inputs is None or tuple(inputs.shape[1:]) != expected:
                got = None if inputs is None else tuple(inputs.shape)
                raise ValueError(
                    f"{self.owner}: inputs must be (B, {', '.join(map(str, expected))}), got {got}"
                )
        self._check(
            features,
            targets,
            inputs if self.decoder is not None else None,
            image_range=self.decoder is not None and self.input_mean is None,
        )
        loss = None
        if self.decoder is not None:
            recon = reconstruction_loss(
                self.decoder(features), self.reconstruction_target(inputs), self.recon
            )
            loss = self.lambda_recon * recon
        if self.task_term is not None:
            task = self.lambda_task * self.task_term(features, targets)
            loss = task if loss is None else loss + task
        return loss

    def extra_repr(self) -> str:
        return (
            f"{self.owner}, {self.layout.describe()}, lambda_recon={self.lambda_recon:g}, "
            f"lambda_task={self.lambda_task:g} ({self.lambda_source}), task_loss={self.task_loss}, "
            f"recon={self.recon}"
        )


class GreedyAuxObjective(_CutObjective):
    """Greedy supervised learning through InfoPro's configurable auxiliary heads.

    The loss is the cross-entropy of an :class:`AuxHead` (``aux_config``, default
    ``"1c2f"``) on the features, or the per-pixel cross-entropy of a :class:`DenseAuxHead`
    (255 ignored) for segmentation; no reconstruction term. With ``aux_config="0c1f"`` it is
    the paper's "Greedy SL" baseline (which splitnet also provides as ``greedy``).

    Args:
        context: the cut (splitnet passes it).
        aux_config: one of :data:`AUX_CONFIGS` (``"1c2f"``).
        widen: width multiplier (1).
        feature_dim: hidden size of the fully connected layers (128).
        aux_channels: width of the head's convolutions (default: the doubling rule).
        check_inputs: check label ranges on every call (one host sync; True).

    Raises:
        TypeError: ``context`` is not a :class:`CutContext`.
        ValueError: invalid options, wrong shapes or labels in ``forward``.

    Example:
        >>> import torch
        >>> objective = GreedyAuxObjective(CutContext(feature_shape=(64, 8, 8), num_classes=10))
        >>> objective(torch.randn(4, 64, 8, 8), None, torch.randint(10, (4,))).shape
        torch.Size([])
    """

    name = "greedy-aux"

    def __init__(
        self,
        context: CutContext,
        *,
        aux_config: str = "1c2f",
        widen: Any = 1.0,
        feature_dim: Any = 128,
        aux_channels: Any = None,
        check_inputs: Any = True,
    ):
        super().__init__(context, check_inputs)
        heads = _common_options(self.owner, widen, feature_dim, aux_channels, aux_config)
        self.task_term = _TaskTerm(self, loss="cross_entropy", **heads)

    def forward(self, features: torch.Tensor, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the auxiliary head; ``inputs`` is not used."""
        self._check(features, targets)
        return self.task_term(features, targets)

    def extra_repr(self) -> str:
        return f"{self.owner}, {self.layout.describe()}"


class DGLObjective(_CutObjective):
    """Decoupled Greedy Learning's local loss: cross-entropy of a :class:`DGLHead`.

    Belilovsky, Eickenberg and Oyallon, "Decoupled Greedy Learning of CNNs", ICML 2020.
    Classification only.

    Args:
        context: the cut (splitnet passes it).
        aux_type: one of :data:`DGL_TYPES` (``"mlp-sr"``, the paper's default).
        check_inputs: check label ranges on every call (one host sync; True).

    Raises:
        TypeError: ``context`` is not a :class:`CutContext`.
        ValueError: segmentation or video features, invalid options, wrong shapes or labels.

    Example:
        >>> import torch
        >>> objective = DGLObjective(CutContext(feature_shape=(32, 16, 16), num_classes=10))
        >>> objective(torch.randn(4, 32, 16, 16), None, torch.randint(10, (4,))).shape
        torch.Size([])
    """

    name = "dgl"

    def __init__(self, context: CutContext, *, aux_type: str = "mlp-sr", check_inputs: Any = True):
        super().__init__(context, check_inputs)
        if self.task != "classification":
            raise ValueError(
                f"{self.owner}: the DGL auxiliary net is a classifier; for {self.task} use greedy-aux "
                "or infopro with task_loss=cross_entropy"
            )
        self.aux_type = parse_choice(self.owner, "aux_type", aux_type, DGL_TYPES)
        layout_args = {
            "layout": self.layout.layout,
            "token_grid": self.layout.token_grid,
            "num_prefix_tokens": self.layout.num_prefix_tokens,
        }
        self.head = self._build(
            DGLHead, self.layout.shape, self.num_classes, aux_type=self.aux_type, **layout_args
        )

    def forward(self, features: torch.Tensor, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the DGL head; ``inputs`` is not used."""
        self._check(features, targets)
        return F.cross_entropy(at_least_float32(self.head(features)), targets.long())

    def extra_repr(self) -> str:
        return f"{self.owner}, {self.layout.describe()}, aux_type={self.aux_type}"


# The entry points (pyproject.toml) and the public names: each class is its own factory.
infopro = InfoProObjective
greedy_aux = GreedyAuxObjective
dgl = DGLObjective
