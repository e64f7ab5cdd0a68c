import numpy as np
import pytest
import torch
from scipy import stats

from scoredist import PRESETS, ScoreBins

CASES = [
    # (bins, scores, sigma): the settings the issue names
    (ScoreBins(0.0, 104.5, 101), [0.0, 18.15, 52.2, 88.0, 104.5], 5.0),  # MTL-AQA final score
    (ScoreBins.from_step(0, 10, 0.5), [0.0, 3.5, 7.5, 9.5, 10.0], 5.0),  # one MTL-AQA judge
    (ScoreBins.from_step(6, 30, 1), [6.0, 13.0, 17.0, 30.0], 1.0),  # JIGSAWS global rating
    (ScoreBins.from_step(1, 5, 1), [1.0, 2.0, 4.0, 5.0], 1.0),  # JIGSAWS sub-score
    (ScoreBins(0.0, 1.0, 11), [0.33], 0.7),
]


@pytest.mark.parametrize(("bins", "scores", "sigma"), CASES)
def test_gaussian_labels_equal_scipy_normal_pdf_normalised(bins, scores, sigma):
    labels = bins.gaussian(torch.tensor(scores, dtype=torch.float64), sigma, dtype=torch.float64)
    for score, label in zip(scores, labels):
        position = (score - bins.low) / bins.step
        pdf = stats.norm.pdf(np.arange(bins.num), loc=position, scale=sigma)
        np.testing.assert_allclose(label.numpy(), pdf / pdf.sum(), rtol=1e-10, atol=1e-15)
        assert label.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_reference_mtl_aqa_normalisation_matches():
    # The reference code puts the final score s at s * 100 / 104.5 on bins 0..100.
    bins = ScoreBins(0.0, 104.5, 101)
    label = bins.gaussian(torch.tensor([61.05], dtype=torch.float64), 5.0, dtype=torch.float64)[0]
    pdf = stats.norm.pdf(np.arange(101), loc=61.05 * 100 / 104.5, scale=5.0)
    np.testing.assert_allclose(label.numpy(), pdf / pdf.sum(), rtol=1e-10)


def test_bin_counts_of_the_benchmarks():
    assert ScoreBins(0, 104.5, 101).step == pytest.approx(1.045)
    assert ScoreBins.from_step(0, 10, 0.5).num == 21
    assert ScoreBins.from_step(6, 30, 1).num == 25
    assert ScoreBins.from_step(1, 5, 1).num == 5
    assert PRESETS["mtl-aqa"].score_bins.num == 101 and PRESETS["mtl-aqa"].judge_bins.num == 21
    assert PRESETS["mtl-aqa"].sigma == 5.0 and PRESETS["jigsaws"].sigma == 1.0
    assert PRESETS["jigsaws"].score_bins.num == 25 and PRESETS["jigsaws"].judge_bins.num == 5


def test_tiny_sigma_gives_one_hot_not_nan():
    label = ScoreBins(0, 10, 11).gaussian(torch.tensor([3.0]), sigma=1e-3)[0]
    assert torch.equal(label, torch.nn.functional.one_hot(torch.tensor(3), 11).float())


def test_batched_shapes():
    bins = ScoreBins.from_step(0, 10, 0.5)
    assert bins.gaussian(torch.full((4, 7), 8.5), 5.0).shape == (4, 7, 21)


def test_decode_argmax_and_expectation():
    bins = ScoreBins(0, 10, 11)
    probs = torch.tensor(
        [[0.0, 0.0, 0.25, 0.5, 0.25, 0, 0, 0, 0, 0, 0], [0.5, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5]]
    )
    assert bins.decode(probs, "argmax").tolist() == [3.0, 0.0]
    assert bins.decode(probs, "expectation").tolist() == pytest.approx([3.0, 5.0])
    labels = bins.gaussian(torch.tensor([6.0]), 1.0)
    assert bins.decode(labels, "expectation").item() == pytest.approx(6.0, abs=1e-3)
    with pytest.raises(ValueError, match="unknown decoding 'median'"):
        bins.decode(probs, "median")
    with pytest.raises(ValueError, match="have 5 bins but these score bins have 11"):
        bins.decode(torch.ones(1, 5), "argmax")


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([5.0, float("nan")], r"sample 'b' has a non-finite score"),
        ([5.0, 10.5], r"sample 'b' has a score outside the bins' range 0\.\.10 \(\[10\.5\]\)"),
        ([-0.5, 1.0], r"sample 'a' has a score outside"),
        ([5.0, float("inf")], r"non-finite"),
    ],
)
def test_bad_scores_are_named(scores, message):
    with pytest.raises(ValueError, match=message):
        ScoreBins(0, 10, 11).gaussian(torch.tensor(scores), 1.0, ids=["a", "b"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ScoreBins(10, 0, 11), "high > low"),
        (lambda: ScoreBins(0, 10, 1), ">= 2"),
        (lambda: ScoreBins(0, float("nan"), 5), "finite bounds"),
        (lambda: ScoreBins.from_step(0, 10, 0.3), "does not divide"),
        (lambda: ScoreBins.from_step(0, 10, 0), "must be positive"),
        (lambda: ScoreBins(0, 10, 11).gaussian(torch.tensor([1.0]), 0.0), "sigma must be a positive"),
    ],
)
def test_bad_bins_are_explained(make, message):
    with pytest.raises(ValueError, match=message):
        make()
