"""AQA metrics: Spearman's rho, L2, relative L2, Fisher-z and k-fold averaging."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

RHO_CLIP = 1.0 - 1e-12


def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    true = np.asarray(true, dtype=np.float64).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"predictions and true scores differ in length: {pred.size} vs {true.size}")
    if pred.size == 0:
        raise ValueError("cannot compute a metric over zero samples; the split is empty")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise ValueError("predictions or true scores contain NaN or infinity")
    return pred, true


def spearman(pred: Any, true: Any) -> float:
    """Spearman's rank correlation (ties get their average rank), as ``scipy.stats.spearmanr``.

    Returns ``nan`` when either side is constant (the correlation is undefined), which
    happens early in training when argmax decoding predicts one bin for every sample.

    Raises:
        ValueError: lengths differ, fewer than 2 samples, or non-finite values.

    Example:
        >>> spearman([1.0, 2.0, 3.0], [10.0, 30.0, 20.0])
        0.5
    """
    pred, true = _pair(pred, true)
    if pred.size < 2:
        raise ValueError(f"Spearman's rho needs at least 2 samples, got {pred.size}")
    rp, rt = rankdata(pred) - (pred.size + 1) / 2, rankdata(true) - (true.size + 1) / 2
    denom = math.sqrt(float((rp * rp).sum() * (rt * rt).sum()))
    if denom == 0.0:
        return float("nan")
    return float((rp * rt).sum() / denom)


def l2(pred: Any, true: Any) -> float:
    """Mean squared error, in squared score units.

    Example:
        >>> l2([1.0, 2.0], [1.0, 4.0])
        2.0
    """
    pred, true = _pair(pred, true)
    return float(np.mean((pred - true) ** 2))


def relative_l2(pred: Any, true: Any, score_range: tuple[float, float]) -> float:
    """Relative L2 x 100: ``100 * mean((|pred - true| / (high - low))^2)``.

    The value depends on the range; always report it with the range used (MTL-AQA: 0..104.5).

    Raises:
        ValueError: the range is empty or reversed.

    Example:
        >>> round(relative_l2([0.0, 10.0], [10.0, 10.0], (0.0, 100.0)), 6)
        0.5
    """
    low, high = (float(v) for v in score_range)
    if not high > low:
        raise ValueError(f"relative L2 needs a score range with high > low, got {score_range}")
    pred, true = _pair(pred, true)
    return float(100.0 * np.mean(((pred - true) / (high - low)) ** 2))


def fisher_z_mean(correlations: Sequence[float]) -> float:
    """Average correlations across actions through Fisher's z (the AQA-7 convention).

    ``tanh(mean(arctanh(rho)))``; a correlation of exactly +-1 is clipped to +-(1 - 1e-12)
    so that its z is finite.

    Raises:
        ValueError: no correlations, a NaN, or a value outside -1..1.

    Example:
        >>> round(fisher_z_mean([0.9, 0.5]), 4)
        0.7661
    """
    rhos = np.asarray(list(correlations), dtype=np.float64)
    if rhos.size == 0:
        raise ValueError("Fisher-z averaging needs at least one correlation")
    if not np.isfinite(rhos).all() or (np.abs(rhos) > 1).any():
        raise ValueError(f"correlations must be finite and within -1..1, got {rhos.tolist()}")
    return float(np.tanh(np.mean(np.arctanh(np.clip(rhos, -RHO_CLIP, RHO_CLIP)))))


def kfold_average(fold_metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Arithmetic mean of each metric over folds (JIGSAWS 4-fold, as the reference code).

    Args:
        fold_metrics: one mapping of metric name -> value per fold; every fold must have
            the same metrics.

    Returns:
        ``{name: mean}`` plus ``{name + "_std": population std}`` and ``"folds"``.

    Raises:
        ValueError: no folds, or folds with different metrics.

    Example:
        >>> kfold_average([{"spearman": 0.7}, {"spearman": 0.9}])["spearman"]
        0.8
    """
    folds = list(fold_metrics)
    if not folds:
        raise ValueError("k-fold averaging needs at least one fold")
    keys = set(folds[0])
    for i, fold in enumerate(folds):
        if set(fold) != keys:
            raise ValueError(
                f"fold {i} reports metrics {sorted(fold)}, fold 0 reports {sorted(keys)}; "
                f"every fold must report the same metrics"
            )
    out: dict[str, float] = {}
    for key in sorted(keys):
        values = np.asarray([fold[key] for fold in folds], dtype=np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    out["folds"] = len(folds)
    return out


def evaluate(
    pred: Any,
    true: Any,
    score_range: tuple[float, float],
    actions: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every AQA metric for one split.

    Args:
        pred: predicted final scores ``(N,)``.
        true: true final scores ``(N,)``.
        score_range: ``(low, high)`` for the relative L2.
        actions: the action of each sample for multi-action datasets (AQA-7); adds
            per-action rho and their Fisher-z average.

    Returns:
        ``{"n", "spearman", "l2", "rl2", "rl2_range"}`` and, with ``actions``,
        ``"spearman_per_action"`` and ``"spearman_fisher_z"``.

    Example:
        >>> m = evaluate([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], (0.0, 10.0))
        >>> m["spearman"], m["n"]
        (1.0, 3)
    """
    pred, true = _pair(pred, true)
    out: dict[str, Any] = {
        "n": int(pred.size),
        "spearman": spearman(pred, true),
        "l2": l2(pred, true),
        "rl2": relative_l2(pred, true, score_range),
        "rl2_range": [float(score_range[0]), float(score_range[1])],
    }
    if actions is not None:
        actions = list(actions)
        if len(actions) != pred.size:
            raise ValueError(f"got {len(actions)} actions for {pred.size} predictions")
        per_action = {}
        for action in sorted(set(actions)):
            mask = np.asarray([a == action for a in actions])
            per_action[action] = spearman(pred[mask], true[mask])
        out["spearman_per_action"] = per_action
        defined = [r for r in per_action.values() if not math.isnan(r)]
        out["spearman_fisher_z"] = fisher_z_mean(defined) if defined else float("nan")
    return out
