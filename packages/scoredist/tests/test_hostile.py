"""Bad input a user can give scoredist: each ends in a clear error or is handled honestly,
never turned into a silent default (issue 16), and no test split's score shapes the model."""

import json
import math

import pytest
import torch

from localkit_runs import LOCK_NAME, CheckpointError, RunFolderError, RunLock
from scoredist import (
    ClipEncoder,
    FeatureSet,
    ScoreBins,
    TrainConfig,
    cut_segments,
    load_model,
    soft_labels,
    train,
)
from scoredist._cli import _parser, build_config, main, training_annotations
from scoredist._presets import PRESETS

pytestmark = pytest.mark.hostile

BASE = ["--dataset", "anything", "--model", "tiny3d"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got '0'"),
        (["--epochs", "-3"], "argument --epochs: must be an integer >= 1, got '-3'"),
        (["--epochs", "2.5"], "argument --epochs: must be an integer >= 1, got '2.5'"),
        (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got '0'"),
        (["--eval-batch-size", "-1"], "argument --eval-batch-size: must be an integer >= 1, got '-1'"),
        (["--bins", "1"], "argument --bins: must be an integer >= 2, got '1'"),
        (["--judge-bins", "0"], "argument --judge-bins: must be an integer >= 2, got '0'"),
        (["--segments", "0", "16"], "argument --segments: must be an integer >= 1, got '0'"),
        (["--segments", "10", "-16"], "argument --segments: must be an integer >= 1, got '-16'"),
        (["--segment-stride", "0"], "argument --segment-stride: must be an integer >= 1, got '0'"),
        (["--folds", "0"], "argument --folds: must be an integer >= 1, got '0'"),
        (["--seed", "-1"], "argument --seed: must be an integer >= 0, got '-1'"),
        (["--sigma", "0"], "argument --sigma: must be a finite number > 0, got '0'"),
        (["--sigma", "nan"], "argument --sigma: must be a finite number > 0, got 'nan'"),
        (["--lr", "0"], "argument --lr: must be a finite number > 0, got '0'"),
        (["--lr", "inf"], "argument --lr: must be a finite number > 0, got 'inf'"),
        (["--weight-decay=-1e-5"], "argument --weight-decay: must be a finite number >= 0, got '-1e-5'"),
        (["--val-fraction", "0"], "argument --val-fraction: must be a finite number between 0 and 1"),
        (["--val-fraction", "1"], "argument --val-fraction: must be a finite number between 0 and 1"),
        (["--score-range", "nan", "10"], "argument --score-range: must be a finite number, got 'nan'"),
        (["--kl-reduction", "sum"], "argument --kl-reduction: invalid choice: 'sum'"),
    ],
)
def test_train_refuses_a_value_outside_its_range_naming_the_flag(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["train", *BASE, "--root", str(tmp_path), "--out", str(out), *flags])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_demo_refuses_a_negative_seed(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--out", str(tmp_path), "--seed", "-1"])
    assert stop.value.code == 2
    assert "argument --seed: must be an integer >= 0, got '-1'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_empty_score_range_names_the_flags(fake_clips, tmp_path, capsys):
    argv = ["train", "--dataset", fake_clips, "--root", str(tmp_path), "--model", "tiny3d"]
    argv += ["--score-range", "30", "0", "--bins", "31", "--sigma", "1", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "error: --score-range 30 0 / --bins 31: score bins need high > low" in capsys.readouterr().err


def _args(*flags):
    return _parser().parse_args(["train", *BASE, "--root", "/nowhere", *flags])


def test_zero_and_falsy_values_given_are_kept_not_replaced_by_defaults():
    mtl = PRESETS["mtl-aqa"]  # MUSDL's preset weight decay is 1e-5, the default seed 1
    config, _ = build_config(_args("--method", "musdl", "--weight-decay", "0", "--seed", "0"), mtl, None)
    assert (config.weight_decay, config.seed) == (0.0, 0)


def test_options_not_given_leave_the_reference_defaults_in_force(fake_clips):
    from scoredist._plugins import create_dataset

    config, _ = build_config(
        _args("--bins", "31", "--sigma", "1"), None, create_dataset(fake_clips, "/r", "train")
    )
    defaults = TrainConfig("usdl", ScoreBins(0, 1, 2))
    for key in (
        "epochs",
        "batch_size",
        "eval_batch_size",
        "lr",
        "weight_decay",
        "seed",
        "decode",
        "kl_reduction",
    ):
        assert getattr(config, key) == getattr(defaults, key), key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sdl"}, "unknown method 'sdl'"),
        ({"method": "musdl"}, "MUSDL needs judge_bins"),
        ({"decode": "mode"}, "unknown decoding 'mode'"),
        ({"kl_reduction": "sum"}, "unknown KL reduction 'sum'; choose one of mean, batchmean"),
        ({"select_metric": "accuracy"}, "unknown selection metric 'accuracy'"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"epochs": -5}, "epochs must be an integer >= 1, got -5"),
        ({"epochs": 2.5}, "epochs must be an integer >= 1, got 2.5"),
        ({"epochs": True}, "epochs must be an integer >= 1, got True"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"eval_batch_size": -1}, "eval_batch_size must be an integer >= 1, got -1"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"sigma": -1.0}, "sigma must be > 0, got -1.0"),
        ({"sigma": math.inf}, "sigma must be a finite number, got inf"),
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"lr": math.nan}, "lr must be a finite number, got nan"),
        ({"weight_decay": -1e-5}, "weight_decay must be >= 0, got -1e-05"),
        ({"hidden": (32, 0)}, "every hidden width must be an integer >= 1, got 0"),
    ],
)
def test_bad_configuration_names_the_setting_and_its_range(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{"method": "usdl", "score_bins": PRESETS["mtl-aqa"].score_bins, **kwargs})


