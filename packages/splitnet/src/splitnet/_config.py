"""The settings of a training run, checked when they are made.

Every value is either valid or a ``ValueError`` naming the setting, its command-line flag
and the valid range. "Not given" is ``None``; zero or a negative number never means "the
default".
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch


@dataclass
class TrainConfig:
    """Everything that defines a training run (the CLI's flags, one to one).

    Optional settings are ``None`` when not given: ``num_classes`` (from the dataset),
    ``head``, ``cuts`` (planned), ``amp``, ``threads`` (``SPLITNET_THREADS``, else the fewest of
    physical cores, CPUs this process may use and CPUs the load average leaves idle),
    ``checkpoint_every`` (epoch ends only), ``max_steps_per_epoch`` (no cap).

    With ``stage_parallel`` every process builds only its own stage (the model is traced
    and planned on the meta device); ``full_build=True`` builds the whole model in every
    process instead, for models that cannot be built on the meta device and for
    ``balance="time"``.

    Raises:
        ValueError: a value outside its range (``batch_size=0``, ``k=0``, a NaN learning
            rate, ...), naming the setting, its flag and what is accepted.

    Example:
        >>> import splitnet
        >>> config = splitnet.TrainConfig(model="cifar_resnet20", k=2, epochs=1, out="runs/k2")
        >>> config.batch_size
        128
        >>> splitnet.TrainConfig(model="cifar_resnet20", batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size (--batch-size) must be an integer >= 1, got 0
    """

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
    cut_granularity: str = "block"
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
    checkpoint_every: int | None = None
    max_steps_per_epoch: int | None = None
    progress: bool = True
    stage_parallel: bool = False
    full_build: bool = False
    max_in_flight: int = 2
    dist_timeout: float = 600.0

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly", "constant"):
            raise ValueError(f"schedule must be 'cosine', 'poly' or 'constant', got {self.schedule!r}")
        if self.cut_granularity not in ("block", "node"):
            raise ValueError(
                f"cut_granularity (--cut-granularity) must be 'block' or 'node', got {self.cut_granularity!r}"
            )
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be 'bf16' or 'fp16' (or unset), got {self.amp!r}")
        for name in ("model", "dataset", "eval_split", "balance", "objective", "device", "out"):
            _text(self, name)
        for name in ("data_root", "head"):
            _text(self, name, optional=True)
        for name in ("k", "epochs", "batch_size", "eval_batch_size", "accumulate", "max_in_flight"):
            _integer(self, name, 1)
        for name in ("num_classes", "threads", "checkpoint_every", "max_steps_per_epoch"):
            _integer(self, name, 1, optional=True)
        _integer(self, "workers", 0)
        _integer(self, "seed", 0)
        _number(self, "lr", above=0.0)
        _number(self, "momentum", at_least=0.0, below=1.0)
        _number(self, "weight_decay", at_least=0.0)
        _number(self, "warmup_epochs", at_least=0.0)
        _number(self, "dist_timeout", above=0.0)
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0: pass --no-nesterov with --momentum 0")
        if self.full_build and not self.stage_parallel:
            raise ValueError(
                "--full-build only changes how --stage-parallel builds the model (every process builds "
                "it whole instead of only its stage); a run without --stage-parallel always builds it whole"
            )
        if self.stage_parallel and not self.full_build and self.balance == "time" and self.cuts is None:
            raise ValueError(
                "--balance time times the real model, which --stage-parallel does not build whole: pass "
                "--full-build (every process then holds the whole model while it is built), or plan with "
                "--balance memory or even, or give --cuts"
            )
        if self.stage_parallel and self.checkpoint_every is not None:
            raise ValueError(
                "--checkpoint-every is not supported with --stage-parallel: stages checkpoint "
                "together at every epoch end, when the pipeline is drained"
            )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _text(config: TrainConfig, name: str, optional: bool = False) -> None:
    value = getattr(config, name)
    if (value is None and optional) or (isinstance(value, str) and value):
        return
    wanted = "a non-empty string" + (" (or None: not given)" if optional else "")
    raise ValueError(f"{name} ({_flag(name)}) must be {wanted}, got {value!r}")


def _integer(config: TrainConfig, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(config, name)
    if value is None and optional:
        return
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum:
        return
    wanted = f"an integer >= {minimum}" + (" (or None: not given)" if optional else "")
    raise ValueError(f"{name} ({_flag(name)}) must be {wanted}, got {value!r}")


def _number(
    config: TrainConfig,
    name: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> None:
    value = getattr(config, name)
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if (
        number
        and math.isfinite(value)
        and (above is None or value > above)
        and (at_least is None or value >= at_least)
        and (below is None or value < below)
    ):
        return
    bounds = [f"> {above:g}" if above is not None else "", f">= {at_least:g}" if at_least is not None else ""]
    bounds.append(f"< {below:g}" if below is not None else "")
    wanted = "a finite number " + " and ".join(b for b in bounds if b)
    raise ValueError(f"{name} ({_flag(name)}) must be {wanted}, got {value!r}")


def autocast_dtype(config: TrainConfig) -> torch.dtype | None:
    """The ``torch.autocast`` dtype of ``config.amp`` (``None``: full precision)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[config.amp]
