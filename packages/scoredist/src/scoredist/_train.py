"""Training and evaluation of USDL / MUSDL, with JSON-lines metrics, atomic checkpoints and resume."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import json
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

from ._bins import DECODE_METHODS, ScoreBins
from ._heads import PAPER_HIDDEN, MUSDLHead, USDLHead, kl_loss
from ._io import atomic_save, atomic_write_json, atomic_write_text
from ._metrics import evaluate
from ._protocol import selection_key, summarize
from ._rules import apply_rule

METHODS = ("usdl", "musdl")
CHECKPOINT = "last.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that determines a training run (and must match when resuming it).

    Args:
        method: ``"usdl"`` (one distribution over the final score) or ``"musdl"`` (one per
            judge, combined by ``rule``).
        score_bins: bins of the final score; USDL learns over them, and every method
            checks its true scores against their range and reports relative L2 over it.
        judge_bins: bins of one judge's score (MUSDL only).
        rule: the ``scoredist.rules`` entry that turns judge scores into the final score
            (MUSDL only); it receives the difficulty when the dataset has one.
        sigma: standard deviation of the Gaussian soft labels, in bins.
        decode: ``"argmax"`` (the paper) or ``"expectation"``.
        epochs, batch_size, eval_batch_size, lr, weight_decay: optimisation (Adam), the
            paper's defaults: batch 4, lr 1e-4.
        hidden: hidden widths of each head MLP (the paper: 256, 128).
        seed: seeds initialisation, shuffling and any augmentation; equal seeds give equal runs.
        select_metric: metric for model selection on the validation split.
        exclude: ids of samples left out of every split (e.g. MTL-AQA's ``"04_49"``, whose
            annotation has a judge score of 45.0).

    Raises:
        ValueError: an unknown method or decoding, MUSDL without judge bins or rule, or a
            non-positive size.
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
    hidden: tuple[int, ...] = PAPER_HIDDEN
    seed: int = 1
    select_metric: str = "spearman"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.decode not in DECODE_METHODS:
            raise ValueError(f"unknown decoding {self.decode!r}; choose one of {', '.join(DECODE_METHODS)}")
        if self.method == "musdl" and (self.judge_bins is None or self.rule is None):
            raise ValueError(
                "MUSDL needs judge_bins (the range and bins of one judge's score) and a rule "
                "(how judge scores make the final score, e.g. 'diving' or 'sum')"
            )
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be a positive number of bins, got {self.sigma}")
        self.hidden = tuple(self.hidden)
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


def soft_labels(config: TrainConfig, batch: Mapping[str, Any]) -> torch.Tensor:
    """The Gaussian targets of a batch: ``(B, 1, K)`` for USDL, ``(B, J, K)`` for MUSDL.

    Raises:
        ValueError: a score is NaN or outside its bins' range (the message names the sample).
    """
    if config.method == "usdl":
        scores = torch.as_tensor(batch["score"], dtype=torch.float64)
        return config.score_bins.gaussian(scores, config.sigma, ids=_ids(batch)).unsqueeze(1)
    judges = torch.as_tensor(batch["judge_scores"], dtype=torch.float64)
    return config.judge_bins.gaussian(judges, config.sigma, ids=_ids(batch))


def predict(config: TrainConfig, log_probs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """Decode a batch's distributions into final scores ``(B,)`` (float64).

    USDL decodes its one distribution; MUSDL decodes each judge's and applies the rule,
    passing the difficulty when the batch carries one.
    """
    probs = log_probs.detach().exp()
    if config.method == "usdl":
        return config.score_bins.decode(probs[:, 0], config.decode).double()
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


def _check_scores(config: TrainConfig, batch: Mapping[str, Any]) -> None:
    config.score_bins.check(torch.as_tensor(batch["score"]), what="final score", ids=_ids(batch))


def _seed_epoch(seed: int, epoch: int) -> torch.Generator:
    # Every epoch reseeds from (seed, epoch), so a resumed run replays exactly the epochs it missed.
    value = (seed * 1_000_003 + epoch) % (2**63)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % (2**32))
    return torch.Generator().manual_seed(value)


def _clip_features_dim(model_encoder: nn.Module | None, item: Mapping[str, Any]) -> int:
    if "features" in item:
        return int(torch.as_tensor(item["features"]).shape[-1])
    if model_encoder is None:
        raise ValueError("the dataset yields videos but no backbone was given; pass encoder=")
    was_training = model_encoder.training
    model_encoder.eval()
    with torch.no_grad():
        out = model_encoder(torch.as_tensor(item["video"]).float().unsqueeze(0))
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
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    training = optimizer is not None
    model.train(training)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size if training else config.eval_batch_size,
        shuffle=training,
        generator=generator,
    )
    losses, preds, trues, actions, count = 0.0, [], [], [], 0
    with torch.set_grad_enabled(training):
        for batch in tqdm(loader, desc=desc, leave=False, disable=None if progress else True):
            batch = _without(batch, config.exclude) if config.exclude else batch
            if not batch["id"]:
                continue
            _check_scores(config, batch)
            targets = soft_labels(config, batch)
            log_probs = model(batch)
            loss = kl_loss(log_probs, targets.to(log_probs.dtype))
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            size = len(batch["score"])
            losses += float(loss.detach()) * size
            count += size
            preds.append(predict(config, log_probs, batch))
            trues.append(torch.as_tensor(batch["score"], dtype=torch.float64))
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


def _resume(
    out_dir: Path, config: TrainConfig, model: ScoreModel, optimizer: torch.optim.Optimizer
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    state = torch.load(out_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    theirs = {k: v for k, v in json.loads(json.dumps(state["config"])).items() if k != "epochs"}
    ours = {k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k != "epochs"}
    if theirs != ours:
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(
            f"cannot resume the run in {out_dir}: it was started with a different configuration "
            f"({', '.join(f'{k}: {theirs.get(k)!r} then, {ours.get(k)!r} now' for k in changed)}); "
            f"use the same options or a new output folder"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
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

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: an empty split, items without the keys the method needs, a rule whose
            judge count does not match, scores outside the bins or NaN, a backbone with the
            wrong output shape, or resuming a run with a different configuration.

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

    torch.manual_seed(config.seed)
    head_shape = {
        "in_features": _clip_features_dim(encoder, first),
        "num_distributions": 1
        if config.method == "usdl"
        else int(torch.as_tensor(first["judge_scores"]).numel()),
    }
    model = ScoreModel(_make_head(config, **head_shape), encoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    out_dir = Path(out) if out is not None else None
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "key": None}
    start, resumed_from = 0, None
    if out_dir is not None and resume and (out_dir / CHECKPOINT).exists():
        history, best, start = _resume(out_dir, config, model, optimizer)
        resumed_from = start
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            out_dir / "run.json",
            {"config": config.to_dict(), "metadata": dict(metadata or {}), "versions": _versions()},
        )
        atomic_write_text(out_dir / METRICS, "".join(json.dumps(r) + "\n" for r in history))

    splits = [("val", val_set), ("test", test_set)] if val_set is not None else [("test", test_set)]
    for epoch in range(start, config.epochs):
        generator = _seed_epoch(config.seed, epoch)
        tag = f"{config.method} {epoch + 1}/{config.epochs}"
        records = [
            {
                "epoch": epoch,
                "split": "train",
                **_run_split(model, config, train_set, f"{tag} train", progress, optimizer, generator),
            }
        ]
        for name, dataset in splits:
            records.append(
                {
                    "epoch": epoch,
                    "split": name,
                    **_run_split(model, config, dataset, f"{tag} {name}", progress),
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
        with open(out_dir / METRICS, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
        if val_set is not None:
            key = selection_key(records[1], config.select_metric)
            if best["epoch"] is None or key > best["key"]:
                best = {"epoch": epoch, "key": key}
                atomic_save(
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "config": config.to_dict(),
                        "head": head_shape,
                    },
                    out_dir / BEST,
                )
        atomic_save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
                "best": best,
                "config": config.to_dict(),
                "head": head_shape,
            },
            out_dir / CHECKPOINT,
        )

    summary = summarize(history, config.select_metric)
    if out_dir is not None:
        atomic_write_json(out_dir / "summary.json", summary)
    return TrainResult(model=model, history=history, summary=summary, out=out_dir, resumed_from=resumed_from)


def load_model(path: str | Path, encoder: nn.Module | None = None) -> tuple[ScoreModel, TrainConfig]:
    """Rebuild a trained model from ``best.pt`` or ``last.pt``.

    Args:
        path: a checkpoint written by :func:`train`.
        encoder: the same encoder architecture the run used (``None`` for cached features).

    Returns:
        ``(model, config)`` with the model in eval mode.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(state["config"])
    model = ScoreModel(_make_head(config, **state["head"]), encoder)
    model.load_state_dict(state["model"])
    return model.eval(), config
