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
import json
import math
import os
import random
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from ._backbones import backbone_provenance, create_backbone
from ._datasets import DATASETS, create_dataset
from ._errors import NonFiniteLossError
from ._heads import HEADS, create_head
from ._layout import infer_layout
from ._localnet import split
from ._objectives import OBJECTIVES, check_targets
from ._plan import plan

CHECKPOINT_FORMAT = 1
# settings that define what is trained: a checkpoint only resumes a run that agrees on them
_IDENTITY = (
    "model",
    "model_options",
    "dataset",
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

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be 'bf16' or 'fp16' (or unset), got {self.amp!r}")
        if self.k < 1 or self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            raise ValueError("k, epochs, batch_size and accumulate must all be at least 1")


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
    in_shape = tuple(features.shape[1:])
    head = create_head(
        name,
        in_shape=in_shape,
        layout=infer_layout(in_shape, tuple(example.shape[1:])),
        num_classes=num_classes,
        input_shape=tuple(example.shape[1:]),
        task=task,
        **options,
    )
    return HeadedModel(backbone, head.to(example.device))


def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _epoch_loader(dataset, config: TrainConfig, epoch: int) -> DataLoader:
    """The data order of epoch ``epoch`` depends only on the seed and the epoch."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=RandomSampler(dataset, generator=generator),
        num_workers=config.workers,
        generator=generator,
        drop_last=True,
        persistent_workers=False,
        pin_memory=config.device.startswith("cuda"),
    )


def _autocast(config: TrainConfig) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[config.amp]


def evaluate(net: nn.Module, dataset, config: TrainConfig, task: str, num_classes: int) -> dict:
    """Top-1 accuracy and loss (classification) or mIoU and pixel accuracy (segmentation)."""
    loader = DataLoader(dataset, batch_size=config.eval_batch_size, shuffle=False, num_workers=config.workers)
    device = torch.device(config.device)
    was_training = net.training
    net.eval()
    total, loss_sum, correct = 0, 0.0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    dtype = _autocast(config)
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device).long()
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                out = net(x)
            loss_sum += float(net.task_loss(out.float(), y)) * x.shape[0]
            total += x.shape[0]
            pred = out.argmax(1)
            if task == "segmentation":
                valid = y != 255
                confusion += torch.bincount(
                    (y[valid] * num_classes + pred[valid]).cpu(), minlength=num_classes**2
                ).reshape(num_classes, num_classes)
            else:
                correct += int((pred == y).sum())
    net.train(was_training)
    result = {"test_loss": loss_sum / max(total, 1)}
    if task == "segmentation":
        inter = confusion.diag().double()
        union = confusion.sum(0).double() + confusion.sum(1).double() - inter
        present = union > 0
        result["test_miou"] = float((inter[present] / union[present]).mean()) if present.any() else 0.0
        result["test_pixel_acc"] = float(inter.sum() / confusion.sum().clamp(min=1))
    else:
        result["test_acc"] = correct / max(total, 1)
    return result


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"cuda_peak_bytes": torch.cuda.max_memory_allocated(device)}
    return {"process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def build(config: TrainConfig, example: torch.Tensor, num_classes: int, task: str, mean, std):
    """The model, plan and LocalNet a config describes, and the provenance of each part."""
    options = dict(config.model_options)
    if config.head is None:
        options.setdefault("num_classes", num_classes)
    model = create_backbone(config.model, **options)
    provenance = {"backbone": backbone_provenance(config.model)}
    model = model.to(example.device)
    if config.head is not None:
        model = attach_head(model, config.head, example, num_classes, task, **config.head_options)
        provenance["head"] = HEADS.entry(config.head).as_dict()
    p = plan(
        model,
        None if config.cuts else config.k,
        balance=config.balance,
        cuts=config.cuts,
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
    net = split(model, p).to(example.device)
    return model, p, net, provenance


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

    Raises:
        TrainingError: a NaN/inf loss (the step, stage and loss are named; the last
            checkpoint stays intact), or a checkpoint that is corrupt or from another run.
        DatasetLayoutError: the dataset folder is not in the expected layout.
        SplitError, UnknownEntryError: a bad model, plan or name.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not config.resume:
        raise TrainingError(
            f"{out} already holds a run (checkpoint.pt): pass --resume to continue it, "
            "or choose another --out"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    random.seed(config.seed)

    train_set = create_dataset(config.dataset, config.data_root, "train", download=config.download)
    test_set = create_dataset(config.dataset, config.data_root, "test", download=config.download)
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"the {config.dataset} training split has {len(train_set)} samples, fewer than one batch "
            f"of {config.batch_size}: lower --batch-size"
        )
    num_classes = config.num_classes or train_set.num_classes
    task = train_set.task
    example = torch.stack([train_set[0][0], train_set[1][0]]).to(device)
    model, p, net, provenance = build(config, example, num_classes, task, train_set.mean, train_set.std)
    provenance["dataset"] = DATASETS.entry(config.dataset).as_dict()
    if config.compile:
        net.compile_stages()
    params = [q for q in net.parameters() if q.requires_grad]
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
    steps_per_epoch = len(train_set) // config.batch_size
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    updates_per_epoch = max(1, steps_per_epoch // config.accumulate)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, updates_per_epoch))
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None

    start_epoch, skip, global_step, resumed_rng = 0, 0, 0, None
    if config.resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, config)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, skip, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        resumed_rng = (state["rng_torch"], _as_tuple(state["rng_python"]))
        if skip == 0:
            _set_rng(resumed_rng)

    _write_json(
        out / "config.json",
        {"config": asdict(config), "provenance": provenance, "plan": p.to_dict(), "versions": _versions()},
    )

    def save(epoch: int, step_in_epoch: int) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": _jsonable(asdict(config)),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_python": _as_lists(random.getstate()),
        }
        _atomic_write(ckpt_path, lambda f: torch.save(state, f))

    dtype = _autocast(config)
    summary = {}
    for epoch in range(start_epoch, config.epochs):
        net.train()
        loader = _epoch_loader(train_set, config, epoch)
        sums = torch.zeros(net.k)
        correct = seen = 0
        step_times = []
        progress = _progress(config, steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}")
        epoch_start = time.perf_counter()
        for step, (x, y) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            if step < skip:
                # replay the data order up to the checkpoint, then restore the random state
                # exactly as it was after the last completed step
                if step == skip - 1:
                    _set_rng(resumed_rng)
                progress.update(1)
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if step == skip:
                check_targets(y, num_classes, task, f"dataset {config.dataset!r}")
            started = time.perf_counter()
            try:
                result = net.local_step(
                    x,
                    y,
                    loss_scale=1 / config.accumulate,
                    autocast_dtype=dtype,
                    grad_scaler=scaler,
                    check_labels=False,
                )
            except NonFiniteLossError as exc:
                raise TrainingError(
                    f"epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}): {exc} "
                    f"The last good checkpoint is {ckpt_path}."
                ) from exc
            if (step + 1) % config.accumulate == 0:
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad(set_to_none=True)
                sched.step()
            step_times.append(time.perf_counter() - started)
            global_step += 1
            sums += torch.stack([v.float().cpu() for v in result.losses])
            if task == "classification":
                correct += int((result.output.argmax(1) == y).sum())
                seen += y.shape[0]
            progress.update(1)
            progress.set_postfix(loss=" ".join(f"{float(v):.3f}" for v in result.losses))
            if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                save(epoch, step + 1)
        progress.close()
        done = max(1, steps_per_epoch - skip)
        skip = 0
        metrics = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "train_loss": [round(float(v) / done, 6) for v in sums],
            **({"train_acc": correct / seen} if seen else {}),
            **evaluate(net, test_set, config, task, num_classes),
            "lr": opt.param_groups[0]["lr"],
            "seconds_per_step": sum(step_times) / max(1, len(step_times)),
            "epoch_seconds": time.perf_counter() - epoch_start,
            **_peak_memory(device),
        }
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()
            os.fsync(f.fileno())
        save(epoch + 1, 0)
        summary = metrics
        if config.progress:
            shown = {k: v for k, v in metrics.items() if k in ("epoch", "test_acc", "test_miou", "test_loss")}
            print(json.dumps(shown))
    summary = {
        "run": str(out),
        "k": p.k,
        "objective": config.objective if p.k > 1 else None,
        "cuts": [c.label for c in p.cuts],
        "per_stage_bytes": p.stage_bytes,
        "e2e_bytes": p.e2e_bytes,
        "final": summary or _last_metrics(out),
        "provenance": provenance,
    }
    _write_json(out / "summary.json", summary)
    return summary


@dataclass
class Run:
    """A trained run loaded back: its LocalNet, its settings and its test split."""

    net: nn.Module
    config: TrainConfig
    test_set: object
    task: str
    num_classes: int


def load_run(folder: str | Path, device: str = "cpu", checkpoint: str = "checkpoint.pt") -> Run:
    """Rebuild the LocalNet of a run folder and load its latest weights (eval mode).

    Raises:
        FileNotFoundError: the folder has no config.json or no checkpoint.
        CheckpointError: the checkpoint is corrupt or from other settings.

    Example:
        >>> run = splitnet.load_run("runs/infopro-k4")  # doctest: +SKIP
        >>> logits = run.net(images)  # doctest: +SKIP
    """
    folder = Path(folder)
    saved = json.loads((folder / "config.json").read_text())["config"]
    config = TrainConfig(**{**saved, "device": device, "resume": True, "out": str(folder)})
    test_set = create_dataset(config.dataset, config.data_root, "test")
    num_classes = config.num_classes or test_set.num_classes
    example = torch.stack([test_set[0][0], test_set[1][0]]).to(device)
    torch.manual_seed(config.seed)
    _, _, net, _ = build(config, example, num_classes, test_set.task, test_set.mean, test_set.std)
    state = _load_checkpoint(folder / checkpoint, config)
    net.load_state_dict(state["model"])
    return Run(net.eval(), config, test_set, test_set.task, num_classes)


def _set_rng(state) -> None:
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
    for dist in ("torch", "torchvision", "timm", "splitnet", "infoloss"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def _progress(config: TrainConfig, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=not config.progress)
