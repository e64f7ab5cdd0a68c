"""The ``splitnet.objectives`` contract, read from the installed distribution's metadata."""

from __future__ import annotations

import inspect
from importlib import metadata

import pytest
import torch
from torch import nn

import infoloss
from infoloss import CutContext
from localkit_registry import OptionError, Registry, accepted_options

GROUP = "splitnet.objectives"
NAMES = {"infopro", "greedy-aux", "dgl"}


def _ours() -> dict[str, metadata.EntryPoint]:
    return {
        ep.name: ep
        for ep in metadata.entry_points(group=GROUP)
        if ep.dist.metadata["Name"] == "localkit-infoloss"
    }


def test_infoloss_declares_its_objectives_and_not_splitnets_greedy():
    assert set(_ours()) == NAMES


def test_every_public_name_is_exported():
    assert sorted(infoloss.__all__) == sorted(set(infoloss.__all__))
    assert all(hasattr(infoloss, name) for name in infoloss.__all__)


OPTIONS = {
    "infopro": (
        "aux_channels",
        "aux_config",
        "check_inputs",
        "feature_dim",
        "interpolate",
        "lambda_recon",
        "lambda_task",
        "recon",
        "task_loss",
        "temperature",
        "widen",
    ),
    "greedy-aux": ("aux_channels", "aux_config", "check_inputs", "feature_dim", "widen"),
    "dgl": ("aux_type", "check_inputs"),
}


def context() -> CutContext:
    return CutContext(feature_shape=(16, 8, 8), num_classes=10, input_shape=(3, 32, 32))


@pytest.mark.parametrize("name", sorted(NAMES))
def test_factories_follow_the_contract(name):
    factory = _ours()[name].load()
    assert accepted_options(factory, consumed=1) == OPTIONS[name], "every option is a declared keyword"
    objective = factory(context())
    assert isinstance(objective, nn.Module)
    assert list(inspect.signature(objective.forward).parameters) == ["features", "inputs", "targets"]
    loss = objective(torch.randn(4, 16, 8, 8), torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    assert loss.shape == () and loss.requires_grad


@pytest.mark.parametrize(
    ("name", "typo", "suggestion"),
    [
        ("infopro", "lambda_recn", "lambda_recon"),
        ("greedy-aux", "widen_by", "widen"),
        ("dgl", "aux_tpye", "aux_type"),
    ],
)
def test_through_the_registry_a_misspelled_option_names_the_accepted_ones(name, typo, suggestion):
    objectives = Registry(GROUP, owner="localkit-infoloss", kind="objective")
    with pytest.raises(OptionError) as info:
        objectives.create(name, context(), **{typo: "5"})
    message = str(info.value)
    assert message.startswith(
        f"objective '{name}' from 'localkit-infoloss {infoloss.__version__}' does not accept"
    )
    assert f"'{suggestion}'" in message.split("It accepts:")[0]
    assert info.value.accepted == OPTIONS[name]
