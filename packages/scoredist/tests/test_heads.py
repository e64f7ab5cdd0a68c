import pytest
import torch

from scoredist import MUSDLHead, ScoreBins, USDLHead, kl_loss


def test_paper_architecture_and_shapes():
    head = USDLHead(1024, 101)
    linears = [m for m in head.mlps[0] if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1024, 256), (256, 128), (128, 101)]
    out = head(torch.randn(3, 1024))
    assert out.shape == (3, 1, 101)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, 1))
    musdl = MUSDLHead(1024, 21, num_judges=7)
    assert len(musdl.mlps) == 7
    assert musdl(torch.randn(2, 1024)).shape == (2, 7, 21)


def test_judges_have_independent_parameters():
    head = MUSDLHead(8, 5, num_judges=3, hidden=(4,))
    assert head.mlps[0][0].weight.data_ptr() != head.mlps[1][0].weight.data_ptr()


def test_wrong_feature_shape_is_explained():
    with pytest.raises(ValueError, match=r"expects clip features of shape \(B, 16\), got \(2, 4, 16\)"):
        USDLHead(16, 5)(torch.randn(2, 4, 16))
    with pytest.raises(ValueError, match="num_bins must be a positive integer"):
        USDLHead(16, 0)


def _logits_and_targets():
    torch.manual_seed(0)
    batch, judges, bins = 3, 2, 5
    logits = torch.randn(batch, judges, bins, dtype=torch.float64, requires_grad=True)
    targets = ScoreBins(1, 5, 5).gaussian(
        torch.tensor([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]]), 1.0, dtype=torch.float64
    )
    targets[0, 0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)  # exercises 0 * log 0 = 0
    return logits, targets


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_default_kl_loss_is_the_reference_codes_kldivloss_summed_over_judges():
    # MTL-AQA/main.py lines 52-57 and JIGSAWS/main.py lines 91-97 of nzl-thu/MUSDL (205868a):
    # criterion = nn.KLDivLoss() (default reduction: the mean over batch and bins), applied to
    # each judge's distribution, the judges' losses summed; USDL applies it once.
    logits, targets = _logits_and_targets()
    log_probs = torch.log_softmax(logits, dim=-1)
    loss = kl_loss(log_probs, targets)
    criterion = torch.nn.KLDivLoss()
    reference = sum(criterion(log_probs[:, d], targets[:, d]) for d in range(targets.shape[1]))
    assert loss.item() == pytest.approx(reference.item(), rel=1e-14)
    usdl = kl_loss(log_probs[:, :1], targets[:, :1])
    assert usdl.item() == pytest.approx(criterion(log_probs[:, 0], targets[:, 0]).item(), rel=1e-14)

    # d/dlogits of the element-wise mean is (softmax(z) - t) / (batch * bins).
    loss.backward()
    batch, _, bins = targets.shape
    torch.testing.assert_close(logits.grad, (log_probs.detach().exp() - targets) / (batch * bins))


def test_batchmean_kl_loss_equals_hand_computation_with_gradients():
    logits, targets = _logits_and_targets()
    batch, judges, bins = targets.shape
    log_probs = torch.log_softmax(logits, dim=-1)
    loss = kl_loss(log_probs, targets, "batchmean")

    p = log_probs.detach().exp()
    expected = 0.0
    for d in range(judges):
        per_sample = []
        for b in range(batch):
            total = 0.0
            for k in range(bins):
                t = targets[b, d, k].item()
                if t > 0:
                    total += t * (torch.log(targets[b, d, k]) - torch.log(p[b, d, k])).item()
            per_sample.append(total)
        expected += sum(per_sample) / batch
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert loss.item() == pytest.approx(bins * kl_loss(log_probs, targets).item(), rel=1e-12)

    # d/dlogits of KL(t || softmax(z)) is (softmax(z) - t), averaged over the batch.
    loss.backward()
    torch.testing.assert_close(logits.grad, (p - targets) / batch)


def test_an_unknown_kl_reduction_names_the_choices():
    with pytest.raises(ValueError, match="unknown KL reduction 'sum'; choose one of mean, batchmean"):
        kl_loss(torch.zeros(2, 1, 5), torch.zeros(2, 1, 5), "sum")


def test_kl_loss_zero_at_target_and_shape_checked():
    t = ScoreBins(0, 10, 21).gaussian(torch.tensor([[7.5]]), 5.0)
    assert kl_loss(t.log(), t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        kl_loss(torch.zeros(2, 1, 5), torch.zeros(2, 5))
