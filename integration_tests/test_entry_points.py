"""Every entry of every group loads, each listing shows its distribution, names never clash."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

GROUPS = {
    "splitnet.backbones": "splitnet",
    "splitnet.objectives": "splitnet",
    "splitnet.heads": "splitnet",
    "splitnet.datasets": "splitnet",
    "vidio.decoders": "vidio",
    "vidio.datasets": "vidio",
    "scoredist.rules": "scoredist",
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_entry_loads(group):
    from splitnet._registry import Registry

    registry = Registry(group, owner=GROUPS[group])
    loaded, problems = registry.load_all()
    assert not problems, [str(p) for p in problems]
    assert loaded and all(callable(obj) for obj in loaded.values())
    names = [ep.name for ep in metadata.entry_points(group=group)]
    assert len(names) == len(set(names)), "two distributions declare the same name"


def test_plugins_contribute_to_the_groups_they_extend():
    by_dist = {}
    for group in GROUPS:
        for ep in metadata.entry_points(group=group):
            by_dist.setdefault(ep.dist.metadata["Name"], set()).add(group)
    assert {"splitnet.datasets", "splitnet.heads"} <= by_dist["localkit-cityscapes"]
    assert "splitnet.backbones" in by_dist["localkit-video-backbones"]
    assert {"splitnet.backbones", "scoredist.rules"} <= by_dist["example-backbone"]
    assert "splitnet.objectives" in by_dist["infoloss"]


def test_listing_shows_each_entry_with_its_distribution(run_module):
    proc = run_module("splitnet", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["entries"]
    dists = {(e["group"], e["name"]): e["distribution"] for e in entries}
    assert dists[("splitnet.backbones", "cifar_resnet110")] == "splitnet"
    assert dists[("splitnet.objectives", "infopro")] == "infoloss"
    assert dists[("splitnet.datasets", "cityscapes")] == "localkit-cityscapes"
    assert dists[("splitnet.heads", "deeplabv3")] == "localkit-cityscapes"
    assert dists[("splitnet.backbones", "example_convnet")] == "example-backbone"
    assert all(e["version"] for e in entries)
    checked = run_module("splitnet", "list", "--check")
    assert checked.returncode == 0, checked.stderr
