import json
import math
import os
import stat

import pytest
import torch

from scoredist import (
    PRESETS,
    ClipEncoder,
    FeatureSet,
    ScoreBins,
    TrainConfig,
    create_backbone,
    create_dataset,
    get_rule,
    load_model,
    select_epoch,
    train,
)
from scoredist import _io as io_module

MTL = PRESETS["mtl-aqa"]


def dives(n: int, seed: int) -> FeatureSet:
    """Features that encode seven judges' scores and the difficulty, plus noise."""
    g = torch.Generator().manual_seed(seed)
    judges = torch.randint(6, 21, (n, 7), generator=g) * 0.5
    difficulty = torch.randint(20, 35, (n,), generator=g) / 10
    final = get_rule("diving")(judges, difficulty).float()
    features = torch.cat(
        [judges / 10, difficulty[:, None] / 3.5, final[:, None] / 100, 0.1 * torch.randn(n, 7, generator=g)],
        dim=1,
    )
    return FeatureSet(
        features=features,
        score=final,
        ids=[f"d{seed}-{i}" for i in range(n)],
        judge_scores=judges,
        difficulty=difficulty,
    )


def usdl_config(**kw) -> TrainConfig:
    return TrainConfig(
        "usdl",
        MTL.score_bins,
        sigma=5.0,
        **{"epochs": 3, "batch_size": 16, "lr": 1e-3, "hidden": (32,), **kw},
    )


def musdl_config(**kw) -> TrainConfig:
    return TrainConfig(
        "musdl",
        MTL.score_bins,
        MTL.judge_bins,
        rule="diving",
        sigma=1.0,
        **{"epochs": 3, "batch_size": 16, "lr": 1e-3, "hidden": (32,), **kw},
    )


@pytest.fixture(scope="module")
def data():
    return dives(192, 0), dives(48, 1), dives(64, 2)


@pytest.mark.parametrize("make", [usdl_config, musdl_config], ids=["usdl", "musdl"])
def test_heads_learn_scores_from_informative_features(data, make):
    train_set, val_set, test_set = data
    result = train(make(epochs=20, lr=1e-2), train_set, test_set, val_set, progress=False)
    chosen = result.summary["val_selected"]
    assert chosen["test"]["spearman"] > 0.8
    assert chosen["epoch"] == select_epoch(result.history, "spearman", "val")


def test_expectation_decoding_is_available(data):
    train_set, val_set, test_set = data
    result = train(musdl_config(decode="expectation", epochs=2), train_set, test_set, val_set, progress=False)
    assert result.summary["last"]["test"]["n"] == 64


def test_runs_are_repeatable(data):
    train_set, val_set, test_set = data
    a = train(musdl_config(), train_set, test_set, val_set, progress=False)
    b = train(musdl_config(), train_set, test_set, val_set, progress=False)
    assert json.dumps(a.history) == json.dumps(b.history)
    c = train(musdl_config(seed=2), train_set, test_set, val_set, progress=False)
    assert json.dumps(c.history) != json.dumps(a.history)


