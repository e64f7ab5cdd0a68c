"""Plans cut at block boundaries by default: what a block is, on the models users split."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import splitnet


def block_labels(model, x):
    chain = splitnet.trace(model, x)
    return [cut.label for cut in splitnet.block_cuts(chain)], chain


def cifar_blocks(depth):
    n = (depth - 2) // 6
    return ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(n)]


@pytest.mark.parametrize("depth", [20, 32, 110])
def test_cifar_resnets_are_cut_after_the_stem_and_after_every_basic_block(depth):
    labels, chain = block_labels(splitnet.create_backbone(f"cifar_resnet{depth}"), torch.randn(2, 3, 32, 32))
    assert labels == cifar_blocks(depth)
    inside = [c.label for c in chain.cuts if c.label not in labels]
    # what node granularity adds: the stem's convolution and batch norm, every residual addition
    # before its ReLU, and the pooled head
    n = (depth - 2) // 6
    blocks = [(s, b) for s in (1, 2, 3) for b in range(n)]
    adds = [f"layer{s}.{b}[add{f'_{i}' if i else ''}]" for i, (s, b) in enumerate(blocks)]
    assert inside == ["stem.0", "stem.1", *adds, "pool", "flatten"]


def test_default_plans_of_resnet110_cut_only_at_block_outputs():
    model = splitnet.create_backbone("cifar_resnet110")
    chain = splitnet.trace(model, torch.randn(2, 3, 32, 32))
    blocks = set(cifar_blocks(110))
    for balance in ("memory", "even", "time"):
        for k in (2, 3, 4):
            p = splitnet.plan(model, k, balance=balance, chain=chain, batch_size=64, measure_memory=False)
            assert p.granularity == "block" and {c.label for c in p.cuts} <= blocks, (balance, k)
    node = splitnet.plan(
        model, cuts=["layer1.14[add_14]"], chain=chain, granularity="node", measure_memory=False
    )
    assert [c.label for c in node.cuts] == ["layer1.14[add_14]"] and node.granularity == "node"
    with pytest.raises(
        splitnet.SplitError,
        match=r"cut 'layer1.14\[add_14\]' lies inside a block.*'layer1.13' or 'layer1.14'.*granularity='node'",
    ):
        splitnet.plan(model, cuts=["layer1.14[add_14]"], chain=chain, measure_memory=False)
    with pytest.raises(splitnet.SplitError, match="unknown granularity 'layer'"):
        splitnet.plan(model, 2, chain=chain, granularity="layer")


def test_even_plans_count_blocks():
    model = splitnet.create_backbone("cifar_resnet32")
    chain = splitnet.trace(model, torch.randn(2, 3, 32, 32))
    boundaries = [
        cut.index for cut in splitnet.block_cuts(chain)
    ]  # 16: the stem and 15 blocks; the head after them is a unit too
    p = splitnet.plan(model, 4, balance="even", chain=chain, measure_memory=False)
    units = [sum(a <= c <= b - 2 for c in boundaries) + 1 for a, b in p.stages]
    assert sum(units) == len(boundaries) + 1 and max(units) - min(units) <= 1


def test_k_is_limited_by_the_block_boundaries():
    model = splitnet.create_backbone("cifar_resnet20")
    chain = splitnet.trace(model, torch.randn(2, 3, 32, 32))
    with pytest.raises(
        splitnet.SplitError,
        match=r"K=12 needs 11 cut points but CifarResNet has only 10 usable ones at block boundaries "
        r"\(granularity='node' also cuts inside blocks\): choose K <= 11",
    ):
        splitnet.plan(model, 12, balance="even", chain=chain, measure_memory=False)
    assert (
        splitnet.plan(model, 12, balance="even", chain=chain, granularity="node", measure_memory=False).k
        == 12
    )


# networks/configs.py of the InfoPro reference code: [stage, block] is "after block `block` of
# layer `stage`", [0, 0] "after the stem"; InfoPro (lines 2-28), InfoPro_balanced_memory (30-46).
REFERENCE_CUTS = {
    (32, "infopro"): {
        2: [[2, 1]],
        3: [[1, 4], [2, 4]],
        4: [[1, 2], [2, 1], [3, 0]],
        8: [[1, 0], [1, 2], [1, 4], [2, 1], [2, 3], [3, 0], [3, 2]],
        16: [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3], [1, 4], [2, 0], [2, 1], [2, 2], [2, 3], [2, 4]]
        + [[3, 0], [3, 1], [3, 2], [3, 3]],
    },
    (110, "infopro"): {
        2: [[2, 8]],
        3: [[1, 17], [2, 17]],
        4: [[1, 11], [2, 7], [3, 3]],
        8: [[1, 4], [1, 11], [2, 0], [2, 7], [2, 14], [3, 3], [3, 10]],
        16: [[1, 1], [1, 4], [1, 7], [1, 10], [1, 13], [1, 16], [2, 1], [2, 4], [2, 7], [2, 11], [2, 15]]
        + [[3, 1], [3, 5], [3, 9], [3, 13]],
    },
    (110, "infopro*"): {2: [[1, 14]], 3: [[1, 9], [2, 2]], 4: [[1, 6], [1, 14], [2, 8]]},
    (110, "infopro*-stl10"): {2: [[1, 14]], 3: [[1, 8], [2, 1]], 4: [[1, 6], [1, 14], [2, 8]]},
}


@pytest.mark.parametrize(("depth", "name"), sorted(REFERENCE_CUTS))
def test_the_reference_cuts_are_named_plans_at_block_outputs(depth, name):
    model = splitnet.create_backbone(f"cifar_resnet{depth}")
    chain = splitnet.trace(model, torch.randn(2, 3, 32, 32))
    assert sorted(model.named_plans[name]) == sorted(REFERENCE_CUTS[depth, name])
    for k, cuts in REFERENCE_CUTS[depth, name].items():
        p = splitnet.plan(model, k, balance=name, chain=chain, measure_memory=False)
        expected = ["stem" if stage == 0 else f"layer{stage}.{block}" for stage, block in cuts]
        assert [c.label for c in p.cuts] == expected and p.context.named_plan == name
        explicit = splitnet.plan(model, cuts=expected, chain=chain, measure_memory=False)
        assert explicit.context.named_plan in (name, "infopro*")  # K=2 and 4 of the two InfoPro* tables agree


def test_a_timm_resnet_is_cut_after_its_stem_and_every_block():
    import timm

    labels, _ = block_labels(timm.create_model("resnet18"), torch.randn(2, 3, 64, 64))
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    # the stem is root-level layers: the boundary is where layer1 begins, after the max pool
    assert labels == ["maxpool", *blocks, "global_pool"]


def test_a_timm_vit_is_cut_at_its_patch_embedding_and_every_transformer_block():
    import timm

    labels, chain = block_labels(
        timm.create_model("vit_tiny_patch16_224", img_size=64), torch.randn(2, 3, 64, 64)
    )
    assert labels == ["patch_embed", "norm_pre", *[f"blocks.{i}" for i in range(12)]]
    assert "blocks.3[add_7]" in [c.label for c in chain.cuts]  # after attention, before the MLP: inside


def test_a_convnext_is_cut_at_its_stem_downsamplings_and_blocks():
    import timm

    labels, _ = block_labels(timm.create_model("convnext_atto"), torch.randn(2, 3, 64, 64))
    depths = (2, 2, 6, 2)
    expected = ["stem", "stages.0.downsample"]
    for s, depth in enumerate(depths):
        if s:
            expected.append(f"stages.{s}.downsample")
        expected += [f"stages.{s}.blocks.{b}" for b in range(depth)]
    assert labels == [*expected, "norm_pre", "head.global_pool"]


def test_a_sequential_of_layers_is_cut_between_its_layers():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    labels, chain = block_labels(model, torch.randn(2, 3, 16, 16))
    assert labels == [c.label for c in chain.cuts] == ["0", "1", "2", "3", "4"]


def test_a_head_on_a_backbone_keeps_the_backbone_s_blocks_and_plans():
    backbone = splitnet.create_backbone("cifar_resnet32")  # ends in its own classifier: (N, 10)
    head = nn.Sequential(nn.ReLU(), nn.Linear(10, 10))
    model = splitnet.HeadedModel(backbone, head)
    labels, _ = block_labels(model, torch.randn(2, 3, 32, 32))
    # the backbone's own output (after its classifier, where the head begins) is a block end too
    assert labels == [f"backbone.{label}" for label in cifar_blocks(32)] + ["backbone"]
    p = splitnet.plan(
        model, 16, balance="infopro", example_input=torch.randn(2, 3, 32, 32), measure_memory=False
    )
    assert p.cuts[0].label == "backbone.stem" and p.context.named_plan == "infopro"


def test_cifar_resnets_start_as_the_reference_initialises_them():
    # networks/resnet.py lines 141-147: conv weights normal(0, sqrt(2 / (k*k*out_channels))),
    # batch norm weight 1 and bias 0; the Linear classifier keeps PyTorch's default
    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet110")
    weights = {}
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            std = (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5
            weights.setdefault(std, []).append(m.weight.detach().flatten())
        if isinstance(m, nn.BatchNorm2d):
            assert bool((m.weight == 1).all() and (m.bias == 0).all())
    assert len(weights) == 5  # 3x3 convolutions at 16, 32 and 64 channels, 1x1 shortcuts at 32 and 64
    for std, parts in weights.items():
        w = torch.cat(parts).double()
        if w.numel() < 10_000:
            continue  # the two 1x1 shortcut convolutions: too few weights to measure their spread
        assert abs(w.mean().item()) < 0.02 * std and abs(w.std().item() / std - 1) < 0.02
        assert w.abs().max().item() > 3 * std  # a normal's tails: a uniform of that spread stops at 1.73 std
    limit = 1 / model.fc.in_features**0.5
    assert model.fc.weight.abs().max().item() <= limit
