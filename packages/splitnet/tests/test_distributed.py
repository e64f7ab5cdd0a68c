"""torchrun on CPU (gloo): data parallel, exact stage-parallel pipelines, failures, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from splitnet import TrainConfig, train

COMMON = [
    "--model",
    "cifar_resnet20",
    "--dataset",
    "digits",
    "--batch-size",
    "16",
    "--threads",
    "1",
    "--max-steps-per-epoch",
    "3",
    "--quiet",
    "--lr",
    "0.05",
]


def torchrun(nproc, *args, env_extra=None, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        "-m",
        "splitnet",
        "train",
        *COMMON,
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def single(tmp_path, name, **kw):
    config = TrainConfig(
        model="cifar_resnet20",
        dataset="digits",
        batch_size=16,
        threads=1,
        max_steps_per_epoch=3,
        progress=False,
        lr=0.05,
        out=str(tmp_path / name),
        **kw,
    )
    return train(config)


def weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, different[:5]


@pytest.mark.parametrize("k", [2, 3])
def test_stage_parallel_pipeline_equals_synchronous_local_training(tmp_path, k):
    single(tmp_path, "sync", k=k, epochs=2)
    proc = torchrun(k, "--k", str(k), "--epochs", "2", "--stage-parallel", "--out", str(tmp_path / "pipe"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_weights(weights(tmp_path / "sync"), weights(tmp_path / "pipe"))
    sync = [json.loads(x) for x in (tmp_path / "sync" / "metrics.jsonl").read_text().splitlines()]
    pipe = [json.loads(x) for x in (tmp_path / "pipe" / "metrics.jsonl").read_text().splitlines()]
    assert [m["test_acc"] for m in pipe] == [m["test_acc"] for m in sync]
    assert len(pipe[-1]["stage_seconds_per_step"]) == k and pipe[-1]["images_per_second"] > 0
    assert sorted(p.name for p in (tmp_path / "pipe").glob("checkpoint-stage*.pt")) == [
        f"checkpoint-stage{i + 1}.pt" for i in range(k)
    ]


def test_stage_parallel_resume_continues_exactly_and_stages_resume_together(tmp_path):
    single(tmp_path, "sync", k=2, epochs=2)
    out = str(tmp_path / "pipe")
    assert torchrun(2, "--k", "2", "--epochs", "1", "--stage-parallel", "--out", out).returncode == 0
    stage2 = tmp_path / "pipe" / "checkpoint-stage2.pt"
    saved = stage2.read_bytes()
    stage2.unlink()
    refused = torchrun(2, "--k", "2", "--epochs", "2", "--stage-parallel", "--resume", "--out", out)
    assert refused.returncode != 0 and "stopped at different points" in refused.stderr
    assert "stage 2: no checkpoint" in refused.stderr
    stage2.write_bytes(saved)
    proc = torchrun(2, "--k", "2", "--epochs", "2", "--stage-parallel", "--resume", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the sync run's schedule spans 2 epochs; so did the resumed pipeline's second epoch, but
    # its first epoch ran under a 1-epoch schedule: compare against a sync run made the same way
    single(tmp_path, "sync-resumed", k=2, epochs=1)
    single(tmp_path, "sync-resumed", k=2, epochs=2, resume=True)
    assert_same_weights(weights(tmp_path / "sync-resumed"), weights(tmp_path / "pipe"))


def test_data_parallel_trains_with_one_writer_and_resumes_on_another_world_size(tmp_path):
    out = tmp_path / "ddp"
    proc = torchrun(2, "--k", "2", "--epochs", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and not list(out.glob("checkpoint-stage*"))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_torch"]) == 2
    summary = train(
        TrainConfig(
            model="cifar_resnet20",
            dataset="digits",
            batch_size=16,
            threads=1,
            k=2,
            max_steps_per_epoch=3,
            progress=False,
            lr=0.05,
            out=str(out),
            epochs=2,
            resume=True,
        )
    )
    assert summary["final"]["epoch"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_stage_and_data_parallel_grid(tmp_path):
    out = tmp_path / "grid"
    proc = torchrun(4, "--k", "2", "--epochs", "1", "--stage-parallel", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["epoch"] == 1 and 0 <= final["test_acc"] <= 1
    assert len(final["train_loss"]) == 2


def test_a_failing_rank_stops_the_others_with_its_name(tmp_path):
    site = tmp_path / "site"
    info = site / "boom_objective-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: boom-objective\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[splitnet.objectives]\nboom = boom_objective:make\n")
    (site / "boom_objective.py").write_text(
        textwrap.dedent("""
        import torch
        from splitnet._objectives import GreedyObjective, channels_of

        class Boom(GreedyObjective):
            def forward(self, features, inputs, targets):
                self.calls += 1
                if self.index == 1 and self.calls == 3:
                    raise RuntimeError("boom in the second objective")
                return super().forward(features, inputs, targets)

        def make(context):
            objective = Boom(channels_of(context.feature_shape, context.layout), context.num_classes, context.layout)
            objective.index, objective.calls = context.index, 0
            return objective
    """)
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = torchrun(
        3,
        "--k",
        "3",
        "--epochs",
        "1",
        "--stage-parallel",
        "--objective",
        "boom",
        "--dist-timeout",
        "60",
        "--out",
        str(tmp_path / "run"),
        env_extra=env,
        timeout=180,
    )
    assert proc.returncode != 0
    assert "boom in the second objective" in proc.stderr
    assert (
        "stops because rank 1 (stage 2, replica 1): RuntimeError: boom in the second objective" in proc.stderr
    )


def test_stage_parallel_needs_one_process_per_stage(tmp_path):
    with pytest.raises(ValueError, match="launch K=3 processes.*torchrun --nproc-per-node 3"):
        single(tmp_path, "x", k=3, epochs=1, stage_parallel=True)
    proc = torchrun(2, "--k", "3", "--epochs", "1", "--stage-parallel", "--out", str(tmp_path / "y"))
    assert proc.returncode != 0 and "needs a multiple of 3 processes" in proc.stderr
