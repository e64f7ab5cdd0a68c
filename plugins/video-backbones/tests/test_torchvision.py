"""torchvision's video models: feature sizes, logits, torchvision's parameter names, MViT's grids."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import video as tv_video

import splitnet
from localkit_video_backbones import ARCHITECTURES, StaticGridMViT, video_model
from localkit_video_backbones._mvit import block_grids

# clips small enough for a CPU; the MViTs only take the size they were built for (below)
TINY = {
    "r3d_18": (2, 3, 8, 56, 56),
    "mc3_18": (2, 3, 8, 56, 56),
    "r2plus1d_18": (2, 3, 8, 56, 56),
    "s3d": (2, 3, 8, 64, 64),
    "swin3d_t": (2, 3, 4, 64, 64),
    "swin3d_s": (2, 3, 4, 64, 64),
    "swin3d_b": (2, 3, 4, 64, 64),
}
FEATURES = {
    "r3d_18": 512,
    "mc3_18": 512,
    "r2plus1d_18": 512,
    "s3d": 1024,
    "mvit_v1_b": 768,
    "mvit_v2_s": 768,
    "swin3d_t": 768,
    "swin3d_s": 768,
    "swin3d_b": 1024,
}


def test_every_architecture_is_covered():
    assert set(FEATURES) == set(ARCHITECTURES)
    assert set(TINY) == set(ARCHITECTURES) - {"mvit_v1_b", "mvit_v2_s"}


@pytest.mark.parametrize("arch", sorted(TINY))
def test_features_by_default(arch):
    model = video_model(arch).eval()
    with torch.no_grad():
        assert model(torch.randn(*TINY[arch])).shape == (2, FEATURES[arch]) == (2, model.num_features)


@pytest.mark.parametrize("arch", ["r3d_18", "mc3_18", "r2plus1d_18", "swin3d_t"])
def test_logits_on_request(arch):
    with torch.no_grad():
        assert video_model(arch, num_classes=3).eval()(torch.randn(*TINY[arch])).shape == (2, 3)


def test_s3d_logits_keep_torchvision_s_pooling():
    # torchvision's head pools 2x7x7 windows: logits need clips of at least 14 frames at 224x224
    model = video_model("s3d", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 14, 224, 224)).shape == (1, 3)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_parameter_names_are_torchvision_s(arch):
    with torch.device("meta"):  # names and shapes only: skip the initialisation
        reference = getattr(tv_video, arch)().state_dict()
        logits = video_model(arch, features=False)
        features = video_model(arch)
    ours = logits.state_dict()
    assert list(ours) == list(reference)
    assert all(ours[k].shape == reference[k].shape for k in reference)
    classifier = ARCHITECTURES[arch].classifier + "."
    assert list(features.state_dict()) == [k for k in reference if not k.startswith(classifier)]
    assert features.default_input_size == logits.default_input_size == ARCHITECTURES[arch].input_size


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown torchvision video model 'r3d_50'; choose one of r3d_18"):
        video_model("r3d_50")


@pytest.mark.parametrize("arch", ["mvit_v1_b", "mvit_v2_s"])
def test_mvit_grids_follow_the_query_pooling(arch):
    model = video_model(arch)
    assert isinstance(model, StaticGridMViT) and isinstance(model.head, nn.Identity)
    grids = block_grids(getattr(tv_video, arch)())
    assert model.grids == grids
    # 16x224x224 clips, patches of 2x4x4, spatial pooling by 2 at three stage transitions
    assert grids[0] == (8, 56, 56) and grids[-1] == (8, 7, 7) and len(grids) == 16
    assert sorted({g[1] for g in grids}, reverse=True) == [56, 28, 14, 7]


def test_a_misspelled_option_names_the_accepted_ones():
    with pytest.raises(splitnet.OptionError) as info:
        splitnet.create_backbone("video_r3d_18", num_clases=4)
    assert str(info.value) == (
        "backbone 'video_r3d_18' from 'localkit-video-backbones 0.1.0' does not accept option 'num_clases' "
        "(did you mean 'num_classes'?). It accepts: 'features', 'num_classes', 'pretrained', 'weights'."
    )
