"""Single-scale and multi-scale + flip prediction on trivial models, and dataset evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from localkit_cityscapes import ID_TO_TRAIN_ID, MULTISCALE_SCALES, cityscapes, evaluate_segmentation, predict


class SizeRecorder(nn.Module):
    """Class 0 scores ``height / 100`` of the input it got, class 1 scores 0; output at half size."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        height, width = x.shape[-2:]
        self.sizes.append((height, width))
        out = torch.zeros(x.shape[0], 2, height // 2, width // 2)
        out[:, 0] = height / 100
        return out


class PatternPlusRamp(nn.Module):
    """Class 0 scores the input's first channel plus a left-to-right ramp from -1 to 1."""

    def forward(self, x):
        ramp = torch.linspace(-1, 1, x.shape[-1])
        return torch.stack([x[:, 0] + ramp, torch.zeros_like(x[:, 0])], dim=1)


class Oracle(nn.Module):
    """Reads the label id the tree's images encode in red and scores its train id."""

    def forward(self, x):
        red = x[:, 0] * 0.229 + 0.485
        ids = (red * 255 / 7).round().long().clamp(0, 255)
        train_ids = torch.from_numpy(ID_TO_TRAIN_ID.astype("int64"))[ids]
        return 10.0 * nn.functional.one_hot(train_ids.clamp(max=19), 20)[..., :19].permute(0, 3, 1, 2).float()


def test_single_scale_is_the_model_output():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 16, 24)
    assert torch.equal(predict(model, x), model(x))


def test_every_scale_runs_and_is_resized_back_then_averaged():
    model = SizeRecorder()
    scores = predict(model, torch.randn(1, 3, 32, 64), scales=(0.5, 1.0, 1.5))
    assert model.sizes == [(16, 32), (32, 64), (48, 96)]
    assert scores.shape == (1, 2, 32, 64)
    torch.testing.assert_close(scores[:, 0], torch.full((1, 32, 64), (0.16 + 0.32 + 0.48) / 3))
    assert bool((scores[:, 1] == 0).all())


def test_probabilities_average_the_softmax_of_each_pass():
    scores = predict(SizeRecorder(), torch.randn(1, 3, 32, 64), scales=(0.5, 1.5), average="probs")
    expected = (torch.sigmoid(torch.tensor(0.16)) + torch.sigmoid(torch.tensor(0.48))) / 2
    torch.testing.assert_close(scores[0, 0], torch.full((32, 64), float(expected)))
    torch.testing.assert_close(scores.sum(1), torch.ones(1, 32, 64))


def test_flip_runs_the_mirrored_input_and_mirrors_its_scores_back():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 12)
    model = PatternPlusRamp()
    torch.testing.assert_close(predict(model, x)[:, 0], x[:, 0] + torch.linspace(-1, 1, 12))
    # flipped pass: x[..., ::-1] + ramp, mirrored back: x + reversed ramp; the ramps cancel
    torch.testing.assert_close(predict(model, x, flip=True)[:, 0], x[:, 0])
    recorder = SizeRecorder()
    predict(recorder, torch.randn(1, 3, 32, 64), scales=MULTISCALE_SCALES, flip=True)
    assert len(recorder.sizes) == 2 * len(MULTISCALE_SCALES) == 12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"average": "max"}, "average must be one of"),
        ({"scales": ()}, "scales"),
        ({"scales": (0,)}, "scales"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict(nn.Identity(), torch.randn(1, 3, 4, 4), **kwargs)


def test_a_perfect_model_scores_one_and_absent_classes_have_no_iou(tree):
    data = cityscapes(tree, "val")
    model = Oracle().train()
    result = evaluate_segmentation(model, data, batch_size=2)
    assert model.training  # restored after evaluation
    assert result["miou"] == 1.0 and result["pixel_accuracy"] == 1.0
    present = {name for name, iou in result["iou"].items() if iou is not None}
    # the tree's evaluated ids: road, sidewalk, building, vegetation, sky, person, car, bicycle
    assert present <= {"road", "sidewalk", "building", "vegetation", "sky", "person", "car", "bicycle"}
    assert len(present) >= 5 and result["iou"]["truck"] is None
    labelled = sum(int((data[i][1] != 255).sum()) for i in range(len(data)))
    assert result["labelled_pixels"] == labelled and result["images"] == 2


def test_a_model_that_always_says_road_scores_the_road_share(tree):
    data = cityscapes(tree, "val")
    road = nn.Conv2d(3, 19, 1)
    nn.init.zeros_(road.weight)
    with torch.no_grad():
        road.bias.copy_(torch.arange(19, 0, -1).float())  # class 0 (road) always wins
    result = evaluate_segmentation(road, data, scales=(0.5, 1.0), flip=True)
    targets = torch.cat([data[i][1].flatten() for i in range(len(data))])
    labelled = targets[targets != 255]
    road_iou = float((labelled == 0).sum()) / labelled.numel()
    classes = len(torch.unique(labelled))
    assert result["iou"]["road"] == pytest.approx(road_iou)
    assert result["miou"] == pytest.approx(road_iou / classes)
    assert (result["scales"], result["flip"]) == ([0.5, 1.0], True)
