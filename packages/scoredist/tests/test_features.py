import pytest
import torch
from torch import nn

from scoredist import ClipEncoder, FeatureSet, cut_segments, extract_features
from scoredist._features import cached_features


def test_cut_segments_strided_as_the_reference_or_evenly_spaced():
    video = torch.arange(103, dtype=torch.float32).view(1, 103, 1, 1).expand(3, 103, 2, 2)
    segments = cut_segments(video, 10, 16, stride=10)
    assert segments.shape == (10, 3, 16, 2, 2)
    assert segments[:, 0, :, 0, 0].tolist() == [
        [float(s + t) for t in range(16)] for s in (*range(0, 90, 10), 87)
    ]
    even = cut_segments(video, 10, 16)[:, 0, 0, 0, 0].tolist()
    assert even == [0, 10, 19, 29, 39, 48, 58, 68, 77, 87]  # without a stride: evenly spaced, ours
    assert cut_segments(torch.zeros(2, 3, 160, 4, 4), 10, 16).shape == (2, 10, 3, 16, 4, 4)
    jigsaws = cut_segments(torch.arange(160.0).view(1, 160, 1, 1), 10, 16)[:, 0, 0, 0, 0].tolist()
    assert jigsaws == [16.0 * i for i in range(10)]  # non-overlapping, as the reference
    with pytest.raises(ValueError, match="shorter than one segment"):
        cut_segments(torch.zeros(3, 8, 4, 4), 2, 16)


class MeanPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3, 4))


def test_clip_encoder_averages_segment_features():
    video = torch.randn(2, 3, 32, 4, 4)
    encoder = ClipEncoder(MeanPool(), "meanpool", segments=(4, 8))
    expected = torch.stack([cut_segments(v, 4, 8).mean(dim=(2, 3, 4)).mean(0) for v in video])
    torch.testing.assert_close(encoder(video), expected)
    presegmented = cut_segments(video, 4, 8)
    torch.testing.assert_close(ClipEncoder(MeanPool())(presegmented), expected)


def test_backbone_with_wrong_output_shape_is_named():
    class NoPool(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(
        ValueError, match=r"backbone 'nopool' returned \(2, 3, 8, 4, 4\) for 2 clips.*\(N, F\)"
    ):
        ClipEncoder(NoPool(), "nopool")(torch.zeros(2, 3, 8, 4, 4))


def test_feature_set_round_trip_and_cache(tmp_path):
    items = [
        {
            "video": torch.full((3, 4, 2, 2), float(i)),
            "score": torch.tensor(float(i)),
            "id": f"s{i}",
            "judge_scores": torch.tensor([i, i + 0.5]),
            "difficulty": torch.tensor(2.0),
        }
        for i in range(5)
    ]
    calls = []

    def compute():
        calls.append(1)
        return extract_features(ClipEncoder(MeanPool()), items, batch_size=2)

    description = {"dataset": "x", "split": "train", "backbone": "meanpool"}
    first, hit = cached_features(tmp_path, description, compute)
    again, hit_again = cached_features(tmp_path, description, compute)
    assert (hit, hit_again) == (False, True) and len(calls) == 1
    assert again.ids == [f"s{i}" for i in range(5)]
    torch.testing.assert_close(again.features, torch.arange(5.0).unsqueeze(1).expand(5, 3))
    torch.testing.assert_close(again.judge_scores, first.judge_scores)
    assert again[3]["difficulty"].item() == 2.0 and "action" not in again[3]
    other, hit_other = cached_features(tmp_path, {**description, "split": "test"}, compute)
    assert not hit_other and len(calls) == 2


def test_feature_set_is_a_dataset():
    data = FeatureSet(
        features=torch.zeros(3, 4), score=torch.ones(3), ids=["a", "b", "c"], actions=["x", "y", "x"]
    )
    assert len(data) == 3 and data[1]["action"] == "y" and data[2]["id"] == "c"
