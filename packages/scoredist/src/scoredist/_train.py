"""Training and evaluation of USDL / MUSDL, with JSON-lines metrics, atomic checkpoints and resume."""

from __future__ import annotations

import contextlib
import importlib.metadata as importlib_metadata
import json
import math
import platform
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from localkit_runs import (
    METRICS_NAME,
    CheckpointError,
    RunFolderError,
    RunLock,
    make_folder,
    record_metrics,
    write_json,
)

from ._bins import DECODE_METHODS, ScoreBins
from ._device import autocast, grad_scaler, resolve_device, to_device
from ._heads import KL_REDUCTIONS, PAPER_HIDDEN, MUSDLHead, USDLHead, kl_loss
from ._io import load_state, save_state
from ._metrics import evaluate
from ._protocol import LOWER_IS_BETTER, selection_key, summarize
from ._rules import apply_rule, as_float64

METHODS = ("usdl", "musdl")
CHECKPOINT = "last.pt"
BEST = "best.pt"
METRICS = METRICS_NAME
SELECT_METRICS = ("spearman", *sorted(LOWER_IS_BETTER))


def _count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _number(name: str, value: Any, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (positive and value <= 0) or value < 0:
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass
class TrainConfig:
    """Everything that determines a training run (and must match when resuming it).

    The defaults are the official MUSDL code's (Adam, lr 1e-4, batch 4 for training and 20
    for evaluation, argmax decoding, MLP 256-128, ``nn.KLDivLoss()``'s reduction, seed 1).

    Args:
        method: ``"usdl"`` (one distribution over the final score) or ``"musdl"`` (one per
            judge, combined by ``rule``).
        score_bins: bins of the final score; USDL learns over them, and every method
            checks its true training scores against their range and reports relative L2 over it.
        judge_bins: bins of one judge's score (MUSDL only).
        rule: the ``scoredist.rules`` entry that turns judge scores into the final score
            (MUSDL only); it receives the difficulty when the dataset has one.
        sigma: standard deviation of the Gaussian soft labels, in bins.
        decode: ``"argmax"`` (the paper) or ``"expectation"``.
        epochs, batch_size, eval_batch_size: at least 1.
        lr, weight_decay: Adam's learning rate (> 0) and coupled weight decay (>= 0).
        kl_reduction: ``"mean"`` (the reference's ``nn.KLDivLoss()``) or ``"batchmean"``
            (the true KL, ours); see :func:`kl_loss`.
        hidden: hidden widths of each head MLP (the paper: 256, 128).
        seed: a non-negative integer; seeds initialisation, shuffling and any augmentation.
        select_metric: metric for model selection on the validation split.
        exclude: ids of samples left out of every split (e.g. MTL-AQA's ``"04_49"``, whose
            annotation has a judge score of 45.0).

    Raises:
        ValueError: an unknown method, decoding, reduction or metric, MUSDL without judge
            bins or rule, or a count or number outside its range (the message names it).

    Example:
        >>> TrainConfig("usdl", ScoreBins(0, 10, 11), epochs=0)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an integer >= 1, got 0
    """

    method: str
    score_bins: ScoreBins
    judge_bins: ScoreBins | None = None
    rule: str | None = None
    sigma: float = 5.0
    decode: str = "argmax"
    epochs: int = 100
    batch_size: int = 4
    eval_batch_size: int = 20
    lr: float = 1e-4
    weight_decay: float = 0.0
    kl_reduction: str = "mean"
    hidden: tuple[int, ...] = PAPER_HIDDEN
    seed: int = 1
    select_metric: str = "spearman"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.decode not in DECODE_METHODS:
            raise ValueError(f"unknown decoding {self.decode!r}; choose one of {', '.join(DECODE_METHODS)}")
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(
                f"unknown KL reduction {self.kl_reduction!r}; choose one of {', '.join(KL_REDUCTIONS)}"
            )
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(
                f"unknown selection metric {self.select_metric!r}; choose one of {', '.join(SELECT_METRICS)}"
            )
        if self.method == "musdl" and (self.judge_bins is None or self.rule is None):
            raise ValueError(
                "MUSDL needs judge_bins (the range and bins of one judge's score) and a rule "
                "(how judge scores make the final score, e.g. 'diving' or 'sum')"
            )
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _count(name, getattr(self, name), 1)
        _count("seed", self.seed, 0)
        _number("sigma", self.sigma, positive=True)
        _number("lr", self.lr, positive=True)
        _number("weight_decay", self.weight_decay, positive=False)
        self.hidden = tuple(self.hidden)
        for width in self.hidden:
            _count("every hidden width", width, 1)
        self.exclude = tuple(str(i) for i in self.exclude)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (bins as ``{"low", "high", "num"}``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`."""
        data = dict(data)
        for key in ("score_bins", "judge_bins"):
            if data.get(key) is not None:
                data[key] = ScoreBins(**data[key])
        return cls(**data)


class ScoreModel(nn.Module):
    """An optional clip encoder (backbone over segments) followed by a score head.

    Args:
        head: a :class:`ScoreDistributionHead`.
        encoder: maps a batch of clips to ``(B, F)``; ``None`` when batches carry cached
            ``"features"``.
    """

    def __init__(self, head: nn.Module, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def features(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(B, F)`` clip features of a batch of dataset items."""
        if "features" in batch:
            return batch["features"].float()
        if "video" not in batch:
            raise ValueError(f"dataset items need 'video' or 'features', got keys {sorted(batch)}")
        if self.encoder is None:
            raise ValueError("the dataset yields videos but no backbone was given; pass encoder=")
        return self.encoder(batch["video"].float())

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(self.features(batch))


@dataclass
class TrainResult:
    """What :func:`train` returns: the model at the last epoch, every metric record, the summary."""

    model: ScoreModel
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path | None = None
    resumed_from: int | None = None


def _ids(batch: Mapping[str, Any]) -> list[str]:
    return [str(i) for i in batch["id"]]


def soft_labels(config: TrainConfig, batch: Mapping[str, Any], clip: bool = False) -> torch.Tensor:
    """The Gaussian targets of a batch: ``(B, 1, K)`` for USDL, ``(B, J, K)`` for MUSDL.

    Args:
        config: the run's configuration (bins, sigma, method).
        batch: a collated batch with ``score`` (and ``judge_scores`` for MUSDL).
        clip: move scores outside the bins to the nearest end first. Evaluation does this:
            the bins span the training split's scores, a test score may lie outside them,
            and its label only enters the reported loss.

    Raises:
        ValueError: a score is NaN, or (without ``clip``) outside its bins' range; the
            message names the sample.
    """
    bins = config.score_bins if config.method == "usdl" else config.judge_bins
    scores = as_float64(batch["score"] if config.method == "usdl" else batch["judge_scores"])
    if clip:
        if not torch.isfinite(scores).all():
            bins.check(scores, ids=_ids(batch))  # names the sample with the non-finite score
        scores = scores.clamp(bins.low, bins.high)
    labels = bins.gaussian(scores, config.sigma, ids=_ids(batch))
    return labels.unsqueeze(1) if config.method == "usdl" else labels


def predict(config: TrainConfig, log_probs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """Decode a batch's distributions into final scores ``(B,)`` (float64).

    USDL decodes its one distribution; MUSDL decodes each judge's and applies the rule,
    passing the difficulty when the batch carries one.
    """
    probs = log_probs.detach().exp()
    if config.method == "usdl":
        return as_float64(config.score_bins.decode(probs[:, 0], config.decode))
    judges = config.judge_bins.decode(probs, config.decode)
    difficulty = batch.get("difficulty")
    return apply_rule(config.rule, judges, None if difficulty is None else torch.as_tensor(difficulty))


def _check_split(name: str, dataset: Any) -> None:
    if dataset is None:
        return
    if len(dataset) == 0:
        raise ValueError(f"the {name} split is empty; a run needs samples in train, test and (if given) val")


def _check_first_item(config: TrainConfig, item: Mapping[str, Any]) -> None:
    if "score" not in item or "id" not in item:
        raise ValueError(
            f"dataset items need 'score' and 'id' (see docs/plugins.md), got keys {sorted(item)}"
        )
    if config.method == "musdl":
        if "judge_scores" not in item:
            raise ValueError(
                f"MUSDL needs per-judge scores but the dataset's items have none (keys {sorted(item)}); "
                f"use method 'usdl', or a dataset that provides 'judge_scores'"
            )
        judges = torch.as_tensor(item["judge_scores"], dtype=torch.float64).reshape(1, -1)
        difficulty = item.get("difficulty")
        dd = None if difficulty is None else torch.as_tensor(difficulty, dtype=torch.float64).reshape(1)
        apply_rule(config.rule, judges, dd)


def _without(batch: Mapping[str, Any], exclude: tuple[str, ...]) -> Mapping[str, Any]:
    keep = [i for i, ident in enumerate(_ids(batch)) if ident not in exclude]
    if len(keep) == len(batch["id"]):
        return batch
    index = torch.tensor(keep, dtype=torch.long)
    return {k: v[index] if torch.is_tensor(v) else [v[i] for i in keep] for k, v in batch.items()}


def _check_scores(config: TrainConfig, batch: Mapping[str, Any], training: bool) -> None:
    scores = as_float64(batch["score"])
    if not training:
        # Evaluation splits may hold scores beyond the training split's range; only a
        # non-finite score is an error there.
        low, high = config.score_bins.low, config.score_bins.high
        scores = torch.where(torch.isfinite(scores), scores.clamp(low, high), scores)
    config.score_bins.check(scores, what="final score", ids=_ids(batch))


def _seed_epoch(seed: int, epoch: int) -> torch.Generator:
    # Every epoch reseeds from (seed, epoch), so a resumed run replays exactly the epochs it missed.
    value = (seed * 1_000_003 + epoch) % (2**63)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % (2**32))
    return torch.Generator().manual_seed(value)


def _clip_features_dim(model_encoder: nn.Module | None, item: Mapping[str, Any], device: torch.device) -> int:
    if "features" in item:
        return int(torch.as_tensor(item["features"]).shape[-1])
    if model_encoder is None:
        raise ValueError("the dataset yields videos but no backbone was given; pass encoder=")
    was_training = model_encoder.training
    model_encoder.eval()
    with torch.no_grad():
        out = model_encoder(torch.as_tensor(item["video"]).float().unsqueeze(0).to(device))
    model_encoder.train(was_training)
    return int(out.shape[-1])


def _make_head(config: TrainConfig, in_features: int, num_distributions: int) -> nn.Module:
    if config.method == "usdl":
        return USDLHead(in_features, config.score_bins.num, config.hidden)
    return MUSDLHead(in_features, config.judge_bins.num, num_distributions, config.hidden)


def _run_split(
    model: ScoreModel,
    config: TrainConfig,
    dataset: Any,
    desc: str,
    progress: bool,
    device: torch.device,
    amp: str | None,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    training = optimizer is not None
    model.train(training)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size if training else config.eval_batch_size,
        shuffle=training,
        generator=generator,
        pin_memory=device.type == "cuda",
    )
    losses, preds, trues, actions, count = 0.0, [], [], [], 0
    with torch.set_grad_enabled(training):
        for batch in tqdm(loader, desc=desc, leave=False, disable=None if progress else True):
            batch = _without(batch, config.exclude) if config.exclude else batch
            if not batch["id"]:
                continue
            _check_scores(config, batch, training)
            targets = soft_labels(config, batch, clip=not training)
            with autocast(device, amp):
                log_probs = model(to_device(batch, device))
            # the loss in float32 whatever the autocast: a KL of half-precision logs loses too much
            log_probs = log_probs.float()
            loss = kl_loss(log_probs, targets.to(device, log_probs.dtype), config.kl_reduction)
            if training:
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
            size = len(batch["score"])
            losses += float(loss.detach()) * size
            count += size
            preds.append(predict(config, log_probs.detach().cpu(), batch))
            trues.append(as_float64(batch["score"]))
            if "action" in batch:
                actions += list(batch["action"])
    if count < 2:
        raise ValueError(f"{desc}: metrics need at least 2 samples, the split has {count}")
    metrics = evaluate(
        torch.cat(preds).numpy(),
        torch.cat(trues).numpy(),
        (config.score_bins.low, config.score_bins.high),
        actions=actions or None,
    )
    return {"loss": losses / count, **metrics}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("localkit-scoredist", "localkit-registry", "torch", "numpy", "scipy"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


_RUN_KEYS = ("epoch", "model", "optimizer", "history", "best", "config", "head")
_MODEL_KEYS = ("model", "config", "head")


def _resume(
    out_dir: Path,
    config: TrainConfig,
    model: ScoreModel,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    amp: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    state = load_state(out_dir / CHECKPOINT, "a scoredist run checkpoint", _RUN_KEYS)
    if state.get("amp") != amp:
        # a fp16 run's scaler state (or its absence) does not carry over to another precision
        raise CheckpointError(
            f"cannot resume the run in {out_dir}: it trained with --amp {state.get('amp') or 'none'}, "
            f"not {amp or 'none'}; resume with the same --amp or start a new --out"
        )
    theirs = {k: v for k, v in json.loads(json.dumps(state["config"])).items() if k != "epochs"}
    ours = {k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k != "epochs"}
    if theirs != ours:
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise CheckpointError(
            f"cannot resume the run in {out_dir}: it was started with a different configuration "
            f"({', '.join(f'{k}: {theirs.get(k)!r} then, {ours.get(k)!r} now' for k in changed)}); "
            f"use the same options or a new output folder"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return list(state["history"]), dict(state["best"]), int(state["epoch"]) + 1


def train(
    config: TrainConfig,
    train_set: Any,
    test_set: Any,
    val_set: Any = None,
    *,
    encoder: nn.Module | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    device: str | torch.device = "cpu",
    amp: str | None = None,
) -> TrainResult:
    """Train a USDL or MUSDL head (and the encoder, when given) and evaluate every epoch.

    Each epoch trains on ``train_set`` and evaluates ``val_set`` (when given) and
    ``test_set``; one JSON line per split and epoch goes to ``out/metrics.jsonl``. After
    every epoch ``out/last.pt`` is replaced atomically; ``out/best.pt`` holds the weights
    of the best validation epoch. ``out/summary.json`` reports the test metrics at the
    validation-selected epoch and, labelled as such, at the best test epoch.

    Args:
        config: the run's :class:`TrainConfig`.
        train_set, test_set, val_set: datasets of ``vidio.datasets`` items (``video``) or of
            cached features (:class:`FeatureSet`).
        encoder: a :class:`ClipEncoder` for video items; trained end to end with the head.
        out: run folder; ``None`` keeps everything in memory.
        resume: continue the run in ``out`` from its last completed epoch (or start it, when
            ``out`` holds no checkpoint); the result equals an uninterrupted run.
        metadata: extra JSON-able facts for ``out/run.json`` (dataset and backbone provenance).
        progress: show tqdm progress bars (on terminals).
        log: called with one line per epoch.
        device: where the model trains (``"cpu"``, ``"cuda"``, ``"cuda:N"``); batches are
            pinned and copied there asynchronously. Checkpoints load on any device, and a
            run may resume on another one.
        amp: ``"bf16"`` or ``"fp16"`` to run the model under ``torch.autocast`` (fp16 with
            a gradient scaler, whose state is checkpointed); the loss stays float32.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: an empty split, items without the keys the method needs, a rule whose
            judge count does not match, scores outside the bins or NaN, a backbone with the
            wrong output shape, or a device or precision this machine lacks.
        localkit_runs.CheckpointError: ``last.pt`` is empty, truncated or corrupt, or was
            written with a different configuration (each difference named).
        localkit_runs.RunFolderError: ``out`` is in use by another run, already holds a run
            and ``resume`` is false, or cannot be written (disk full, read-only, ...).

    Example:
        >>> x = torch.randn(40, 8)
        >>> data = FeatureSet(features=x, score=(x[:, 0] * 2 + 5).clamp(0, 10), ids=[str(i) for i in range(40)])
        >>> cfg = TrainConfig("usdl", ScoreBins(0, 10, 11), sigma=1.0, epochs=2, batch_size=8)
        >>> result = train(cfg, data, data, data, progress=False)
        >>> sorted(result.summary)
        ['last', 'metric', 'test_peeking', 'val_selected']
    """
    for name, dataset in (("train", train_set), ("test", test_set), ("val", val_set)):
        _check_split(name, dataset)
    if resume and out is None:
        raise ValueError("resume=True needs the run folder: pass out=")
    first = train_set[0]
    _check_first_item(config, first)
    device = resolve_device(device, amp)
    if encoder is not None:
        encoder.to(device)

    torch.manual_seed(config.seed)
    head_shape = {
        "in_features": _clip_features_dim(encoder, first, device),
        "num_distributions": 1
        if config.method == "usdl"
        else int(torch.as_tensor(first["judge_scores"]).numel()),
    }
    model = ScoreModel(_make_head(config, **head_shape), encoder).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = grad_scaler(device, amp)

    out_dir = Path(out) if out is not None else None
    # one run per folder: a second train() on it refuses to start (localkit-runs' run.lock)
    with RunLock(out_dir) if out_dir is not None else contextlib.nullcontext():
        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {"epoch": None, "key": None}
        start, resumed_from = 0, None
        if out_dir is not None and not resume and (out_dir / CHECKPOINT).exists():
            raise RunFolderError(
                f"{out_dir} already holds a run ({CHECKPOINT}): pass --resume to continue it, "
                "or choose another --out"
            )
        if out_dir is not None and resume and (out_dir / CHECKPOINT).exists():
            history, best, start = _resume(out_dir, config, model, optimizer, scaler, amp)
            resumed_from = start
        if out_dir is not None:
            make_folder(out_dir)
            write_json(
                out_dir / "run.json",
                {
                    "config": config.to_dict(),
                    "metadata": dict(metadata or {}),
                    "versions": _versions(),
                    "device": str(device),
                    "amp": amp,
                },
            )

        splits = [("val", val_set), ("test", test_set)] if val_set is not None else [("test", test_set)]
        for epoch in range(start, config.epochs):
            generator = _seed_epoch(config.seed, epoch)
            tag = f"{config.method} {epoch + 1}/{config.epochs}"
            records = [
                {
                    "epoch": epoch,
                    "split": "train",
                    **_run_split(
                        model,
                        config,
                        train_set,
                        f"{tag} train",
                        progress,
                        device,
                        amp,
                        optimizer,
                        generator,
                        scaler,
                    ),
                }
            ]
            for name, dataset in splits:
                records.append(
                    {
                        "epoch": epoch,
                        "split": name,
                        **_run_split(model, config, dataset, f"{tag} {name}", progress, device, amp),
                    }
                )
            history += records
            if log is not None:
                log(
                    f"epoch {epoch + 1}/{config.epochs}  "
                    + "  ".join(f"{r['split']} loss {r['loss']:.4f} rho {r['spearman']:.4f}" for r in records)
                )
            if out_dir is None:
                continue
            # an epoch logged before a crash and trained again after --resume replaces its lines
            record_metrics(out_dir, *records)
            if val_set is not None:
                key = selection_key(records[1], config.select_metric)
                if best["epoch"] is None or key > best["key"]:
                    best = {"epoch": epoch, "key": key}
                    save_state(
                        {
                            "epoch": epoch,
                            "model": model.state_dict(),
                            "config": config.to_dict(),
                            "head": head_shape,
                        },
                        out_dir / BEST,
                    )
            save_state(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "amp": amp,
                    "history": history,
                    "best": best,
                    "config": config.to_dict(),
                    "head": head_shape,
                },
                out_dir / CHECKPOINT,
            )

        summary = summarize(history, config.select_metric)
        if out_dir is not None:
            write_json(out_dir / "summary.json", summary)
        return TrainResult(
            model=model, history=history, summary=summary, out=out_dir, resumed_from=resumed_from
        )


def load_model(path: str | Path, encoder: nn.Module | None = None) -> tuple[ScoreModel, TrainConfig]:
    """Rebuild a trained model from ``best.pt`` or ``last.pt``.

    Args:
        path: a checkpoint written by :func:`train`.
        encoder: the same encoder architecture the run used (``None`` for cached features).

    Returns:
        ``(model, config)`` with the model in eval mode.
    """
    state = load_state(path, "a scoredist checkpoint (best.pt or last.pt)", _MODEL_KEYS)
    config = TrainConfig.from_dict(state["config"])
    model = ScoreModel(_make_head(config, **state["head"]), encoder)
    model.load_state_dict(state["model"])
    return model.eval(), config
