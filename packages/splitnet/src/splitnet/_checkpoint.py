"""Checkpoints: one schema for every trainer, written atomically, checked when read.

A checkpoint file is the :class:`Checkpoint` fields plus ``format``, as a dict of plain
values and tensors that ``torch.load(weights_only=True)`` reads without running code. Three
kinds share the schema:

* ``checkpoint.pt`` of a replicated (or single-process) run: the whole model, its
  optimizer, schedule and every rank's random state; ``stages == 1``.
* ``checkpoint-stage{k}.pt`` of a stage-parallel run: stage ``k - 1``'s weights and
  optimizer; ``stage == k - 1``, ``stages == K``.
* ``checkpoint.pt`` of a stage-parallel run, merged from the stage files for
  :func:`splitnet.load_run`: the whole model, no optimizer; ``stage is None``,
  ``stages == K``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from localkit_runs import atomic_write, read_checkpoint

from ._config import TrainConfig
from ._errors import CheckpointError

FORMAT = 2
# settings that define what is trained: a checkpoint only resumes a run that agrees on them
IDENTITY = (
    "model",
    "model_options",
    "dataset",
    "dataset_options",
    "head",
    "head_options",
    "k",
    "balance",
    "cut_granularity",
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


@dataclass
class Checkpoint:
    """Where a run stopped and everything needed to continue it exactly.

    Attributes:
        config: the run's settings (JSON values).
        epoch: epochs finished.
        global_step: steps trained (per process).
        model: the state dict (the whole model, or one stage's keys).
        world_size: processes of the run that wrote it.
        stages: pipeline stages trained in parallel (1: not stage-parallel).
        stage: the stage a stage file holds; ``None`` for the whole model.
        samples_in_epoch: samples of epoch ``epoch`` already trained (mid-epoch checkpoints).
        optimizer, scheduler, scaler: their state dicts (``None`` where not resumable).
        rng_torch: torch generator states, one per rank (one for a stage file).
        rng_python: Python's ``random`` state as nested lists.
        epoch_tally: what the unfinished epoch has summed so far (train loss and accuracy),
            so a run resumed mid-epoch reports the whole epoch.
    """

    config: dict
    epoch: int
    global_step: int
    model: dict
    world_size: int = 1
    stages: int = 1
    stage: int | None = None
    samples_in_epoch: int = 0
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None
    rng_torch: list = field(default_factory=list)
    rng_python: list | None = None
    epoch_tally: dict | None = None

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically (see :func:`localkit_runs.atomic_write`)."""
        state = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}
        atomic_write(Path(path), lambda f: torch.save(state, f))


def config_state(config: TrainConfig) -> dict:
    """``config`` as the JSON values a checkpoint stores."""
    return json.loads(json.dumps(asdict(config), default=str))


_TYPES = {
    "config": dict,
    "epoch": int,
    "global_step": int,
    "model": dict,
    "world_size": int,
    "stages": int,
    "stage": (int, type(None)),
    "samples_in_epoch": int,
    "optimizer": (dict, type(None)),
    "scheduler": (dict, type(None)),
    "scaler": (dict, type(None)),
    "rng_torch": list,
    "rng_python": (list, type(None)),
    "epoch_tally": (dict, type(None)),
}


def load(path: Path, config: TrainConfig) -> Checkpoint:
    """Read a checkpoint of the run ``config`` describes.

    Raises:
        CheckpointError: the file is missing, empty, corrupt or truncated, is not a splitnet checkpoint of
            this format, or was written with other settings (each differing one named).
    """
    path = Path(path)
    state = read_checkpoint(path, lambda p: torch.load(p, map_location="cpu", weights_only=True))
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a splitnet checkpoint (format {FORMAT})")
    if state["format"] != FORMAT:
        raise CheckpointError(
            f"{path} is a splitnet checkpoint of format {state['format']!r}; this splitnet reads format "
            f"{FORMAT}. Resume it with the splitnet version that wrote it, or start over in a new --out."
        )
    state = {key: value for key, value in state.items() if key != "format"}
    missing = sorted(set(_TYPES) - set(state))
    unknown = sorted(set(state) - set(_TYPES))
    wrong = sorted(
        key
        for key, kind in _TYPES.items()
        if key in state and (isinstance(state[key], bool) or not isinstance(state[key], kind))
    )
    if missing or unknown or wrong:
        problems = [
            f"missing {', '.join(missing)}" if missing else "",
            f"unknown {', '.join(unknown)}" if unknown else "",
            f"wrong type of {', '.join(wrong)}" if wrong else "",
        ]
        raise CheckpointError(
            f"{path} does not follow the format-{FORMAT} checkpoint schema "
            f"({'; '.join(p for p in problems if p)}): it was not written by splitnet or was altered"
        )
    saved = state["config"]
    now = config_state(config)
    differ = [
        f"{key}: checkpoint {saved.get(key)!r} vs now {now[key]!r}"
        for key in IDENTITY
        if saved.get(key) != now[key]
    ]
    if differ:
        raise CheckpointError(
            f"{path} belongs to a different run ({'; '.join(differ)}). Use the same settings to resume, or a new --out."
        )
    return Checkpoint(**state)
