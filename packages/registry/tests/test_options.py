"""Strict options: a misspelled option is an error naming the accepted ones, never ignored."""

from __future__ import annotations

import pickle
import sys

import pytest

from localkit_registry import (
    ContractError,
    CutContext,
    OptionError,
    Registry,
    RegistryError,
    accepted_options,
    check_options,
)

GROUP = "localkit.optiongroup"

FACTORIES = """
from typing import Any

CALLS = []


def objective(context, *, lambda_recon=None, lambda_task=None, aux_config="1c2f"):
    CALLS.append((context, lambda_recon, lambda_task, aux_config))
    return ("objective", context, lambda_recon, lambda_task, aux_config)


def needs_weights(*, weights, width=16):
    return (weights, width)


def no_options(context):
    return context


def open_kwargs(context, **kwargs: Any):
    return sorted(kwargs)


def open_and_strict_inside(**kwargs):
    def inner(*, width=1):
        return width
    return inner(**kwargs)


def broken_inside(*, width=1):
    return len(width)


def old_style(**context):
    return context


class Dataset:
    def __init__(self, root, split, *, fold=0, backend=None):
        self.root, self.split, self.fold, self.backend = root, split, fold, backend
"""


@pytest.fixture
def widgets(fake_dist):
    module = "strict_widgets"
    sys.modules.pop(module, None)
    names = ["objective", "needs_weights", "no_options", "open_kwargs", "open_and_strict_inside"]
    names += ["broken_inside", "old_style", "Dataset"]
    fake_dist(
        "widget-plugin", {GROUP: {n: f"{module}:{n}" for n in names}}, {module: FACTORIES}, version="1.4"
    )
    return Registry(GROUP, owner="widget-owner", kind="widget", contract="factory(context, **options)")


def test_a_misspelled_option_is_refused_before_the_factory_runs(widgets):
    with pytest.raises(OptionError) as info:
        widgets.create("objective", "ctx", lambda_recn=5)
    message = str(info.value)
    assert message == (
        "widget 'objective' from 'widget-plugin 1.4' does not accept option 'lambda_recn' "
        "(did you mean 'lambda_recon' or 'lambda_task'?). It accepts: 'aux_config', 'lambda_recon', "
        "'lambda_task'."
    )
    assert info.value.unknown == ("lambda_recn",)
    assert info.value.accepted == ("aux_config", "lambda_recon", "lambda_task")
    assert info.value.entry.distribution == "widget-plugin"
    assert sys.modules["strict_widgets"].CALLS == []


def test_the_error_is_a_registry_error_and_a_type_error(widgets):
    with pytest.raises(RegistryError):
        widgets.create("objective", "ctx", aux_confg="2c2f")
    with pytest.raises(TypeError):
        widgets.create("objective", "ctx", aux_confg="2c2f")


def test_every_unknown_option_is_named_with_its_own_suggestion(widgets):
    with pytest.raises(OptionError) as info:
        widgets.create("objective", "ctx", lambda_recn=5, aux_confg="2c2f", colour="red")
    message = str(info.value)
    assert "does not accept options 'lambda_recn', 'aux_confg', 'colour'" in message
    assert (
        "(did you mean 'lambda_recon' or 'lambda_task' for 'lambda_recn'; did you mean 'aux_config' for "
        "'aux_confg'?)" in message
    )
    assert info.value.unknown == ("lambda_recn", "aux_confg", "colour")


def test_known_options_reach_the_factory_unchanged_strings_included(widgets):
    built = widgets.create("objective", "ctx", lambda_recon="5,0", lambda_task=1)
    assert built == ("objective", "ctx", "5,0", 1, "1c2f")


def test_a_factory_without_options_says_so(widgets):
    with pytest.raises(
        OptionError, match=r"'no_options' .* does not accept option 'width'\. It accepts no options\."
    ):
        widgets.create("no_options", "ctx", width=3)
    assert widgets.create("no_options", "ctx") == "ctx"


def test_an_option_cannot_replace_what_the_consumer_passes(widgets):
    with pytest.raises(OptionError, match="does not accept option 'context'"):
        widgets.create("no_options", "ctx", context="other")


