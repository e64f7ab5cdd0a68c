import math

import numpy as np
import pytest
from scipy import stats

from scoredist import evaluate, fisher_z_mean, kfold_average, l2, relative_l2, spearman


@pytest.mark.parametrize("seed", range(5))
def test_spearman_equals_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 20, 60) * 0.5  # many ties, like judge scores
    pred = true + rng.normal(0, 2, 60)
    pred[:10] = np.round(pred[:10])
    assert spearman(pred, true) == pytest.approx(stats.spearmanr(pred, true).statistic, abs=1e-12)


def test_spearman_constant_prediction_is_nan_and_bad_input_raises():
    assert math.isnan(spearman([3.0, 3.0, 3.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="differ in length"):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="the split is empty"):
        spearman([], [])
    with pytest.raises(ValueError, match="at least 2 samples"):
        spearman([1.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1.0, float("nan")], [1.0, 2.0])


def test_l2_and_relative_l2():
    pred, true = np.array([50.0, 80.0, 20.0]), np.array([52.0, 70.0, 20.0])
    assert l2(pred, true) == pytest.approx((4 + 100 + 0) / 3)
    assert relative_l2(pred, true, (0.0, 104.5)) == pytest.approx(100 * np.mean(((pred - true) / 104.5) ** 2))
    with pytest.raises(ValueError, match="high > low"):
        relative_l2(pred, true, (10.0, 10.0))


def test_fisher_z_mean_formula():
    rhos = [0.85, 0.62, 0.91, 0.40]
    z = [0.5 * math.log((1 + r) / (1 - r)) for r in rhos]
    assert fisher_z_mean(rhos) == pytest.approx(math.tanh(sum(z) / len(z)), abs=1e-12)
    assert fisher_z_mean([0.5]) == pytest.approx(0.5)
    assert fisher_z_mean([1.0, 0.0]) == pytest.approx(math.tanh(math.atanh(1 - 1e-12) / 2))
    with pytest.raises(ValueError, match="within -1..1"):
        fisher_z_mean([1.2])
    with pytest.raises(ValueError, match="at least one"):
        fisher_z_mean([])


def test_kfold_average():
    folds = [
        {"spearman": 0.7, "l2": 4.0},
        {"spearman": 0.8, "l2": 2.0},
        {"spearman": 0.9, "l2": 3.0},
        {"spearman": 0.6, "l2": 1.0},
    ]
    out = kfold_average(folds)
    assert out["spearman"] == pytest.approx(0.75) and out["l2"] == pytest.approx(2.5) and out["folds"] == 4
    assert out["spearman_std"] == pytest.approx(np.std([0.7, 0.8, 0.9, 0.6]))
    with pytest.raises(ValueError, match="fold 1 reports metrics"):
        kfold_average([{"spearman": 0.1}, {"l2": 1.0}])
    with pytest.raises(ValueError, match="at least one fold"):
        kfold_average([])


def test_evaluate_with_actions_uses_fisher_z():
    rng = np.random.default_rng(0)
    true = rng.normal(size=40)
    pred = true + rng.normal(scale=[0.1] * 20 + [1.0] * 20)
    actions = ["diving"] * 20 + ["vault"] * 20
    out = evaluate(pred, true, (-3.0, 3.0), actions=actions)
    per = out["spearman_per_action"]
    assert per["diving"] == pytest.approx(spearman(pred[:20], true[:20]))
    assert out["spearman_fisher_z"] == pytest.approx(fisher_z_mean([per["diving"], per["vault"]]))
    assert out["rl2_range"] == [-3.0, 3.0] and out["n"] == 40
