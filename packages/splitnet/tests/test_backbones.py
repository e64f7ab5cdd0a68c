"""Backbones from the registry and from timm."""

from __future__ import annotations

import pytest
import torch

import splitnet


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_resnets_are_the_papers(depth):
    model = splitnet.create_backbone(f"cifar_resnet{depth}", num_classes=100)
    convs3x3 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3x3) + 1 == depth  # 6n + 1 weighted 3x3 layers plus the classifier
    widths = sorted({m.out_channels for m in convs3x3})
    assert widths == [16, 32, 64]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_resnet1202_builds():
    assert splitnet.create_backbone("cifar_resnet1202").depth == 1202


def test_listing_and_timm_names():
    assert splitnet.list_backbones("cifar_resnet1*") == ["cifar_resnet110", "cifar_resnet1202"]
    model = splitnet.create_backbone("resnet10t", num_classes=3)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    assert splitnet.backbone_provenance("resnet10t")["distribution"] == "timm"
    assert splitnet.backbone_provenance("cifar_resnet20")["distribution"] == "localkit-splitnet"


def test_unknown_backbone_suggests_registered_and_timm_names():
    with pytest.raises(splitnet.UnknownEntryError) as info:
        splitnet.create_backbone("cifar_resnet111")
    assert "cifar_resnet110" in str(info.value) and "splitnet.backbones" in str(info.value)
    with pytest.raises(splitnet.UnknownEntryError, match="Closest timm models: .*resnet50"):
        splitnet.create_backbone("resnet5O")


def test_a_plugin_factory_must_return_a_module(fake_dist):
    fake_dist(
        "bad-backbones",
        {"splitnet.backbones": {"not_a_model": "bad_bb:make"}},
        {"bad_bb": "def make(**kw):\n    return 'oops'\n"},
    )
    splitnet._registries.BACKBONES.refresh()
    try:
        with pytest.raises(TypeError, match=r"'not_a_model' from 'bad-backbones 1.0' returned str"):
            splitnet.create_backbone("not_a_model")
    finally:
        splitnet._registries.BACKBONES.refresh()
