"""Samplers return exactly the reference indices, and are deterministic given a seed."""

from __future__ import annotations

import numpy as np
import pytest

import vidio


@pytest.mark.parametrize("num_frames", [160, 161, 1000, 5347, 50])
def test_uniform_matches_the_jigsaws_reference(num_frames):
    expected = np.linspace(0, num_frames - 1, num=160).astype(int)
    np.testing.assert_array_equal(vidio.UniformSampler(160)(num_frames), expected)


def test_uniform_covers_a_range():
    indices = vidio.UniformSampler(4)(1000, start=100, stop=200)
    np.testing.assert_array_equal(indices, [100, 133, 166, 199])
    np.testing.assert_array_equal(vidio.UniformSampler(1)(10, 3, 7), [3])


def test_segments_match_the_mtl_aqa_reference():
    sampler = vidio.SegmentSampler(103, 10, 16)
    indices = sampler(200)
    reference_starts = [10 * i for i in range(9)] + [103 - 16]
    assert indices.shape == (10, 16)
    np.testing.assert_array_equal(indices, np.array(reference_starts)[:, None] + np.arange(16))


def test_segments_anchored_at_the_dive_end():
    indices = vidio.SegmentSampler(103, 10, 16, anchor="end")(5000, start=1234, stop=1300)
    assert indices[0, 0] == 1300 - 103 and indices[-1, -1] == 1299
    early = vidio.SegmentSampler(103, 10, 16, anchor="end")(5000, start=0, stop=60)
    assert early[0, 0] == 0 and early[-1, -1] == 102


def test_segments_with_explicit_stride_and_clipping_at_the_video_end():
    indices = vidio.SegmentSampler(20, 3, 8, stride=4)(15)
    np.testing.assert_array_equal(indices[:, 0], [0, 4, 8])
    assert indices.max() == 14


@pytest.mark.parametrize(
    ("position", "first"), [("start", 10), ("center", 10 + (50 - 31) // 2), ("end", 60 - 31)]
)
def test_clip_positions(position, first):
    indices = vidio.ClipSampler(16, stride=2, position=position)(100, start=10, stop=60)
    np.testing.assert_array_equal(indices, first + 2 * np.arange(16))


def test_random_clips_are_deterministic_given_a_seed_and_cover_every_place():
    sampler = vidio.ClipSampler(16, position="random")
    firsts = {int(sampler(100, 20, 40, rng=seed)[0]) for seed in range(200)}
    assert firsts == set(range(20, 25))
    np.testing.assert_array_equal(sampler(1000, rng=7), sampler(1000, rng=np.random.default_rng(7)))
    assert not np.array_equal(sampler(1000, rng=7), sampler(1000, rng=8))


def test_clip_longer_than_the_video_repeats_the_last_frame():
    np.testing.assert_array_equal(vidio.ClipSampler(5, position="start")(3), [0, 1, 2, 2, 2])


def test_sliding_windows_cover_the_range_and_end_on_its_last_frame():
    indices = vidio.SlidingWindowSampler(16, step=8)(100, start=10, stop=50)
    np.testing.assert_array_equal(indices[:, 0], [10, 18, 26, 34])
    np.testing.assert_array_equal(indices[-1], np.arange(34, 50))
    assert vidio.SlidingWindowSampler(16, step=16)(10).shape == (1, 16)


def test_random_shift_offsets_every_index_by_one_draw_within_bounds():
    base = vidio.SegmentSampler(103, 10, 16)
    shifted = vidio.RandomShift(base, 0, 6)
    offsets = set()
    for seed in range(100):
        indices = shifted(200, rng=seed)
        delta = np.unique(indices - base(200))
        assert len(delta) == 1
        offsets.add(int(delta[0]))
    assert offsets == set(range(7))
    np.testing.assert_array_equal(shifted(200, rng=3), shifted(200, rng=3))


def test_random_shift_stays_inside_the_video():
    indices = vidio.RandomShift(vidio.ClipSampler(4, position="end"), 5, 5)(10)
    np.testing.assert_array_equal(indices, [9, 9, 9, 9])


@pytest.mark.parametrize(
    "make",
    [
        lambda: vidio.UniformSampler(0),
        lambda: vidio.ClipSampler(4, position="middle"),
        lambda: vidio.SegmentSampler(10, 2, 16),
        lambda: vidio.SlidingWindowSampler(4, step=0),
        lambda: vidio.RandomShift(vidio.UniformSampler(4), 3, -3),
    ],
)
def test_invalid_settings_are_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_invalid_ranges_are_rejected():
    with pytest.raises(ValueError, match="starts after the last frame"):
        vidio.UniformSampler(4)(10, start=12, stop=20)
    with pytest.raises(ValueError, match="empty"):
        vidio.UniformSampler(4)(10, start=5, stop=5)
