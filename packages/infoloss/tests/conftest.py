"""Shared test helpers: reference computations written out from the formulas, with loops.

They share no code with infoloss and work element by element (in float64 in the tests).
Tests reach them through the ``ref`` fixture (pytest runs with ``--import-mode=importlib``,
so test modules cannot import each other).
"""

from __future__ import annotations

import math
import sys

import pytest
import torch


@pytest.fixture
def ref():
    """This module: the reference computations."""
    return sys.modules[__name__]


def supcon(features: torch.Tensor, labels: list[int], temperature: float, base_temperature: float = 0.07):
    """SupCon "L_out" with one view: mean over anchors of -(t/bt)/|P(i)| sum_p log softmax_{a != i}."""
    batch = features.shape[0]
    z = [features[i] / torch.sqrt((features[i] * features[i]).sum()) for i in range(batch)]
    total = 0 * features.sum()
    for i in range(batch):
        positives = [p for p in range(batch) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(torch.exp((z[i] * z[a]).sum() / temperature) for a in range(batch) if a != i)
        term = features.new_zeros(())
        for p in positives:
            term = term + torch.log(torch.exp((z[i] * z[p]).sum() / temperature) / denominator)
        total = total - (temperature / base_temperature) * term / len(positives)
    return total / batch


def bce_from_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-mean(t log p + (1 - t) log(1 - p)), p = 1 / (1 + exp(-z)), element by element."""
    z, t = logits.reshape(-1), target.reshape(-1)
    total = logits.new_zeros(())
    for k in range(z.numel()):
        p = 1 / (1 + torch.exp(-z[k]))
        total = total - (t[k] * torch.log(p) + (1 - t[k]) * torch.log(1 - p))
    return total / z.numel()


def mse_from_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((sigmoid(z) - t)^2), element by element."""
    z, t = logits.reshape(-1), target.reshape(-1)
    total = logits.new_zeros(())
    for k in range(z.numel()):
        total = total + (1 / (1 + torch.exp(-z[k])) - t[k]) ** 2
    return total / z.numel()


def cross_entropy(logits: torch.Tensor, labels: list[int], ignore: int | None = None) -> torch.Tensor:
    """mean over kept rows of -(x_y - log sum_j exp x_j), rows of a (N, K) matrix."""
    total, count = logits.new_zeros(()), 0
    for row, label in zip(logits, labels):
        if label == ignore:
            continue
        peak = row.max().detach()
        log_normaliser = peak + torch.log(sum(torch.exp(v - peak) for v in row))
        total = total - (row[label] - log_normaliser)
        count += 1
    return total / max(count, 1)


def dense_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore: int = 255) -> torch.Tensor:
    """Per-pixel cross-entropy of (B, K, H, W) logits, pixels labelled ``ignore`` left out."""
    rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    return cross_entropy(rows, targets.reshape(-1).tolist(), ignore=ignore)


def schedule(first: float, last: float, index: int, num_cuts: int) -> float:
    """The paper's ratio = local_module_i / (local_module_num - 2), with K - 1 = num_cuts."""
    local_module_num = num_cuts + 1
    ratio = index / (local_module_num - 2) if local_module_num > 2 else 0
    return first * (1 - ratio) + last * ratio


def count_params(*shapes: tuple[int, ...]) -> int:
    return sum(math.prod(s) for s in shapes)
