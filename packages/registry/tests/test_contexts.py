"""The frozen contexts factories receive: normalised, checked, immutable."""

from __future__ import annotations

import dataclasses

import pytest

from localkit_registry import CutContext, HeadContext


def test_a_cut_context_stores_tuples_and_defaults():
    context = CutContext(
        feature_shape=[16, 8, 8], num_classes=10, input_shape=[3, 32, 32], input_mean=[0.5], input_std=[0.25]
    )
    assert context.feature_shape == (16, 8, 8) and context.input_shape == (3, 32, 32)
    assert (context.input_mean, context.input_std) == ((0.5,), (0.25,))
    assert (context.layout, context.token_grid, context.num_prefix_tokens) == ("NCHW", None, 0)
    assert (context.task, context.index, context.num_cuts) == ("classification", 0, 1)
    assert (context.backbone, context.dataset, context.named_plan) == (None, None, None)
    assert context == CutContext(
        feature_shape=(16, 8, 8),
        num_classes=10,
        input_shape=(3, 32, 32),
        input_mean=(0.5,),
        input_std=(0.25,),
    )
    assert hash(context) == hash(dataclasses.replace(context))


def test_a_cut_context_names_the_network_data_and_plan():
    context = CutContext(
        feature_shape=(16, 32, 32),
        num_classes=10,
        backbone="cifar_resnet110",
        dataset="cifar10",
        named_plan="infopro*",
    )
    assert (context.backbone, context.dataset, context.named_plan) == (
        "cifar_resnet110",
        "cifar10",
        "infopro*",
    )


def test_a_context_cannot_be_changed_or_built_positionally():
    context = CutContext(feature_shape=(4,), num_classes=2, layout="NC")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.index = 1
    with pytest.raises(TypeError):
        CutContext((4,), 2)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (
            {"index": 3, "num_cuts": 3},
            ValueError,
            r"the cut index must be in 0 \.\. num_cuts - 1, got index=3 with num_cuts=3",
        ),
        ({"index": -1}, ValueError, "index must be at least 0, got -1"),
        ({"num_cuts": 2.0}, TypeError, "num_cuts must be an int, got 2.0"),
        ({"num_classes": 0}, ValueError, "num_classes must be at least 1, got 0"),
        ({"num_classes": True}, TypeError, "num_classes must be an int, got True"),
        (
            {"layout": "NWHC"},
            ValueError,
            "unknown layout 'NWHC'; expected one of NCHW, NHWC, NLC, NC, NCTHW, NTHWC",
        ),
        (
            {"task": "detection"},
            ValueError,
            "unknown task 'detection'; expected one of classification, segmentation",
        ),
        (
            {"feature_shape": (16, 0, 8)},
            ValueError,
            r"feature_shape must hold positive sizes, got \(16, 0, 8\)",
        ),
        ({"feature_shape": (16.0, 8, 8)}, TypeError, "feature_shape must be a sequence of ints"),
        ({"input_mean": (0.5, 0.5, 0.5)}, ValueError, "give both input_mean and input_std, or neither"),
        ({"input_mean": "abc", "input_std": (1.0,)}, TypeError, "input_mean must be a sequence of numbers"),
        ({"num_prefix_tokens": -1}, ValueError, "num_prefix_tokens must be at least 0"),
        ({"backbone": ""}, TypeError, "backbone must be a non-empty string or None, got ''"),
        ({"dataset": 10}, TypeError, "dataset must be a non-empty string or None, got 10"),
        ({"named_plan": ("infopro",)}, TypeError, "named_plan must be a non-empty string or None"),
    ],
)
def test_a_malformed_cut_context_is_refused_naming_the_field(fields, error, message):
    with pytest.raises(error, match="CutContext: " + message):
        CutContext(**{"feature_shape": (16, 8, 8), "num_classes": 10, **fields})


def test_a_head_context():
    context = HeadContext(
        feature_shape=[512, 8, 16], num_classes=19, input_shape=(3, 64, 128), task="segmentation"
    )
    assert context.feature_shape == (512, 8, 16) and context.layout == "NCHW"
    with pytest.raises(ValueError, match="HeadContext: unknown task 'regression'"):
        HeadContext(feature_shape=(8,), num_classes=1, layout="NC", task="regression")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.num_classes = 3