def _states_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("make", [usdl_config, musdl_config], ids=["usdl", "musdl"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, data, make):
    train_set, val_set, test_set = data
    full = train(make(epochs=4), train_set, test_set, val_set, out=tmp_path / "full", progress=False)
    train(make(epochs=2), train_set, test_set, val_set, out=tmp_path / "cut", progress=False)
    resumed = train(
        make(epochs=4), train_set, test_set, val_set, out=tmp_path / "cut", resume=True, progress=False
    )
    assert resumed.resumed_from == 2
    assert json.dumps(resumed.history) == json.dumps(full.history)  # NaN-safe equality
    _states_equal(resumed.model.state_dict(), full.model.state_dict())
    full_opt = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["optimizer"]
    cut_opt = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["optimizer"]
    _states_equal(
        {f"{k}.{n}": v for k, s in full_opt["state"].items() for n, v in s.items()},
        {f"{k}.{n}": v for k, s in cut_opt["state"].items() for n, v in s.items()},
    )
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (
        tmp_path / "full" / "metrics.jsonl"
    ).read_text()
    assert json.loads((tmp_path / "cut" / "summary.json").read_text()) == json.loads(
        (tmp_path / "full" / "summary.json").read_text()
    )


def test_resume_end_to_end_restores_the_backbone_too(fake_clips, tmp_path):
    sets = {s: create_dataset(fake_clips, "/root", s) for s in ("train", "val", "test")}

    def run(epochs, folder, resume=False):
        torch.manual_seed(0)
        encoder = ClipEncoder(create_backbone("tiny3d", width=4), "tiny3d")
        config = TrainConfig(
            "usdl", ScoreBins(0, 30, 31), sigma=1.0, epochs=epochs, batch_size=8, hidden=(16,)
        )
        return train(
            config,
            sets["train"],
            sets["test"],
            sets["val"],
            encoder=encoder,
            out=tmp_path / folder,
            resume=resume,
            progress=False,
        )

    full = run(3, "full")
    run(1, "cut")
    resumed = run(3, "cut", resume=True)
    assert resumed.resumed_from == 1
    _states_equal(resumed.model.state_dict(), full.model.state_dict())
    assert json.dumps(resumed.history) == json.dumps(full.history)


def test_run_folder_contents(tmp_path, data):
    train_set, val_set, test_set = data
    result = train(
        usdl_config(),
        train_set,
        test_set,
        val_set,
        out=tmp_path,
        metadata={"dataset": "synthetic"},
        progress=False,
    )
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in lines] == [
        (e, s) for e in range(3) for s in ("train", "val", "test")
    ]
    assert {"loss", "spearman", "l2", "rl2", "rl2_range", "n"} <= set(lines[0])
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["metadata"] == {"dataset": "synthetic"} and run["config"]["method"] == "usdl"
    best_epoch = torch.load(tmp_path / "best.pt", weights_only=True)["epoch"]
    assert best_epoch == result.summary["val_selected"]["epoch"]
    model, config = load_model(tmp_path / "last.pt")
    batch = {"features": test_set.features}
    torch.testing.assert_close(model(batch), result.model.eval()(batch))
    assert config == usdl_config()