@pytest.mark.parametrize(
    ("segments", "stride", "message"),
    [
        ((0, 16), None, "the number of segments must be a positive integer, got 0"),
        ((10, -1), None, "the segment length must be a positive integer, got -1"),
        ((10, 16), 0, "the segment stride must be a positive integer, got 0"),
        ((10,), None, "segments are (S, L)"),
        (None, 10, "a segment stride needs segments (S, L) to cut"),
    ],
)
def test_clip_encoder_refuses_bad_segments_when_built(segments, stride, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ClipEncoder(torch.nn.Identity(), "b", segments, stride)


def test_strided_segments_that_run_past_the_clip_are_refused():
    with pytest.raises(ValueError, match="10 segments of 16 frames every 12 frames need at least 112 frames"):
        cut_segments(torch.zeros(3, 103, 4, 4), 10, 16, stride=12)


# A multi-action dataset like AQA-7 whose `score_range` spans both splits (vidio's AQA7 computes it
# so), with vidio-style `records`: the test split holds scores the training split never reaches.
LEAKY = """
from dataclasses import dataclass

import torch


@dataclass
class Record:
    id: str
    score: float


class Leaky(torch.utils.data.Dataset):
    score_range = (5.0, 99.0)

    def __init__(self, root, split):
        scores = {"train": [20.0 + 60.0 * i / 23 for i in range(24)], "test": [5.0, 40.0, 60.0, 99.0, 50.0, 70.0]}
        self.records = [Record(f"{split}-{i}", s) for i, s in enumerate(scores[split])]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        score = self.records[i].score
        video = torch.full((3, 4, 8, 8), score / 100.0)
        return {"video": video, "score": torch.tensor(score), "id": self.records[i].id}
"""


def test_the_score_range_comes_from_the_training_split_only(fake_dist, tmp_path, capsys):
    fake_dist("leaky-aqa", {"vidio.datasets": {"leaky": "leaky_mod:Leaky"}}, {"leaky_mod": LEAKY})
    out = tmp_path / "run"
    argv = ["train", "--dataset", "leaky", "--root", str(tmp_path), "--model", "tiny3d"]
    argv += ["--model-opt", "width=2", "--bins", "13", "--sigma", "1", "--epochs", "1"]
    argv += ["--batch-size", "4", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "score range 20..80: the training split's scores (the dataset declares 5..99" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["score_bins"] == {"low": 20.0, "high": 80.0, "num": 13}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["last"]["test"]["n"] == 6  # the test scores outside 20..80 are evaluated, not refused
    assert summary["last"]["test"]["rl2_range"] == [20.0, 80.0]


def test_training_scores_are_read_from_items_when_there_are_no_records(fake_clips):
    from scoredist._plugins import create_dataset

    train_split = create_dataset(fake_clips, "/r", "train")
    scores, judges = training_annotations(train_split, exclude=("train-000",))
    assert torch.equal(scores, train_split.score[1:].double())
    assert torch.equal(judges, train_split.judges[1:].double())
    config, notes = build_config(_args("--bins", "5", "--sigma", "1"), None, train_split)
    assert (config.score_bins.low, config.score_bins.high) == (float(scores.min()), float(scores.max()))


def test_a_training_split_of_one_score_asks_for_the_range():
    constant = FeatureSet(torch.zeros(3, 2), torch.full((3,), 7.0), ["a", "b", "c"])
    with pytest.raises(
        ValueError, match="every score of the training split is 7, .*pass --score-range LOW HIGH"
    ):
        build_config(_args("--bins", "5", "--sigma", "1"), None, constant)


def test_evaluation_labels_clip_scores_outside_the_bins_but_not_nan():
    config = TrainConfig("usdl", ScoreBins(20, 80, 13), sigma=1.0)
    batch = {"score": torch.tensor([5.0, 99.0, 50.0]), "id": ["low", "high", "mid"]}
    with pytest.raises(ValueError, match="sample 'low' has a score outside the bins' range 20..80"):
        soft_labels(config, batch)
    clipped = soft_labels(config, batch, clip=True)
    ends = ScoreBins(20, 80, 13).gaussian(torch.tensor([20.0, 80.0, 50.0]), 1.0)
    torch.testing.assert_close(clipped[:, 0], ends)
    with pytest.raises(ValueError, match="sample 'nan' has a non-finite score"):
        soft_labels(config, {"score": torch.tensor([float("nan")]), "id": ["nan"]}, clip=True)


def test_a_non_finite_test_score_is_still_an_error():
    x = torch.randn(16, 4)
    data = FeatureSet(x, torch.linspace(0, 10, 16), [str(i) for i in range(16)])
    bad = FeatureSet(x, torch.linspace(0, 10, 16).index_fill(0, torch.tensor([3]), math.inf), data.ids)
    config = TrainConfig("usdl", ScoreBins(0, 10, 11), sigma=1.0, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=r"sample '3' has a non-finite final score \(\[inf\]\)"):
        train(config, data, bad, progress=False)


# ---- run folders: the same errors as splitnet's, from the same code (localkit-runs)


def _features(n: int = 24) -> FeatureSet:
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(n))
    return FeatureSet(features=x, score=(x[:, 0] * 2 + 5).clamp(0, 10), ids=[str(i) for i in range(n)])


def _fit(out, **kwargs):
    data = _features()
    config = TrainConfig("usdl", ScoreBins(0, 10, 11), sigma=1.0, epochs=2, batch_size=8)
    return train(config, data, data, data, out=out, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda b: b[: len(b) // 2],
            r"last.pt is corrupt or truncated \(.*\)\. Delete it to start the run over",
        ),
        (lambda b: b"", r"last.pt is empty \(0 bytes\): a write was cut short\. Delete it"),
        (lambda b: b"\x00" * len(b), r"last.pt is corrupt or truncated"),
    ],
    ids=["truncated", "empty", "zeroed"],
)
def test_resume_from_a_damaged_checkpoint_names_the_file_and_the_fix(tmp_path, damage, message):
    out = tmp_path / "run"
    _fit(out)
    checkpoint = out / "last.pt"
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        _fit(out, resume=True)
    assert not (out / LOCK_NAME).exists()  # the lock goes with the failed run


