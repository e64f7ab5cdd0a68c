"""Asynchronous stage-parallel training: one process per stage, activations flow forward only.

Process (replica r, stage k) receives, for every batch, the detached output of stage k-1
together with the inputs and targets its objective needs, trains stage k on it
(:meth:`LocalNet.stage_step`: forward, local loss, backward, optimizer step) and sends its
own detached output on to stage k+1. Greedy local training sends no gradient backwards, so
the pipeline computes exactly what synchronous local training computes: stage k updates on
batch t with its weights after t-1 updates, fed by stage k-1's weights after t-1 updates.

A stage may run at most ``max_in_flight`` batches ahead of the next one (its pending sends
are bounded). Stages checkpoint together at every epoch end, when the pipeline is drained:
each stage writes its own shard and rank 0 commits the index (``_shards.py``); no process
ever holds more than its stage.
"""

from __future__ import annotations

import time
from collections import deque

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from ._config import autocast_dtype
from ._device import StepTimer, pin_memory, reset_peak_memory, synchronize
from ._errors import NonFiniteLossError, TrainingError
from ._evaluation import EvalTally
from ._session import (
    Session,
    append_metrics,
    epoch_loader,
    finish,
    optimizer_step,
    peak_memory,
    progress_bar,
    write_run_files,
)
from ._shards import resume_stage, save_shards


class _Link:
    """Point-to-point messages between neighbouring stages, with a bounded send queue.

    Every message tensor, the batch-size header too, lives on the training device: under
    NCCL both ends must hand it CUDA tensors (a CPU buffer on one side would hang the pair).
    """

    def __init__(self, peer: int | None, max_in_flight: int, device: torch.device):
        self.peer, self.max_in_flight, self.device = peer, max_in_flight, device
        self.pending: deque = deque()

    def send(self, *tensors: torch.Tensor) -> None:
        header = torch.tensor([tensors[0].shape[0]], dtype=torch.int64, device=self.device)
        works = [dist.isend(t.contiguous(), self.peer) for t in (header, *tensors)]
        self.pending.append((works, tensors))  # keep the tensors alive until sent
        while len(self.pending) > self.max_in_flight:
            for work in self.pending.popleft()[0]:
                work.wait()

    def recv(self, shapes: list[tuple[int, ...]], dtypes: list[torch.dtype]) -> list[torch.Tensor]:
        header = torch.zeros(1, dtype=torch.int64, device=self.device)
        dist.recv(header, self.peer)
        n = int(header)
        out = []
        for shape, dtype in zip(shapes, dtypes):
            t = torch.empty((n, *shape), dtype=dtype, device=self.device)
            dist.recv(t, self.peer)
            out.append(t)
        return out

    def drain(self) -> None:
        while self.pending:
            for work in self.pending.popleft()[0]:
                work.wait()


