"""Evaluation protocols: a validation split, and model selection on it (not on the test split)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._metrics import kfold_average

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


REFERENCE_LAST_EPOCHS = 10
KFOLD_METRICS = ("loss", "spearman", "l2", "rl2")


def kfold_summary(
    histories: Sequence[Sequence[Mapping[str, Any]]],
    metric: str = "spearman",
    last_epochs: int = REFERENCE_LAST_EPOCHS,
) -> dict[str, Any]:
    """Report a K-fold run (JIGSAWS) three ways, clearly labelled.

    - ``val_selected`` (ours, the honest number): each fold's test metrics at the epoch
      chosen on its validation split, averaged over folds.
    - ``last_epochs_mean`` (the reference's published figure): the fold-averaged test
      metrics of each of the last ``last_epochs`` epochs, averaged over those epochs. The
      official MUSDL JIGSAWS code (``JIGSAWS/main.py``, lines 170-174 and 188) sums the
      fold-averaged test rho of the last 10 epochs and divides by 10; with fewer epochs than
      ``last_epochs`` this averages all of them (the reference would still divide by 10).
    - ``test_peeking``: the one epoch whose fold-averaged test ``metric`` is best, as the
      reference picks its "best" (``JIGSAWS/main.py``, lines 176-178); optimistic.

    Folds are averaged arithmetically, as the reference does (``rho_total / 4``).

    Args:
        histories: one metric history per fold (the records :func:`train` returns), every
            fold with the same epochs.
        metric: the selection metric (see :func:`select_epoch`).
        last_epochs: how many final epochs ``last_epochs_mean`` averages.

    Returns:
        ``{"val_selected", "last_epochs_mean", "test_peeking"}``, each a mapping of metric ->
        value with the epochs used (``val_selected`` also has each metric's ``_std`` over
        folds), plus ``"metric"`` and ``"folds"``; ``val_selected`` is absent unless every
        fold has validation records.

    Raises:
        ValueError: no folds, folds with different test epochs, or ``last_epochs < 1``.

    Example:
        >>> fold = lambda rhos: [{"epoch": e, "split": "test", "spearman": r} for e, r in enumerate(rhos)]
        >>> s = kfold_summary([fold([0.2, 0.6, 0.5]), fold([0.4, 0.4, 0.7])], last_epochs=2)
        >>> round(s["last_epochs_mean"]["spearman"], 4), s["test_peeking"]["epoch"]
        (0.55, 2)
    """
    if isinstance(last_epochs, bool) or int(last_epochs) != last_epochs or last_epochs < 1:
        raise ValueError(f"last_epochs must be a positive integer, got {last_epochs!r}")
    tests = [_by_split(history, "test") for history in histories]
    if not tests:
        raise ValueError("a k-fold summary needs at least one fold")
    epochs = sorted(tests[0])
    for k, records in enumerate(tests):
        if sorted(records) != epochs:
            raise ValueError(
                f"fold {k} was tested at epochs {sorted(records)}, fold 0 at {epochs}; "
                f"every fold must run the same epochs"
            )
    keys = [key for key in KFOLD_METRICS if key in tests[0][epochs[0]]]
    per_epoch = {e: {key: float(np.mean([t[e][key] for t in tests])) for key in keys} for e in epochs}
    tail = epochs[-last_epochs:]
    peek = max(epochs, key=lambda e: selection_key(per_epoch[e], metric))
    out: dict[str, Any] = {
        "metric": metric,
        "folds": len(tests),
        "last_epochs_mean": {
            **{key: float(np.mean([per_epoch[e][key] for e in tail])) for key in keys},
            "epochs": tail,
            "note": f"fold-averaged test metrics averaged over the last {len(tail)} epochs, "
            "as the reference JIGSAWS code reports",
        },
        "test_peeking": {
            **per_epoch[peek],
            "epoch": peek,
            "note": "the epoch with the best fold-averaged test metric, as the reference code "
            "picks its best: optimistic",
        },
    }
    if all(any(r.get("split") == "val" for r in history) for history in histories):
        chosen = [select_epoch(history, metric, "val") for history in histories]
        out["val_selected"] = {
            **kfold_average([{key: t[e][key] for key in keys} for t, e in zip(tests, chosen)]),
            "epochs": chosen,
            "note": "each fold's test metrics at the epoch chosen on its validation split, "
            "averaged over folds; the honest test number",
        }
    return out