def test_the_cli_reports_a_truncated_checkpoint_without_a_traceback(fake_clips, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        fake_clips,
        "--root",
        str(tmp_path),
        "--out",
        str(out),
        "--model",
        "tiny3d",
    ]
    argv += ["--model-opt", "width=4", "--score-range", "0", "30", "--bins", "31", "--sigma", "1"]
    argv += ["--epochs", "1", "--batch-size", "8", "--quiet"]
    assert main(argv) == 0
    (out / "last.pt").write_bytes((out / "last.pt").read_bytes()[:100])
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: checkpoint {out / 'last.pt'} is corrupt or truncated")
        and "Traceback" not in err
    )
    assert main(argv) == 2  # without --resume: the folder holds a run that must not be overwritten
    assert "already holds a run (last.pt): pass --resume to continue it, or choose another --out" in (
        capsys.readouterr().err
    )


def test_a_file_that_is_not_a_scoredist_checkpoint_is_named(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"epoch": 1, "weights": torch.zeros(2)}, out / "last.pt")
    with pytest.raises(
        CheckpointError, match=r"last.pt is not a scoredist run checkpoint \(missing model, optimizer"
    ):
        _fit(out, resume=True)
    with pytest.raises(CheckpointError, match=r"is not a scoredist checkpoint \(best.pt or last.pt\)"):
        load_model(out / "last.pt")
    (tmp_path / "cache.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="cache.pt is empty"):
        FeatureSet.load(tmp_path / "cache.pt")


def test_a_second_run_on_a_busy_folder_refuses_and_the_first_keeps_its_files(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(RunFolderError, match=r"run is in use by another run \(process \d+ on .*\)"):
            _fit(out)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    result = _fit(out)
    assert result.history and not (out / LOCK_NAME).exists()
    with pytest.raises(RunFolderError, match="already holds a run"):
        _fit(out)


def test_the_old_flag_spellings_still_work_for_one_release_with_a_warning(capsys):
    old = _parser().parse_args(
        [
            "train",
            "--dataset",
            "d",
            "--root",
            "r",
            "--backbone",
            "tiny3d",
            "--backbone-opt",
            "width=4",
            "--no-progress",
        ]
    )
    warnings = capsys.readouterr().err
    for spelling, new in (
        ("--backbone", "--model"),
        ("--backbone-opt", "--model-opt"),
        ("--no-progress", "--quiet"),
    ):
        assert (
            f"warning: {spelling} is deprecated and will be removed in scoredist 0.3; use {new}" in warnings
        )
    new = _parser().parse_args(
        ["train", "--dataset", "d", "--root", "r", "--model", "tiny3d", "--model-opt", "width=4", "--quiet"]
    )
    assert capsys.readouterr().err == ""
    assert (
        (old.model, old.model_opt, old.quiet)
        == (new.model, new.model_opt, new.quiet)
        == ("tiny3d", [("width", 4)], True)
    )
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--dataset", "d", "--root", "r"])
    assert "error: one of the arguments --model is required" in capsys.readouterr().err
