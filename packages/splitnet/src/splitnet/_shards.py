"""Sharded checkpoints of stage-parallel runs: one file per stage, and an index that commits them.

A stage-parallel run folder holds::

    checkpoint.json                        the index: epoch, grid, cuts, shards and their sha256
    checkpoint-shards/stage1-step120.pt    stage 1: weights, optimizer, schedule, random states
    checkpoint-shards/stage2-step120.pt    ...

At every epoch end the first replica of each stage writes its stage's shard under a new
name (atomically), all processes check in, and rank 0 replaces the index (atomically), then
removes the shards the index no longer names. The index is the commit: a crash at any
moment leaves a complete checkpoint (the previous index and its shards). No process ever
holds more than its own stage. The folder must be one that every node sees (a shared file
system) when the processes run on several machines.

Resuming, every process reads the index and only its own stage's shard, checked against
its sha256. The weights and optimizer state of a stage are the same on all its replicas,
so a run resumes on any number of replicas D with the same cuts, exactly: each replica of
stage k loads shard k; the schedule continues from the start of the next epoch under the
new D; the data order and random streams of the remaining epochs are the new grid's (a
replica the old grid also had gets its own random state back). Other cuts (or another K)
are refused: a stage's auxiliary net and optimizer state belong to its cuts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from localkit_runs import make_folder, write_json

from ._checkpoint import Checkpoint, config_state, load
from ._errors import CheckpointError
from ._rng import python_state, restore

INDEX_NAME = "checkpoint.json"
SHARD_FOLDER = "checkpoint-shards"
INDEX_FORMAT = 1

logger = logging.getLogger(__name__)


@dataclass
class ShardIndex:
    """The contents of ``checkpoint.json`` (shards listed by stage, 1-based as in file names).

    Attributes:
        epoch: epochs finished.
        global_step: steps trained (per process).
        stages: K, the stages trained in parallel.
        replicas: D, the processes per stage.
        cuts: the labels of the K - 1 cut points.
        cut_indices: their indices in the traced chain (what a resumed run plans with).
        shards: ``{"stage", "file" (relative to the run folder), "sha256", "bytes"}`` per stage.
    """

    epoch: int
    global_step: int
    stages: int
    replicas: int
    cuts: list[str]
    cut_indices: list[int]
    shards: list[dict]

    def shard(self, stage: int) -> dict:
        """The entry of ``stage`` (0-based)."""
        return self.shards[stage]


_FIELDS = {
    "epoch": int,
    "global_step": int,
    "stages": int,
    "replicas": int,
    "cuts": list,
    "cut_indices": list,
    "shards": list,
}


def index_path(out: Path) -> Path:
    return Path(out) / INDEX_NAME


def read_index(out: Path) -> ShardIndex | None:
    """The index of run folder ``out`` (``None`` when it has none).

    Raises:
        CheckpointError: the index is unreadable, of another format, or malformed.
    """
    path = index_path(out)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); restore a good copy, or delete it and the "
            f"{SHARD_FOLDER} folder to start over"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise CheckpointError(
            f"{path} is not a splitnet shard index of format {INDEX_FORMAT} (format {found!r})"
        )
    wrong = sorted(
        key
        for key, kind in _FIELDS.items()
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool)
    )
    shards = data.get("shards") if isinstance(data.get("shards"), list) else []
    entries_ok = len(shards) == data.get("stages") and all(
        isinstance(s, dict)
        and s.get("stage") == i + 1
        and isinstance(s.get("file"), str)
        and isinstance(s.get("sha256"), str)
        for i, s in enumerate(shards)
    )
    if wrong or not entries_ok:
        problem = f"missing or wrong {', '.join(wrong)}" if wrong else "its shards are not one per stage"
        raise CheckpointError(
            f"{path} is malformed ({problem}): it was not written by splitnet or was altered"
        )
    return ShardIndex(**{key: data[key] for key in _FIELDS})


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def shard_problem(out: Path, index: ShardIndex, stage: int) -> str | None:
    """Why stage ``stage``'s shard cannot be used (missing, or not what the index says), or ``None``."""
    entry = index.shard(stage)
    path = Path(out) / entry["file"]
    if not path.is_file():
        return f"the shard of stage {stage + 1}, {path}, is missing"
    if sha256_of(path) != entry["sha256"]:
        return (
            f"the shard of stage {stage + 1}, {path}, is corrupt: its sha256 differs from the one "
            f"{index_path(out)} recorded"
        )
    return None