def train_stage_parallel(session: Session) -> dict:
    """Run this process's stage of a pipelined, gradient-isolated training (see module doc)."""
    config, topo, net, device = session.config, session.topology, session.net, session.device
    k, last = topo.stage, topo.stage == topo.stages - 1
    upstream = _Link(topo.rank_of(topo.replica, k - 1) if k else None, config.max_in_flight, device)
    downstream = _Link(None if last else topo.rank_of(topo.replica, k + 1), config.max_in_flight, device)
    input_shape, target_shape = session.input_shape, session.target_shape
    carried = tuple(session.plan.cuts[k - 1].shape[1:]) if k else input_shape

    start_epoch, global_step = 0, 0
    if session.resume_from is not None:
        start_epoch, global_step = resume_stage(session, session.resume_from)
    if topo.main:
        write_run_files(session)
    dtype = autocast_dtype(config)
    final = {}
    for epoch in range(start_epoch, config.epochs):
        net.train()
        batches = (
            iter(epoch_loader(session.train_set, config, epoch, topo.replicas, topo.replica))
            if k == 0
            else None
        )
        loss_sum = correct = seen = 0.0
        timer = StepTimer(device)
        reset_peak_memory(device)
        progress = progress_bar(config, session.steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", topo)
        dist.barrier()  # every stage starts the clock together (set-up times differ by rank)
        epoch_start = time.perf_counter()
        for step in range(session.steps_per_epoch):
            if k == 0:
                x, y = next(batches)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                h = x
            else:
                h, x, y = upstream.recv(
                    [carried, input_shape, target_shape], [torch.float32, torch.float32, torch.int64]
                )
            update = (step + 1) % config.accumulate == 0
            timer.start()
            try:
                out, loss = net.stage_step(
                    k,
                    h,
                    x,
                    y,
                    loss_scale=1 / config.accumulate,
                    autocast_dtype=dtype,
                    grad_scaler=session.scaler,
                    check_inputs=k == 0,
                    sync=update,
                )
            except NonFiniteLossError as exc:
                raise TrainingError(
                    f"epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}): {exc}"
                ) from exc
            if update:
                optimizer_step(session)
            timer.stop()
            global_step += 1
            loss_sum += float(loss)
            if not last:
                downstream.send(out.float(), x.float(), y.long())
            elif session.task == "classification":
                correct += int((out.argmax(1) == y).sum())
                seen += y.shape[0]
            progress.update(1)
        downstream.drain()
        progress.close()
        synchronize(device)  # the epoch ends when its last step's work is done, not launched
        stats = torch.zeros(2 * topo.stages + 2, dtype=torch.float64)
        stats[k] = loss_sum / session.steps_per_epoch / topo.replicas
        stats[topo.stages + k] = sum(timer.seconds()) / session.steps_per_epoch / topo.replicas
        stats[-2:] = torch.tensor([correct, seen])
        dist.all_reduce(stats)
        # the epoch lasts until its slowest process is done (the last stage, when the pipeline flows)
        wall = torch.tensor([time.perf_counter() - epoch_start], dtype=torch.float64)
        dist.all_reduce(wall, op=dist.ReduceOp.MAX)
        wall = float(wall)
        final = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "train_loss": [round(v, 6) for v in stats[: topo.stages].tolist()],
            **({"train_acc": float(stats[-2] / stats[-1])} if stats[-1] > 0 else {}),
            **_evaluate_pipeline(session, upstream, downstream, carried),
            "lr": session.optimizer.param_groups[0]["lr"],
            "stage_seconds_per_step": stats[topo.stages : 2 * topo.stages].tolist(),
            "seconds_per_step": wall / session.steps_per_epoch,
            "images_per_second": session.steps_per_epoch * config.batch_size * topo.replicas / wall,
            "epoch_seconds": wall,
            **peak_memory(device),
        }
        save_shards(session, epoch + 1, global_step)
        if topo.main:
            append_metrics(session, final)
    dist.barrier()
    return finish(session, final)


def _evaluate_pipeline(session: Session, upstream: _Link, downstream: _Link, carried) -> dict:
    """Test metrics through the pipeline: stage 0 reads this replica's share, the last stage scores."""
    config, topo, net, device = session.config, session.topology, session.net, session.device
    k, last = topo.stage, topo.stage == topo.stages - 1
    share = Subset(session.test_set, range(topo.replica, len(session.test_set), topo.replicas))
    batches = -(-len(share) // config.eval_batch_size)
    tally = EvalTally(session.task, session.num_classes)
    stage = net.stages[k]
    stage.eval()
    target_shape = session.target_shape
    loader = (
        iter(
            DataLoader(
                share,
                batch_size=config.eval_batch_size,
                num_workers=config.workers,
                pin_memory=pin_memory(device),
            )
        )
        if k == 0
        else None
    )
    with torch.no_grad():
        for _ in range(batches):
            if k == 0:
                h, y = next(loader)
                h, y = h.to(device, non_blocking=True), y.to(device, non_blocking=True)
            else:
                h, y = upstream.recv([carried, target_shape], [torch.float32, torch.int64])
            out = stage(h)
            if last:
                tally.add(out.float(), y.long(), net.task_loss(out.float(), y.long()))
            else:
                downstream.send(out.float(), y.long())
    downstream.drain()
    stage.train()
    tally.all_reduce()
    return tally.metrics()
