"""Every CUDA path: device checks, clocks that wait for the GPU, CUDA memory, backends, autocast.

Most tests run on the CPU, with torch.cuda replaced by fakes where a path only exists on a
GPU (the fakes record what the code asks of CUDA and in which order). Tests marked ``cuda``
run the real thing and skip where torch sees no GPU.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import splitnet
from splitnet import _distributed
from splitnet._device import StepTimer, cuda_step_peak, resolve_device

# --- the device a run asks for ------------------------------------------------------------


def test_cpu_is_always_there_and_unknown_devices_are_refused():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match=r"got 'meta'"):
        resolve_device("meta")


def test_cuda_without_a_gpu_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"sees no CUDA device here .*pass --device cpu"):
        resolve_device("cuda")


def test_a_gpu_index_past_the_last_and_bf16_on_an_old_gpu_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:1': this machine has 1 GPU\(s\), cuda:0 .. cuda:0"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(ValueError, match=r"Tesla V100 does not support bfloat16; use --amp fp16"):
        resolve_device("cuda:0", amp="bf16")
    assert resolve_device("cuda:0", amp="fp16") == torch.device("cuda", 0)


def test_train_on_cuda_without_a_gpu_stops_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = splitnet.TrainConfig(model="cifar_resnet20", device="cuda", out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="pass --device cpu"):
        splitnet.train(config)
    assert not (tmp_path / "run").exists()


def test_the_cli_reports_a_missing_gpu_without_a_traceback(tmp_path, monkeypatch, capsys):
    from splitnet._cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train", "--model", "cifar_resnet20", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "error: device 'cuda' asks for a GPU" in capsys.readouterr().err


# --- clocks -------------------------------------------------------------------------------


class FakeEvent:
    """A CUDA event on a fake timeline: ``record`` stamps the next tick, ``synchronize`` is counted."""

    timeline = 0.0
    log: list[str] = []

    def __init__(self, enable_timing=False):
        assert enable_timing, "an event that cannot time"
        self.stamp = None

    def record(self, stream=None):
        FakeEvent.timeline += 0.25
        self.stamp = FakeEvent.timeline
        FakeEvent.log.append("record")

    def synchronize(self):
        FakeEvent.log.append("synchronize")

    def elapsed_time(self, end):  # milliseconds, as CUDA reports them
        return (end.stamp - self.stamp) * 1000


def test_step_timer_on_cpu_reads_the_wall_clock():
    timer = StepTimer(torch.device("cpu"))
    for _ in range(3):
        timer.start()
        sum(range(1000))
        timer.stop()
    seconds = timer.seconds()
    assert len(seconds) == 3 and all(s >= 0 for s in seconds)
    with pytest.raises(RuntimeError, match="stop"):
        StepTimer(torch.device("cpu")).stop()


def test_step_timer_on_cuda_records_events_and_waits_only_once_at_the_end(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    FakeEvent.timeline, FakeEvent.log = 0.0, []
    timer = StepTimer(torch.device("cuda"))
    for _ in range(4):
        timer.start()
        timer.stop()
    # training never waited for the clock: events were only recorded
    assert FakeEvent.log == ["record"] * 8
    assert timer.seconds() == [0.25] * 4  # the GPU's time between the marks, in seconds
    assert FakeEvent.log[-1] == "synchronize" and FakeEvent.log.count("synchronize") == 1


class FakeAllocator:
    """torch.cuda's memory statistics over a fake allocator, logging every call in order."""

    def __init__(self):
        self.allocated, self.reserved = 100, 400
        self.peak_allocated, self.peak_reserved = 10**9, 10**9  # stale peaks from earlier work
        self.log = []

    def install(self, monkeypatch):
        cuda = torch.cuda
        for name in (
            "synchronize",
            "empty_cache",
            "reset_peak_memory_stats",
            "memory_allocated",
            "memory_reserved",
            "max_memory_allocated",
            "max_memory_reserved",
            "get_device_name",
        ):
            monkeypatch.setattr(cuda, name, getattr(self, name))

    def synchronize(self, device=None):
        self.log.append("synchronize")

    def empty_cache(self):
        self.log.append("empty_cache")
        self.reserved = 150

    def reset_peak_memory_stats(self, device=None):
        self.log.append("reset")
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def memory_allocated(self, device=None):
        return self.allocated

    def memory_reserved(self, device=None):
        return self.reserved

    def max_memory_allocated(self, device=None):
        self.log.append("read peak")
        return self.peak_allocated

    def max_memory_reserved(self, device=None):
        return self.peak_reserved

    def get_device_name(self, device=None):
        return "Fake GPU"

    def step(self):
        self.log.append("step")
        self.peak_allocated = max(self.peak_allocated, self.allocated + 700)
        self.peak_reserved = max(self.peak_reserved, self.reserved + 1024)


