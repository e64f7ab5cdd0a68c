import math

import pytest

from scoredist import select_epoch, split_validation, summarize


def test_split_validation_is_deterministic_disjoint_and_complete():
    train, val = split_validation(1059, 0.2, seed=3)
    assert len(val) == 212 and len(train) == 847
    assert set(train).isdisjoint(val) and sorted(train + val) == list(range(1059))
    assert split_validation(1059, 0.2, seed=3) == (train, val)
    assert split_validation(1059, 0.2, seed=4) != (train, val)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_validation(10, 1.0, 0)
    with pytest.raises(ValueError, match="both must be non-empty"):
        split_validation(2, 0.1, 0)


HISTORY = [
    {"epoch": 0, "split": "val", "spearman": 0.60, "l2": 9.0},
    {"epoch": 0, "split": "test", "spearman": 0.55, "l2": 9.5},
    {"epoch": 1, "split": "val", "spearman": 0.80, "l2": 5.0},
    {"epoch": 1, "split": "test", "spearman": 0.70, "l2": 6.0},
    {"epoch": 2, "split": "val", "spearman": 0.75, "l2": 4.0},
    {"epoch": 2, "split": "test", "spearman": 0.90, "l2": 4.5},
    {"epoch": 3, "split": "val", "spearman": float("nan"), "l2": 8.0},
    {"epoch": 3, "split": "test", "spearman": 0.50, "l2": 8.0},
]


def test_selection_uses_validation_not_test():
    assert select_epoch(HISTORY, "spearman", "val") == 1
    assert select_epoch(HISTORY, "spearman", "test") == 2  # what test-peeking would pick
    assert select_epoch(HISTORY, "l2", "val") == 2  # lower is better


def test_summary_reports_both_protocols_labelled():
    summary = summarize(HISTORY)
    assert summary["val_selected"]["epoch"] == 1
    assert summary["val_selected"]["test"]["spearman"] == 0.70
    assert "validation" in summary["val_selected"]["note"]
    assert summary["test_peeking"]["epoch"] == 2 and summary["test_peeking"]["test"]["spearman"] == 0.90
    assert "optimistic" in summary["test_peeking"]["note"]
    assert summary["last"]["epoch"] == 3


def test_ties_pick_the_earliest_epoch_and_nan_is_never_best():
    history = [{"epoch": e, "split": "val", "spearman": v} for e, v in enumerate([float("nan"), 0.5, 0.5])]
    assert select_epoch(history) == 1
    assert math.isnan(history[0]["spearman"])


def test_missing_split_or_metric_is_explained():
    with pytest.raises(ValueError, match="no 'val' records"):
        select_epoch([{"epoch": 0, "split": "test", "spearman": 0.1}])
    with pytest.raises(ValueError, match="metric 'tau' is not in the history"):
        select_epoch(HISTORY, "tau")
    assert "val_selected" not in summarize([r for r in HISTORY if r["split"] == "test"])
