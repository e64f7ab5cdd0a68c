"""Hostile inputs and faults around training: bad values, unusable run folders, full disks,
two runs on one folder, kills mid-epoch (issue 16)."""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

import splitnet
from localkit_runs import LOCK_NAME, RunLock
from splitnet import CheckpointError, RunFolderError, TrainConfig, train
from splitnet._checkpoint import FORMAT, load
from splitnet._cli import main
from splitnet._summary import summarize

pytestmark = pytest.mark.hostile


def config(tmp_path, name="run", **kw):
    base = dict(
        model="cifar_resnet20",
        dataset="digits",
        k=2,
        epochs=2,
        batch_size=16,
        lr=0.05,
        max_steps_per_epoch=4,
        progress=False,
        out=str(tmp_path / name),
        seed=5,
    )
    base.update(kw)
    return TrainConfig(**base)


def metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    assert not [key for key in a if not torch.equal(a[key], b[key])]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A 2-epoch run that nothing interrupted: what every interrupted run must end with."""
    folder = tmp_path_factory.mktemp("straight")
    train(config(folder))
    return folder / "run"


# ---- values: valid, or an error naming the setting, its flag and the range


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("batch_size", 0, r"batch_size \(--batch-size\) must be an integer >= 1, got 0"),
        ("batch_size", -5, r"batch_size \(--batch-size\) must be an integer >= 1, got -5"),
        ("batch_size", 2.5, r"batch_size \(--batch-size\) must be an integer >= 1, got 2.5"),
        ("k", 0, r"k \(--k\) must be an integer >= 1, got 0"),
        ("k", True, r"k \(--k\) must be an integer >= 1, got True"),
        ("epochs", 0, r"epochs \(--epochs\) must be an integer >= 1, got 0"),
        ("accumulate", 0, r"accumulate \(--accumulate\) must be an integer >= 1"),
        ("eval_batch_size", 0, r"eval_batch_size \(--eval-batch-size\) must be an integer >= 1"),
        ("max_in_flight", 0, r"max_in_flight \(--max-in-flight\) must be an integer >= 1"),
        (
            "max_steps_per_epoch",
            0,
            r"max_steps_per_epoch \(--max-steps-per-epoch\) must be an integer >= 1 \(or None: not given\), got 0",
        ),
        ("checkpoint_every", 0, r"checkpoint_every \(--checkpoint-every\) must be an integer >= 1 \(or None"),
        ("threads", 0, r"threads \(--threads\) must be an integer >= 1 \(or None"),
        ("num_classes", 0, r"num_classes \(--num-classes\) must be an integer >= 1 \(or None"),
        ("workers", -1, r"workers \(--workers\) must be an integer >= 0, got -1"),
        ("seed", -1, r"seed \(--seed\) must be an integer >= 0, got -1"),
        ("lr", math.nan, r"lr \(--lr\) must be a finite number > 0, got nan"),
        ("lr", math.inf, r"lr \(--lr\) must be a finite number > 0, got inf"),
        ("lr", 0.0, r"lr \(--lr\) must be a finite number > 0, got 0.0"),
        ("momentum", 1.0, r"momentum \(--momentum\) must be a finite number >= 0 and < 1, got 1.0"),
        ("momentum", math.nan, r"momentum \(--momentum\) must be a finite number >= 0 and < 1, got nan"),
        ("weight_decay", -1e-4, r"weight_decay \(--weight-decay\) must be a finite number >= 0"),
        ("weight_decay", math.inf, r"weight_decay \(--weight-decay\) must be a finite number >= 0, got inf"),
        ("warmup_epochs", math.nan, r"warmup_epochs \(--warmup-epochs\) must be a finite number >= 0"),
        ("dist_timeout", 0.0, r"dist_timeout \(--dist-timeout\) must be a finite number > 0"),
        ("out", "", r"out \(--out\) must be a non-empty string, got ''"),
        ("head", "", r"head \(--head\) must be a non-empty string \(or None: not given\), got ''"),
        (
            "cut_granularity",
            "layer",
            r"cut_granularity \(--cut-granularity\) must be 'block' or 'node', got 'layer'",
        ),
    ],
)
def test_a_value_out_of_range_is_an_error_naming_it(tmp_path, name, value, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, **{name: value})


def test_nesterov_without_momentum_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0: pass --no-nesterov"):
        config(tmp_path, momentum=0.0)
    assert config(tmp_path, momentum=0.0, nesterov=False).momentum == 0.0


def test_flags_not_given_take_the_defaults_and_zero_is_an_error(tmp_path, monkeypatch, capsys):
    import splitnet._train

    seen = []
    monkeypatch.setattr(
        splitnet._train, "train", lambda config: seen.append(config) or {"run": "", "final": {}}
    )
    assert main(["train", "--model", "cifar_resnet20", "--quiet", "--out", str(tmp_path / "a")]) == 0
    default = TrainConfig(model="cifar_resnet20")
    got = seen[0]
    assert (got.k, got.batch_size, got.max_steps_per_epoch, got.checkpoint_every, got.threads) == (
        default.k,
        default.batch_size,
        None,
        None,
        None,
    )
    for flag, value, field in [
        ("--batch-size", "0", "batch_size"),
        ("--k", "0", "k"),
        ("--max-steps-per-epoch", "0", "max_steps_per_epoch"),
        ("--checkpoint-every", "0", "checkpoint_every"),
        ("--lr", "nan", "lr"),
    ]:
        code = main(["train", "--model", "cifar_resnet20", flag, value, "--out", str(tmp_path / "b")])
        err = capsys.readouterr().err
        assert code == 2 and f"error: {field} ({flag}) must be" in err, err
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--k", "2", "--batch-size", "0"], "batch_size must be an integer >= 1 (or None"),
        (["memory", "--k", "2", "--batch-size", "-5"], "batch_size must be an integer >= 1 (or None"),
        (["plan", "--budget-mib", "0"], "budget_bytes must be a finite number > 0"),
        (["plan", "--k", "2", "--num-classes", "0"], "num_classes must be an integer >= 1"),
    ],
)
def test_plan_and_memory_refuse_zero_and_negative_sizes(capsys, argv, message):
    code = main([*argv, "--model", "cifar_resnet20"])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


# ---- numerics in the local step


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet20")
    return splitnet.split(model, splitnet.plan(model, 2, measure_memory=False))


@pytest.mark.parametrize("scale", [math.nan, math.inf, -math.inf, 0.0, -1.0, True])
def test_a_bad_loss_scale_is_refused_before_any_gradient(net, scale):
    net.zero_grad(set_to_none=True)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match=rf"loss_scale must be a finite number > 0 .*got {scale!r}"):
        net.local_step(x, y, loss_scale=scale)
    with pytest.raises(ValueError, match="loss_scale must be a finite number > 0"):
        net.stage_step(0, x, x, y, loss_scale=scale)
    assert all(p.grad is None for p in net.parameters())


def test_nan_inputs_stop_at_the_nan_loss_before_any_gradient(net):
    net.zero_grad(set_to_none=True)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    x[1, 2, 3, 4] = math.nan
    with pytest.raises(
        splitnet.NonFiniteLossError, match="stage 1 of 2: .* is nan.*check the inputs for NaN/inf"
    ):
        net.local_step(x, y)
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("poison", [math.inf, -math.inf])
def test_infinite_inputs_with_a_finite_loss_are_refused_before_any_gradient(poison):
    # hardtanh maps inf to 1: the loss stays finite and would train on garbage unnoticed
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Hardtanh(), torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    net = splitnet.split(model, splitnet.plan(model, 1, example_input=x, num_classes=3, measure_memory=False))
    x[1, 2, 1, 0] = poison
    with pytest.raises(ValueError, match=r"stage 1 of 1: its input holds 1 NaN or infinite values \(of 48\)"):
        net.local_step(x, y)
    assert all(p.grad is None for p in net.parameters())
    net.local_step(x, y, check_inputs=False)  # asked not to look: trains on what it was given
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# ---- run folders that cannot be written


def test_a_path_through_a_file_names_the_folder_and_the_cause(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    where = re.escape(str(tmp_path / "file"))
    with pytest.raises(
        RunFolderError, match=rf"run folder {where}/run: cannot create it: a part of the path is a file"
    ):
        train(config(tmp_path, "file/run"))
    with pytest.raises(
        RunFolderError, match=rf"run folder {where}: cannot create it: it exists and is not a folder"
    ):
        train(config(tmp_path, "file"))


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.EACCES, "permission denied: make the folder writable or choose another --out"),
        (errno.EROFS, "the file system is read-only: choose another --out"),
        (errno.ENOSPC, "the disk is full"),
    ],
)
def test_a_folder_that_refuses_writes_names_the_folder_and_the_cause(tmp_path, monkeypatch, code, cause):
    """The first write (the lock) fails as an unwritable, read-only or full folder fails it."""
    folder = tmp_path / "run"
    folder.mkdir()
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(
        RunFolderError, match=rf"run folder {re.escape(str(folder))}: cannot create run.lock: {cause}"
    ):
        train(config(tmp_path))
    monkeypatch.undo()
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_names_the_folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(
            RunFolderError, match=rf"run folder {re.escape(str(folder))}: cannot .*: permission denied"
        ):
            train(config(tmp_path))
    finally:
        folder.chmod(0o700)


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)


def test_disk_full_at_an_epoch_end_then_resume_ends_like_an_uninterrupted_run(
    tmp_path, monkeypatch, straight
):
    real_save = torch.save

    def full_at_epoch_2(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            f = FullDisk(f, 4096)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_epoch_2)
    run = tmp_path / "run"
    with pytest.raises(
        RunFolderError, match=rf"{re.escape(str(run))}: cannot write checkpoint.pt: the disk is full"
    ):
        train(config(tmp_path))
    monkeypatch.undo()
    assert not list(run.glob("*.tmp")) and not (run / LOCK_NAME).exists()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the previous one, whole
    assert [m["epoch"] for m in metrics(run)] == [1, 2]  # epoch 2 was logged before its checkpoint failed
    train(config(tmp_path, resume=True))
    assert_same_weights(weights(straight), weights(run))
    assert [m["epoch"] for m in metrics(run)] == [1, 2]  # never the same epoch twice
    assert [m["train_loss"] for m in metrics(run)] == [m["train_loss"] for m in metrics(straight)]


# ---- a kill mid-epoch: the epoch's train metrics cover the whole epoch


def test_resume_after_a_mid_epoch_kill_reports_the_whole_epoch(tmp_path, monkeypatch, caplog, straight):
    original = splitnet.LocalNet.local_step
    calls = []

    def killed_at_step_7(self, *args, **kwargs):  # epoch 2, step 3 of 4
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt("kill")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(splitnet.LocalNet, "local_step", killed_at_step_7)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, checkpoint_every=1))
    monkeypatch.undo()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["samples_in_epoch"], state["epoch_tally"]["steps"]) == (1, 32, 2)
    # a kill -9 leaves the lock of a process that no longer exists
    (run / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="localkit_runs"):
        train(config(tmp_path, checkpoint_every=1, resume=True))
    assert "which no longer runs; taking the run folder over" in caplog.text
    assert not (run / LOCK_NAME).exists()
    resumed, whole = metrics(run), metrics(straight)
    assert [m["epoch"] for m in resumed] == [1, 2]
    for key in ("train_loss", "train_acc", "test_acc"):
        assert [m[key] for m in resumed] == [m[key] for m in whole], key
    assert_same_weights(weights(straight), weights(run))


# ---- two runs on one folder


HOLD = textwrap.dedent("""
    import sys, time
    from localkit_runs import RunLock
    RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(300)
