import argparse
import json

import pytest
import torch

from scoredist import FeatureSet
from scoredist._cli import _parser, main
from scoredist._train import TrainConfig

COMMON = [
    "--model",
    "tiny3d",
    "--model-opt",
    "width=4",
    "--score-range",
    "0",
    "30",
    "--bins",
    "31",
    "--sigma",
    "1",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--quiet",
]


def test_train_musdl_end_to_end(fake_clips, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        fake_clips,
        "--root",
        str(tmp_path),
        "--method",
        "musdl",
        "--out",
        str(out),
        "--judge-range",
        "0",
        "10",
        "--judge-bins",
        "21",
        "--rule",
        "sum",
        "--exclude",
        "test-003",
        "--val-split",
        "val",
        *COMMON,
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "epoch chosen on validation" in printed and "test-peeking" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {"val_selected", "test_peeking"} <= set(summary)
    run = json.loads((out / "run.json").read_text())
    assert run["metadata"]["provenance"]["datasets"][fake_clips]["distribution"] == "fake-clips"
    assert run["metadata"]["provenance"]["backbones"]["tiny3d"]["distribution"] == "localkit-scoredist"
    assert run["metadata"]["validation"] == "split 'val'"
    assert run["config"]["exclude"] == ["test-003"]
    assert summary["last"]["test"]["n"] == 15
    assert main([*argv, "--resume"]) == 0  # already complete: resumes to the same summary
    assert json.loads((out / "summary.json").read_text()) == summary


def test_feature_cache_extracts_once_and_holds_out_validation(fake_clips, tmp_path, capsys):
    def argv(run):  # each run its own folder: a folder that holds a run is not trained over
        return [
            "train",
            "--dataset",
            fake_clips,
            "--root",
            str(tmp_path),
            "--cache-features",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / run),
            *COMMON,
        ]

    assert main(argv("run1")) == 0
    assert capsys.readouterr().out.count("written to") == 2
    assert main(argv("run2")) == 0
    assert capsys.readouterr().out.count("read from") == 2
    # With the train features cached and the test ones not, the test features come out the
    # same: tiny3d standardises with its first batch, which must always be a training batch.
    (test_file,) = (tmp_path / "cache").glob("test-*.pt")
    before = FeatureSet.load(test_file).features
    test_file.unlink()
    assert main(argv("run3")) == 0
    assert "features of split 'test': written to" in capsys.readouterr().out
    torch.testing.assert_close(FeatureSet.load(test_file).features, before)
    run = json.loads((tmp_path / "run3" / "run.json").read_text())
    assert run["metadata"]["validation"] == "6 samples held out of split 'train' (seed 1)"
    assert run["metadata"]["features"] == "cached (frozen backbone)"


