"""Evaluation protocols: a validation split, and model selection on it (not on the test split)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LOWER_IS_BETTER = frozenset({"l2", "rl2", "loss"})


def split_validation(num_samples: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out a random ``fraction`` of a training split for model selection.

    MTL-AQA and JIGSAWS ship only train and test splits, and the reference code picks its
    best epoch on test; a held-out part of train lets us pick it honestly.

    Args:
        num_samples: size of the training split.
        fraction: share held out, ``0 < fraction < 1``.
        seed: the permutation's seed (the same seed gives the same split).

    Returns:
        ``(train_indices, val_indices)``, both sorted, disjoint, covering ``range(num_samples)``.

    Raises:
        ValueError: ``fraction`` is outside ``(0, 1)`` or either part would be empty.

    Example:
        >>> train, val = split_validation(10, 0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    held = round(num_samples * fraction)
    if held < 1 or held >= num_samples:
        raise ValueError(
            f"holding out {fraction:.0%} of {num_samples} training samples leaves "
            f"{num_samples - held} for training and {held} for validation; both must be non-empty"
        )
    order = np.random.default_rng(seed).permutation(num_samples)
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def selection_key(record: Mapping[str, Any], metric: str) -> float:
    """Larger is better: the metric, negated when lower is better; NaN is the worst."""
    if metric not in record:
        raise ValueError(f"metric '{metric}' is not in the history (it has {sorted(record)})")
    value = float(record[metric])
    if math.isnan(value):
        return -math.inf
    return -value if metric in LOWER_IS_BETTER else value


def _by_split(history: Sequence[Mapping[str, Any]], split: str) -> dict[int, Mapping[str, Any]]:
    records = {int(r["epoch"]): r for r in history if r.get("split") == split}
    if not records:
        raise ValueError(f"the history has no '{split}' records; was that split evaluated?")
    return records


def select_epoch(history: Sequence[Mapping[str, Any]], metric: str = "spearman", split: str = "val") -> int:
    """The epoch whose ``split`` records the best ``metric`` (earliest on ties; NaN counts as worst).

    Args:
        history: metric records ``{"epoch", "split", metric, ...}`` (the JSON lines of a run).
        metric: ``spearman`` (higher is better) or ``l2``, ``rl2``, ``loss`` (lower is better).
        split: where to select; ``"val"`` is the honest protocol.

    Raises:
        ValueError: the split or metric is missing from the history.

    Example:
        >>> h = [{"epoch": 0, "split": "val", "spearman": 0.5}, {"epoch": 1, "split": "val", "spearman": 0.7}]
        >>> select_epoch(h)
        1
    """
    records = _by_split(history, split)
    return max(sorted(records), key=lambda e: selection_key(records[e], metric))


def summarize(history: Sequence[Mapping[str, Any]], metric: str = "spearman") -> dict[str, Any]:
    """Report a run both ways, clearly labelled.

    Returns:
        ``{"val_selected": {"epoch", "val", "test"}, "test_peeking": {"epoch", "test"},
        "last": {"epoch", "test"}, "metric": metric}``. ``val_selected`` is the honest number:
        the test metrics at the epoch with the best validation ``metric``. ``test_peeking``
        is the best test epoch, as the reference repositories report; it is optimistic.
        ``val_selected`` is absent when the history has no validation records.
    """
    tests = _by_split(history, "test")
    peek = select_epoch(history, metric, "test")
    last = max(tests)
    out: dict[str, Any] = {
        "metric": metric,
        "test_peeking": {
            "epoch": peek,
            "test": dict(tests[peek]),
            "note": "best epoch chosen on the test split, as the reference code does: optimistic",
        },
        "last": {"epoch": last, "test": dict(tests[last])},
    }
    if any(r.get("split") == "val" for r in history):
        vals = _by_split(history, "val")
        chosen = select_epoch(history, metric, "val")
        out["val_selected"] = {
            "epoch": chosen,
            "val": dict(vals[chosen]),
            "test": dict(tests[chosen]),
            "note": "epoch chosen on the validation split; the honest test number",
        }
    return out
