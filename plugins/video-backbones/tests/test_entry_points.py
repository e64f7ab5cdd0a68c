"""The distribution registers every backbone in ``splitnet.backbones``; splitnet and scoredist find them."""

from __future__ import annotations

from importlib import metadata

import timm
import torch

import scoredist
import splitnet
from localkit_video_backbones import ARCHITECTURES

DISTRIBUTION = "localkit-video-backbones"
NAMES = {"i3d"} | {f"video_{arch}" for arch in ARCHITECTURES}


def declared() -> dict[str, str]:
    eps = metadata.distribution(DISTRIBUTION).entry_points
    return {ep.name: ep.value for ep in eps if ep.group == "splitnet.backbones"}


def test_every_backbone_is_declared_and_loads():
    entries = declared()
    assert set(entries) == NAMES
    for name, value in entries.items():
        factory = metadata.EntryPoint(name, value, "splitnet.backbones").load()
        assert callable(factory) and factory.__name__ == name


def test_splitnet_lists_them_with_this_distribution():
    assert set(splitnet.list_backbones("video_*")) == NAMES - {"i3d"}
    for name in NAMES:
        assert splitnet.backbone_provenance(name)["distribution"] == DISTRIBUTION


def test_no_name_shadows_a_timm_model():
    assert not [name for name in NAMES if timm.is_model(name)]


def test_scoredist_encodes_clips_with_i3d():
    encoder = scoredist.ClipEncoder(scoredist.create_backbone("i3d"), "i3d", segments=(2, 8)).eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 12, 56, 56)).shape == (2, 1024)
