"""splitnet's entry-point groups: built-ins travel the plugin route, options are strict.

The registry itself (listing, lazy loading, duplicates, broken plugins, hermetic mode) is
tested in packages/registry; here are the groups splitnet owns, with fake plugins.
"""

from __future__ import annotations

import pytest
import torch

import localkit_registry
import splitnet
from splitnet._registries import BACKBONES, DATASETS, HEADS, OBJECTIVES

CONTEXT = splitnet.CutContext(feature_shape=(16, 8, 8), num_classes=10, input_shape=(3, 32, 32))
HEAD_CONTEXT = splitnet.HeadContext(feature_shape=(64, 8, 8), num_classes=10, input_shape=(3, 32, 32))


@pytest.fixture
def fresh_groups():
    """Rescan splitnet's groups before and after a test that installs fake plugins."""
    groups = (BACKBONES, OBJECTIVES, HEADS, DATASETS)
    for group in groups:
        group.refresh()
    yield
    for group in groups:
        group.refresh()


def test_builtins_travel_the_plugin_route():
    entry = BACKBONES.entry("cifar_resnet110")
    assert entry.distribution == "localkit-splitnet"
    assert entry.value == "splitnet._cifar_resnet:cifar_resnet110"
    assert OBJECTIVES.entry("greedy").distribution == "localkit-splitnet"
    assert {BACKBONES.owner, OBJECTIVES.owner, HEADS.owner, DATASETS.owner} == {"localkit-splitnet"}


def test_the_errors_are_the_shared_registrys():
    names = ["RegistryError", "UnknownEntryError", "DuplicateEntryError", "PluginLoadError", "OptionError"]
    for name in (*names, "ContractError"):
        assert getattr(splitnet, name) is getattr(localkit_registry, name)
    assert splitnet.CutContext is localkit_registry.CutContext
    assert splitnet.HeadContext is localkit_registry.HeadContext


def test_a_misspelled_backbone_option_names_the_accepted_ones():
    with pytest.raises(splitnet.OptionError) as info:
        splitnet.create_backbone("cifar_resnet20", num_clases=10)
    assert str(info.value) == (
        f"backbone 'cifar_resnet20' from 'localkit-splitnet {splitnet.__version__}' does not accept option "
        "'num_clases' (did you mean 'num_classes'?). It accepts: 'in_chans', 'num_classes', 'pretrained', 'widths'."
    )


def test_a_misspelled_timm_option_names_the_model_classs_keywords():
    with pytest.raises(splitnet.OptionError) as info:
        splitnet.create_backbone("resnet10t", num_clases=3)
    message = str(info.value)
    assert message.startswith("timm model 'resnet10t' (ResNet) does not accept option 'num_clases'")
    assert "did you mean 'num_classes'" in message
    assert {"num_classes", "in_chans", "drop_path_rate", "pretrained"} <= set(info.value.accepted)
    assert isinstance(info.value, TypeError)


def test_timm_keeps_its_own_type_errors_for_a_bad_value():
    with pytest.raises(TypeError, match="'<=' not supported between instances of 'str' and 'int'") as info:
        splitnet.create_backbone("resnet10t", num_classes="ten")
    assert not isinstance(info.value, splitnet.OptionError)


def test_a_cifar_resnet_has_no_pretrained_weights():
    with pytest.raises(ValueError, match="cifar_resnet20 has no pretrained weights"):
        splitnet.create_backbone("cifar_resnet20", pretrained=True)
    assert (
        splitnet.create_backbone("cifar_resnet20", pretrained=False, widths=(8, 16, 32)).fc.in_features == 32
    )


def test_the_greedy_objective_takes_no_options():
    with pytest.raises(
        splitnet.OptionError,
        match="objective 'greedy' .* does not accept option 'lambda_recon'. It accepts no options.",
    ):
        splitnet.create_objective("greedy", CONTEXT, lambda_recon=5)


