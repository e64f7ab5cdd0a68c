"""The saved-for-backward ledger is exact; the real peak is measured, not estimated."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import splitnet
from splitnet._memory import measure_ledger, measure_profile
from splitnet._peak import MeasurementError, measure_peak
from splitnet._plan import default_task_loss


def test_ledger_counts_each_saved_storage_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    chain = splitnet.trace(model, x)
    assert chain.num_pieces == 3
    profile = measure_profile(chain, {}, default_task_loss("classification"), x, torch.randint(0, 4, (5,)))
    first, relu, second = profile.pieces
    assert sorted(first.values()) == [5 * 8 * 4]  # the input, saved by the first Linear
    assert sorted(relu.values()) == [5 * 16 * 4]  # ReLU keeps its output...
    assert relu == second  # ...which the second Linear saves too: the same storage, counted once
    task_only = profile.e2e_bytes() - sum(profile.task.values())
    assert task_only == 5 * 8 * 4 + 5 * 16 * 4


@pytest.mark.parametrize("name", ["cifar_resnet20", "vit"])
def test_ledger_extrapolation_is_exact_at_other_batch_sizes(name):
    torch.manual_seed(0)
    if name == "vit":
        import timm

        model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=10)
    else:
        model = splitnet.create_backbone(name)
    x = torch.randn(2, 3, 32, 32)
    p = splitnet.plan(model, 3, example_input=x, measure_memory=True)
    objectives = dict(zip((c.index for c in p.cuts), splitnet.split(model, p).objectives))
    loss = default_task_loss("classification")

    def make(b):
        return torch.randn(b, 3, 32, 32), torch.randint(0, 10, (b,))

    ledger = measure_ledger(p.chain, objectives, loss, make, (2, 4))
    measured = measure_profile(p.chain, objectives, loss, *make(7))
    assert ledger.e2e_bytes(7) == measured.e2e_bytes()
    predicted, direct = ledger.cost_matrix(7), measured.cost_matrix()
    for a, b in p.stages:
        assert predicted[a][b] == direct[a][b]


def test_measuring_leaves_the_model_untouched():
    model = splitnet.create_backbone("cifar_resnet20").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    splitnet.plan(model, 2, balance="time")
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_real_peak_of_local_training_is_far_below_end_to_end():
    common = {"model": "cifar_resnet32", "input_size": [3, 32, 32], "batch_size": 128, "threads": 1}
    model = splitnet.create_backbone("cifar_resnet32")
    p = splitnet.plan(model, 4, balance="memory", batch_size=128)
    e2e = measure_peak({**common, "mode": "e2e"})
    local = measure_peak({**common, "mode": "local", "cuts": [c.label for c in p.cuts], "per_stage": True})
    assert e2e["peak_bytes"] > 0.5 * p.e2e_bytes  # the real peak holds at least the saved tensors
    assert local["peak_bytes"] < 0.5 * e2e["peak_bytes"]
    assert "high-water mark" in e2e["method"]
    # stage by stage: every stage holds at least its own saved tensors, and the largest stage
    # is where the whole step peaks (the same step, measured a second time)
    stages = local["stage_peak_bytes"]
    assert len(stages) == 4
    assert all(s >= 0.5 * b for s, b in zip(stages, p.stage_bytes))
    assert max(stages) == pytest.approx(local["peak_bytes"], rel=0.1)
    assert "stage_peak_bytes" not in e2e


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mode": "e2e", "per_stage": True}, "per_stage measures the stages of a local step"),
        (
            {"mode": "local", "cuts": ["layer2.0"], "per_stage": "yes"},
            "per_stage must be True or False, not 'yes'",
        ),
    ],
)
def test_per_stage_is_refused_where_it_cannot_mean_anything(extra, message):
    # refused before a measuring process starts, not after it has built the model
    spec = {"model": "cifar_resnet20", "input_size": [3, 32, 32], "batch_size": 2, **extra}
    with pytest.raises(ValueError, match=message):
        measure_peak(spec, timeout=1e-9)


def test_a_failed_measurement_reports_why():
    with pytest.raises(MeasurementError, match="unknown backbone 'no_such_model'"):
        measure_peak({"model": "no_such_model", "input_size": [3, 32, 32], "batch_size": 2, "mode": "e2e"})
