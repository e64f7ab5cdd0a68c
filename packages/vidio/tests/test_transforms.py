"""Clip transforms equal a frame-by-frame reference, and draw one decision per clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vidio


@pytest.fixture
def frames():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 20, 30, 3), dtype=torch.uint8, generator=generator)


def test_to_float_clip_is_channels_first_in_unit_range(frames):
    clip = vidio.ToFloatClip()(frames)
    assert clip.shape == (3, 6, 20, 30) and clip.dtype == torch.float32
    for t in range(6):
        for c in range(3):
            torch.testing.assert_close(clip[c, t], frames[t, :, :, c].float() / 255, rtol=0, atol=0)
    segmented = vidio.ToFloatClip()(frames.numpy().reshape(2, 3, 20, 30, 3))
    assert segmented.shape == (2, 3, 3, 20, 30)
    with pytest.raises(TypeError, match="uint8"):
        vidio.ToFloatClip()(frames.float())


@pytest.mark.parametrize(("size", "expected"), [((10, 12), (10, 12)), (10, (10, 15)), ((40, 50), (40, 50))])
def test_resize_equals_resizing_each_frame(frames, size, expected):
    clip = vidio.ToFloatClip()(frames)
    out = vidio.Resize(size)(clip)
    assert out.shape == (3, 6, *expected)
    for t in range(6):
        reference = F.interpolate(clip[:, t][None], size=expected, mode="bilinear", antialias=True)[0]
        torch.testing.assert_close(out[:, t], reference, rtol=0, atol=1e-6)


def test_resize_keeps_segments_apart(frames):
    clip = vidio.ToFloatClip()(frames.reshape(2, 3, 20, 30, 3))
    out = vidio.Resize((8, 8))(clip)
    assert out.shape == (2, 3, 3, 8, 8)
    reference = vidio.Resize((8, 8))(clip[1])
    torch.testing.assert_close(out[1], reference, rtol=0, atol=0)


@pytest.mark.parametrize(("size", "top", "left"), [(10, 5, 10), ((7, 9), 6, 10), ((20, 30), 0, 0)])
def test_center_crop_matches_torchvision_rounding(frames, size, top, left):
    clip = vidio.ToFloatClip()(frames)
    height, width = (size, size) if isinstance(size, int) else size
    out = vidio.CenterCrop(size)(clip)
    torch.testing.assert_close(out, clip[..., top : top + height, left : left + width], rtol=0, atol=0)


def test_random_crop_is_one_window_for_the_whole_clip_and_reproducible(frames):
    clip = vidio.ToFloatClip()(frames.reshape(2, 3, 20, 30, 3))
    crop = vidio.RandomCrop((8, 10))
    places = set()
    for seed in range(300):
        out = crop(clip, rng=seed)
        matches = [
            (top, left)
            for top in range(13)
            for left in range(21)
            if torch.equal(out, clip[..., top : top + 8, left : left + 10])
        ]
        assert len(matches) == 1
        places.add(matches[0])
    assert len(places) > 100
    torch.testing.assert_close(crop(clip, rng=5), crop(clip, rng=np.random.default_rng(5)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not fit"):
        vidio.RandomCrop(40)(clip)


def test_flip_mirrors_every_frame_or_none(frames):
    clip = vidio.ToFloatClip()(frames)
    torch.testing.assert_close(vidio.RandomHorizontalFlip(1.0)(clip), clip[..., torch.arange(29, -1, -1)])
    torch.testing.assert_close(vidio.RandomHorizontalFlip(0.0)(clip), clip)
    flipped = [torch.equal(vidio.RandomHorizontalFlip()(clip, rng=s), clip) for s in range(100)]
    assert 20 < sum(flipped) < 80


def test_normalize_equals_per_channel_arithmetic(frames):
    clip = vidio.ToFloatClip()(frames)
    out = vidio.Normalize()(clip)
    for c, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        torch.testing.assert_close(out[c], (clip[c] - m) / s)
    with pytest.raises(ValueError, match="channels"):
        vidio.Normalize((0.5,), (0.5,))(clip)


def test_compose_is_deterministic_given_a_seed(frames):
    pipeline = vidio.Compose(
        [vidio.ToFloatClip(), vidio.RandomCrop(12), vidio.RandomHorizontalFlip(), vidio.Normalize()]
    )
    first, again = pipeline(frames, rng=11), pipeline(frames, rng=11)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert first.shape == (3, 6, 12, 12)
    assert any(not torch.equal(pipeline(frames, rng=s), first) for s in range(12, 20))


def test_transforms_refuse_uint8_frames(frames):
    with pytest.raises(TypeError, match="ToFloatClip first"):
        vidio.Resize(8)(frames)