def test_a_misspelled_head_option_names_the_accepted_ones():
    with pytest.raises(
        splitnet.OptionError,
        match=r"head 'classifier' .*'dropuot' \(did you mean 'dropout'\?\). It accepts: 'dropout'\.",
    ):
        splitnet.create_head("classifier", HEAD_CONTEXT, dropuot=0.5)
    head = splitnet.create_head("classifier", HEAD_CONTEXT, dropout=0.5)
    assert head(torch.randn(2, 64, 8, 8)).shape == (2, 10)


def test_a_misspelled_dataset_option_names_the_accepted_ones():
    with pytest.raises(
        splitnet.OptionError,
        match=r"dataset 'digits' .*'augmnet' \(did you mean 'augment'\?\). It accepts: 'augment', 'per_class'\.",
    ):
        splitnet.create_dataset("digits", None, "test", augmnet=False)
    with pytest.raises(
        splitnet.OptionError, match=r"dataset 'cifar10' .* 'downlaod' \(did you mean 'download'\?\)"
    ):
        splitnet.create_dataset("cifar10", "data", "test", downlaod=True)


def test_a_misspelled_option_fails_planning_at_once_instead_of_skipping_every_cut():
    model = splitnet.create_backbone("cifar_resnet20")
    with pytest.raises(splitnet.OptionError, match="objective 'greedy'"):
        splitnet.plan(model, 2, objective_options={"lambda_recon": 5}, measure_memory=False)


def test_a_plugin_objective_with_kwargs_owns_its_strictness(fake_dist, fresh_groups):
    fake_dist(
        "lenient-objectives",
        {"splitnet.objectives": {"lenient": "lenient_obj:make"}},
        {
            "lenient_obj": """
        import torch

        class Loss(torch.nn.Module):
            def forward(self, features, inputs, targets):
                return features.mean()

        def make(context, **options):
            unknown = set(options) - {"scale"}
            if unknown:
                raise TypeError(f"make() got an unexpected keyword argument '{sorted(unknown)[0]}'")
            return Loss()
    """
        },
    )
    assert isinstance(splitnet.create_objective("lenient", CONTEXT, scale=2), torch.nn.Module)
    with pytest.raises(splitnet.OptionError) as info:
        splitnet.create_objective("lenient", CONTEXT, scael=2)
    assert "'lenient' from 'lenient-objectives 1.0' does not accept option 'scael'" in str(info.value)
    assert info.value.accepted is None


def test_an_objective_written_for_the_old_keyword_contract_is_named(fake_dist, fresh_groups):
    fake_dist(
        "old-objectives",
        {"splitnet.objectives": {"old": "old_obj:make"}},
        {"old_obj": "def make(*, feature_shape, num_classes, **kw):\n    return None\n"},
    )
    with pytest.raises(splitnet.ContractError) as info:
        splitnet.create_objective("old", CONTEXT)
    message = str(info.value)
    assert "objective 'old' from 'old-objectives 1.0' does not follow its group's contract" in message
    assert "factory(context: CutContext, **options)" in message


def test_factories_must_return_a_module(fake_dist, fresh_groups):
    fake_dist(
        "bad-heads",
        {
            "splitnet.heads": {"bad_head": "bad_heads:make"},
            "splitnet.objectives": {"bad_obj": "bad_heads:make"},
        },
        {"bad_heads": "def make(context, *, width=1):\n    return [width]\n"},
    )
    with pytest.raises(
        splitnet.ContractError,
        match=r"head 'bad_head' from 'bad-heads 1\.0' returned list, not an nn\.Module",
    ):
        splitnet.create_head("bad_head", HEAD_CONTEXT, width=2)
    with pytest.raises(TypeError, match=r"objective 'bad_obj' from 'bad-heads 1\.0' returned list"):
        splitnet.create_objective("bad_obj", CONTEXT)


def test_planning_stops_at_once_for_an_objective_that_breaks_the_contract(fake_dist, fresh_groups):
    fake_dist(
        "old-planned",
        {"splitnet.objectives": {"old_planned": "old_planned:make"}},
        {"old_planned": "def make(**context):\n    return None\n"},
    )
    model = splitnet.create_backbone("cifar_resnet20")
    with pytest.raises(splitnet.ContractError, match="'old_planned' from 'old-planned 1.0' does not follow"):
        splitnet.plan(model, 2, objective="old_planned", measure_memory=False)