def test_checkpoints_are_written_atomically(tmp_path, data, monkeypatch):
    train_set, val_set, test_set = data
    train(usdl_config(epochs=1), train_set, test_set, val_set, out=tmp_path, progress=False)
    before = (tmp_path / "last.pt").read_bytes()

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(io_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        train(usdl_config(epochs=2), train_set, test_set, val_set, out=tmp_path, resume=True, progress=False)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_refuses_a_different_configuration(tmp_path, data):
    train_set, val_set, test_set = data
    train(usdl_config(epochs=1), train_set, test_set, val_set, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"different configuration \(lr: 0.001 then, 0.01 now\)"):
        train(
            usdl_config(epochs=2, lr=1e-2),
            train_set,
            test_set,
            val_set,
            out=tmp_path,
            resume=True,
            progress=False,
        )
    with pytest.raises(ValueError, match="needs the run folder"):
        train(usdl_config(), train_set, test_set, val_set, resume=True, progress=False)


def test_end_to_end_with_a_video_backbone(fake_clips, tmp_path):
    torch.manual_seed(0)
    encoder = ClipEncoder(create_backbone("tiny3d", width=4), "tiny3d", segments=(2, 4))
    sets = {s: create_dataset(fake_clips, "/root", s) for s in ("train", "val", "test")}
    config = TrainConfig(
        "musdl",
        ScoreBins(0, 30, 31),
        ScoreBins.from_step(0, 10, 0.5),
        rule="sum",
        sigma=1.0,
        epochs=2,
        batch_size=8,
        hidden=(16,),
    )
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = train(
        config, sets["train"], sets["test"], sets["val"], encoder=encoder, out=tmp_path, progress=False
    )
    assert any(
        not torch.equal(before[k], v) for k, v in encoder.state_dict().items()
    )  # fine-tuned end to end
    assert "encoder.backbone.body.0.weight" in torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    assert not math.isnan(result.summary["last"]["test"]["l2"])


# Bad input: every case gets a clear error naming the problem and the fix.


def test_empty_split(data):
    train_set, val_set, test_set = data
    empty = FeatureSet(features=torch.zeros(0, 16), score=torch.zeros(0), ids=[])
    with pytest.raises(ValueError, match="the test split is empty"):
        train(usdl_config(), train_set, empty, val_set, progress=False)


def test_nan_score_names_the_sample(fake_clips):
    bad = create_dataset(fake_clips, "/root", "train", nan_at=5)
    encoder = ClipEncoder(create_backbone("tiny3d", width=4), "tiny3d")
    config = TrainConfig("usdl", ScoreBins(0, 30, 31), sigma=1.0, epochs=1, batch_size=32)
    with pytest.raises(ValueError, match=r"sample 'train-005' has a non-finite final score"):
        train(config, bad, create_dataset(fake_clips, "/root", "test"), encoder=encoder, progress=False)


def test_score_outside_the_bins_names_the_sample_and_the_fix(data):
    train_set, val_set, test_set = data
    config = TrainConfig("usdl", ScoreBins(0, 50, 51), sigma=1.0, epochs=1, batch_size=256)
    with pytest.raises(
        ValueError, match=r"sample 'd0-\d+' has a final score outside the bins' range 0..50.*--score-range"
    ):
        train(config, train_set, test_set, val_set, progress=False)


def test_judge_score_outside_the_judge_bins(data):
    train_set, val_set, test_set = data
    narrow = TrainConfig("musdl", MTL.score_bins, ScoreBins(0, 5, 11), rule="diving", sigma=1.0, epochs=1)
    with pytest.raises(ValueError, match=r"has a score outside the bins' range 0..5"):
        train(narrow, train_set, test_set, val_set, progress=False)


def test_judge_count_that_does_not_match_the_rule(fake_clips):
    sets = [create_dataset(fake_clips, "/root", s) for s in ("train", "test")]
    config = TrainConfig(
        "musdl", ScoreBins(0, 30, 31), ScoreBins(0, 10, 21), rule="diving", sigma=1.0, epochs=1
    )
    encoder = ClipEncoder(create_backbone("tiny3d", width=4), "tiny3d")
    with pytest.raises(ValueError, match=r"rule 'diving' needs exactly 7 judge scores per sample, got 3"):
        train(config, *sets, encoder=encoder, progress=False)


def test_musdl_without_judge_scores(data):
    train_set, val_set, test_set = data
    no_judges = FeatureSet(features=train_set.features, score=train_set.score, ids=train_set.ids)
    with pytest.raises(ValueError, match="MUSDL needs per-judge scores.*use method 'usdl'"):
        train(musdl_config(), no_judges, test_set, val_set, progress=False)


def test_backbone_with_the_wrong_feature_shape(fake_clips):
    sets = [create_dataset(fake_clips, "/root", s) for s in ("train", "test")]
    encoder = ClipEncoder(create_backbone("wrongshape"), "wrongshape")
    config = TrainConfig("usdl", ScoreBins(0, 30, 31), sigma=1.0, epochs=1)
    with pytest.raises(
        ValueError,
        match=r"backbone 'wrongshape' returned \(1, 4, 8\).*must map \(N, C, T, H, W\) to features \(N, F\)",
    ):
        train(config, *sets, encoder=encoder, progress=False)


def test_a_bad_annotation_can_be_left_out_by_id(data):
    train_set, val_set, test_set = data
    judges = train_set.judge_scores.clone()
    judges[7, 3] = 45.0  # MTL-AQA's dive 04_49 has this very typo
    bad = FeatureSet(train_set.features, train_set.score, train_set.ids, judges, train_set.difficulty)
    with pytest.raises(
        ValueError, match=r"sample 'd0-7' has a score outside the bins' range 0..10.*--exclude ID"
    ):
        train(musdl_config(epochs=1), bad, test_set, val_set, progress=False)
    result = train(musdl_config(epochs=1, exclude=["d0-7", "d2-0"]), bad, test_set, val_set, progress=False)
    by_split = {r["split"]: r["n"] for r in result.history}
    assert by_split == {"train": 191, "val": 48, "test": 63}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_get_the_mode_of_any_new_file(tmp_path, umask):
    before = os.umask(umask)
    try:
        io_module.atomic_write_json(tmp_path / "aqa.json", {"rho": 0.9})
        io_module.atomic_save({"x": torch.zeros(1)}, tmp_path / "last.pt")
        (tmp_path / "plain.txt").write_text("written with open()")
    finally:
        os.umask(before)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("aqa.json", "last.pt", "plain.txt"), 0o666 & ~umask)
