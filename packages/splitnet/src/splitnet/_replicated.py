"""Replicated training: every process trains every stage on its share of each batch.

One process is plain local (or, with K = 1, end-to-end) training; under torchrun the
processes are data-parallel replicas whose stages reduce their gradients together. Rank 0
writes ``checkpoint.pt`` at every epoch end and every ``checkpoint_every`` steps, with every
rank's random state and the sums of the unfinished epoch, so a run resumed mid-epoch trains
and reports exactly what an uninterrupted one does.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass

from ._checkpoint import Checkpoint, config_state, load
from ._config import autocast_dtype
from ._device import StepTimer, reset_peak_memory, synchronize
from ._distributed import Topology
from ._errors import CheckpointError, NonFiniteLossError, TrainingError
from ._evaluation import evaluate
from ._objectives import check_targets
from ._rng import gather_torch_states, python_state, restore
from ._session import (
    Session,
    append_metrics,
    epoch_loader,
    finish,
    loss_labels,
    optimizer_step,
    peak_memory,
    progress_bar,
    restore_optimization,
    write_run_files,
)


@dataclass
class EpochTally:
    """Sums behind an epoch's train metrics: each stage's loss, steps, correct and seen samples."""

    loss: list[float]
    steps: int = 0
    correct: int = 0
    seen: int = 0

    def add(self, losses, output, targets, task: str) -> None:
        self.loss = [total + float(v) for total, v in zip(self.loss, losses)]
        self.steps += 1
        if task == "classification":
            self.correct += int((output.argmax(1) == targets).sum())
            self.seen += targets.shape[0]

    def metrics(self) -> dict:
        return {
            "train_loss": [round(v / max(1, self.steps), 6) for v in self.loss],
            **({"train_acc": self.correct / self.seen} if self.seen else {}),
        }

    def across(self, topology: Topology) -> EpochTally:
        """The sums of every process (a collective: all ranks call it)."""
        if not topology.distributed:
            return self
        import torch.distributed as dist

        parts = [None] * topology.world
        dist.all_gather_object(parts, asdict(self))
        return EpochTally(
            [sum(column) for column in zip(*(p["loss"] for p in parts))],
            *(sum(p[key] for p in parts) for key in ("steps", "correct", "seen")),
        )

    @classmethod
    def restored(cls, state: dict | None, k: int, path) -> EpochTally:
        if state is None:
            return cls([0.0] * k)
        if set(state) != {"loss", "steps", "correct", "seen"} or len(state["loss"]) != k:
            raise CheckpointError(
                f"{path}: its epoch sums {sorted(state)} are not the train loss of {k} stages, steps, "
                "correct and seen samples; it was not written by this splitnet"
            )
        return cls(**state)


def train_replicated(session: Session) -> dict:
    """Every process trains every stage on its share of each batch (one process: plain training)."""
    config, topo, net, device = session.config, session.topology, session.net, session.device
    start_epoch, skip, global_step, resumed_rng = 0, 0, 0, None
    tally = EpochTally([0.0] * net.k)
    if config.resume and session.checkpoint.exists():
        state = load(session.checkpoint, config)
        if state.stages > 1:
            raise CheckpointError(
                f"{session.checkpoint} was trained with --stage-parallel: resume it the same way "
                f"(torchrun --nproc-per-node {config.k} ... --stage-parallel --resume)"
            )
        net.load_state_dict(state.model)
        restore_optimization(session, state)
        start_epoch, global_step = state.epoch, state.global_step
        skip = state.samples_in_epoch // (config.batch_size * topo.replicas)
        resumed_rng = (
            state.rng_torch[topo.rank] if topo.rank < len(state.rng_torch) else None,
            state.rng_python,
        )
        if topo.main:  # the other ranks' share is already in the saved sums
            tally = EpochTally.restored(state.epoch_tally, net.k, session.checkpoint)
        if skip == 0:
            restore(*resumed_rng)
    if topo.main:
        write_run_files(session)

    def save(epoch: int, step_in_epoch: int, unfinished: EpochTally | None) -> None:
        rng = gather_torch_states(topo)
        sums = unfinished.across(topo) if unfinished is not None else None
        if not topo.main:
            return
        Checkpoint(
            config=config_state(config),
            epoch=epoch,
            global_step=global_step,
            model=net.state_dict(),
            world_size=topo.world,
            samples_in_epoch=step_in_epoch * config.batch_size * topo.replicas,
            optimizer=session.optimizer.state_dict(),
            scheduler=session.scheduler.state_dict(),
            scaler=session.scaler.state_dict() if session.scaler is not None else None,
            rng_torch=rng,
            rng_python=python_state(),
            epoch_tally=asdict(sums) if sums is not None else None,
        ).save(session.checkpoint)

    dtype = autocast_dtype(config)
    final = {}
    for epoch in range(start_epoch, config.epochs):
        net.train()
        loader = epoch_loader(session.train_set, config, epoch, topo.replicas, topo.replica)
        timer = StepTimer(device)
        reset_peak_memory(device)
        progress = progress_bar(config, session.steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", topo)
        epoch_start = time.perf_counter()
        # islice: fetching (and augmenting) a batch that is not trained on would shift the random stream
        for step, (x, y) in enumerate(itertools.islice(loader, session.steps_per_epoch)):
            if step < skip:
                # replay the data order up to the checkpoint, then restore the random state
                # exactly as it was after the last completed step
                if step == skip - 1:
                    restore(*resumed_rng)
                progress.update(1)
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if step == skip:
                check_targets(y, session.num_classes, session.task, f"dataset {config.dataset!r}")
            update = (step + 1) % config.accumulate == 0
            timer.start()
            try:
                result = net.local_step(
                    x,
                    y,
                    loss_scale=1 / config.accumulate,
                    autocast_dtype=dtype,
                    grad_scaler=session.scaler,
                    check_labels=False,
                    sync=update,
                )
            except NonFiniteLossError as exc:
                raise TrainingError(
                    f"epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}): {exc} "
                    f"The last good checkpoint is {session.checkpoint}."
                ) from exc
            if update:
                optimizer_step(session)
            timer.stop()
            global_step += 1
            tally.add(result.losses, result.output, y, session.task)
            progress.update(1)
            progress.set_postfix_str(loss_labels(result.losses))
            if config.checkpoint_every is not None and global_step % config.checkpoint_every == 0:
                save(epoch, step + 1, tally)
        progress.close()
        trained = max(1, session.steps_per_epoch - skip)
        synchronize(device)  # the loop ends when its last step's work is done, not launched
        loop_seconds = time.perf_counter() - epoch_start  # data loading included, evaluation not
        step_times = timer.seconds()
        skip = 0
        final = {
            "epoch": epoch + 1,
            "global_step": global_step,
            **tally.across(topo).metrics(),
            **evaluate(net, session.test_set, config, session.task, session.num_classes, topo),
            "lr": session.optimizer.param_groups[0]["lr"],
            "seconds_per_step": sum(step_times) / max(1, len(step_times)),
            "images_per_second": trained * config.batch_size * topo.replicas / loop_seconds,
            "epoch_seconds": time.perf_counter() - epoch_start,
            **peak_memory(device),
        }
        if topo.main:
            append_metrics(session, final)
        tally = EpochTally([0.0] * net.k)
        save(epoch + 1, 0, None)
    return finish(session, final)
