"""The loss terms of the local objectives, and InfoPro's weight schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F

RECON_LOSSES = ("bce", "mse")


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or kept in float64: half-precision losses lose too much."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, "L_out") with one view per sample.

    The embeddings are L2-normalised, ``z_i = f_i / ||f_i||``. For every anchor ``i`` with
    positives ``P(i) = {p != i : y_p = y_i}`` and contrast set ``A(i) = {a != i}``::

        l_i = -(temperature / base_temperature) / |P(i)|
              * sum_{p in P(i)} log( exp(z_i.z_p / temperature) / sum_{a in A(i)} exp(z_i.z_a / temperature) )

    and the loss is the mean of ``l_i`` over all anchors. As in the InfoPro reference code,
    an anchor without positives contributes ``0`` and still counts in the mean.

    Args:
        features: ``(B, D)`` embeddings (normalised here; computed in float32).
        labels: ``(B,)`` integer class labels.
        temperature: the softmax temperature (InfoPro: 0.07).
        base_temperature: the loss is scaled by ``temperature / base_temperature``
            (InfoPro's reference code fixes it at 0.07, so the scale is 1 by default).

    Returns:
        The scalar loss. A batch of one sample has no pairs: the loss is ``0`` (with a graph).

    Raises:
        ValueError: ``features`` is not 2-D, or ``labels`` does not hold one label per row.

    Example:
        >>> import torch
        >>> loss = supcon_loss(torch.randn(8, 128), torch.tensor([0, 1, 0, 1, 2, 2, 3, 3]))
        >>> loss.shape
        torch.Size([])
    """
    if features.dim() != 2:
        raise ValueError(f"supcon_loss: features must be (B, D), got {tuple(features.shape)}")
    labels = labels.reshape(-1)
    if labels.shape[0] != features.shape[0]:
        raise ValueError(f"supcon_loss: {features.shape[0]} embeddings but {labels.shape[0]} labels")
    batch = features.shape[0]
    if batch < 2:
        return features.sum() * 0.0
    z = F.normalize(at_least_float32(features), dim=1)
    self_pair = torch.eye(batch, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pair, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_pair
    # where() rather than a product: the -inf on the diagonal would turn 0 * -inf into NaN.
    summed = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    mean_log_prob_pos = summed / positive.sum(dim=1).clamp(min=1)
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Reconstruction error of a predicted image against the ``[0, 1]`` input image.

    The prediction is ``sigmoid(logits)``. ``"bce"`` is the binary cross-entropy
    ``-mean(t log p + (1 - t) log(1 - p))`` (InfoPro's default), computed from the logits,
    which is stable and safe under autocast; ``"mse"`` is ``mean((p - t)^2)``. Both are
    computed in at least float32.

    Args:
        logits: predicted image logits, any shape.
        target: the image in ``[0, 1]``, same shape as ``logits``.
        kind: ``"bce"`` or ``"mse"``.

    Returns:
        The scalar loss, averaged over every element.

    Raises:
        ValueError: unknown ``kind`` or mismatched shapes.

    Example:
        >>> import torch
        >>> round(reconstruction_loss(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)).item(), 4)
        0.6931
    """
    if logits.shape != target.shape:
        raise ValueError(
            f"reconstruction_loss: prediction {tuple(logits.shape)} and target {tuple(target.shape)} differ"
        )
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(at_least_float32(logits), at_least_float32(target))
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(at_least_float32(logits)), at_least_float32(target))
    raise ValueError(f"reconstruction_loss: unknown kind {kind!r}; expected one of {RECON_LOSSES}")


def linear_schedule(first: float, last: float, index: int, num_cuts: int) -> float:
    """InfoPro's weight at cut ``index``: linear from ``first`` (cut 0) to ``last`` (last cut).

    ``ratio = index / (num_cuts - 1)`` (``0`` when there is a single cut) and the weight is
    ``first * (1 - ratio) + last * ratio``, as in the reference code's ``ixx_r``/``ixy_r``.

    Args:
        first: the weight at the first cut.
        last: the weight at the last cut.
        index: 0-based cut index.
        num_cuts: number of cuts (``K - 1`` for ``K`` local modules).

    Returns:
        The weight at this cut.

    Raises:
        ValueError: ``index`` is not in ``0 .. num_cuts - 1``.

    Example:
        >>> [linear_schedule(1.0, 0.0, i, 3) for i in range(3)]
        [1.0, 0.5, 0.0]
    """
    if not 0 <= index < num_cuts:
        raise ValueError(f"linear_schedule: cut index {index} is outside 0 .. {num_cuts - 1}")
    ratio = index / (num_cuts - 1) if num_cuts > 1 else 0.0
    return first * (1 - ratio) + last * ratio