""")


def test_a_second_run_on_a_busy_folder_refuses_and_a_dead_holders_lock_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        host = socket.gethostname()
        with pytest.raises(
            RunFolderError, match=rf"in use by another run \(process {holder.pid} on {host}\)"
        ):
            train(config(tmp_path))
        assert json.loads((folder / LOCK_NAME).read_text()) == {"pid": holder.pid, "host": host}
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level(logging.WARNING, logger="localkit_runs"):
        lock = RunLock(folder).acquire()
    assert f"process {holder.pid} on {host}, which no longer runs" in caplog.text
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (folder / LOCK_NAME).exists()


def test_a_torchrun_on_a_busy_folder_stops_every_rank_at_once(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "splitnet", "train", "--model", "cifar_resnet20", "--k", "2", "--threads", "1"]
    cmd += ["--quiet", "--dist-timeout", "60", "--out", str(folder)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode != 0
    assert f"in use by another run (process {os.getpid()} on" in proc.stderr
    assert not (folder / ".failures").exists()  # nothing written into the other run's folder


# ---- checkpoints of another schema, summaries of missing runs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is empty \(0 bytes\): a write was cut short"),
        (None, "is not a splitnet checkpoint"),
        ({"format": 1, "model": {}}, f"checkpoint of format 1; this splitnet reads format {FORMAT}"),
        (
            {"format": FORMAT, "model": {}},
            f"does not follow the format-{FORMAT} checkpoint schema \\(missing config",
        ),
    ],
)
def test_a_checkpoint_of_another_schema_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "checkpoint.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(torch.zeros(3) if content is None else content, path)
    with pytest.raises(CheckpointError, match=message):
        load(path, config(tmp_path))


def test_a_stage_file_is_not_loaded_as_a_whole_model(tmp_path, straight):
    state = torch.load(straight / "checkpoint.pt", weights_only=True)
    stage_file = straight / "checkpoint-stage1.pt"
    torch.save({**state, "stage": 0, "stages": 2}, stage_file)
    try:
        with pytest.raises(CheckpointError, match="holds only stage 1 of 2: load the run itself"):
            splitnet.load_run(straight, checkpoint="checkpoint-stage1.pt")
    finally:
        stage_file.unlink()


def test_summarize_refuses_a_path_that_does_not_exist(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match=r"not a run folder: .*typo \(no such folder\)"):
        summarize([str(tmp_path / "half"), str(tmp_path / "typo")])
    assert main(["summarize", str(tmp_path / "typo")]) == 2
    assert "not a run folder" in capsys.readouterr().err


# ---- inputs that do not fit: named, never a torch traceback


def test_an_input_with_the_wrong_channel_count_is_named_plainly():
    model = splitnet.create_backbone("cifar_resnet20")
    with pytest.raises(
        splitnet.SplitError, match=r"^CifarResNet expects 3 channels, got 1 \(an input of shape"
    ):
        splitnet.plan(model, 2, example_input=torch.randn(2, 1, 32, 32), measure_memory=False)


def test_a_corrupt_image_in_an_imagefolder_names_the_file(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / cls / "0.png")
    (tmp_path / "train" / "cat" / "1.png").write_bytes(b"\x89PNG but cut short")
    data = splitnet.create_dataset("imagefolder", tmp_path, "train", image_size=8)
    assert data[2][0].shape == (3, 8, 8)  # the readable ones read
    with pytest.raises(
        ValueError, match=r"imagefolder: .*cat/1.png is not a readable image .*delete or replace it"
    ):
        data[1]
