"""The local training engine: gradients, isolation, accumulation, autocast, compile, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import splitnet


def resnet20():
    torch.manual_seed(0)
    return splitnet.create_backbone("cifar_resnet20").train()


def batch(n=8, classes=10):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_k1_gradients_equal_end_to_end_training():
    x, y = batch()
    reference = resnet20()
    F.cross_entropy(reference(x), y).backward()
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 1, measure_memory=False))
    result = net.local_step(x, y)
    for (name, p), q in zip(reference.named_parameters(), model.parameters()):
        assert torch.equal(p.grad, q.grad), name
    assert len(result.losses) == 1


def test_each_stage_learns_only_from_its_own_loss():
    x, y = batch()
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 2, measure_memory=False))
    net.local_step(x, y)
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    h = net.stages[0](x)
    first = torch.autograd.grad(net.objectives[0](h, x, y), net.stage_parameters(0))
    out = net.stages[1](h.detach())
    second = torch.autograd.grad(F.cross_entropy(out, y), list(net.stages[1].parameters()))
    expected = dict(zip(map(id, net.stage_parameters(0)), first))
    expected.update(zip(map(id, net.stages[1].parameters()), second))
    for p, g in zip(net.parameters(), got):
        torch.testing.assert_close(g, expected[id(p)], rtol=1e-5, atol=1e-6)


def test_stages_share_parameters_with_the_model_and_training_improves_it():
    x, y = batch(16)
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 3))
    assert {id(p) for s in net.stages for p in s.parameters()} == {id(p) for p in model.parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(15):
        opt.zero_grad()
        losses = net.local_step(x, y).losses
        first = first if first is not None else [float(v) for v in losses]
        opt.step()
    assert all(float(after) < before for after, before in zip(losses, first))
    model.eval()
    net.eval()
    assert torch.equal(model(x), net(x))


def mlp_net():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )
    x = torch.randn(2, 3, 2, 2)
    return model, splitnet.split(
        model, splitnet.plan(model, 2, example_input=x, num_classes=3, balance="even")
    )


def test_gradient_accumulation_equals_one_big_batch():
    x = torch.randn(8, 3, 2, 2)
    y = torch.randint(0, 3, (8,))
    _, whole = mlp_net()
    whole.local_step(x, y)
    _, parts = mlp_net()
    for half in (slice(0, 4), slice(4, 8)):
        parts.local_step(x[half], y[half], loss_scale=0.5)
    for p, q in zip(whole.parameters(), parts.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_bfloat16_autocast_on_cpu():
    x, y = batch()
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 2, measure_memory=False))
    result = net.local_step(x, y, autocast_dtype=torch.bfloat16)
    assert result.output.dtype == torch.bfloat16
    assert all(torch.isfinite(v) for v in result.losses)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_compiled_stages_compute_the_same_losses():
    x, y = batch()
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 2, measure_memory=False))
    keys = set(net.state_dict())
    plain = [float(v) for v in net.local_step(x, y).losses]
    net.zero_grad()
    torch.manual_seed(0)
    compiled = net.compile_stages(backend="aot_eager")
    assert set(compiled.state_dict()) == keys
    again = [float(v) for v in compiled.local_step(x, y).losses]
    assert again == pytest.approx(plain, rel=1e-4)


def test_nan_loss_stops_with_the_stage_named():
    x, y = batch()
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 3, measure_memory=False))
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(splitnet.NonFiniteLossError, match=r"stage 1 of 3: objective 1 of 2 is nan"):
        net.local_step(x, y)


def test_labels_out_of_range_and_foreign_plans():
    x, y = batch()
    model = resnet20()
    net = splitnet.split(model, splitnet.plan(model, 2, measure_memory=False))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9, got min 0 and max 10"):
        net.local_step(x, torch.full_like(y, 10).index_fill_(0, torch.tensor([0]), 0))
    other = resnet20()
    with pytest.raises(splitnet.SplitError, match="another model"):
        splitnet.split(other, net.plan)
    with pytest.raises(splitnet.UnknownEntryError, match=r"objective 'infoprop'.*splitnet.objectives"):
        splitnet.split(model, net.plan, objective="infoprop")
