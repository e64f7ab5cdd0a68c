"""One process's share of a run, set up once, and what every trainer does with it.

:func:`prepare` builds the :class:`Session` (datasets, model, plan, LocalNet, optimizer,
schedule) that the replicated trainer (``_replicated.py``) and the stage-parallel trainer
(``_pipeline.py``) both train; the helpers below are the steps they share: the data of an
epoch, an optimizer step, restoring from a checkpoint, and the run files rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import resource
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from localkit_runs import read_metrics, record_metrics, write_json

from ._build import build
from ._checkpoint import Checkpoint
from ._config import TrainConfig
from ._datasets import create_dataset
from ._distributed import Topology, device_for
from ._errors import TrainingError
from ._localnet import LocalNet
from ._registries import DATASETS
from ._shards import INDEX_NAME, ShardIndex, check_resumable
from ._stagebuild import build_stage
from ._threads import default_threads

log = logging.getLogger(__name__)


@dataclass
class Session:
    """Everything one process of a run needs, set up once (see :func:`prepare`)."""

    config: TrainConfig
    topology: Topology
    device: torch.device
    out: Path
    train_set: object
    test_set: object
    num_classes: int
    task: str
    plan: object
    net: LocalNet
    provenance: dict
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    steps_per_epoch: int
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    resume_from: ShardIndex | None = None

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"


def prepare(config: TrainConfig, topology: Topology) -> Session:
    """Datasets, model, plan, LocalNet, optimizer and schedule for this process.

    Under stage parallelism each process builds only its stage (unless ``full_build``) and
    the optimizer holds only that stage (and its objective); every process plans identically
    because rank 0's cuts are broadcast, or, resuming, all take the cuts the index recorded.
    """
    out = Path(config.out)
    for name in ("checkpoint.pt", INDEX_NAME):
        if (out / name).exists() and not config.resume:
            raise TrainingError(
                f"{out} already holds a run ({name}): pass --resume to continue it, or choose another --out"
            )
    resume_from = check_resumable(out, config) if config.resume else None
    torch.set_num_threads(config.threads if config.threads is not None else default_threads())
    device = device_for(topology, config.device)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    # download is an option of the datasets that can fetch themselves; the others refuse it
    options = {**config.dataset_options, **({"download": True} if config.download else {})}
    train_set = create_dataset(config.dataset, config.data_root, "train", **options)
    test_set = create_dataset(config.dataset, config.data_root, config.eval_split, **options)
    per_replica = len(train_set) // topology.replicas
    if per_replica < config.batch_size:
        raise ValueError(
            f"the {config.dataset} training split gives each of {topology.replicas} replica(s) {per_replica} "
            f"samples, fewer than one batch of {config.batch_size}: lower --batch-size"
        )
    num_classes = config.num_classes if config.num_classes is not None else train_set.num_classes
    task = train_set.task
    first, second = train_set[0], train_set[1]
    example = torch.stack([first[0], second[0]]).to(device)
    target_shape = tuple(torch.as_tensor(first[1]).shape)
    torch.manual_seed(config.seed)
    if topology.distributed:
        import torch.distributed as dist

        # the others wait in a blocking call while rank 0 plans: balance="time" measures
        # on a quiet machine, not against their start-up
        dist.barrier()

    def make(cuts: list[int] | None):
        if topology.stages > 1 and not config.full_build:
            return build_stage(
                config, example, num_classes, task, train_set.mean, train_set.std, topology, cuts
            )
        _, p, net, provenance = build(config, example, num_classes, task, train_set.mean, train_set.std, cuts)
        return p, net, provenance

    if resume_from is not None:
        p, net, provenance = make(resume_from.cut_indices)
    else:
        if topology.main:
            p, net, provenance = make(None)
        if topology.distributed:
            shared = [[c.index for c in p.cuts]] if topology.main else [None]
            dist.broadcast_object_list(shared, src=0)
            if not topology.main:
                torch.manual_seed(config.seed)
                p, net, provenance = make(shared[0])
    provenance["dataset"] = DATASETS.entry(config.dataset).as_dict()
    if topology.stages > 1 and p.k != topology.stages:
        raise ValueError(
            f"--stage-parallel needs one process per stage: the plan has K={p.k}, "
            f"the launch {topology.stages}"
        )
    # training randomness starts from a known state, whatever planning consumed; ranks differ
    torch.manual_seed(config.seed + 2 + topology.rank)
    random.seed(config.seed + topology.rank)
    if config.compile:
        net.compile_stages()
    if topology.stages > 1:
        params = net.stage_parameters(topology.stage)
        if topology.replicas > 1:
            net.distribute([topology.stage], process_group=topology.dp_group, **_ddp_devices(device))
    else:
        params = list(net.parameters())
        if topology.distributed:
            net.distribute(**_ddp_devices(device))
    params = [q for q in params if q.requires_grad]
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    else:
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = per_replica // config.batch_size
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    updates_per_epoch = max(1, steps_per_epoch // config.accumulate)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, updates_per_epoch))
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    return Session(
        config,
        topology,
        device,
        out,
        train_set,
        test_set,
        num_classes,
        task,
        p,
        net,
        provenance,
        opt,
        sched,
        scaler,
        steps_per_epoch,
        tuple(example.shape[1:]),
        target_shape,
        resume_from,
    )


def restore_optimization(session: Session, checkpoint: Checkpoint) -> None:
    """Optimizer, schedule and (fp16) grad-scaler state from a checkpoint."""
    session.optimizer.load_state_dict(checkpoint.optimizer)
    session.scheduler.load_state_dict(checkpoint.scheduler)
    if session.scaler is not None and checkpoint.scaler:
        session.scaler.load_state_dict(checkpoint.scaler)


def _ddp_devices(device: torch.device) -> dict:
    return {"device_ids": [device.index]} if device.type == "cuda" else {}


def optimizer_step(session: Session) -> None:
    """Apply the accumulated gradients, clear them, advance the schedule."""
    if session.scaler is not None:
        session.scaler.step(session.optimizer)
        session.scaler.update()
    else:
        session.optimizer.step()
    session.optimizer.zero_grad(set_to_none=True)
    session.scheduler.step()


def write_run_files(session: Session) -> None:
    """config.json: the settings, the plan, the shapes, and who supplied each part (rank 0 only)."""
    write_json(
        session.out / "config.json",
        {
            "config": asdict(session.config),
            "provenance": session.provenance,
            "plan": session.plan.to_dict(),
            "input_shape": list(session.input_shape),
            "num_classes": session.num_classes,
            "task": session.task,
            "versions": _versions(),
            "world_size": session.topology.world,
        },
        sort_keys=False,
    )


def append_metrics(session: Session, metrics: dict) -> None:
    """The epoch's line of metrics.jsonl, on disk before training goes on (rank 0 only)."""
    record_metrics(session.out, metrics)
    shown = {k: v for k, v in metrics.items() if k in ("epoch", "test_acc", "test_miou", "test_loss")}
    log.info("%s", json.dumps(shown))


