"""End to end on the tiny tree: splitnet trains DeepLab-V3 (K = 1, and InfoPro K = 2), we evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import splitnet
from localkit_cityscapes import evaluate_run
from localkit_cityscapes._cli import main as cityscapes_main
from splitnet import DatasetLayoutError, TrainConfig
from splitnet._cli import main as splitnet_main

DISTRIBUTION = "localkit-cityscapes"
INFOPRO_OPTIONS = {
    "lambda_recon": 1.5,
    "lambda_task": 1.0,
    "task_loss": "cross_entropy",
    "aux_config": "1c1f",
    "aux_channels": 32,
}


def last_metrics(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def e2e_run(tree, tmp_path_factory):
    """``python -m splitnet train ... --k 1`` on the tree, as the docs show it."""
    run = tmp_path_factory.mktemp("runs") / "e2e"
    code = splitnet_main(
        [
            "train",
            "--model",
            "deeplab_resnet18",
            "--head",
            "deeplabv3",
            "--head-opt",
            "channels=32",
            "--dataset",
            "cityscapes",
            "--data-root",
            str(tree),
            "--k",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--eval-batch-size",
            "2",
            "--max-steps-per-epoch",
            "2",
            "--lr",
            "0.01",
            "--out",
            str(run),
            "--quiet",
        ]
    )
    assert code == 0
    return run


def test_end_to_end_training_records_the_plugin_as_provenance(e2e_run):
    config = json.loads((e2e_run / "config.json").read_text())
    for part in ("backbone", "head", "dataset"):
        assert config["provenance"][part]["distribution"] == DISTRIBUTION
    assert "objective" not in config["provenance"]  # K = 1 has no local objective
    metrics = last_metrics(e2e_run)
    assert 0 <= metrics["test_miou"] <= 1 and 0 <= metrics["test_pixel_acc"] <= 1
    assert len(metrics["train_loss"]) == 1


def test_single_scale_evaluation_reproduces_splitnets_own_miou(e2e_run):
    # splitnet evaluates its "test" split, which reads the val folders: the same images
    result = evaluate_run(e2e_run, batch_size=2)
    assert result["split"] == "val" and result["images"] == 2 and result["scales"] == [1.0]
    assert result["miou"] == pytest.approx(last_metrics(e2e_run)["test_miou"], abs=1e-9)
    assert result["pixel_accuracy"] == pytest.approx(last_metrics(e2e_run)["test_pixel_acc"], abs=1e-9)


def test_evaluate_command_multiscale_with_flip(e2e_run, capsys):
    assert (
        cityscapes_main(["evaluate", "--run", str(e2e_run), "--multiscale", "--flip", "--json", "--quiet"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["scales"] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and result["flip"] is True
    assert 0 <= result["miou"] <= 1 and len(result["iou"]) == 19


def test_evaluate_command_prints_a_table(e2e_run, capsys):
    assert cityscapes_main(["evaluate", "--run", str(e2e_run), "--scales", "1", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "scales 1, 2" in out and "road" in out and "bicycle" in out and "mIoU" in out


def test_evaluate_module_explains_a_folder_that_is_not_a_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "localkit_cityscapes", "evaluate", "--run", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 2
    assert "is not a finished splitnet run" in done.stderr and "config.json is missing" in done.stderr


def test_infopro_k2_trains_locally_on_dense_targets(tree, tmp_path):
    run = tmp_path / "infopro"
    summary = splitnet.train(
        TrainConfig(
            model="deeplab_resnet18",
            head="deeplabv3",
            head_options={"channels": 32},
            dataset="cityscapes",
            data_root=str(tree),
            k=2,
            cuts=["backbone.layer3.0"],
            objective="infopro",
            objective_options=INFOPRO_OPTIONS,
            epochs=1,
            batch_size=2,
            eval_batch_size=2,
            max_steps_per_epoch=2,
            lr=0.01,
            progress=False,
            out=str(run),
        )
    )
    assert summary["k"] == 2 and summary["cuts"] == ["backbone.layer3.0"]
    assert summary["provenance"]["objective"]["distribution"] == "localkit-infoloss"
    losses = summary["final"]["train_loss"]
    assert len(losses) == 2 and all(v > 0 for v in losses)  # the local InfoPro loss, then the task loss
    result = evaluate_run(run, scales=(0.75, 1.0), flip=True, batch_size=2)
    assert 0 <= result["miou"] <= 1 and result["images"] == 2
    single = evaluate_run(run, batch_size=2)
    assert single["miou"] == pytest.approx(summary["final"]["test_miou"], abs=1e-9)


def test_training_on_a_wrong_folder_shows_the_layout(tmp_path):
    config = TrainConfig(
        model="deeplab_resnet18",
        head="deeplabv3",
        dataset="cityscapes",
        data_root=str(tmp_path),
        out=str(tmp_path / "run"),
    )
    with pytest.raises(DatasetLayoutError, match="leftImg8bit/train/<city>/"):
        splitnet.train(config)


@pytest.mark.parametrize(
    ("section", "typo", "message"),
    [
        (
            "dataset_options",
            {"crop_sise": [32, 32]},
            "dataset 'cityscapes' from 'localkit-cityscapes 0.1.0' does not accept option 'crop_sise' (did you mean 'crop_size'?)",
        ),
        (
            "head_options",
            {"chanels": 32},
            "head 'deeplabv3' from 'localkit-cityscapes 0.1.0' does not accept option 'chanels' (did you mean 'channels'?)",
        ),
    ],
)
def test_evaluate_command_names_a_misspelled_option_of_the_run(
    e2e_run, tmp_path, capsys, section, typo, message
):
    run = tmp_path / "edited"
    run.mkdir()
    for name in ("config.json", "checkpoint.pt"):
        (run / name).write_bytes((e2e_run / name).read_bytes())
    saved = json.loads((run / "config.json").read_text())
    saved["config"][section] = typo
    (run / "config.json").write_text(json.dumps(saved))
    assert cityscapes_main(["evaluate", "--run", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "It accepts: " in err


def test_training_refuses_a_misspelled_dataset_option_from_the_command_line(tree, tmp_path, capsys):
    argv = ["train", "--model", "deeplab_resnet18", "--head", "deeplabv3", "--dataset", "cityscapes"]
    argv += [
        "--data-root",
        str(tree),
        "--dataset-opt",
        "scale_rang=1,1",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert splitnet_main(argv) == 2
    err = capsys.readouterr().err
    assert "dataset 'cityscapes'" in err and "'scale_rang' (did you mean 'scale_range'?)" in err


def test_training_refuses_download_for_cityscapes(tree, tmp_path, capsys):
    argv = ["train", "--model", "deeplab_resnet18", "--head", "deeplabv3", "--dataset", "cityscapes"]
    argv += ["--data-root", str(tree), "--download", "--out", str(tmp_path / "run"), "--quiet"]
    assert splitnet_main(argv) == 2
    err = capsys.readouterr().err
    # issue 15: a dataset that needs registration answers --download with where to get it
    assert "cityscapes cannot be downloaded for you: it needs an account" in err
    assert "https://www.cityscapes-dataset.com/register/" in err and "--data-root" in err