def test_kfold_protocol_averages_folds(fake_clips, tmp_path, capsys):
    out = tmp_path / "kfold"
    argv = [
        "train",
        "--dataset",
        fake_clips,
        "--root",
        str(tmp_path),
        "--folds",
        "2",
        "--out",
        str(out),
        "--cache-features",
        str(tmp_path / "cache"),
        *COMMON,
        "--decode",
        "expectation",
        "--lr",
        "3e-3",
    ]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    folds = [s["val_selected"]["test"]["spearman"] for s in summary["folds"]]
    assert summary["average"]["val_selected"]["spearman"] == pytest.approx(sum(folds) / 2)
    assert summary["average"]["val_selected"]["folds"] == 2
    assert (out / "fold_1" / "metrics.jsonl").exists()
    assert "2-fold average test rho" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
        (
            ["--dataset", "fakeclips", "--method", "musdl", "--judge-range", "0", "10", "--judge-bins", "21"],
            "no rule for this dataset: pass --rule",
        ),
        (
            [
                "--dataset",
                "fakeclips",
                "--method",
                "musdl",
                "--rule",
                "diving",
                "--judge-range",
                "0",
                "10",
                "--judge-bins",
                "21",
            ],
            "rule 'diving' needs exactly 7 judge scores per sample, got 3",
        ),
        (["--dataset", "fakeclips", "--model", "wrongshape"], "backbone 'wrongshape' returned"),
    ],
)
def test_bad_input_is_one_clear_line(fake_clips, tmp_path, capsys, extra, message):
    argv = ["train", "--root", str(tmp_path), "--out", str(tmp_path / "run"), *COMMON, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_missing_sigma_without_a_preset_names_the_fix(fake_clips, tmp_path, capsys):
    argv = [
        "train",
        "--dataset",
        fake_clips,
        "--root",
        str(tmp_path),
        "--model",
        "tiny3d",
        "--bins",
        "31",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 2
    assert "no sigma for this dataset: pass --sigma" in capsys.readouterr().err


KINDS = """
from torch import nn


class Clips(nn.Module):
    default_input_size = (3, 16, 112, 112)

    def forward(self, x):
        return x.mean(dim=(2, 3, 4))


def a_video_backbone_with_a_rather_long_name(**kwargs) -> Clips:
    return Clips()


def images(**kwargs):
    model = nn.Conv2d(3, 4, 3)
    model.default_input_size = (3, 32, 32)
    return model
"""


def test_list_separates_video_backbones_and_sizes_columns_to_content(fake_clips, fake_dist, capsys):
    fake_dist(
        "kinds",
        {
            "splitnet.backbones": {
                "a_video_backbone_with_a_rather_long_name": "kinds_mod:a_video_backbone_with_a_rather_long_name",
                "images": "kinds_mod:images",
            }
        },
        {"kinds_mod": KINDS},
    )
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sections = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            title = line
            sections[title] = []
        else:
            sections[title].append(line)
    video = next(rows for title, rows in sections.items() if title.startswith("video backbones"))
    other = next(rows for title, rows in sections.items() if title.startswith("other backbones"))
    names = {row.split()[0] for row in video}
    assert {"tiny3d", "a_video_backbone_with_a_rather_long_name"} <= names
    assert "images" not in names and "wrongshape" not in names
    rows = {row.split()[0]: row for row in other}
    assert "image (3, 32, 32)" in rows["images"]
    assert "input not declared" in rows["wrongshape"]
    assert "not usable: backbone 'notamodule'" in rows["notamodule"]
    # the distribution column starts right after the longest name (of both backbone parts together)
    for rows in (sections[t] for t in sections if not t.startswith(("video", "other"))):
        width = max(len(row.split()[0]) for row in rows)
        assert all(row[4 + width :].startswith(row.split()[1]) for row in rows if "(none" not in row)
    width = max(len(row.split()[0]) for row in video + other)
    assert all(row[4 + width :].startswith(row.split()[1]) for row in video + other)
    rules = next(rows for title, rows in sections.items() if title.startswith("rules"))
    assert any(row.split()[0] == "trimmed-mean" for row in rules)
    assert "fakeclips" in out and "fake-clips 1.0" in out


def test_a_misspelled_backbone_option_stops_training_naming_the_accepted_ones(fake_clips, tmp_path, capsys):
    argv = ["train", "--dataset", fake_clips, "--root", str(tmp_path), "--out", str(tmp_path / "run")]
    argv += [*COMMON, "--model-opt", "widht=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: backbone 'tiny3d' from 'localkit-scoredist")
    assert (
        "does not accept option 'widht' (did you mean 'width'?). It accepts: 'in_channels', 'width'." in err
    )
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_misspelled_dataset_option_stops_training_naming_the_accepted_ones(fake_clips, tmp_path, capsys):
    argv = ["train", "--dataset", fake_clips, "--root", str(tmp_path), "--out", str(tmp_path / "run")]
    argv += [*COMMON, "--dataset-opt", "frame=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'fakeclips' from 'fake-clips 1.0' does not accept option 'frame'")
    assert "did you mean 'frames'?" in err and "'nan_at'" in err


def _help_text(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _commands():
    (sub,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_help_lists_every_command_without_markup(capsys):
    text = _help_text(capsys)
    assert "`" not in text
    assert set(_commands()) == {"train", "list", "demo"}
    for command in _commands():
        assert f" {command} " in text, command


@pytest.mark.parametrize("command", ["train", "list", "demo"])
def test_every_command_has_a_description_and_helps_every_option(capsys, command):
    parser = _commands()[command]
    assert parser.description
    assert all(action.help for action in parser._actions), [a.dest for a in parser._actions if not a.help]
    assert "`" not in _help_text(capsys, command)


def test_help_shows_defaults_read_from_the_config(capsys):
    text = _help_text(capsys, "train")
    assert f"clips per training step (default: {TrainConfig.batch_size}, as the reference)" in text
    assert f"Adam's learning rate (default: {TrainConfig.lr}, as the reference)" in text
    assert "--method {usdl,musdl} one score distribution, or one per judge (default: usdl)" in text
    demo = _help_text(capsys, "demo")
    assert "--out OUT folder for the report and the clips (default: runs/demo)" in demo
    assert "--seed SEED seed of both methods' runs (default: 1)" in demo