def stage_keys(state: dict, stage: int) -> dict:
    """The entries of a LocalNet state dict that belong to stage ``stage`` and its objective."""
    return {
        key: v for key, v in state.items() if key.startswith((f"stages.{stage}.", f"objectives.{stage}."))
    }


def save_shards(session, epoch: int, global_step: int) -> None:
    """Write this stage's shard (first replica only) and, on rank 0, commit the index.

    A collective: every process of the run calls it at the same epoch end.
    """
    topo, out = session.topology, session.out
    states = [torch.get_rng_state()]
    if topo.replicas > 1:
        states = [None] * topo.replicas
        dist.all_gather_object(states, torch.get_rng_state(), group=topo.dp_group)
    entry = None
    if topo.replica == 0:
        name = f"{SHARD_FOLDER}/stage{topo.stage + 1}-step{global_step}.pt"
        path = out / name
        make_folder(path.parent)
        Checkpoint(
            config=config_state(session.config),
            epoch=epoch,
            global_step=global_step,
            model=stage_keys(session.net.state_dict(), topo.stage),
            world_size=topo.world,
            stages=topo.stages,
            stage=topo.stage,
            optimizer=session.optimizer.state_dict(),
            scheduler=session.scheduler.state_dict(),
            scaler=session.scaler.state_dict() if session.scaler is not None else None,
            rng_torch=states,
            rng_python=python_state(),
        ).save(path)
        entry = {
            "stage": topo.stage + 1,
            "file": name,
            "sha256": sha256_of(path),
            "bytes": path.stat().st_size,
        }
    entries = [None] * topo.world
    dist.all_gather_object(entries, entry)
    if not topo.main:
        return
    index = ShardIndex(
        epoch=epoch,
        global_step=global_step,
        stages=topo.stages,
        replicas=topo.replicas,
        cuts=[c.label for c in session.plan.cuts],
        cut_indices=[c.index for c in session.plan.cuts],
        shards=sorted((e for e in entries if e is not None), key=lambda e: e["stage"]),
    )
    write_json(index_path(out), {"format": INDEX_FORMAT, **asdict(index)})
    named = {out / e["file"] for e in index.shards}
    for stale in (out / SHARD_FOLDER).glob("*.pt"):
        if stale not in named:
            stale.unlink(missing_ok=True)


def check_resumable(out: Path, config) -> ShardIndex | None:
    """The index a stage-parallel run resumes from, after checking the folder holds that kind of run.

    Raises:
        CheckpointError: a stage-parallel run resumed without ``--stage-parallel`` or the
            other way round, or with another K, or stage files of an older splitnet without an index.
    """
    out = Path(out)
    index = read_index(out)
    if config.stage_parallel:
        if index is None and (out / "checkpoint.pt").exists():
            raise CheckpointError(
                f"{out / 'checkpoint.pt'} holds a run trained without --stage-parallel: resume it the same way. "
                "Its optimizer state covers the whole model, not one stage per process."
            )
        if index is None and list(out.glob("checkpoint-stage*.pt")):
            raise CheckpointError(
                f"{out} holds stage files of an older splitnet (checkpoint-stage*.pt) and no {INDEX_NAME}: "
                "resume it with the splitnet version that wrote it, or start over in a new --out"
            )
        if index is not None and index.stages != config.k:
            raise CheckpointError(
                f"{index_path(out)} holds a run of {index.stages} stages; this launch asks for {config.k} "
                "(--k). A stage's auxiliary net and optimizer state belong to its cuts, so a run resumes only "
                f"with the same cuts: pass --k {index.stages} (on any number of replicas per stage), or start "
                "a new --out to train with other cuts."
            )
    elif index is not None:
        raise CheckpointError(
            f"{index_path(out)} indexes a --stage-parallel run ({index.stages} stages x {index.replicas} "
            f"replicas): resume it the same way, e.g. torchrun --nproc-per-node {index.stages * index.replicas} "
            "-m splitnet train ... --stage-parallel --resume. Its optimizer state is kept per stage."
        )
    return index