def finish(session: Session, final: dict) -> dict:
    """Write and return summary.json."""
    p = session.plan
    summary = {
        "run": str(session.out),
        "k": p.k,
        "objective": session.config.objective if p.k > 1 else None,
        "cuts": [c.label for c in p.cuts],
        "per_stage_bytes": p.stage_bytes,
        "e2e_bytes": p.e2e_bytes,
        "world_size": session.topology.world,
        "final": final or (read_metrics(session.out) or [{}])[-1],
        "provenance": session.provenance,
    }
    if session.topology.main:
        write_json(session.out / "summary.json", summary, sort_keys=False)
    return summary


def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        if config.schedule == "poly":
            return (1 - min((step - warmup) / max(1, total - warmup), 1.0)) ** 0.9
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def epoch_loader(dataset, config: TrainConfig, epoch: int, replicas: int = 1, replica: int = 0) -> DataLoader:
    """This replica's share of epoch ``epoch``: a pure function of the seed, the epoch and the replica."""
    sampler = DistributedSampler(
        dataset, num_replicas=replicas, rank=replica, shuffle=True, seed=config.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 1_009 + replica)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        generator=generator,
        drop_last=True,
        persistent_workers=False,
        pin_memory=config.device.startswith("cuda"),
    )


def peak_memory(device: torch.device) -> dict:
    """Peak memory: on CUDA, allocated and reserved bytes since the epoch began (the trainers reset
    the window, ``_device.reset_peak_memory``); on CPU, the process's resident-set peak so far."""
    if device.type == "cuda":
        return {
            "cuda_peak_bytes": torch.cuda.max_memory_allocated(device),
            "cuda_peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
        }
    return {"process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def progress_bar(config: TrainConfig, total: int, desc: str, topology: Topology | None = None):
    """A tqdm bar, silent when ``progress`` is off and on every rank but 0."""
    from tqdm.auto import tqdm

    quiet = not config.progress or (topology is not None and not topology.main)
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=quiet)


def _versions() -> dict:
    from importlib import metadata

    versions = {}
    for dist in (
        "torch",
        "torchvision",
        "timm",
        "localkit-registry",
        "localkit-splitnet",
        "localkit-infoloss",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def loss_labels(losses) -> str:
    """The progress bar's losses, each named: ``"loss=0.512"``, or ``"s1=2.301 s2=2.298"`` per stage."""
    values = [float(v) for v in losses]
    if len(values) == 1:
        return f"loss={values[0]:.3f}"
    return " ".join(f"s{k}={v:.3f}" for k, v in enumerate(values, 1))
