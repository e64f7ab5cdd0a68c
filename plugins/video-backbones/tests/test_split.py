"""splitnet cuts every video backbone into stages whose chain equals the model, and trains them locally."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import video as tv_video

import splitnet
from localkit_video_backbones import StaticGridMViT

TINY = {
    "i3d": (2, 3, 8, 56, 56),
    "video_r3d_18": (2, 3, 8, 56, 56),
    "video_mc3_18": (2, 3, 8, 56, 56),
    "video_r2plus1d_18": (2, 3, 8, 56, 56),
    "video_s3d": (2, 3, 8, 64, 64),
    "video_swin3d_t": (2, 3, 4, 64, 64),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_split_inference_equals_the_model(name):
    torch.manual_seed(0)
    model = splitnet.create_backbone(name).eval()
    clip = torch.randn(*TINY[name])
    plan = splitnet.plan(model, 3, balance="even", example_input=clip, num_classes=4, measure_memory=False)
    net = splitnet.split(model, plan).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(clip), model(clip), rtol=0, atol=1e-5)


def test_i3d_cuts_between_inception_blocks(clip):
    chain = splitnet.trace(splitnet.create_backbone("i3d"), clip)
    labels = [cut.label for cut in chain.cuts]
    assert {"Mixed_3b", "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b"} <= set(labels)
    assert not any(".b1b" in label or ".b3a" in label for label in labels)  # never inside a block
    assert chain.find("Mixed_4c").shape == (2, 512, 2, 4, 4)


def test_video_backbones_plan_at_block_boundaries():
    """Default plans cut after a stem, a residual block or an Inception unit, never inside one."""
    torch.manual_seed(0)
    model = splitnet.create_backbone("video_r2plus1d_18", num_classes=4)
    clip = torch.randn(*TINY["video_r2plus1d_18"])
    chain = splitnet.trace(model, clip)
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    assert [cut.label for cut in splitnet.block_cuts(chain)] == ["stem", *blocks]
    for balance in ("memory", "even"):
        plan = splitnet.plan(model, 4, balance=balance, chain=chain, measure_memory=False)
        assert {cut.label for cut in plan.cuts} <= {"stem", *blocks}  # block outputs, the stem's included
    i3d = splitnet.trace(splitnet.create_backbone("i3d"), torch.randn(*TINY["i3d"]))
    chosen = [cut.label for cut in splitnet.block_cuts(i3d)]
    assert chosen[:4] == ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    assert (
        "Conv3d_1a_7x7.bn" in [c.label for c in i3d.cuts] and "Conv3d_1a_7x7.bn" not in chosen
    )  # before ReLU


def test_i3d_local_step_k2_greedy(clip):
    """K=2 with splitnet's greedy objective: it pools the NCTHW features at the cut."""
    torch.manual_seed(0)
    model = splitnet.create_backbone("i3d", num_classes=3, dropout=0.0)
    plan = splitnet.plan(model, 2, balance="memory", example_input=clip, num_classes=3)
    cut = plan.cuts[0]
    assert plan.context(cut, 0, 1).layout == "NCTHW"
    assert max(plan.stage_bytes) < plan.e2e_bytes  # each stage keeps less for backward than e2e
    net = splitnet.split(model, plan)
    targets = torch.tensor([0, 2])
    result = net.local_step(clip, targets)
    assert len(result.losses) == 2 and all(torch.isfinite(loss) for loss in result.losses)
    assert result.output.shape == (2, 3)
    # the first stage learns from its local loss alone: no gradient crosses the cut
    stage, objective = net.stages[0], net.objectives[0]
    params = list(stage.parameters())
    recorded = [p.grad.clone() for p in params]
    local = torch.autograd.grad(objective(stage(clip), clip, targets), params)
    for got, expected in zip(recorded, local):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mvit_v1_b", "mvit_v2_s"])
def test_mvit_splits_between_blocks_and_equals_torchvision(arch):
    torch.manual_seed(0)
    reference = getattr(tv_video, arch)(num_classes=3).eval()
    model = StaticGridMViT(reference).eval()
    clip = torch.randn(1, 3, 16, 224, 224)
    chain = splitnet.trace(model, clip)
    labels = [cut.label for cut in chain.cuts]
    assert [f"block_{i}" for i in range(1, 16)] == [label for label in labels if label.startswith("block_")]
    middle = chain.cuts.index(chain.find("block_7")) + 1
    with torch.no_grad():
        split = chain.module(middle, chain.num_pieces)(chain.module(0, middle)(clip))
        torch.testing.assert_close(split, reference(clip), rtol=0, atol=1e-5)


def test_r2plus1d_local_step_k2_infopro():
    """InfoPro (from infoloss) reconstructs the clip from the NCTHW features at the cut."""
    torch.manual_seed(0)
    model = splitnet.create_backbone("video_r2plus1d_18", num_classes=3)
    mean, std = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)  # torchvision's Kinetics
    frames = torch.rand(2, 3, 8, 56, 56)
    clips = (frames - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)
    plan = splitnet.plan(
        model,
        cuts=["layer2"],
        example_input=clips,
        objective="infopro",
        input_mean=mean,
        input_std=std,
        measure_memory=False,
    )
    net = splitnet.split(model, plan)
    result = net.local_step(clips, torch.tensor([0, 1]))
    assert len(result.losses) == 2 and all(torch.isfinite(loss) for loss in result.losses)
    assert all(p.grad is not None for p in net.stage_parameters(0))
