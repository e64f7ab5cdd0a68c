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


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_kl_loss_equals_hand_computation_with_gradients():
    torch.manual_seed(0)
    batch, judges, bins = 3, 2, 5
    logits = torch.randn(batch, judges, bins, dtype=torch.float64, requires_grad=True)
    targets = ScoreBins(1, 5, 5).gaussian(
        torch.tensor([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]]), 1.0, dtype=torch.float64
    )
    targets[0, 0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)  # exercises 0 * log 0 = 0
    log_probs = torch.log_softmax(logits, dim=-1)
    loss = kl_loss(log_probs, targets)

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

    # d/dlogits of KL(t || softmax(z)) is (softmax(z) - t), averaged over the batch.
    loss.backward()
    torch.testing.assert_close(logits.grad, (p - targets) / batch)

    # The reference code's nn.KLDivLoss() (element-wise mean) is this loss divided by the number of bins.
    reference = sum(torch.nn.KLDivLoss()(log_probs[:, d].detach(), targets[:, d]) for d in range(judges))
    assert reference.item() == pytest.approx(loss.item() / bins, rel=1e-12)


def test_kl_loss_zero_at_target_and_shape_checked():
    t = ScoreBins(0, 10, 21).gaussian(torch.tensor([[7.5]]), 5.0)
    assert kl_loss(t.log(), t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        kl_loss(torch.zeros(2, 1, 5), torch.zeros(2, 5))
