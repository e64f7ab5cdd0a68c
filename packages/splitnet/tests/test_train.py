"""Training runs: exact resume, atomic checkpoints, and the failures users meet."""

from __future__ import annotations

import json

import pytest
import torch

import splitnet
from splitnet import CheckpointError, TrainConfig, TrainingError, train


def config(tmp_path, name="run", **kw):
    base = dict(
        model="cifar_resnet20",
        dataset="digits",
        k=3,
        epochs=2,
        batch_size=32,
        lr=0.05,
        max_steps_per_epoch=4,
        progress=False,
        out=str(tmp_path / name),
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def test_run_writes_config_metrics_checkpoint_and_provenance(tmp_path):
    summary = train(config(tmp_path))
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert len(lines[0]["train_loss"]) == 3 and 0 <= lines[-1]["test_acc"] <= 1
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["provenance"]["backbone"]["distribution"] == "localkit-splitnet"
    assert cfg["provenance"]["objective"]["name"] == "greedy"
    assert cfg["provenance"]["dataset"]["name"] == "digits"
    assert len(cfg["plan"]["cuts"]) == 2 == len(summary["cuts"])
    assert not list(run.glob("*.tmp"))


def crash_on_call(monkeypatch, n):
    """Make the n-th local step raise, as a crash (or Ctrl-C) would."""
    original = splitnet.LocalNet.local_step
    calls = []

    def crashing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(splitnet.LocalNet, "local_step", crashing)


@pytest.mark.parametrize(
    ("crash_step", "checkpoint_every", "resumed_at"), [(6, None, (1, 0)), (8, 3, (1, 2))]
)
def test_resume_after_a_crash_continues_exactly(
    tmp_path, monkeypatch, crash_step, checkpoint_every, resumed_at
):
    """Crash in epoch 2 (4 steps per epoch); resume from the epoch-end or a mid-epoch checkpoint."""
    train(config(tmp_path, "straight"))
    crashing = config(tmp_path, "crashed", checkpoint_every=checkpoint_every)
    crash_on_call(monkeypatch, crash_step)
    with pytest.raises(KeyboardInterrupt):
        train(crashing)
    monkeypatch.undo()
    state = torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["samples_in_epoch"] // 32) == resumed_at
    crashing.resume = True
    train(crashing)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "crashed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_existing_runs_are_not_overwritten_and_foreign_checkpoints_are_refused(tmp_path):
    train(config(tmp_path, epochs=1))
    with pytest.raises(TrainingError, match="already holds a run.*--resume"):
        train(config(tmp_path, epochs=1))
    with pytest.raises(CheckpointError, match=r"different run \(k: checkpoint 3 vs now 2\)"):
        train(config(tmp_path, epochs=2, k=2, resume=True))


def test_a_corrupt_checkpoint_is_named(tmp_path):
    train(config(tmp_path, epochs=1))
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="checkpoint.pt is corrupt or truncated"):
        train(config(tmp_path, epochs=2, resume=True))


def test_nan_loss_stops_with_step_stage_and_loss_named(tmp_path, fake_dist):
    fake_dist(
        "nan-data",
        {"splitnet.datasets": {"nan-digits": "nan_data:make"}},
        {
            "nan_data": """
        import torch
        from splitnet._datasets import DigitsDataset

        class Poisoned(DigitsDataset):
            def __getitem__(self, index):
                image, label = super().__getitem__(index)
                return image * float("nan"), label

        def make(root, split, **kw):
            return Poisoned(split)
    """
        },
    )
    splitnet._registries.DATASETS.refresh()
    try:
        with pytest.raises(TrainingError, match=r"epoch 1, step 1 .*stage 1 of 3: objective 1 of 2 is nan"):
            train(config(tmp_path, dataset="nan-digits", epochs=1))
    finally:
        splitnet._registries.DATASETS.refresh()


def test_labels_out_of_range_are_named(tmp_path):
    with pytest.raises(ValueError, match="dataset 'digits': labels must lie in 0..4"):
        train(config(tmp_path, num_classes=5, epochs=1))


def test_end_to_end_is_k1_and_accumulation_and_bf16_run(tmp_path):
    summary = train(config(tmp_path, "e2e", k=1, accumulate=2, amp="bf16", epochs=1))
    assert summary["k"] == 1 and summary["objective"] is None and summary["cuts"] == []


def test_a_finished_run_loads_back_for_evaluation(tmp_path):
    summary = train(config(tmp_path, epochs=1))
    run = splitnet.load_run(tmp_path / "run")
    assert run.net.k == 3 and not run.net.training and run.task == "classification"
    again = splitnet.evaluate(run.net, run.test_set, run.config, run.task, run.num_classes)
    assert again["test_acc"] == summary["final"]["test_acc"]
    (tmp_path / "run" / "checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"not a finished splitnet run: .*checkpoint.pt is missing"):
        splitnet.load_run(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"config.json is missing. Pass the --out folder"):
        splitnet.load_run(tmp_path / "nothing")


def test_a_head_keeps_the_backbones_named_plans():
    backbone = splitnet.create_backbone("cifar_resnet32")
    model = splitnet.HeadedModel(backbone, torch.nn.Identity())
    assert model.named_plans["infopro"][2] == ["backbone.layer2.1"]
    p = splitnet.plan(model, 2, balance="infopro", input_size=(3, 32, 32), measure_memory=False)
    assert [c.label for c in p.cuts] == ["backbone.layer2.1"]


def test_dataset_options_eval_split_and_poly_schedule(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'val'"):
        train(config(tmp_path, "val", eval_split="val", epochs=1))
    summary = train(config(tmp_path, "poly", schedule="poly", epochs=1, dataset_options={"augment": False}))
    assert summary["final"]["lr"] == 0.0
    saved = json.loads((tmp_path / "poly" / "config.json").read_text())["config"]
    assert saved["dataset_options"] == {"augment": False} and saved["schedule"] == "poly"


def test_summarize_groups_finished_runs_and_names_the_rest(tmp_path):
    from splitnet._summary import summarize

    for seed in (1, 2):
        train(config(tmp_path, f"greedy{seed}", epochs=1, seed=seed))
    (tmp_path / "half").mkdir()
    table = summarize([str(tmp_path / "greedy1"), str(tmp_path / "greedy2"), str(tmp_path / "half")])
    row = next(line for line in table.splitlines() if "| greedy |" in line)
    assert "| cifar_resnet20 | greedy | 3 | 2 | 1 |" in row and row.endswith("| 1,2 |")
    assert "1 unfinished run(s) left out" in table and "half" in table


def test_progress_bar_names_each_stage_loss():
    from splitnet._session import loss_labels

    assert loss_labels([torch.tensor(2.30112), torch.tensor(0.5)]) == "s1=2.301 s2=0.500"
    assert loss_labels([0.25]) == "loss=0.250"
