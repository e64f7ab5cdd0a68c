import pytest
import torch

import scoredist
from scoredist import OptionError, UnknownEntryError, create_backbone, create_dataset
from scoredist._plugins import BACKBONES, DATASETS, provenance


def test_tiny3d_is_declared_in_the_backbone_group():
    entry = BACKBONES.entry("tiny3d")
    assert entry.distribution == "localkit-scoredist" and entry.value == "scoredist._tiny3d:tiny3d"
    net = create_backbone("tiny3d", width=4)
    assert net(torch.zeros(2, 3, 8, 16, 16)).shape == (2, 16)
    with pytest.raises(OptionError, match="does not accept option 'unknown_option'"):
        create_backbone("tiny3d", width=4, unknown_option="refused")
    assert provenance()["backbones"]["tiny3d"]["distribution"] == "localkit-scoredist"


def test_tiny3d_standardises_its_features_with_its_first_batch():
    torch.manual_seed(0)
    net = create_backbone("tiny3d", width=4).train()
    clips = torch.rand(16, 3, 8, 16, 16) + torch.linspace(0, 1, 16).view(16, 1, 1, 1, 1)
    assert net(clips[:1]).shape == (1, 16)  # one clip does not fix the statistics
    first = net(clips)
    torch.testing.assert_close(first.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(first.std(0), torch.ones(16), atol=1e-4, rtol=0)
    # From then on a clip's features do not depend on its batch, in training or evaluation.
    torch.testing.assert_close(net(clips[3:5])[0], first[3])
    torch.testing.assert_close(net.eval()(clips[3:4])[0], first[3])
    assert bool(net.state_dict()["norm.initialised"])


def test_datasets_come_from_the_vidio_group(fake_clips):
    data = create_dataset(fake_clips, "/nowhere", "train", frames=4)
    item = data[0]
    assert item["video"].shape == (3, 4, 16, 16) and item["judge_scores"].shape == (3,)
    assert DATASETS.entry(fake_clips).distribution == "fake-clips"


def test_empty_split_is_explained(fake_clips):
    with pytest.raises(ValueError, match=r"split 'test' of dataset 'fakeclips' at /data is empty"):
        create_dataset(fake_clips, "/data", "test", empty=True)


def test_unknown_names_say_where_they_looked():
    with pytest.raises(
        UnknownEntryError,
        match=r"unknown dataset 'mtl_aqa'.*'vidio.datasets'.*misspelled, or.*pip install localkit-vidio",
    ):
        create_dataset("mtl_aqa", "/data", "train")
    with pytest.raises(UnknownEntryError, match=r"unknown backbone 'tiny3'.*Closest matches: tiny3d"):
        create_backbone("tiny3")


def test_a_factory_that_returns_no_module_is_named(fake_clips):
    with pytest.raises(TypeError, match=r"backbone 'notamodule' from 'fake-clips 1.0' returned str"):
        create_backbone("notamodule")


def test_a_misspelled_option_is_an_option_error_naming_the_accepted_ones(fake_clips):
    with pytest.raises(OptionError, match=r"backbone 'tiny3d' .* 'with' \(did you mean 'width'\?\)"):
        create_backbone("tiny3d", **{"with": 8})
    with pytest.raises(
        OptionError, match=r"dataset 'fakeclips' from 'fake-clips 1.0' .* 'sizes' \(did you mean 'size'\?\)"
    ):
        create_dataset(fake_clips, "/data", "train", sizes=8)


def test_the_errors_are_the_shared_registrys():
    import localkit_registry

    for name in ("RegistryError", "UnknownEntryError", "PluginLoadError", "OptionError"):
        assert getattr(scoredist, name) is getattr(localkit_registry, name)
