"""Training runs: local (K > 1) or end-to-end (K = 1), resumable, repeatable, logged.

A run folder holds ``config.json`` (the settings, and which distribution and version
supplied the backbone, objective, head and dataset), ``metrics.jsonl`` (one line per
epoch), ``checkpoint.pt`` (written atomically at every epoch end and every
``checkpoint_every`` steps) and ``summary.json`` once finished. ``resume=True`` continues
from the checkpoint exactly: the data order of every epoch is a pure function of the seed
and the epoch, and the random state is restored, so an interrupted and resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from localkit_registry import HeadContext

from ._backbones import backbone_provenance, create_backbone
from ._datasets import create_dataset
from ._distributed import Topology, clear_failures, device_for, first_failure, record_failure, teardown
from ._distributed import setup as setup_distributed
from ._errors import NonFiniteLossError
from ._heads import create_head
from ._layout import infer_layout
from ._localnet import LocalNet, split
from ._objectives import check_targets
from ._plan import plan
from ._registries import DATASETS, HEADS, OBJECTIVES

CHECKPOINT_FORMAT = 1
# settings that define what is trained: a checkpoint only resumes a run that agrees on them
_IDENTITY = (
    "model",
    "model_options",
    "dataset",
    "dataset_options",
    "head",
    "head_options",
    "k",
    "balance",
    "cuts",
    "objective",
    "objective_options",
    "num_classes",
    "seed",
    "batch_size",
    "accumulate",
    "optimizer",
    "schedule",
)


class TrainingError(RuntimeError):
    """A run stopped: a non-finite loss (step, stage and loss named) or an unusable checkpoint."""


class CheckpointError(TrainingError):
    """A checkpoint is corrupt, truncated, or belongs to a different run."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (the CLI's flags, one to one)."""

    model: str
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    dataset_options: dict = field(default_factory=dict)
    eval_split: str = "test"
    model_options: dict = field(default_factory=dict)
    num_classes: int | None = None
    head: str | None = None
    head_options: dict = field(default_factory=dict)
    k: int = 1
    balance: str = "memory"
    cuts: list[str] | None = None
    objective: str = "greedy"
    objective_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    accumulate: int = 1
    amp: str | None = None
    compile: bool = False
    device: str = "cpu"
    workers: int = 0
    threads: int | None = None
    seed: int = 0
    out: str = "runs/train"
    resume: bool = False
    checkpoint_every: int = 0
    max_steps_per_epoch: int | None = None
    progress: bool = True
    stage_parallel: bool = False
    max_in_flight: int = 2
    dist_timeout: float = 600.0

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly", "constant"):
            raise ValueError(f"schedule must be 'cosine', 'poly' or 'constant', got {self.schedule!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be 'bf16' or 'fp16' (or unset), got {self.amp!r}")
        if self.k < 1 or self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            raise ValueError("k, epochs, batch_size and accumulate must all be at least 1")
        if self.stage_parallel and self.checkpoint_every:
            raise ValueError(
                "--checkpoint-every is not supported with --stage-parallel: stages checkpoint "
                "together at every epoch end, when the pipeline is drained"
            )
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(data, indent=2, default=str) + "\n").encode()))


class HeadedModel(nn.Module):
    """A backbone followed by a head from ``splitnet.heads`` (traced and split as one model)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head
        # the backbone's hand-picked plans still apply: its cut points are now under "backbone."
        self.named_plans = {
            name: {k: [f"backbone.{cut}" for cut in cuts] for k, cuts in by_k.items()}
            for name, by_k in (getattr(backbone, "named_plans", None) or {}).items()
        }

    def forward(self, x):
        return self.head(self.backbone(x))


def attach_head(
    backbone: nn.Module, name: str, example: torch.Tensor, num_classes: int, task: str, **options
) -> HeadedModel:
    """Put head ``name`` on ``backbone``, sized from the backbone's output on ``example``."""
    was_training = backbone.training
    with torch.no_grad():
        features = backbone.eval()(example)
    backbone.train(was_training)
    feature_shape, input_shape = tuple(features.shape[1:]), tuple(example.shape[1:])
    context = HeadContext(
        feature_shape=feature_shape,
        layout=infer_layout(feature_shape, input_shape),
        num_classes=num_classes,
        input_shape=input_shape,
        task=task,
    )
    head = create_head(name, context, **options)
    return HeadedModel(backbone, head.to(example.device))


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