def test_cuda_peak_resets_the_window_first_and_reads_it_after_a_synchronised_step(monkeypatch):
    fake = FakeAllocator()
    fake.install(monkeypatch)
    result = cuda_step_peak(fake.step, torch.device("cuda"))
    assert fake.log == ["synchronize", "empty_cache", "reset", "step", "synchronize", "read peak"]
    # the stale 1 GB peak of earlier work is gone; the step's own growth is what counts
    assert result["peak_bytes"] == 700 and result["baseline_bytes"] == 100
    assert result["peak_reserved_bytes"] == 1024 and result["baseline_reserved_bytes"] == 150
    assert "Fake GPU" in result["method"]


# --- process groups -----------------------------------------------------------------------


def test_cuda_runs_use_nccl_for_gpu_tensors_and_gloo_for_cpu_statistics(monkeypatch):
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.setdefault("device", index))
    monkeypatch.setattr(_distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(
        _distributed.dist, "init_process_group", lambda backend, timeout: calls.setdefault("backend", backend)
    )
    monkeypatch.setattr(_distributed.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(_distributed.dist, "new_group", lambda ranks: tuple(ranks))
    topology = _distributed.setup(2, True, "cuda", 60.0)
    assert calls == {"backend": "cpu:gloo,cuda:nccl", "device": 1}
    assert (topology.rank, topology.stage, topology.dp_group) == (1, 1, (1,))
    assert _distributed.backend_for(False) == "gloo"


def test_more_processes_than_gpus_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"LOCAL_RANK 3 has no GPU of its own: this machine has 2"):
        _distributed.setup(1, False, "cuda", 60.0)


@pytest.mark.parametrize(
    "backend, accepted",
    [("nccl", False), ("cuda:nccl", False), ("gloo", True), ("cpu:gloo,cuda:nccl", True), ("mpi", True)],
)
def test_a_process_group_made_beforehand_must_reduce_cpu_tensors(monkeypatch, backend, accepted):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(_distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(_distributed.dist, "get_backend_config", lambda: backend)
    monkeypatch.setattr(_distributed.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(_distributed.dist, "new_group", lambda ranks: tuple(ranks))
    if accepted:
        assert _distributed.setup(1, False, "cpu", 60.0).world == 2
    else:
        with pytest.raises(ValueError, match=r"cannot reduce CPU tensors.*'cpu:gloo,cuda:nccl'"):
            _distributed.setup(1, False, "cpu", 60.0)


# --- where auxiliary nets live ------------------------------------------------------------


def test_split_puts_every_objective_where_the_model_is():
    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet20")
    p = splitnet.plan(model, 3, measure_memory=False, balance="even")
    model.to("meta")  # a device of its own, without a GPU: every tensor of the net must follow
    net = splitnet.split(model, p)
    devices = {t.device.type for t in (*net.parameters(), *net.buffers())}
    assert devices == {"meta"}


# --- mixed precision ----------------------------------------------------------------------


def resnet20_net(k=2):
    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet20").train()
    return model, splitnet.split(model, splitnet.plan(model, k, measure_memory=False))


def batch(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_float16_autocast_without_a_grad_scaler_is_refused():
    _, net = resnet20_net()
    x, y = batch()
    with pytest.raises(ValueError, match=r"float16 autocast needs a gradient scaler.*GradScaler\('cpu'\)"):
        net.local_step(x, y, autocast_dtype=torch.float16)
    assert all(p.grad is None for p in net.parameters())  # refused before any backward pass


def test_float16_with_a_grad_scaler_trains_every_stage():
    _, net = resnet20_net(3)
    x, y = batch(16)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    first = None
    for _ in range(8):
        opt.zero_grad(set_to_none=True)
        losses = net.local_step(x, y, autocast_dtype=torch.float16, grad_scaler=scaler).losses
        first = first or [float(v) for v in losses]
        scaler.step(opt)
        scaler.update()
    assert scaler.get_scale() > 0
    assert all(float(after) < before for after, before in zip(losses, first))


def test_fp16_training_run_checkpoints_its_scaler_and_resumes(tmp_path):
    common = dict(
        model="cifar_resnet20",
        dataset="digits",
        k=2,
        amp="fp16",
        batch_size=16,
        max_steps_per_epoch=2,
        threads=1,
        progress=False,
        lr=0.05,
        out=str(tmp_path / "run"),
    )
    splitnet.train(splitnet.TrainConfig(epochs=1, **common))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0
    summary = splitnet.train(splitnet.TrainConfig(epochs=2, resume=True, **common))
    assert summary["final"]["epoch"] == 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and all(m["seconds_per_step"] > 0 for m in lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    "device, backend",
    [("cpu", "aot_eager"), pytest.param("cuda", "inductor", marks=pytest.mark.cuda)],
)
def test_compiled_stages_equal_the_plain_net(device, backend):
    """torch.compile of every stage and objective computes what the plain stages do.

    On the CPU the graphs go through dynamo and AOTAutograd (``aot_eager``: inductor's C++
    build takes many minutes on two cores); on a GPU through inductor's Triton kernels.
    """
    x, y = (t.to(device) for t in batch())
    _, plain = resnet20_net(3)
    _, compiled = resnet20_net(3)
    plain.to(device), compiled.to(device)
    compiled.compile_stages(backend=backend)
    expected = plain.local_step(x, y)
    got = compiled.local_step(x, y)
    torch.testing.assert_close(got.losses, expected.losses, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(plain.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-5, msg=name)
    plain.eval(), compiled.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), plain(x), rtol=1e-4, atol=1e-5)


# --- the real thing -----------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_split_equals_the_model_and_trains_in_bf16_and_fp16():
    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet20").cuda().train()
    x = torch.rand(32, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (32,), device="cuda")
    net = splitnet.split(model, splitnet.plan(model, 3, example_input=x[:2]))  # planned on the GPU
    assert {p.device.type for p in net.parameters()} == {"cuda"}
    for dtype, scaler in ((torch.bfloat16, None), (torch.float16, torch.amp.GradScaler("cuda"))):
        net.zero_grad()
        losses = net.local_step(x, y, autocast_dtype=dtype, grad_scaler=scaler).losses
        assert all(torch.isfinite(v) for v in losses)
    model.eval(), net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), model(x))


@pytest.mark.cuda
def test_cuda_training_run_reports_allocated_and_reserved_peaks(tmp_path):
    config = splitnet.TrainConfig(
        model="cifar_resnet20",
        dataset="digits",
        k=2,
        amp="bf16",
        device="cuda",
        epochs=1,
        batch_size=32,
        max_steps_per_epoch=3,
        progress=False,
        out=str(tmp_path / "run"),
    )
    splitnet.train(config)
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < metrics["cuda_peak_bytes"] <= metrics["cuda_peak_reserved_bytes"]
    assert metrics["seconds_per_step"] > 0


@pytest.mark.cuda
def test_cuda_peak_of_a_step_and_the_fresh_process_measurement_agree():
    from splitnet._peak import measure_peak

    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet20").cuda().train()
    x = torch.rand(64, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (64,), device="cuda")

    def step():
        F.cross_entropy(model(x), y).backward()

    step()
    here = cuda_step_peak(step, torch.device("cuda"))
    spec = {"model": "cifar_resnet20", "input_size": [3, 32, 32], "batch_size": 64, "device": "cuda"}
    fresh = measure_peak({**spec, "mode": "e2e"})
    assert here["peak_bytes"] == pytest.approx(fresh["peak_bytes"], rel=0.05)
    assert fresh["peak_reserved_bytes"] >= 0