def test_a_required_option_left_out_is_named(widgets):
    with pytest.raises(
        OptionError, match=r"'needs_weights' from 'widget-plugin 1.4' needs option\(s\) 'weights'"
    ):
        widgets.create("needs_weights", width=8)
    assert widgets.create("needs_weights", weights="w.pt") == ("w.pt", 16)


def test_a_class_factory_is_checked_through_its_init(widgets):
    with pytest.raises(OptionError, match=r"does not accept option 'folds' \(did you mean 'fold'\?\)"):
        widgets.create("Dataset", "data", "train", folds=2)
    data = widgets.create("Dataset", "data", "train", fold=2)
    assert (data.root, data.split, data.fold) == ("data", "train", 2)


def test_a_factory_with_bare_kwargs_owns_its_strictness(widgets):
    assert widgets.create("open_kwargs", "ctx", anything=1, goes=2) == ["anything", "goes"]
    with pytest.raises(OptionError) as info:
        widgets.create("open_and_strict_inside", widht=2)
    assert "'open_and_strict_inside' from 'widget-plugin 1.4' does not accept option 'widht'" in str(
        info.value
    )
    assert "takes **kwargs" in str(info.value) and info.value.accepted is None


def test_a_type_error_inside_a_factory_is_not_mistaken_for_an_option(widgets):
    with pytest.raises(TypeError, match="has no len") as info:
        widgets.create("broken_inside", width=3)
    assert not isinstance(info.value, OptionError)


def test_a_factory_that_cannot_take_the_context_breaks_the_contract(widgets):
    with pytest.raises(ContractError) as info:
        widgets.create("old_style", "ctx", width=1)
    message = str(info.value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, RegistryError)
    assert not isinstance(info.value, OptionError)
    assert "widget 'old_style' from 'widget-plugin 1.4' does not follow its group's contract" in message
    assert "factory(context, **options)" in message and "'strict_widgets:old_style'" in message


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.Unpack is new in Python 3.11")
def test_kwargs_declared_with_a_typed_dict_are_checked(fake_dist):
    source = """
from typing import TypedDict, Unpack


class ClipOptions(TypedDict, total=False):
    backend: str
    threads: int


def clips(root, split, *, num_frames=16, **options: Unpack[ClipOptions]):
    return (root, split, num_frames, options)
"""
    fake_dist("clip-plugin", {GROUP: {"clips": "typed_clips:clips"}}, {"typed_clips": source})
    reg = Registry(GROUP, owner="clip-plugin", kind="dataset")
    assert reg.create("clips", "r", "train", threads=2) == ("r", "train", 16, {"threads": 2})
    with pytest.raises(OptionError) as info:
        reg.create("clips", "r", "train", backnd="pyav")
    assert info.value.accepted == ("backend", "num_frames", "threads")
    assert "did you mean 'backend'?" in str(info.value)


def test_accepted_options_skip_what_the_consumer_passes():
    def factory(context, /, first, *, second=2, **kwargs):
        return context

    def closed(root, split, *, fold=0):
        return root

    assert accepted_options(factory) is None
    assert accepted_options(closed) == ("fold", "root", "split")
    assert accepted_options(closed, consumed=2) == ("fold",)
    assert accepted_options(lambda *args, width=1: None, consumed=1) == ("width",)


def test_an_annotation_that_only_type_checkers_know_does_not_hide_the_options():
    def factory(context: CutContextOnlyForTypeCheckers, *, width: int = 1):  # noqa: F821
        return context

    assert accepted_options(factory, consumed=1) == ("width",)


def test_check_options_outside_a_registry():
    check_options("timm model 'resnet18'", ["num_classes"], ["num_classes", "in_chans"])
    with pytest.raises(OptionError, match=r"timm model 'resnet18' does not accept option 'num_clases'"):
        check_options("timm model 'resnet18'", ["num_clases"], ["num_classes", "in_chans"])


def test_option_errors_survive_pickling(widgets):
    with pytest.raises(OptionError) as info:
        widgets.create("objective", CutContext(feature_shape=(4,), num_classes=2, layout="NC"), lambda_recn=5)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is OptionError and str(copy) == str(info.value)
    assert (copy.entry, copy.unknown, copy.accepted) == (
        info.value.entry,
        info.value.unknown,
        info.value.accepted,
    )
