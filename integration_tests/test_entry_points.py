"""Every entry of every group loads, each listing shows its distribution, names never clash;
the registry's errors are one hierarchy and every CLI refuses a misspelled option."""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

GROUPS = {
    "splitnet.backbones": "localkit-splitnet",
    "splitnet.objectives": "localkit-splitnet",
    "splitnet.heads": "localkit-splitnet",
    "splitnet.datasets": "localkit-splitnet",
    "vidio.decoders": "localkit-vidio",
    "vidio.datasets": "localkit-vidio",
    "scoredist.rules": "localkit-scoredist",
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_entry_loads(group):
    from localkit_registry import Registry

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
    assert {"splitnet.backbones", "splitnet.objectives", "scoredist.rules"} <= by_dist[
        "localkit-example-backbone"
    ]
    assert "splitnet.objectives" in by_dist["localkit-infoloss"]
    assert {"splitnet.backbones", "splitnet.objectives", "splitnet.heads", "splitnet.datasets"} <= by_dist[
        "localkit-splitnet"
    ]
    assert {"vidio.decoders", "vidio.datasets"} <= by_dist["localkit-vidio"]
    assert {"scoredist.rules", "splitnet.backbones"} <= by_dist["localkit-scoredist"]


def test_listing_shows_each_entry_with_its_distribution(run_module):
    proc = run_module("splitnet", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["entries"]
    dists = {(e["group"], e["name"]): e["distribution"] for e in entries}
    assert dists[("splitnet.backbones", "cifar_resnet110")] == "localkit-splitnet"
    assert dists[("splitnet.objectives", "infopro")] == "localkit-infoloss"
    assert dists[("splitnet.datasets", "cityscapes")] == "localkit-cityscapes"
    assert dists[("splitnet.heads", "deeplabv3")] == "localkit-cityscapes"
    assert dists[("splitnet.backbones", "example_convnet")] == "localkit-example-backbone"
    assert all(e["version"] for e in entries)
    checked = run_module("splitnet", "list", "--check")
    assert checked.returncode == 0, checked.stderr


def test_one_exception_hierarchy_whichever_package_raised():
    import localkit_registry
    import localkit_runs
    import scoredist
    import splitnet
    import vidio

    for name in ("RegistryError", "UnknownEntryError", "PluginLoadError", "OptionError"):
        assert getattr(splitnet, name) is getattr(scoredist, name) is getattr(localkit_registry, name)
    assert splitnet.DuplicateEntryError is localkit_registry.DuplicateEntryError
    for name in ("CheckpointError", "RunFolderError"):
        assert getattr(splitnet, name) is getattr(scoredist, name) is getattr(localkit_runs, name)
    assert issubclass(splitnet.CheckpointError, splitnet.TrainingError)
    with pytest.raises(splitnet.RegistryError):
        scoredist.create_backbone("tiny3d", widht=4)
    with pytest.raises(scoredist.RegistryError):
        splitnet.create_backbone("cifar_resnet20", num_clases=3)
    with pytest.raises(localkit_registry.OptionError):
        vidio.create_dataset("csv", "scores.csv", "train", num_frame=4)


def test_the_packages_still_import_no_other_package(root):
    """Only the shared registry is imported across packages; the rest goes through entry points."""
    imports = {}
    for package in ("splitnet", "infoloss", "scoredist", "vidio"):
        source = "\n".join(p.read_text() for p in (root / "packages" / package / "src").rglob("*.py"))
        imports[package] = {
            other
            for other in ("splitnet", "infoloss", "scoredist", "vidio")
            if other != package and re.search(rf"^\s*(from|import) {other}\b", source, re.M)
        }
    assert imports == {"splitnet": set(), "infoloss": set(), "scoredist": set(), "vidio": set()}


def test_infopro_option_typo_from_the_command_line_names_the_accepted_ones(run_module, tmp_path):
    proc = run_module(
        "splitnet",
        "train",
        "--model",
        "cifar_resnet20",
        "--k",
        "2",
        "--objective",
        "infopro",
        "--objective-opt",
        "lambda_recn=5",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: objective 'infopro' from 'localkit-infoloss ")
    assert "does not accept option 'lambda_recn' (did you mean 'lambda_recon'" in proc.stderr
    assert "It accepts: 'aux_channels', 'aux_config', 'check_inputs'" in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_scoredist_cli_names_a_misspelled_vidio_dataset_option(run_module, tmp_path):
    manifest = tmp_path / "scores.csv"
    manifest.write_text("path,score\na.mp4,1\n")
    proc = run_module(
        "scoredist",
        "train",
        "--dataset",
        "csv",
        "--root",
        str(manifest),
        "--model",
        "tiny3d",
        "--dataset-opt",
        "num_frame=4",
        "--score-range",
        "0",
        "10",
        "--bins",
        "11",
        "--sigma",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "dataset 'csv' from 'localkit-vidio " in proc.stderr
    assert "does not accept option 'num_frame' (did you mean 'num_frames'?)" in proc.stderr


def test_plan_shows_infopro_s_weights_from_the_reference_table_and_an_override(run_module):
    # the reference code's "Experiments on CIFAR-SVHN-STL10/comand.sh", line 8 (ResNet-32,
    # CIFAR-10, K=4): --ixx_1 6 --ixy_1 0 --ixx_2 1 --ixy_2 2, linear over the three cuts
    argv = ["plan", "--model", "cifar_resnet32", "--k", "4", "--balance", "infopro", "--objective", "infopro"]
    proc = run_module("splitnet", *argv, "--dataset", "cifar10", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["cuts"] == ["layer1.2", "layer2.1", "layer3.0"] and shown["granularity"] == "block"
    weights = [
        re.search(r"lambda_recon=(\S+), lambda_task=(\S+) \((.*)\), task_loss=", line).groups()
        for line in shown["objectives"]
    ]
    source = "comand.sh line 8 (ResNet-32 + InfoPro, cifar10, K=4)"
    assert weights == [("6", "0", source), ("3.5", "1", source), ("1", "2", source)]
    proc = run_module("splitnet", *argv, "--dataset", "svhn", "--objective-opt", "lambda_recon=2,0")
    assert proc.returncode == 0, proc.stderr
    assert "objective at each cut:" in proc.stdout
    assert "lambda_recon=2, lambda_task=0 (lambda_recon given, the other from comand.sh line 8" in proc.stdout
    assert "our fallback: ResNet-32 was not tuned on svhn -> cifar10" in proc.stdout
