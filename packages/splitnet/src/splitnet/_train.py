"""Training runs: local (K > 1) or end-to-end (K = 1), resumable, repeatable, logged.

A run folder holds ``config.json`` (the settings, and which distribution and version
supplied the backbone, objective, head and dataset), ``metrics.jsonl`` (one line per
epoch), ``checkpoint.pt`` (written atomically at every epoch end and every
``checkpoint_every`` steps), ``summary.json`` once finished, and ``run.lock`` while a run
trains in it; a stage-parallel run keeps its checkpoint as one shard per stage, listed in
``checkpoint.json`` (``_shards.py``). ``resume=True`` continues from the checkpoint
exactly: the data order of every epoch is a pure function of the seed and the epoch, and
the random state is restored, so an interrupted and resumed run ends with the same weights
as an uninterrupted one.

The layers beneath, each used by both trainers: ``_config`` (settings), localkit-runs
(atomic files, the lock, metrics.jsonl), ``_checkpoint`` (the one checkpoint schema), ``_shards`` (its
sharded form), ``_rng``, ``_evaluation``, ``_build`` (model, plan, LocalNet), ``_stagebuild``
(one stage of it, ``_metabuild`` beneath), ``_session`` (one process's set-up and shared
steps); the trainers: ``_replicated`` and ``_pipeline`` (stage-parallel).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from localkit_runs import RunLock

from ._build import build
from ._checkpoint import load
from ._config import TrainConfig
from ._datasets import create_dataset
from ._distributed import Topology, record_failure, teardown
from ._distributed import setup as setup_distributed
from ._errors import CheckpointError, RunFolderError, TrainingError
from ._pipeline import train_stage_parallel
from ._replicated import train_replicated
from ._session import prepare
from ._shards import load_shards, read_index
from ._watchdog import cause, quiet, say_once, watch
from ._watchdog import clear as clear_notes


def train(config: TrainConfig) -> dict:
    """Train as ``config`` says and return the summary (also written to ``summary.json``).

    Launched by ``torchrun`` with several processes, trains data-parallel (or, with
    ``stage_parallel=True``, one stage per process, pipelined). A process that fails
    leaves a note naming itself; the others stop with that rank named instead of hanging.

    Args:
        config: the run's settings.

    Returns:
        The summary: run folder, K, objective, cuts, memory per stage, final metrics and
        the provenance of every part.

    Raises:
        TrainingError: a NaN/inf loss (the step, stage and loss are named; the last
            checkpoint stays intact), or another rank's failure.
        CheckpointError: a checkpoint that is corrupt, of another format, or from another run.
        RunFolderError: the run folder is in use by another run, or cannot be written (not
            writable, read-only, a path through a file, disk full); a failed write leaves the
            previous checkpoint intact, so ``resume=True`` continues once the cause is fixed.
        DatasetLayoutError: the dataset folder is not in the expected layout.
        SplitError, UnknownEntryError: a bad model, plan or name.

    Example:
        >>> import splitnet
        >>> config = splitnet.TrainConfig(model="cifar_resnet20", k=2, epochs=1, out="runs/k2")
        >>> splitnet.train(config)["final"]["test_acc"]  # doctest: +SKIP
        0.93
    """
    topology = setup_distributed(
        config.k, config.stage_parallel, config.device, config.dist_timeout, amp=config.amp
    )
    out = Path(config.out)
    try:
        lock = _lock_run_folder(out, topology)
        try:
            if not topology.distributed:
                return _train_locked(config, topology)
            with watch(out, topology, on_stop=lock.release if lock is not None else lambda: None):
                return _train_locked(config, topology)
        finally:
            if lock is not None:
                lock.release()
    finally:
        teardown()


def _lock_run_folder(out: Path, topology: Topology) -> RunLock | None:
    """Rank 0 takes the folder's lock; every rank learns whether it did (and stops if not).

    Rank 0 also clears the failure notes of an earlier attempt, before any rank can leave one.
    """
    lock, refusal = None, None
    if topology.main:
        try:
            lock = RunLock(out).acquire()
            if topology.distributed:
                clear_notes(out)
        except RunFolderError as exc:
            refusal = str(exc)
    if topology.distributed:
        import torch.distributed as dist

        shared = [refusal]
        dist.broadcast_object_list(shared, src=0)
        refusal = shared[0]
    if refusal is not None:
        raise RunFolderError(refusal)
    return lock


def _train_locked(config: TrainConfig, topology: Topology) -> dict:
    try:
        session = prepare(config, topology)
        if topology.stages > 1:
            return train_stage_parallel(session)
        return train_replicated(session)
    except BaseException as exc:
        if not topology.distributed:
            raise
        why = cause(Path(config.out), topology, wait_s=1.0)
        if why is None:  # this process is the one that failed: its note names it to the others
            quiet()
            with contextlib.suppress(OSError):  # a full disk must not hide the error itself
                record_failure(Path(config.out), topology, exc)
            raise
        message = f"{topology.describe()} stops because {why}"
        # said at once: torchrun stops every process soon after the first one exits, so this
        # rank may not live to unwind (tear down, return to the caller) and report it later
        say_once(message)
        raise TrainingError(message) from exc


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

    A stage-parallel run keeps its checkpoint in shards, one per stage, listed in
    ``checkpoint.json``; they are read one after another (their checksums checked) into the
    LocalNet, which is built with the cuts the run used.

    Raises:
        FileNotFoundError: the folder has no config.json or no checkpoint.
        CheckpointError: the checkpoint (or a shard) is missing, corrupt, of another format,
            from other settings, or holds one stage only.

    Example:
        >>> run = splitnet.load_run("runs/infopro-k4")  # doctest: +SKIP
        >>> logits = run.net(images)  # doctest: +SKIP
    """
    folder = Path(folder)
    index = read_index(folder) if checkpoint == "checkpoint.pt" else None
    for needed in ("config.json",) if index is not None else ("config.json", checkpoint):
        # before any dataset or model is built
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
    num_classes = config.num_classes if config.num_classes is not None else test_set.num_classes
    example = torch.stack([test_set[0][0], test_set[1][0]]).to(device)
    torch.manual_seed(config.seed)
    cuts = index.cut_indices if index is not None else None
    _, _, net, _ = build(config, example, num_classes, test_set.task, test_set.mean, test_set.std, cuts)
    if index is not None:
        load_shards(net, folder, index, config)
        return Run(net.eval(), config, test_set, test_set.task, num_classes)
    state = load(folder / checkpoint, config)
    if state.stage is not None:
        raise CheckpointError(
            f"{folder / checkpoint} holds only stage {state.stage + 1} of {state.stages}: load the run "
            "itself (its checkpoint.json lists every stage's shard)"
        )
    net.load_state_dict(state.model)
    return Run(net.eval(), config, test_set, test_set.task, num_classes)