def resume_stage(session, index: ShardIndex) -> tuple[int, int]:
    """Load this process's stage from ``index``; returns (epochs finished, global step).

    A collective: every process checks its shard first, and all stop together, naming every
    missing or corrupt shard, if any is unusable.

    Raises:
        CheckpointError: a missing or corrupt shard (named), or an index of other cuts.
    """
    topo, out, config = session.topology, session.out, session.config
    cuts = [c.label for c in session.plan.cuts]
    if index.stages != topo.stages or index.cuts != cuts:
        raise CheckpointError(
            f"{index_path(out)} holds a run of {index.stages} stages cut at {index.cuts}; this launch has "
            f"{topo.stages} stages cut at {cuts}. A stage's auxiliary net and optimizer state belong to its "
            "cuts, so a run resumes only with the same cuts (on any number of replicas). Start a new --out "
            "to train with other cuts."
        )
    problems = [None] * topo.world
    dist.all_gather_object(problems, shard_problem(out, index, topo.stage))
    found = sorted({p for p in problems if p is not None})
    if found:
        raise CheckpointError(
            "cannot resume: " + "; ".join(found) + ". Restore it from a copy, or start over in a new --out."
        )
    path = out / index.shard(topo.stage)["file"]
    state = load(path, config)
    if state.stage != topo.stage or state.stages != topo.stages:
        raise CheckpointError(
            f"{path} holds stage {None if state.stage is None else state.stage + 1} of {state.stages}, "
            f"not stage {topo.stage + 1} of {topo.stages}: {index_path(out)} was altered"
        )
    mine = set(stage_keys(session.net.state_dict(), topo.stage))
    missing, unexpected = session.net.load_state_dict(state.model, strict=False)
    lacking = sorted(mine & set(missing))
    if lacking or unexpected:
        raise CheckpointError(
            f"{path} does not hold stage {topo.stage + 1} of this model "
            f"(lacks {lacking[:3]}, has unknown {sorted(unexpected)[:3]})"
        )
    session.optimizer.load_state_dict(state.optimizer)
    schedule = dict(state.scheduler)
    updates = state.epoch * max(1, session.steps_per_epoch // config.accumulate)
    # the schedule counts optimizer updates; under another D an epoch may have another number
    reposition = index.replicas != topo.replicas and schedule.get("last_epoch") != updates
    if index.replicas != topo.replicas and topo.main:
        logger.warning(
            "resuming a run of %d replicas per stage on %d: the global batch becomes %d, and the schedule "
            "continues from the start of epoch %d under it",
            index.replicas,
            topo.replicas,
            config.batch_size * topo.replicas,
            state.epoch + 1,
        )
    if reposition:
        schedule["last_epoch"] = updates - 1
    session.scheduler.load_state_dict(schedule)
    if reposition:
        session.scheduler.step()
    if session.scaler is not None and state.scaler:
        session.scaler.load_state_dict(state.scaler)
    own = state.rng_torch[topo.replica] if topo.replica < len(state.rng_torch) else None
    restore(own, state.rng_python)
    return state.epoch, state.global_step


def load_shards(net, out: Path, index: ShardIndex, config) -> None:
    """Load every shard of ``index`` into ``net``, a LocalNet holding all stages, one shard at a time.

    Raises:
        CheckpointError: a missing or corrupt shard (named), or shards that do not cover ``net``.
    """
    loaded: set[str] = set()
    for stage in range(index.stages):
        problem = shard_problem(out, index, stage)
        if problem is not None:
            raise CheckpointError(f"cannot load {out}: {problem}. Restore it from a copy.")
        path = Path(out) / index.shard(stage)["file"]
        model = load(path, config).model
        _, unexpected = net.load_state_dict(model, strict=False)
        if unexpected:
            raise CheckpointError(f"{path} holds {sorted(unexpected)[:3]}, which this model lacks")
        loaded |= set(model)
    lacking = sorted(set(net.state_dict()) - loaded)
    if lacking:
        raise CheckpointError(
            f"the shards of {out} lack {lacking[:3]} ({len(lacking)} tensors) of this model"
        )
