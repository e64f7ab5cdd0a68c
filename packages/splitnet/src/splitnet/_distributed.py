"""Where this process sits when launched by torchrun: data replicas x pipeline stages.

``torchrun --nproc-per-node N -m splitnet train ...`` starts N processes. Without
``--stage-parallel`` they are N data-parallel replicas (DistributedDataParallel on every
stage). With it, the N = K x D processes form a grid: process ``replica * K + stage`` owns
stage ``stage`` of replica ``replica``; the D processes of one stage reduce their gradients
together.

Backend: gloo on CPU; on CUDA ``cpu:gloo,cuda:nccl``, so that CUDA tensors (gradients,
activations between stages) travel over NCCL while the small CPU tensors of the epoch
statistics and the evaluation sums travel over gloo (NCCL refuses CPU tensors).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ._device import resolve_device


@dataclass
class Topology:
    """This process's place in the grid (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    stages: int = 1
    dp_group: object = None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def replicas(self) -> int:
        return self.world // self.stages

    @property
    def stage(self) -> int:
        return self.rank % self.stages

    @property
    def replica(self) -> int:
        return self.rank // self.stages

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rank_of(self, replica: int, stage: int) -> int:
        """Global rank of the process that runs ``stage`` for ``replica``."""
        return replica * self.stages + stage

    def describe(self) -> str:
        return f"rank {self.rank} (stage {self.stage + 1}, replica {self.replica + 1})"


def setup(k: int, stage_parallel: bool, device: str, timeout_s: float, amp: str | None = None) -> Topology:
    """Check the device, join the process group torchrun prepared (if any), build the stage groups.

    Raises:
        ValueError: ``--stage-parallel`` without K (or a multiple of K) processes; a device
            this machine lacks (see :func:`resolve_device`), fewer GPUs than processes per
            node, or a process group initialised beforehand whose backend cannot reduce
            CPU tensors.
    """
    cuda = resolve_device(device, amp).type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    stages = k if stage_parallel else 1
    if world == 1:
        if stage_parallel and k > 1:
            raise ValueError(
                f"--stage-parallel runs one process per stage: launch K={k} processes, e.g. "
                f"torchrun --nproc-per-node {k} -m splitnet train ... --stage-parallel"
            )
        return Topology()
    if world % stages:
        raise ValueError(
            f"--stage-parallel with K={k} needs a multiple of {k} processes (K x data replicas), got {world}"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda and local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"process with LOCAL_RANK {local_rank} has no GPU of its own: this machine has "
            f"{torch.cuda.device_count()}; start at most that many processes per node (--nproc-per-node)"
        )
    if dist.is_initialized():
        _check_cpu_collectives(dist.get_backend_config())
    else:
        dist.init_process_group(backend_for(cuda), timeout=timedelta(seconds=timeout_s))
    rank = dist.get_rank()
    if cuda:
        torch.cuda.set_device(local_rank)
    mine = None
    for stage in range(stages):
        group = dist.new_group([replica * stages + stage for replica in range(world // stages)])
        if rank % stages == stage:
            mine = group
    return Topology(rank, world, local_rank, stages, mine)


def backend_for(cuda: bool) -> str:
    """The process-group backend of a run: gloo on CPU, NCCL for CUDA tensors and gloo for CPU ones."""
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


def _check_cpu_collectives(config: str) -> None:
    """Refuse a process group (initialised by the caller) whose backend cannot reduce CPU tensors."""
    parts = [part.strip() for part in config.lower().split(",")]
    if any(part.startswith("cpu:") or part in ("gloo", "mpi", "ucc") for part in parts):
        return
    raise ValueError(
        f"the process group was initialised with backend {config!r}, which cannot reduce CPU tensors, "
        "and splitnet sums its epoch statistics and test metrics on the CPU: initialise it with "
        f"backend={backend_for(True)!r}, or leave it to splitnet.train"
    )


def teardown() -> None:
    """Leave the process group (after a barrier nobody waits on a departed peer)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def device_for(topology: Topology, device: str) -> torch.device:
    """``cuda`` means this process's own GPU (``LOCAL_RANK``)."""
    if device == "cuda" and topology.distributed:
        return torch.device("cuda", topology.local_rank)
    return torch.device(device)


def _failures(out: Path) -> Path:
    return out / ".failures"


def record_failure(out: Path, topology: Topology, exc: BaseException) -> None:
    """Leave a note naming this rank and its error, so the other ranks can name it too."""
    folder = _failures(out)
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / f"rank{topology.rank}.txt"
    note.write_text(f"{topology.describe()}: {type(exc).__name__}: {exc}")


def first_failure(out: Path, topology: Topology, wait_s: float = 3.0) -> str | None:
    """The note of another rank that failed (waiting briefly for it to be written)."""
    deadline = time.monotonic() + wait_s
    while True:
        notes = sorted(p for p in _failures(out).glob("rank*.txt") if p.name != f"rank{topology.rank}.txt")
        if notes:
            return notes[0].read_text()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def clear_failures(out: Path) -> None:
    """Forget the notes of an earlier attempt (called by rank 0 before training)."""
    for note in _failures(out).glob("rank*.txt"):
        note.unlink()
