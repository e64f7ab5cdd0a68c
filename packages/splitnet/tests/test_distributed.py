"""torchrun on CPU (gloo): data parallel, exact stage-parallel pipelines, failures, resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

import splitnet
from splitnet import TrainConfig, train
from splitnet._errors import CheckpointError
from splitnet._export import export_run

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


def torchrun(nproc, *args, env_extra=None, timeout=900):
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
    """The run's model state: its checkpoint.pt, or the shards its checkpoint.json lists."""
    if not (folder / "checkpoint.json").exists():
        return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]
    index = json.loads((folder / "checkpoint.json").read_text())
    model = {}
    for shard in index["shards"]:
        model.update(torch.load(folder / shard["file"], weights_only=True)["model"])
    return model


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
    # one shard per stage, each the file its checksum names; no whole-model file anywhere
    index = json.loads((tmp_path / "pipe" / "checkpoint.json").read_text())
    assert (index["epoch"], index["stages"], index["replicas"]) == (2, k, 1)
    shards = sorted((tmp_path / "pipe" / "checkpoint-shards").iterdir())
    assert [tmp_path / "pipe" / s["file"] for s in index["shards"]] == shards
    for shard, path in zip(index["shards"], shards):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert {key.split(".")[1] for key in torch.load(path, weights_only=True)["model"]} == {
            str(shard["stage"] - 1)
        }
    assert not (tmp_path / "pipe" / "checkpoint.pt").exists()
    # the sharded run loads, and exports stage by stage, as the one-process run does
    assert_same_weights(splitnet.load_run(tmp_path / "pipe").net.state_dict(), weights(tmp_path / "sync"))
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "splitnet",
            "export",
            str(tmp_path / "pipe"),
            "--out",
            str(tmp_path / "pipe.st"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr
    assert f"from {k} checkpoint file(s)" in exported.stdout
    export_run(tmp_path / "sync", tmp_path / "sync.st")
    mine, reference = load_file(tmp_path / "pipe.st"), load_file(tmp_path / "sync.st")
    assert_same_weights(mine, reference)
    splitnet.create_backbone("cifar_resnet20", num_classes=10).load_state_dict(mine)


def test_stage_parallel_resume_continues_exactly_and_names_a_missing_or_corrupt_shard(tmp_path):
    single(tmp_path, "sync", k=2, epochs=2)
    out = str(tmp_path / "pipe")
    assert torchrun(2, "--k", "2", "--epochs", "1", "--stage-parallel", "--out", out).returncode == 0
    index = json.loads((tmp_path / "pipe" / "checkpoint.json").read_text())
    stage2 = tmp_path / "pipe" / index["shards"][1]["file"]
    saved = stage2.read_bytes()
    stage2.unlink()
    refused = torchrun(2, "--k", "2", "--epochs", "2", "--stage-parallel", "--resume", "--out", out)
    assert refused.returncode != 0
    assert f"the shard of stage 2, {stage2}, is missing" in refused.stderr
    stage2.write_bytes(saved[:-10] + bytes(10))
    refused = torchrun(2, "--k", "2", "--epochs", "2", "--stage-parallel", "--resume", "--out", out)
    assert refused.returncode != 0
    assert f"the shard of stage 2, {stage2}, is corrupt: its sha256 differs" in refused.stderr
    with pytest.raises(
        CheckpointError, match=f"cannot export .*the shard of stage 2, {re.escape(str(stage2))}, is corrupt"
    ):
        export_run(out, tmp_path / "weights.st")
    # another K cannot resume exactly: a stage's auxiliary net and optimizer state belong to its cuts
    refused = torchrun(3, "--k", "3", "--epochs", "2", "--stage-parallel", "--resume", "--out", out)
    assert refused.returncode != 0
    assert "holds a run of 2 stages; this launch asks for 3" in refused.stderr
    assert "a run resumes only with the same cuts" in refused.stderr
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


def test_a_stage_parallel_run_resumes_exactly_on_more_replicas(tmp_path):
    """K=2 x D=1 for an epoch, then K=2 x D=2: the same weights as local training that ran one
    epoch in one process and the next data-parallel on two (no augmentation: no random state)."""
    plain = ["--dataset-opt", "augment=false"]
    pipe = str(tmp_path / "pipe")
    assert torchrun(2, "--k", "2", "--epochs", "1", "--stage-parallel", *plain, "--out", pipe).returncode == 0
    proc = torchrun(4, "--k", "2", "--epochs", "2", "--stage-parallel", "--resume", *plain, "--out", pipe)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming a run of 1 replicas per stage on 2: the global batch becomes 32" in proc.stderr
    index = json.loads((tmp_path / "pipe" / "checkpoint.json").read_text())
    assert (index["epoch"], index["stages"], index["replicas"]) == (2, 2, 2)
    final = json.loads((tmp_path / "pipe" / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["epoch"] == 2 and len(final["train_loss"]) == 2
    single(tmp_path, "local", k=2, epochs=1, dataset_options={"augment": False})
    proc = torchrun(2, "--k", "2", "--epochs", "2", "--resume", *plain, "--out", str(tmp_path / "local"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_weights(weights(tmp_path / "local"), weights(tmp_path / "pipe"))
    refused = torchrun(2, "--k", "2", "--epochs", "3", "--resume", *plain, "--out", pipe)
    assert (
        refused.returncode != 0 and "indexes a --stage-parallel run (2 stages x 2 replicas)" in refused.stderr
    )


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
        timeout=600,
    )
    assert proc.returncode != 0
    assert "boom in the second objective" in proc.stderr
    for other in ("rank 0 (stage 1, replica 1)", "rank 2 (stage 3, replica 1)"):
        assert (
            f"{other} stops because rank 1 (stage 2, replica 1): RuntimeError: boom in the second objective"
            in proc.stderr
        ), proc.stderr[-3000:]


def test_a_killed_rank_is_named_by_the_others(tmp_path):
    """A rank killed outright leaves no note; the others find which process of their host is gone."""
    site = tmp_path / "site"
    info = site / "kill_objective-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kill-objective\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[splitnet.objectives]\nkill = kill_objective:make\n")
    (site / "kill_objective.py").write_text(
        textwrap.dedent("""
        import os, signal
        from splitnet._objectives import GreedyObjective, channels_of

        class Kill(GreedyObjective):
            def forward(self, features, inputs, targets):
                self.calls += 1
                if self.index == 0 and self.calls == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().forward(features, inputs, targets)

        def make(context):
            objective = Kill(channels_of(context.feature_shape, context.layout), context.num_classes, context.layout)
            objective.index, objective.calls = context.index, 0
            return objective
    """)
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = torchrun(
        2,
        "--k",
        "2",
        "--epochs",
        "1",
        "--stage-parallel",
        "--objective",
        "kill",
        "--dist-timeout",
        "60",
        "--out",
        str(tmp_path / "run"),
        env_extra=env,
        timeout=600,
    )
    assert proc.returncode != 0
    # whichever rank the kill reaches (the one that calls objective 0), the other names it
    named = re.search(
        r"rank (\d) \(stage \d, replica 1\) stops because rank (\d) \(stage \d, replica 1\) is gone without a "
        r"word: its process \d+ on \S+ no longer exists",
        proc.stderr,
    )
    assert named and named.group(1) != named.group(2), proc.stderr[-3000:]


def test_stage_parallel_needs_one_process_per_stage(tmp_path):
    with pytest.raises(ValueError, match="launch K=3 processes.*torchrun --nproc-per-node 3"):
        single(tmp_path, "x", k=3, epochs=1, stage_parallel=True)
    proc = torchrun(2, "--k", "3", "--epochs", "1", "--stage-parallel", "--out", str(tmp_path / "y"))
    assert proc.returncode != 0 and "needs a multiple of 3 processes" in proc.stderr
