"""Score bins, Gaussian soft labels and decoding of score distributions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

DECODE_METHODS = ("argmax", "expectation")


def _describe(ids: Sequence[str] | None, index: int) -> str:
    if ids is not None and index < len(ids):
        return f"sample '{ids[index]}'"
    return f"sample #{index}"


@dataclass(frozen=True)
class ScoreBins:
    """Evenly spaced score values ``low, low + step, ..., high`` that a distribution is over.

    Args:
        low: the lowest score (the first bin's centre).
        high: the highest score (the last bin's centre).
        num: number of bins, at least 2; the step is ``(high - low) / (num - 1)``.

    Raises:
        ValueError: a bound is not finite, ``high <= low``, or ``num < 2``.

    Example:
        >>> bins = ScoreBins(0.0, 104.5, 101)  # MTL-AQA final scores, as in the paper
        >>> round(bins.step, 4)
        1.045
        >>> ScoreBins.from_step(0, 10, 0.5).num  # one MTL-AQA judge
        21
    """

    low: float
    high: float
    num: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"score bins need finite bounds, got low={self.low}, high={self.high}")
        if self.high <= self.low:
            raise ValueError(
                f"score bins need high > low, got low={self.low}, high={self.high}; swap the bounds"
            )
        if int(self.num) != self.num or self.num < 2:
            raise ValueError(f"score bins need an integer number of bins >= 2, got {self.num}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        object.__setattr__(self, "num", int(self.num))

    @classmethod
    def from_step(cls, low: float, high: float, step: float) -> ScoreBins:
        """Bins from ``low`` to ``high`` every ``step`` (JIGSAWS: ``from_step(6, 30, 1)``, 25 bins).

        Raises:
            ValueError: ``step`` is not positive or does not divide ``high - low``.
        """
        if not step > 0:
            raise ValueError(f"the step between score bins must be positive, got {step}")
        count = (high - low) / step
        if abs(count - round(count)) > 1e-6:
            raise ValueError(
                f"step {step} does not divide the range {low}..{high} into whole bins; "
                f"choose a step that does, or give the number of bins: ScoreBins({low}, {high}, num)"
            )
        return cls(low, high, round(count) + 1)

    @property
    def step(self) -> float:
        """Distance between neighbouring bins, in score units."""
        return (self.high - self.low) / (self.num - 1)

    def centers(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The score value of every bin, shape ``(num,)``."""
        return torch.linspace(self.low, self.high, self.num, dtype=torch.float64).to(dtype)

    def check(self, scores: torch.Tensor, what: str = "score", ids: Sequence[str] | None = None) -> None:
        """Raise a clear error if a score is NaN, infinite, or outside ``low..high``.

        Args:
            scores: a tensor of any shape; its first dimension indexes samples.
            what: what the values are, for the message (``"judge score"``).
            ids: sample identities, for the message.

        Raises:
            ValueError: naming the first bad sample, its value, the range and the fix.
        """
        scores = torch.as_tensor(scores, dtype=torch.float64)
        if scores.numel() == 0:
            return
        flat = scores.reshape(scores.shape[0], -1) if scores.ndim > 0 else scores.reshape(1, 1)
        bad = ~torch.isfinite(flat)
        if bad.any():
            row = int(bad.any(dim=1).nonzero()[0])
            raise ValueError(
                f"{_describe(ids, row)} has a non-finite {what} ({flat[row].tolist()}); "
                f"fix or drop it in the annotations"
            )
        tolerance = 1e-6 * self.step
        outside = (flat < self.low - tolerance) | (flat > self.high + tolerance)
        if outside.any():
            row = int(outside.any(dim=1).nonzero()[0])
            raise ValueError(
                f"{_describe(ids, row)} has a {what} outside the bins' range {self.low:g}..{self.high:g} "
                f"({flat[row].tolist()}); widen the range (--score-range / --judge-range), fix the annotation, "
                f"or leave the sample out (--exclude ID)"
            )

    def to_bin_units(self, scores: torch.Tensor) -> torch.Tensor:
        """Map scores to fractional bin positions: ``low`` -> 0, ``high`` -> ``num - 1``."""
        return (torch.as_tensor(scores, dtype=torch.float64) - self.low) / self.step

    def gaussian(
        self,
        scores: torch.Tensor,
        sigma: float,
        ids: Sequence[str] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Gaussian soft labels: one normalised distribution over the bins per score.

        The label of score ``s`` is the normal density with mean ``s`` (in bin units) and
        standard deviation ``sigma`` (in bin units), evaluated at every bin and normalised to
        sum to 1. It is computed in log space, so a tiny ``sigma`` gives a one-hot label
        rather than a division by zero.

        Args:
            scores: tensor of shape ``(...)``.
            sigma: standard deviation in bin units (the paper: 5 on MTL-AQA, 1 on JIGSAWS).
            ids: sample identities for error messages.
            dtype: dtype of the returned labels.

        Returns:
            Tensor of shape ``(..., num)`` whose last dimension sums to 1.

        Raises:
            ValueError: ``sigma`` is not positive, or a score is NaN or outside the range.

        Example:
            >>> labels = ScoreBins(1, 5, 5).gaussian(torch.tensor([3.0]), sigma=1.0)
            >>> labels.shape, round(float(labels.sum()), 6)
            (torch.Size([1, 5]), 1.0)
        """
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number of bins, got {sigma!r}")
        scores = torch.as_tensor(scores, dtype=torch.float64)
        self.check(scores, ids=ids)
        positions = torch.arange(self.num, dtype=torch.float64)
        log_density = -((positions - self.to_bin_units(scores).unsqueeze(-1)) ** 2) / (2.0 * sigma**2)
        return torch.softmax(log_density, dim=-1).to(dtype)

    def decode(self, probs: torch.Tensor, method: str = "argmax") -> torch.Tensor:
        """Scores from distributions over the bins.

        Args:
            probs: probabilities of shape ``(..., num)``.
            method: ``"argmax"`` (the bin with the highest probability, as the paper) or
                ``"expectation"`` (the mean of the distribution).

        Returns:
            Tensor of shape ``(...)``.

        Raises:
            ValueError: unknown ``method`` or the last dimension is not ``num``.
        """
        if probs.shape[-1] != self.num:
            raise ValueError(
                f"distributions have {probs.shape[-1]} bins but these score bins have {self.num}"
            )
        centers = self.centers(probs.dtype).to(probs.device)
        if method == "argmax":
            return centers[probs.argmax(dim=-1)]
        if method == "expectation":
            return (probs * centers).sum(dim=-1)
        raise ValueError(f"unknown decoding {method!r}; choose one of {', '.join(DECODE_METHODS)}")
