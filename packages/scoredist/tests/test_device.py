"""Where scoredist computes: the device and precision checked once, batches handed to the GPU.

CPU tests cover the checks, the hand-off (what moves and what stays) and float16 training
with its gradient scaler; tests marked ``cuda`` run on a GPU and skip where there is none.
"""

from __future__ import annotations

import json

import pytest
import torch

from localkit_runs import CheckpointError
from scoredist import PRESETS, FeatureSet, TrainConfig, get_rule, train
from scoredist._cli import main
from scoredist._device import autocast, grad_scaler, resolve_device, to_device

MTL = PRESETS["mtl-aqa"]


def dives(n: int, seed: int) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    judges = torch.randint(6, 21, (n, 7), generator=g) * 0.5
    difficulty = torch.randint(20, 35, (n,), generator=g) / 10
    final = get_rule("diving")(judges, difficulty).float()
    features = torch.cat([judges / 10, difficulty[:, None] / 3.5, 0.1 * torch.randn(n, 4, generator=g)], 1)
    return FeatureSet(
        features=features,
        score=final,
        ids=[f"d{seed}-{i}" for i in range(n)],
        judge_scores=judges,
        difficulty=difficulty,
    )


def config(**kw) -> TrainConfig:
    return TrainConfig(
        "musdl",
        MTL.score_bins,
        MTL.judge_bins,
        rule="diving",
        sigma=1.0,
        **{"epochs": 4, "batch_size": 16, "lr": 1e-2, "hidden": (32,), **kw},
    )


def test_unknown_devices_and_precisions_are_refused_naming_the_accepted_ones():
    assert resolve_device("cpu", None) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        resolve_device("gpu", None)
    with pytest.raises(ValueError, match=r"got 'meta'"):
        resolve_device("meta", None)
    with pytest.raises(ValueError, match=r"amp must be one of bf16, fp16 .*got 'fp8'"):
        resolve_device("cpu", "fp8")


def test_cuda_without_a_gpu_and_bf16_on_an_old_gpu_name_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"sees no CUDA device here: pass --device cpu"):
        resolve_device("cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 1 GPU"):
        resolve_device("cuda:2", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(ValueError, match=r"Tesla V100 does not support bfloat16; use fp16"):
        resolve_device("cuda", "bf16")
    assert resolve_device("cuda", "fp16") == torch.device("cuda")


def test_only_the_model_inputs_travel_to_the_device():
    video = torch.zeros(2, 3, 4, 8, 8, dtype=torch.uint8)
    score = torch.tensor([1.0, 2.0])
    batch = {"video": video, "score": score, "difficulty": torch.tensor([3.0, 3.2]), "id": ["a", "b"]}
    moved = to_device(batch, torch.device("meta"))  # a device of its own, without a GPU
    assert moved["video"].device.type == "meta" and moved["video"].dtype == torch.uint8  # copied as stored
    assert (
        moved["score"] is score and moved["difficulty"] is batch["difficulty"] and moved["id"] == ["a", "b"]
    )
    assert to_device({"features": torch.ones(2, 3)}, torch.device("meta"))["features"].device.type == "meta"


def test_float16_gets_a_scaler_and_bfloat16_and_full_precision_do_not():
    cpu = torch.device("cpu")
    assert isinstance(grad_scaler(cpu, "fp16"), torch.amp.GradScaler)
    assert grad_scaler(cpu, "bf16") is None and grad_scaler(cpu, None) is None
    with autocast(cpu, "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, None):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


def test_fp16_training_checkpoints_its_scaler_and_resumes_exactly(tmp_path):
    train_set, test_set = dives(96, 0), dives(32, 1)
    full = train(config(), train_set, test_set, out=tmp_path / "full", progress=False, amp="fp16")
    train(config(epochs=2), train_set, test_set, out=tmp_path / "cut", progress=False, amp="fp16")
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0
    resumed = train(
        config(), train_set, test_set, out=tmp_path / "cut", resume=True, progress=False, amp="fp16"
    )
    assert resumed.resumed_from == 2
    assert json.dumps(resumed.history) == json.dumps(full.history)
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert (run["device"], run["amp"]) == ("cpu", "fp16")
    assert all(loss == loss for loss in (r["loss"] for r in full.history))  # no NaN from fp16
    for other in (None, "bf16"):
        with pytest.raises(CheckpointError, match=rf"trained with --amp fp16, not {other or 'none'}; resume"):
            train(
                config(epochs=4),
                train_set,
                test_set,
                out=tmp_path / "cut",
                resume=True,
                progress=False,
                amp=other,
            )


def test_bf16_training_learns_and_keeps_the_loss_in_float32():
    train_set, test_set = dives(192, 0), dives(64, 1)
    result = train(config(epochs=10), train_set, test_set, progress=False, amp="bf16")
    assert result.summary["last"]["test"]["spearman"] > 0.7


def test_the_cli_reports_a_missing_gpu_without_a_traceback(tmp_path, monkeypatch, capsys, fake_clips):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = [
        "train",
        "--dataset",
        fake_clips,
        "--root",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "tiny3d",
        "--score-range",
        "0",
        "30",
        "--bins",
        "31",
        "--sigma",
        "1",
        "--device",
        "cuda",
        "--quiet",
    ]
    assert main(argv) == 2
    assert "asks for a GPU" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.cuda
@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_training_on_the_gpu_matches_the_cpu_run_closely(amp):
    train_set, test_set = dives(96, 0), dives(32, 1)
    on_gpu = train(config(epochs=2), train_set, test_set, progress=False, device="cuda", amp=amp)
    assert next(on_gpu.model.parameters()).device.type == "cuda"
    on_cpu = train(config(epochs=2), train_set, test_set, progress=False)
    for gpu, cpu in zip(on_gpu.history, on_cpu.history):
        assert gpu["loss"] == pytest.approx(cpu["loss"], rel=0.05 if amp else 1e-3)
