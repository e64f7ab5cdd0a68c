"""The ``splitnet.objectives`` contract, read from the installed distribution's metadata."""

from __future__ import annotations

import inspect
from importlib import metadata

import pytest
import torch
from torch import nn

import infoloss

GROUP = "splitnet.objectives"
NAMES = {"infopro", "greedy-aux", "dgl"}


def _ours() -> dict[str, metadata.EntryPoint]:
    return {
        ep.name: ep for ep in metadata.entry_points(group=GROUP) if ep.dist.metadata["Name"] == "infoloss"
    }


def test_infoloss_declares_its_objectives_and_not_splitnets_greedy():
    assert set(_ours()) == NAMES


def test_every_public_name_is_exported():
    assert sorted(infoloss.__all__) == sorted(set(infoloss.__all__))
    assert all(hasattr(infoloss, name) for name in infoloss.__all__)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_factories_follow_the_contract(name):
    factory = _ours()[name].load()
    parameters = inspect.signature(factory).parameters.values()
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters), "must accept unknown keywords"
    context = {
        "feature_shape": (16, 8, 8),
        "layout": "NCHW",
        "token_grid": None,
        "num_prefix_tokens": 0,
        "input_shape": (3, 32, 32),
        "input_mean": None,
        "input_std": None,
        "num_classes": 10,
        "task": "classification",
        "index": 0,
        "num_cuts": 1,
        "a_keyword_from_a_later_splitnet": object(),
    }
    objective = factory(**context)
    assert isinstance(objective, nn.Module)
    assert list(inspect.signature(objective.forward).parameters) == ["features", "inputs", "targets"]
    loss = objective(torch.randn(4, 16, 8, 8), torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    assert loss.shape == () and loss.requires_grad