def _epoch_loader(
    dataset, config: TrainConfig, epoch: int, replicas: int = 1, replica: int = 0
) -> DataLoader:
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


def _autocast(config: TrainConfig) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[config.amp]


class EvalTally:
    """Sums behind the test metrics; adds up across processes before :meth:`metrics`."""

    def __init__(self, task: str, num_classes: int):
        self.task, self.num_classes = task, num_classes
        self.sums = torch.zeros(3, dtype=torch.float64)  # loss * n, samples, correct
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def add(self, out: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        n = targets.shape[0]
        pred = out.argmax(1)
        self.sums += torch.tensor([float(loss) * n, n, 0.0], dtype=torch.float64)
        if self.task == "segmentation":
            valid = targets != 255
            flat = (targets[valid] * self.num_classes + pred[valid]).cpu()
            self.confusion += torch.bincount(flat, minlength=self.num_classes**2).view(self.num_classes, -1)
        else:
            self.sums[2] += int((pred == targets).sum())

    def all_reduce(self) -> None:
        import torch.distributed as dist

        for tensor in (self.sums, self.confusion):
            dist.all_reduce(tensor)

    def metrics(self) -> dict:
        loss_sum, total, correct = self.sums.tolist()
        result = {"test_loss": loss_sum / max(total, 1)}
        if self.task == "segmentation":
            inter = self.confusion.diag().double()
            union = self.confusion.sum(0).double() + self.confusion.sum(1).double() - inter
            present = union > 0
            result["test_miou"] = float((inter[present] / union[present]).mean()) if present.any() else 0.0
            result["test_pixel_acc"] = float(inter.sum() / self.confusion.sum().clamp(min=1))
        else:
            result["test_acc"] = correct / max(total, 1)
        return result


def evaluate(
    net: nn.Module,
    dataset,
    config: TrainConfig,
    task: str,
    num_classes: int,
    topology: Topology | None = None,
) -> dict:
    """Top-1 accuracy and loss (classification) or mIoU and pixel accuracy (segmentation).

    Under data parallelism every process evaluates every ``world``-th sample and the sums
    are reduced, so all processes return the metrics of the whole split.
    """
    if topology is not None and topology.distributed:
        dataset = Subset(dataset, range(topology.rank, len(dataset), topology.world))
    loader = DataLoader(dataset, batch_size=config.eval_batch_size, shuffle=False, num_workers=config.workers)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    tally = EvalTally(task, num_classes)
    dtype = _autocast(config)
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device).long()
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                out = net(x)
            tally.add(out, y, net.task_loss(out.float(), y))
    net.train(was_training)
    if topology is not None and topology.distributed:
        tally.all_reduce()
    return tally.metrics()


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"cuda_peak_bytes": torch.cuda.max_memory_allocated(device)}
    return {"process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def build(
    config: TrainConfig,
    example: torch.Tensor,
    num_classes: int,
    task: str,
    mean,
    std,
    cuts: list[int] | None = None,
):
    """The model, plan and LocalNet a config describes, and the provenance of each part.

    ``cuts`` (cut indices) overrides the planning, so that every process of a distributed
    run trains the same stages (rank 0 plans, the others follow).
    """
    options = dict(config.model_options)
    if config.head is None:
        options.setdefault("num_classes", num_classes)
    model = create_backbone(config.model, **options)
    provenance = {"backbone": backbone_provenance(config.model)}
    model = model.to(example.device)
    if config.head is not None:
        model = attach_head(model, config.head, example, num_classes, task, **config.head_options)
        provenance["head"] = HEADS.entry(config.head).as_dict()
    explicit = cuts if cuts is not None else config.cuts
    p = plan(
        model,
        None if explicit is not None else config.k,
        balance=config.balance,
        cuts=explicit,
        example_input=example,
        objective=config.objective,
        objective_options=config.objective_options,
        num_classes=num_classes,
        task=task,
        input_mean=mean,
        input_std=std,
        batch_size=config.batch_size,
        measure_memory=True,
    )
    if p.k > 1:
        provenance["objective"] = OBJECTIVES.entry(config.objective).as_dict()
    torch.manual_seed(config.seed + 1)  # auxiliary nets start the same however the cuts were found
    net = split(model, p).to(example.device)
    return model, p, net, provenance


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

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"


