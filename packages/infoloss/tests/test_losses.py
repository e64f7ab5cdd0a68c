"""The loss functions against references written out from their formulas, gradients included."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from infoloss import PAPER_LAMBDAS, linear_schedule, paper_lambdas, reconstruction_loss, supcon_loss

LABELS = {
    "pairs": [0, 1, 0, 1, 2, 2],
    "one class": [3, 3, 3, 3],
    "singletons mixed in": [0, 1, 2, 0, 4, 4, 5],
    "all distinct": [0, 1, 2, 3],
}


def _grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(loss, x)[0]


@pytest.mark.parametrize("name", LABELS)
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_supcon_matches_the_formula(ref, name, temperature):
    labels = LABELS[name]
    gen = torch.Generator().manual_seed(len(labels))
    features = torch.randn(len(labels), 5, generator=gen, dtype=torch.float64, requires_grad=True)
    got = supcon_loss(features, torch.tensor(labels), temperature=temperature)
    want = ref.supcon(features, labels, temperature)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(_grad(got, features), _grad(want, features), rtol=1e-8, atol=1e-10)


def test_supcon_without_any_positive_is_zero_and_counts_every_anchor(ref):
    features = torch.randn(4, 3, dtype=torch.float64)
    assert supcon_loss(features, torch.arange(4)).item() == 0.0
    # One pair among four anchors: the two anchors without positives still count in the mean.
    labels = [0, 0, 1, 2]
    got = supcon_loss(features, torch.tensor(labels))
    torch.testing.assert_close(got, ref.supcon(features, labels, 0.07))


def test_supcon_is_scale_invariant_and_scaled_by_base_temperature():
    features = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(supcon_loss(features, labels), supcon_loss(3 * features, labels))
    torch.testing.assert_close(
        supcon_loss(features, labels, temperature=0.07, base_temperature=0.14),
        supcon_loss(features, labels) / 2,
    )


def test_supcon_gradcheck():
    features = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda f: supcon_loss(f, labels, temperature=0.3), (features,))


def test_supcon_of_one_sample_is_zero_with_a_finite_gradient():
    features = torch.randn(1, 8, requires_grad=True)
    loss = supcon_loss(features, torch.tensor([2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(features.grad).all()


def test_supcon_keeps_half_precision_inputs_accurate():
    features = torch.randn(8, 16)
    labels = torch.tensor([0, 1] * 4)
    half = supcon_loss(features.half(), labels)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, supcon_loss(features.half().float(), labels))


def test_supcon_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        supcon_loss(torch.randn(4, 2, 2), torch.arange(4))
    with pytest.raises(ValueError, match="4 embeddings but 3 labels"):
        supcon_loss(torch.randn(4, 2), torch.arange(3))


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_reconstruction_loss_matches_the_formula(ref, kind):
    reference = ref.bce_from_logits if kind == "bce" else ref.mse_from_logits
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    got = reconstruction_loss(logits, target, kind)
    want = reference(logits, target)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(_grad(got, logits), _grad(want, logits), rtol=1e-8, atol=1e-12)


def test_reconstruction_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown kind"):
        reconstruction_loss(torch.zeros(2), torch.zeros(2), "l1")
    with pytest.raises(ValueError, match="differ"):
        reconstruction_loss(torch.zeros(2, 3), torch.zeros(3, 2))


F = Fraction


@pytest.mark.parametrize(
    ("first", "last", "num_cuts", "expected"),
    [
        (5, 0, 1, [5]),  # K=2: a single cut takes the first value
        (F(1, 2), 0, 1, [F(1, 2)]),
        (1, 0, 2, [1, 0]),  # K=3
        (0, 1, 2, [0, 1]),
        (1, 0, 3, [1, F(1, 2), 0]),  # K=4, the paper's ResNet-110 lambda_1
        (0, 1, 3, [0, F(1, 2), 1]),  # K=4, lambda_2
        (5, 0, 7, [5, F(25, 6), F(10, 3), F(5, 2), F(5, 3), F(5, 6), 0]),  # K=8
        (0, 1, 7, [0, F(1, 6), F(1, 3), F(1, 2), F(2, 3), F(5, 6), 1]),
    ],
)
def test_linear_schedule_exact_values(ref, first, last, num_cuts, expected):
    got = [linear_schedule(float(first), float(last), i, num_cuts) for i in range(num_cuts)]
    assert got == pytest.approx([float(e) for e in expected], rel=1e-15, abs=1e-15)
    assert got == pytest.approx(
        [ref.schedule(float(first), float(last), i, num_cuts) for i in range(num_cuts)], rel=1e-15
    )


def test_linear_schedule_rejects_an_index_out_of_range():
    with pytest.raises(ValueError, match="outside 0 .. 2"):
        linear_schedule(1.0, 0.0, 3, 3)


def test_paper_lambdas_are_the_reference_scripts_and_nearest_k():
    # no network or dataset named: ResNet-110 on CIFAR-10, the rows used for every network before
    table = PAPER_LAMBDAS["resnet110", "cifar10", "infopro"]

    def weights(num_cuts):
        chosen = paper_lambdas(num_cuts)
        return chosen.lambda_recon, chosen.lambda_task

    assert weights(1) == ((5.0, 0.0), (0.5, 0.0)) == table[2]
    assert weights(3) == ((1.0, 0.0), (0.0, 1.0)) == table[4]
    assert weights(7) == ((5.0, 0.0), (0.0, 1.0)) == table[8]
    assert weights(15) == ((5.0, 0.5), (0.0, 1.0)) == table[16]
    nearest = {k: paper_lambdas(k - 1).k for k in range(2, 40)}
    assert nearest == {k: 2 if k == 2 else 4 if k <= 5 else 8 if k <= 11 else 16 for k in range(2, 40)}
    with pytest.raises(ValueError):
        paper_lambdas(0)
