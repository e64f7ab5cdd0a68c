"""USDL and MUSDL heads: MLPs from clip features to score distributions, and their loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PAPER_HIDDEN = (256, 128)
KL_REDUCTIONS = ("mean", "batchmean")


def _mlp(in_features: int, hidden: Sequence[int], num_bins: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, num_bins))
    return nn.Sequential(*layers)


class ScoreDistributionHead(nn.Module):
    """One or more MLPs mapping clip features to distributions over score bins.

    The paper's head is ``in_features -> 256 -> 128 -> num_bins`` with ReLU and a softmax;
    this module returns log-probabilities (a log-softmax), which is the softmax computed
    stably and what the KL loss needs.

    Args:
        in_features: size ``F`` of the clip features.
        num_bins: number of score bins ``K``.
        num_distributions: ``D``, one per judge (MUSDL) or 1 (USDL).
        hidden: widths of the hidden layers.

    Shape:
        ``(B, F)`` features -> ``(B, D, K)`` log-probabilities.

    Raises:
        ValueError: a size is not positive, or the input is not ``(B, in_features)``.
    """

    def __init__(
        self,
        in_features: int,
        num_bins: int,
        num_distributions: int = 1,
        hidden: Sequence[int] = PAPER_HIDDEN,
    ):
        super().__init__()
        for name, value in (
            ("in_features", in_features),
            ("num_bins", num_bins),
            ("num_distributions", num_distributions),
            *(("hidden width", h) for h in hidden),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_features = int(in_features)
        self.num_bins = int(num_bins)
        self.num_distributions = int(num_distributions)
        self.hidden = tuple(int(h) for h in hidden)
        self.mlps = nn.ModuleList(
            _mlp(self.in_features, self.hidden, self.num_bins) for _ in range(self.num_distributions)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects clip features of shape (B, {self.in_features}), "
                f"got {tuple(features.shape)}; average the segment features first"
            )
        logits = torch.stack([mlp(features) for mlp in self.mlps], dim=1)
        return torch.log_softmax(logits, dim=-1)


class USDLHead(ScoreDistributionHead):
    """USDL: one distribution over the final score's bins.

    Example:
        >>> head = USDLHead(in_features=1024, num_bins=101)
        >>> head(torch.zeros(2, 1024)).shape
        torch.Size([2, 1, 101])
    """

    def __init__(self, in_features: int, num_bins: int, hidden: Sequence[int] = PAPER_HIDDEN):
        super().__init__(in_features, num_bins, 1, hidden)


class MUSDLHead(ScoreDistributionHead):
    """MUSDL: one distribution per judge (or per sub-score), each over the judges' bins.

    Example:
        >>> head = MUSDLHead(in_features=1024, num_bins=21, num_judges=7)
        >>> head(torch.zeros(2, 1024)).shape
        torch.Size([2, 7, 21])
    """

    def __init__(
        self, in_features: int, num_bins: int, num_judges: int, hidden: Sequence[int] = PAPER_HIDDEN
    ):
        super().__init__(in_features, num_bins, num_judges, hidden)


def kl_loss(log_probs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """KL divergence from the soft labels to the predictions, summed over judges.

    Per element ``t * (log t - log p)`` with ``0 log 0 = 0``, reduced per distribution ``d``
    and summed over the ``D`` distributions (judges):

    - ``"mean"`` (the default, the reference code's): the mean over the batch *and the bins*,
      ``sum_d mean_{b,k}``. This is ``nn.KLDivLoss()`` with its default reduction applied to
      each judge, the per-judge losses summed, as the official MUSDL code computes it.
    - ``"batchmean"`` (ours): the true KL divergence of each sample, averaged over the
      batch, ``sum_d mean_b sum_k``; ``K`` times the reference's value.

    The two differ by the constant number of bins ``K``. Adam is nearly invariant to a
    constant factor of the loss, but not its coupled weight decay: ``weight_decay`` is
    added to the gradient, so the same value weighs ``K`` times more against the
    reference's smaller loss than against the true KL.

    Args:
        log_probs: ``(B, D, K)`` predicted log-probabilities.
        targets: ``(B, D, K)`` soft labels, each summing to 1.
        reduction: ``"mean"`` or ``"batchmean"``.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: the shapes differ, or an unknown reduction.

    Example:
        >>> t = torch.tensor([[[0.25, 0.75]]])
        >>> round(float(kl_loss(torch.tensor([[[0.5, 0.5]]]).log(), t)), 4)
        0.0654
        >>> round(float(kl_loss(torch.tensor([[[0.5, 0.5]]]).log(), t, "batchmean")), 4)
        0.1308
    """
    if log_probs.shape != targets.shape or log_probs.ndim != 3:
        raise ValueError(
            f"kl_loss needs predictions and soft labels of the same shape (B, D, K), "
            f"got {tuple(log_probs.shape)} and {tuple(targets.shape)}"
        )
    per_element = torch.xlogy(targets, targets) - targets * log_probs
    if reduction == "mean":
        return per_element.mean(dim=(0, 2)).sum()
    if reduction == "batchmean":
        return per_element.sum(dim=-1).mean(dim=0).sum()
    raise ValueError(f"unknown KL reduction {reduction!r}; choose one of {', '.join(KL_REDUCTIONS)}")