def prepare(config: TrainConfig, topology: Topology) -> Session:
    """Datasets, model, plan, LocalNet, optimizer and schedule for this process.

    Under stage parallelism the optimizer holds only this process's stage (and its
    objective); every process plans identically because rank 0's cuts are broadcast.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "checkpoint.pt").exists() and not config.resume:
        raise TrainingError(
            f"{out} already holds a run (checkpoint.pt): pass --resume to continue it, or choose another --out"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
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
    num_classes = config.num_classes or train_set.num_classes
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
    if topology.main:
        _, p, net, provenance = build(config, example, num_classes, task, train_set.mean, train_set.std)
    if topology.distributed:
        shared = [[c.index for c in p.cuts]] if topology.main else [None]
        dist.broadcast_object_list(shared, src=0)
        if not topology.main:
            torch.manual_seed(config.seed)
            _, p, net, provenance = build(
                config, example, num_classes, task, train_set.mean, train_set.std, shared[0]
            )
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
    if config.max_steps_per_epoch:
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
    )


def restore_optimization(session: Session, state: dict) -> None:
    """Optimizer, schedule and (fp16) grad-scaler state from a checkpoint."""
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    if session.scaler is not None and state.get("scaler"):
        session.scaler.load_state_dict(state["scaler"])


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
    """config.json: the settings, the plan, and who supplied each part (rank 0 only)."""
    _write_json(
        session.out / "config.json",
        {
            "config": asdict(session.config),
            "provenance": session.provenance,
            "plan": session.plan.to_dict(),
            "versions": _versions(),
            "world_size": session.topology.world,
        },
    )


def append_metrics(session: Session, metrics: dict) -> None:
    """One line of metrics.jsonl, flushed to disk before training goes on (rank 0 only)."""
    with open(session.out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())
    if session.config.progress:
        shown = {k: v for k, v in metrics.items() if k in ("epoch", "test_acc", "test_miou", "test_loss")}
        print(json.dumps(shown))


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
        "final": final or _last_metrics(session.out),
        "provenance": session.provenance,
    }
    if session.topology.main:
        _write_json(session.out / "summary.json", summary)
    return summary


def _load_checkpoint(path: Path, config: TrainConfig) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}). Delete it to start "
            "the run over, or restore a good copy."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a splitnet checkpoint (format {CHECKPOINT_FORMAT})")
    saved = state["config"]
    differ = [
        f"{key}: checkpoint {saved.get(key)!r} vs now {getattr(config, key)!r}"
        for key in _IDENTITY
        if saved.get(key) != _jsonable(getattr(config, key))
    ]
    if differ:
        raise CheckpointError(
            f"{path} belongs to a different run ({'; '.join(differ)}). Use the same settings to resume, or a new --out."
        )
    return state


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def train(config: TrainConfig) -> dict:
    """Train as ``config`` says and return the summary (also written to ``summary.json``).

    Launched by ``torchrun`` with several processes, trains data-parallel (or, with
    ``stage_parallel=True``, one stage per process, pipelined). A process that fails
    leaves a note naming itself; the others stop with that rank named instead of hanging.

    Raises:
        TrainingError: a NaN/inf loss (the step, stage and loss are named; the last
            checkpoint stays intact), a checkpoint that is corrupt or from another run, or
            another rank's failure.
        DatasetLayoutError: the dataset folder is not in the expected layout.
        SplitError, UnknownEntryError: a bad model, plan or name.
    """
    topology = setup_distributed(config.k, config.stage_parallel, config.device, config.dist_timeout)
    try:
        if topology.main and topology.distributed:
            clear_failures(Path(config.out))
        session = prepare(config, topology)
        if topology.stages > 1:
            from ._pipeline import train_stage_parallel

            return train_stage_parallel(session)
        return _train_replicated(session)
    except BaseException as exc:
        if not topology.distributed:
            raise
        other = first_failure(Path(config.out), topology, wait_s=1.0)
        if other is None:
            record_failure(Path(config.out), topology, exc)
            raise
        message = f"{topology.describe()} stops because {other}"
        # said at once: torchrun stops every process soon after the first one exits, so this
        # rank may not live to unwind (tear down, return to the caller) and report it later
        print(message, file=sys.stderr, flush=True)
        raise TrainingError(message) from exc
    finally:
        teardown()


def _train_replicated(session: Session) -> dict:
    """Every process trains every stage on its share of each batch (one process: plain training)."""
    config, topo, net, device = session.config, session.topology, session.net, session.device
    start_epoch, skip, global_step, resumed_rng = 0, 0, 0, None
    if config.resume and session.checkpoint.exists():
        state = _load_checkpoint(session.checkpoint, config)
        if state.get("stage_parallel"):
            raise CheckpointError(
                f"{session.checkpoint} was trained with --stage-parallel: resume it the same way "
                f"(torchrun --nproc-per-node {config.k} ... --stage-parallel --resume)"
            )
        net.load_state_dict(state["model"])
        restore_optimization(session, state)
        start_epoch, global_step = state["epoch"], state["global_step"]
        skip = state["samples_in_epoch"] // (config.batch_size * topo.replicas)
        rng_states = state["rng_torch"]
        resumed_rng = (
            rng_states[topo.rank] if topo.rank < len(rng_states) else None,
            _as_tuple(state["rng_python"]),
        )
        if skip == 0:
            _set_rng(resumed_rng)
    if topo.main:
        write_run_files(session)

    def save(epoch: int, step_in_epoch: int) -> None:
        rng = [torch.get_rng_state()]
        if topo.distributed:
            import torch.distributed as dist

            rng = [None] * topo.world
            dist.all_gather_object(rng, torch.get_rng_state())
        if not topo.main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": _jsonable(asdict(config)),
            "epoch": epoch,
            "samples_in_epoch": step_in_epoch * config.batch_size * topo.replicas,
            "global_step": global_step,
            "world_size": topo.world,
            "model": net.state_dict(),
            "optimizer": session.optimizer.state_dict(),
            "scheduler": session.scheduler.state_dict(),
            "scaler": session.scaler.state_dict() if session.scaler is not None else None,
            "rng_torch": rng,
            "rng_python": _as_lists(random.getstate()),
        }
        _atomic_write(session.checkpoint, lambda f: torch.save(state, f))

    dtype = _autocast(config)
    final = {}
    for epoch in range(start_epoch, config.epochs):
        net.train()
        loader = _epoch_loader(session.train_set, config, epoch, topo.replicas, topo.replica)
        sums = torch.zeros(net.k)
        correct = seen = 0
        step_times = []
        progress = _progress(config, session.steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", topo)
        epoch_start = time.perf_counter()
        # islice: fetching (and augmenting) a batch that is not trained on would shift the random stream
        for step, (x, y) in enumerate(itertools.islice(loader, session.steps_per_epoch)):
            if step < skip:
                # replay the data order up to the checkpoint, then restore the random state
                # exactly as it was after the last completed step
                if step == skip - 1:
                    _set_rng(resumed_rng)
                progress.update(1)
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if step == skip:
                check_targets(y, session.num_classes, session.task, f"dataset {config.dataset!r}")
            update = (step + 1) % config.accumulate == 0
            started = time.perf_counter()
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
            step_times.append(time.perf_counter() - started)
            global_step += 1
            sums += torch.stack([v.float().cpu() for v in result.losses])
            if session.task == "classification":
                correct += int((result.output.argmax(1) == y).sum())
                seen += y.shape[0]
            progress.update(1)
            progress.set_postfix(loss=" ".join(f"{float(v):.3f}" for v in result.losses))
            if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                save(epoch, step + 1)
        progress.close()
        done = max(1, session.steps_per_epoch - skip)
        loop_seconds = time.perf_counter() - epoch_start  # data loading included, evaluation not
        skip = 0
        final = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "train_loss": [round(float(v) / done, 6) for v in sums],
            **({"train_acc": correct / seen} if seen else {}),
            **evaluate(net, session.test_set, config, session.task, session.num_classes, topo),
            "lr": session.optimizer.param_groups[0]["lr"],
            "seconds_per_step": sum(step_times) / max(1, len(step_times)),
            "images_per_second": done * config.batch_size * topo.replicas / loop_seconds,
            "epoch_seconds": time.perf_counter() - epoch_start,
            **_peak_memory(device),
        }
        if topo.main:
            append_metrics(session, final)
        save(epoch + 1, 0)
    return finish(session, final)


@dataclass
class Run:
    """A trained run loaded back: its LocalNet, its settings and its test split."""

    net: nn.Module
    config: TrainConfig
    test_set: object
    task: str
    num_classes: int


def load_run(
    folder: str | Path, device: str = "cpu", checkpoint: str = "checkpoint.pt", data_root: str | None = None
) -> Run:
    """Rebuild the LocalNet of a run folder and load its latest weights (eval mode).

    ``data_root`` points at the dataset when it moved since training (default: where it was).

    Raises:
        FileNotFoundError: the folder has no config.json or no checkpoint.
        CheckpointError: the checkpoint is corrupt or from other settings.

    Example:
        >>> run = splitnet.load_run("runs/infopro-k4")  # doctest: +SKIP
        >>> logits = run.net(images)  # doctest: +SKIP
    """
    folder = Path(folder)
    for needed in ("config.json", checkpoint):  # before any dataset or model is built
        if not (folder / needed).is_file():
            raise FileNotFoundError(
                f"{folder} is not a finished splitnet run: {folder / needed} is missing. Pass the --out "
                "folder of `python -m splitnet train`."
            )
    saved = json.loads((folder / "config.json").read_text())["config"]
    config = TrainConfig(
        **{
            **saved,
            "device": device,
            "resume": True,
            "out": str(folder),
            **({"data_root": data_root} if data_root is not None else {}),
        }
    )
    test_set = create_dataset(config.dataset, config.data_root, config.eval_split, **config.dataset_options)
    num_classes = config.num_classes or test_set.num_classes
    example = torch.stack([test_set[0][0], test_set[1][0]]).to(device)
    torch.manual_seed(config.seed)
    _, _, net, _ = build(config, example, num_classes, test_set.task, test_set.mean, test_set.std)
    state = _load_checkpoint(folder / checkpoint, config)
    net.load_state_dict(state["model"])
    return Run(net.eval(), config, test_set, test_set.task, num_classes)


def _set_rng(state) -> None:
    if state[0] is not None:  # a rank the checkpointed run did not have keeps its own seed
        torch.set_rng_state(state[0])
    random.setstate(state[1])


def _last_metrics(out: Path) -> dict:
    lines = (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
    return json.loads(lines[-1]) if lines else {}


def _as_lists(value):
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


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


def _progress(config: TrainConfig, total: int, desc: str, topology: Topology | None = None):
    from tqdm.auto import tqdm

    quiet = not config.progress or (topology is not None and not topology.main)
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=quiet)
