"""One stage built without the model: the values a full build gives, or an error naming the fallback."""

from __future__ import annotations

import pytest
import torch

from splitnet import TrainConfig
from splitnet._build import build
from splitnet._distributed import Topology
from splitnet._errors import MetaBuildError
from splitnet._registries import BACKBONES
from splitnet._stagebuild import RemoteStage, build_stage

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def full_and_stages(config: TrainConfig, example: torch.Tensor):
    """A full build's state dict, and each stage's own build (from the same seed, with its cuts)."""
    torch.manual_seed(config.seed)
    _, p, full, _ = build(config, example, 10, "classification", MEAN, STD)
    cuts = [c.index for c in p.cuts]
    built = []
    for stage in range(config.k):
        torch.manual_seed(config.seed)
        topology = Topology(rank=stage, world=config.k, stages=config.k)
        built.append(build_stage(config, example, 10, "classification", MEAN, STD, topology, cuts))
    return full.state_dict(), built


def own(state: dict, stage: int) -> dict:
    return {
        key: v for key, v in state.items() if key.startswith((f"stages.{stage}.", f"objectives.{stage}."))
    }


@pytest.mark.parametrize(
    ("model", "options", "objective"),
    [
        ("cifar_resnet20", {}, "greedy"),
        ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 4}, "greedy"),
    ],
)
def test_each_stage_equals_the_same_stage_of_a_full_build(model, options, objective):
    config = TrainConfig(
        model=model, model_options=options, k=2, objective=objective, stage_parallel=True, out="unused"
    )
    full, built = full_and_stages(config, torch.randn(2, 3, 32, 32))
    for stage, (_, net, _) in enumerate(built):
        mine = own(net.state_dict(), stage)
        # this stage's parameters and buffers, and its auxiliary net's, all real and all equal
        assert mine.keys() == own(full, stage).keys() and mine
        for key, value in mine.items():
            assert not value.is_meta and torch.equal(value, full[key]), key
        # the other stage is a placeholder holding nothing
        other = net.stages[1 - stage]
        assert isinstance(other, RemoteStage) and not list(other.parameters())
        assert not [name for name, t in net.state_dict().items() if t.is_meta]


def test_a_stage_runs_forward_and_backward_like_the_full_build():
    config = TrainConfig(model="cifar_resnet20", k=2, stage_parallel=True, out="unused")
    example = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    _, p, full, _ = build(config, example, 10, "classification", MEAN, STD)
    torch.manual_seed(0)
    topology = Topology(rank=0, world=2, stages=2)
    _, net, _ = build_stage(
        config, example, 10, "classification", MEAN, STD, topology, [c.index for c in p.cuts]
    )
    assert torch.equal(net.stages[0](example), full.stages[0](example))
    with pytest.raises(Exception, match="stage 2 of 2 is built and trained by another process"):
        net.stages[1](example)


BAD_BACKBONE = """
    import torch
    from torch import nn

    class ReadsItsWeights(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.scale = float(self.conv.weight.abs().max().item())
            self.fc = nn.Linear(8, num_classes)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)) * self.scale)

    def make(**options):
        return ReadsItsWeights(**options)
"""


@pytest.fixture
def fresh_backbones():
    """Rescan the backbones before and after a test that installs a fake one."""
    BACKBONES.refresh()
    yield
    BACKBONES.refresh()


def test_a_model_that_cannot_be_built_on_meta_names_the_fallback(fake_dist, fresh_backbones):
    fake_dist(
        "reads-weights",
        {"splitnet.backbones": {"reads_weights": "reads_weights:make"}},
        {"reads_weights": BAD_BACKBONE},
    )
    config = TrainConfig(
        model="reads_weights", k=2, cuts=["conv"], cut_granularity="node", stage_parallel=True, out="unused"
    )
    topology = Topology(rank=0, world=2, stages=2)
    with pytest.raises(MetaBuildError) as caught:
        build_stage(config, torch.randn(2, 3, 8, 8), 10, "classification", MEAN, STD, topology)
    message = str(caught.value)
    assert message.startswith("reads_weights cannot be built one stage at a time: ")
    assert "meta" in message and "--full-build (TrainConfig(full_build=True))" in message
    # the fallback itself works: the full build of the same model
    torch.manual_seed(0)
    _, p, _, _ = build(config, torch.randn(2, 3, 8, 8), 10, "classification", MEAN, STD)
    assert p.k == 2


def test_full_build_is_only_for_stage_parallel_and_time_balance_needs_it():
    with pytest.raises(ValueError, match="--full-build only changes how --stage-parallel builds"):
        TrainConfig(model="cifar_resnet20", full_build=True)
    with pytest.raises(ValueError, match="--balance time times the real model.*pass --full-build"):
        TrainConfig(model="cifar_resnet20", k=2, balance="time", stage_parallel=True)
    TrainConfig(model="cifar_resnet20", k=2, balance="time", stage_parallel=True, full_build=True)
