"""``python -m scoredist``: train, list, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset, default_collate

from localkit_registry import RegistryError

from ._bins import DECODE_METHODS, ScoreBins
from ._features import ClipEncoder, FeatureSet, cached_features, extract_features
from ._io import atomic_write_json
from ._metrics import kfold_average
from ._plugins import BACKBONES, DATASETS, create_backbone, create_dataset, provenance
from ._presets import PRESETS, Preset
from ._protocol import split_validation
from ._rules import RULES
from ._train import METHODS, TrainConfig, TrainResult, train

AVERAGED = ("loss", "spearman", "l2", "rl2")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"options are written name=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scoredist",
        description="USDL / MUSDL score distribution learning for action quality assessment.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train USDL or MUSDL on a vidio.datasets dataset")
    tr.add_argument("--dataset", required=True, help="a vidio.datasets entry, e.g. mtl-aqa, jigsaws, csv")
    tr.add_argument("--root", required=True, help="the dataset's root (folder or manifest)")
    tr.add_argument("--method", choices=METHODS, default="usdl")
    tr.add_argument("--backbone", required=True, help="a splitnet.backbones entry, e.g. tiny3d or i3d")
    tr.add_argument("--backbone-opt", type=_option, action="append", default=[], metavar="NAME=VALUE")
    tr.add_argument("--dataset-opt", type=_option, action="append", default=[], metavar="NAME=VALUE")
    tr.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/scoredist/DATASET-METHOD)"
    )
    tr.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="the paper's settings (default: the dataset's name, when it is one)",
    )
    tr.add_argument("--score-range", type=float, nargs=2, metavar=("LOW", "HIGH"))
    tr.add_argument("--bins", type=int, help="number of final-score bins")
    tr.add_argument("--judge-range", type=float, nargs=2, metavar=("LOW", "HIGH"))
    tr.add_argument("--judge-bins", type=int, help="number of bins of one judge's score")
    tr.add_argument("--sigma", type=float, help="soft-label standard deviation, in bins")
    tr.add_argument("--rule", help="scoredist.rules entry combining judge scores (MUSDL)")
    tr.add_argument("--decode", choices=DECODE_METHODS, default="argmax")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int, default=4)
    tr.add_argument("--eval-batch-size", type=int, default=20)
    tr.add_argument("--lr", type=float, default=1e-4)
    tr.add_argument("--weight-decay", type=float)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument(
        "--segments",
        type=int,
        nargs=2,
        metavar=("S", "L"),
        help="cut (C,T,H,W) clips into S segments of L frames (default: the preset's)",
    )
    tr.add_argument("--train-split", default="train")
    tr.add_argument("--test-split", default="test")
    tr.add_argument("--val-split", default=None, help="the dataset's own validation split, if it has one")
    tr.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of train held out for model selection when there is no --val-split",
    )
    tr.add_argument(
        "--folds",
        type=int,
        default=None,
        help="k-fold protocol: run once per fold with the dataset option fold=0..K-1, then average",
    )
    tr.add_argument(
        "--cache-features",
        type=Path,
        default=None,
        metavar="DIR",
        help="extract frozen backbone features once into DIR and train only the head",
    )
    tr.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="ID",
        help="leave the sample with this id out of every split (repeatable)",
    )
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--no-progress", action="store_true")

    sub.add_parser("list", help="the rules, backbones and datasets scoredist can see")

    demo = sub.add_parser("demo", help="USDL and MUSDL on embedded clips (real MTL-AQA judge scores)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--quick", action="store_true", help="a much smaller run, for smoke tests")
    return parser


def _pick(name: str, given: Any, preset_value: Any, fix: str) -> Any:
    if given is not None:
        return given
    if preset_value is not None:
        return preset_value
    raise ValueError(f"no {name} for this dataset: {fix}")


def _bins(
    what: str,
    flags: tuple[str, str],
    given: tuple[Sequence[float] | None, int | None],
    preset: ScoreBins | None,
    dataset_range: Sequence[float] | None,
) -> ScoreBins:
    given_range, given_num = given
    low_high = given_range or (None if preset is None else (preset.low, preset.high)) or dataset_range
    low_high = _pick(f"{what} range", low_high, None, f"pass {flags[0]} LOW HIGH")
    num = _pick(
        f"number of {what} bins", given_num, None if preset is None else preset.num, f"pass {flags[1]} N"
    )
    return ScoreBins(float(low_high[0]), float(low_high[1]), num)


def build_config(args: argparse.Namespace, preset: Preset | None, dataset: Any) -> TrainConfig:
    """The :class:`TrainConfig` of a ``train`` command: options, else the preset, else the dataset."""
    score_bins = _bins(
        "score",
        ("--score-range", "--bins"),
        (args.score_range, args.bins),
        preset and preset.score_bins,
        getattr(dataset, "score_range", None),
    )
    judge_bins = None
    rule = None
    if args.method == "musdl":
        judge_bins = _bins(
            "judge",
            ("--judge-range", "--judge-bins"),
            (args.judge_range, args.judge_bins),
            preset and preset.judge_bins,
            getattr(dataset, "judge_range", None),
        )
        rule = _pick("rule", args.rule, preset and preset.rule, "pass --rule (see python -m scoredist list)")
    return TrainConfig(
        method=args.method,
        score_bins=score_bins,
        judge_bins=judge_bins,
        rule=rule,
        sigma=_pick(
            "sigma",
            args.sigma,
            preset and preset.sigma,
            "pass --sigma (the paper: 5 bins on MTL-AQA, 1 on JIGSAWS)",
        ),
        decode=args.decode,
        epochs=args.epochs or (preset.epochs if preset else 100),
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay
        if args.weight_decay is not None
        else (preset.weight_decay.get(args.method, 0.0) if preset else 0.0),
        seed=args.seed,
        exclude=tuple(args.exclude),
    )


def _train_once(
    args: argparse.Namespace, preset: Preset | None, options: dict[str, Any], out: Path
) -> TrainResult:
    root = str(args.root)
    train_set = create_dataset(args.dataset, root, args.train_split, **options)
    test_set = create_dataset(args.dataset, root, args.test_split, **options)
    val_set = create_dataset(args.dataset, root, args.val_split, **options) if args.val_split else None
    config = build_config(args, preset, train_set)

    torch.manual_seed(args.seed)
    backbone_options = dict(args.backbone_opt)
    segments = tuple(args.segments) if args.segments else (preset.segments if preset else None)
    encoder = ClipEncoder(create_backbone(args.backbone, **backbone_options), args.backbone, segments)
    metadata = {
        "command": ["python", "-m", "scoredist", *args.argv],
        "dataset": {"name": args.dataset, "root": root, "options": options},
        "backbone": {"name": args.backbone, "options": backbone_options, "segments": segments},
        "provenance": provenance(),
        "features": "cached (frozen backbone)" if args.cache_features else "end to end",
    }

    if args.cache_features:
        warm_up = True

        def extract(dataset: Any, split: str) -> FeatureSet:
            nonlocal warm_up
            if warm_up:
                # A backbone may initialise itself from the first batch it sees (tiny3d does):
                # before extracting any split, show it the training split's first batch, so
                # every split's features come from one network, whichever splits are cached.
                first = default_collate(
                    [train_set[i] for i in range(min(len(train_set), args.eval_batch_size))]
                )
                with torch.no_grad():
                    encoder.eval()(first["video"].float())
                warm_up = False
            return extract_features(encoder, dataset, args.eval_batch_size, f"features {split}")

        splits = {"train": (args.train_split, train_set), "test": (args.test_split, test_set)}
        if val_set is not None:
            splits["val"] = (args.val_split, val_set)
        cached = {}
        for key, (split, dataset) in splits.items():
            description = {
                "dataset": args.dataset,
                "root": str(Path(root).resolve()),
                "split": split,
                "options": options,
                "backbone": args.backbone,
                "backbone_options": backbone_options,
                "segments": segments,
                "seed": args.seed,
                "provenance": BACKBONES.entry(args.backbone).as_dict(),
            }
            cached[key], hit = cached_features(
                args.cache_features, description, lambda d=dataset, s=split: extract(d, s)
            )
            print(
                f"features of split '{split}': {'read from' if hit else 'written to'} {args.cache_features}"
            )
        train_set, test_set, val_set = cached["train"], cached["test"], cached.get("val")
        encoder = None

    if val_set is None:
        train_idx, val_idx = split_validation(len(train_set), args.val_fraction, args.seed)
        train_set, val_set = Subset(train_set, train_idx), Subset(train_set, val_idx)
        metadata["validation"] = (
            f"{len(val_idx)} samples held out of split '{args.train_split}' (seed {args.seed})"
        )
    else:
        metadata["validation"] = f"split '{args.val_split}'"

    return train(
        config,
        train_set,
        test_set,
        val_set,
        encoder=encoder,
        out=out,
        resume=args.resume,
        metadata=metadata,
        progress=not args.no_progress,
        log=print,
    )


def _report(summary: dict[str, Any]) -> str:
    lines = []
    chosen = summary.get("val_selected")
    if chosen:
        t = chosen["test"]
        lines.append(
            f"test at the epoch chosen on validation (epoch {chosen['epoch'] + 1}): "
            f"rho {t['spearman']:.4f}  L2 {t['l2']:.3f}  RL2x100 {t['rl2']:.4f} (range {t['rl2_range']})"
        )
    p = summary["test_peeking"]
    lines.append(
        f"best test epoch, test-peeking as the reference code (epoch {p['epoch'] + 1}): "
        f"rho {p['test']['spearman']:.4f}  [optimistic]"
    )
    return "\n".join(lines)


def _train_command(args: argparse.Namespace) -> None:
    preset_name = args.preset or (args.dataset if args.dataset in PRESETS else None)
    preset = PRESETS.get(preset_name) if preset_name else None
    out = args.out or Path("runs/scoredist") / f"{args.dataset}-{args.method}"
    options = dict(args.dataset_opt)
    if args.folds is None:
        result = _train_once(args, preset, options, out)
        print(_report(result.summary))
        print(f"metrics: {out / 'metrics.jsonl'}  summary: {out / 'summary.json'}")
        return
    if args.folds < 2:
        raise ValueError(f"--folds needs at least 2 folds, got {args.folds}")
    summaries = []
    for fold in range(args.folds):
        print(f"fold {fold + 1}/{args.folds}")
        result = _train_once(args, preset, {**options, "fold": fold}, out / f"fold_{fold}")
        print(_report(result.summary))
        summaries.append(result.summary)
    averaged = {
        protocol: kfold_average([{k: s[protocol]["test"][k] for k in AVERAGED} for s in summaries])
        for protocol in ("val_selected", "test_peeking")
    }
    atomic_write_json(out / "summary.json", {"folds": summaries, "average": averaged})
    print(
        f"{args.folds}-fold average test rho: {averaged['val_selected']['spearman']:.4f} (validation-selected), "
        f"{averaged['test_peeking']['spearman']:.4f} (test-peeking, optimistic)"
    )


def _list_command() -> None:
    for title, registry in (("rules", RULES), ("backbones", BACKBONES), ("datasets", DATASETS)):
        print(f"{title} ({registry.group}):")
        entries = registry.entries()
        for entry in entries:
            print(f"  {entry.name:<16} {entry.distribution} {entry.version}  ({entry.value})")
        if not entries:
            print("  (none installed)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m scoredist`` and the ``scoredist`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == "train":
            _train_command(args)
        elif args.command == "list":
            _list_command()
        else:
            from ._demo import run_demo

            run_demo(args.out, seed=args.seed, quick=args.quick)
    except (ValueError, RegistryError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
