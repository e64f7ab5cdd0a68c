"""The DeepLab-V3 head and the dilated backbones, built through splitnet's entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import torch

import splitnet
from localkit_cityscapes import DeepLabV3Head, deeplabv3

DISTRIBUTION = "localkit-cityscapes"


@pytest.mark.parametrize(
    ("group", "names"),
    [
        ("splitnet.datasets", ["cityscapes"]),
        ("splitnet.heads", ["deeplabv3"]),
        ("splitnet.backbones", ["deeplab_resnet18", "deeplab_resnet50", "deeplab_resnet101"]),
    ],
)
def test_entries_are_declared_by_this_distribution(group, names):
    declared = {ep.name: ep for ep in entry_points(group=group) if ep.dist.name == DISTRIBUTION}
    assert sorted(declared) == sorted(names)
    for name in names:
        assert declared[name].value.startswith("localkit_cityscapes._")
        assert callable(declared[name].load())


def test_splitnet_lists_them_without_importing():
    assert "deeplabv3" in splitnet.list_heads()
    assert "cityscapes" in splitnet.list_datasets()
    assert splitnet.list_backbones("deeplab_*") == [
        "deeplab_resnet18",
        "deeplab_resnet50",
        "deeplab_resnet101",
    ]


@pytest.mark.parametrize(("output_stride", "rates"), [(8, (12, 24, 36)), (16, (6, 12, 18))])
def test_head_on_a_dilated_backbone_gives_logits_at_input_size(output_stride, rates):
    torch.manual_seed(0)
    backbone = splitnet.create_backbone("deeplab_resnet18", output_stride=output_stride)
    x = torch.randn(2, 3, 64, 128)
    features = backbone.eval()(x)
    assert features.shape == (2, 512, 64 // output_stride, 128 // output_stride)
    model = splitnet.attach_head(backbone, "deeplabv3", x, 19, "segmentation", channels=32)
    head = model.head
    assert isinstance(head, DeepLabV3Head)
    assert (head.output_stride, head.aspp.rates) == (output_stride, rates)
    # the 3x3 branches really are dilated at those rates
    assert [b[0].dilation for b in head.aspp.branches] == [(1, 1)] + [(r, r) for r in rates]
    assert model.eval()(x).shape == (2, 19, 64, 128)
    # other input sizes (multi-scale evaluation) scale with the input
    assert model(torch.randn(1, 3, 96, 160)).shape == (1, 19, 96, 160)


def test_head_layers_follow_mmsegmentation_aspp_head():
    head = DeepLabV3Head(2048, 19, output_stride=8)  # channels 512, as in deeplabv3_r50-d8.py
    assert head.aspp.image_pool.project[0].weight.shape == (512, 2048, 1, 1)
    assert head.aspp.branches[0][0].weight.shape == (512, 2048, 1, 1)
    assert all(b[0].weight.shape == (512, 2048, 3, 3) for b in head.aspp.branches[1:])
    assert head.bottleneck[0].weight.shape == (512, 5 * 512, 3, 3)
    assert isinstance(head.dropout, torch.nn.Dropout2d) and head.dropout.p == 0.1
    assert head.classifier.weight.shape == (19, 512, 1, 1)


def test_image_pooling_branch_sees_the_whole_image():
    torch.manual_seed(0)
    head = DeepLabV3Head(8, 3, output_stride=8, channels=4, rates=(1, 2, 3)).eval()
    x = torch.randn(1, 8, 16, 16)
    changed = x.clone()
    changed[..., 0, 0] += 100.0
    pooled, pooled_changed = head.aspp.image_pool(x), head.aspp.image_pool(changed)
    assert not torch.allclose(pooled[..., 15, 15], pooled_changed[..., 15, 15])
    assert torch.equal(pooled[..., 0, 0], pooled[..., 15, 15])  # broadcast: one value per channel


def test_head_options_arrive_as_strings_from_the_command_line():
    context = splitnet.HeadContext(
        feature_shape=(64, 8, 8), num_classes=5, input_shape=(3, 64, 64), task="segmentation"
    )
    head = deeplabv3(context, channels="16", rates="2,4,6", dropout="0")
    assert head.aspp.rates == (2, 4, 6) and head.classifier.in_channels == 16 and head.dropout.p == 0.0
    with pytest.raises(TypeError, match="unexpected keyword argument 'unknown_future_option'"):
        deeplabv3(context, channels="16", unknown_future_option=1)


def test_a_misspelled_head_option_names_the_accepted_ones():
    context = splitnet.HeadContext(
        feature_shape=(64, 8, 8), num_classes=5, input_shape=(3, 64, 64), task="segmentation"
    )
    with pytest.raises(splitnet.OptionError) as info:
        splitnet.create_head("deeplabv3", context, chanels=16)
    assert str(info.value) == (
        f"head 'deeplabv3' from '{DISTRIBUTION} 0.1.0' does not accept option 'chanels' (did you mean "
        "'channels'?). It accepts: 'channels', 'dropout', 'output_stride', 'rates'."
    )


def test_a_misspelled_backbone_option_names_the_accepted_ones():
    with pytest.raises(
        splitnet.OptionError,
        match=r"backbone 'deeplab_resnet18' .*'output_strid' \(did you mean 'output_stride'\?\)",
    ):
        splitnet.create_backbone("deeplab_resnet18", output_strid=16)
    with pytest.raises(splitnet.OptionError, match="does not accept option 'drop_path'"):
        splitnet.create_backbone("deeplab_resnet50", drop_path=0.1)
    assert splitnet.create_backbone("deeplab_resnet18").layer4[-1].drop_path is None
    assert (
        splitnet.create_backbone("deeplab_resnet18", drop_path_rate=0.1).layer4[-1].drop_path.drop_prob == 0.1
    )


@pytest.mark.parametrize(
    ("context", "match"),
    [
        ({"task": "classification"}, "segmentation head but the task is 'classification'"),
        ({"feature_shape": (512,), "layout": "NC"}, "needs feature maps"),
        (
            {"feature_shape": (512, 2, 2), "input_shape": (3, 64, 64)},
            "no default atrous rates for output stride 32",
        ),
        ({"feature_shape": (512, 8, 4), "input_shape": (3, 64, 128)}, "cannot read an output stride"),
        ({"input_shape": None}, "without the input shape, pass output_stride="),
    ],
)
def test_head_refuses_what_it_cannot_serve(context, match):
    base = dict(
        feature_shape=(512, 8, 16),
        layout="NCHW",
        num_classes=19,
        input_shape=(3, 64, 128),
        task="segmentation",
    )
    with pytest.raises(ValueError, match=match):
        splitnet.create_head("deeplabv3", splitnet.HeadContext(**{**base, **context}))


def test_backbones_refuse_a_classifier_and_odd_strides():
    with pytest.raises(ValueError, match="put a segmentation head on it"):
        splitnet.create_backbone("deeplab_resnet18", num_classes=19)
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        splitnet.create_backbone("deeplab_resnet18", output_stride=32)


def test_resnet101_uses_the_v1c_stem_and_carries_the_papers_cut():
    torch.manual_seed(0)
    model = splitnet.create_backbone("deeplab_resnet101")
    stem = [m for m in model.conv1 if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in stem] == [
        (3, 32, (3, 3), (2, 2)),
        (32, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
    ]
    assert len(model.layer3) == 23
    assert model.named_plans == {"infopro*": {2: ["layer3.12"]}}
    x = torch.randn(2, 3, 32, 32)
    plan = splitnet.plan(
        model,
        2,
        balance="infopro*",
        example_input=x,
        num_classes=19,
        task="segmentation",
        measure_memory=False,
    )
    assert [c.label for c in plan.cuts] == ["layer3.12"]
    # the first module ends after 13 of layer3's 23 blocks, like the reference's forward_train1
    net = splitnet.split(model, plan).eval()
    first = net.stages[0](x)
    expected = model.layer3[:13](
        model.layer2(model.layer1(model.maxpool(model.act1(model.bn1(model.conv1(x))))))
    )
    assert torch.equal(first, expected)
