"""mIoU from the confusion matrix, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from localkit_cityscapes import CLASS_NAMES, ConfusionMatrix


def test_iou_by_hand_with_ignored_pixels_and_an_absent_class():
    #            labelled pixels ---------   ignored (predicted 3 and 0: must not count)
    target = torch.tensor([0, 0, 1, 1, 2, 255, 255])
    prediction = torch.tensor([0, 1, 1, 1, 0, 3, 0])
    cm = ConfusionMatrix(4)
    cm.update(prediction, target)
    # class 0: TP 1, FP 1 (a 2 predicted as 0), FN 1 (a 0 predicted as 1) -> 1/3
    # class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: TP 0, FN 1 -> 0; class 3: absent -> no IoU
    iou = cm.iou()
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    assert cm.matrix.sum() == 5


def test_a_class_only_predicted_counts_as_zero():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 2]), torch.tensor([0, 0, 0]))
    # class 0: TP 2, FN 1 -> 2/3; class 2: FP 1 -> 0 (counts); class 1: absent
    assert cm.miou() == pytest.approx((2 / 3 + 0) / 2)


def test_batches_accumulate_like_one_big_batch():
    torch.manual_seed(0)
    target = torch.randint(0, 5, (4, 6, 7))
    target[target == 4] = 255
    prediction = torch.randint(0, 4, (4, 6, 7))
    whole, parts = ConfusionMatrix(4), ConfusionMatrix(4)
    whole.update(prediction, target)
    for p, t in zip(prediction, target):
        parts.update(p, t)
    assert torch.equal(whole.matrix, parts.matrix)
    ref = torch.zeros(4, 4, dtype=torch.int64)
    for t, p in zip(target.flatten().tolist(), prediction.flatten().tolist()):
        if t != 255:
            ref[t, p] += 1
    assert torch.equal(whole.matrix, ref)


def test_summary_names_the_nineteen_classes():
    cm = ConfusionMatrix(19)
    cm.update(torch.tensor([0, 13, 13]), torch.tensor([0, 13, 18]))
    summary = cm.summary()
    assert list(summary["iou"]) == list(CLASS_NAMES)
    assert summary["iou"]["road"] == 1.0 and summary["iou"]["car"] == 0.5 and summary["iou"]["bicycle"] == 0.0
    assert summary["iou"]["sky"] is None
    assert summary["miou"] == pytest.approx(0.5) and summary["labelled_pixels"] == 3


def test_nothing_labelled_gives_no_miou():
    cm = ConfusionMatrix(19)
    cm.update(torch.tensor([1, 2]), torch.tensor([255, 255]))
    assert math.isnan(cm.miou()) and cm.summary()["miou"] is None


@pytest.mark.parametrize(
    ("prediction", "target", "match"),
    [
        (torch.tensor([0, 1]), torch.tensor([0, 1, 1]), "same shape"),
        (torch.tensor([0, 1]), torch.tensor([0, 19]), "labels must lie in 0..18"),
        (torch.tensor([0, 20]), torch.tensor([0, 1]), "predictions must lie in 0..18"),
    ],
)
def test_bad_inputs_are_refused(prediction, target, match):
    with pytest.raises(ValueError, match=match):
        ConfusionMatrix(19).update(prediction, target)
