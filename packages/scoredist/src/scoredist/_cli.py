"""``python -m scoredist``: train, list, demo."""

from __future__ import annotations

import argparse
import math
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset, default_collate
from tqdm.auto import tqdm

from localkit_registry import RegistryError, accepted_options, parse_option
from localkit_runs import RunError, write_json

from ._bins import DECODE_METHODS, ScoreBins
from ._device import AMP, resolve_device
from ._features import ClipEncoder, FeatureSet, cached_features, extract_features
from ._heads import KL_REDUCTIONS
from ._plugins import BACKBONES, DATASETS, create_backbone, create_dataset, provenance
from ._presets import PRESETS, Preset
from ._protocol import kfold_summary, split_validation
from ._rules import RULES, as_float64
from ._train import METHODS, TrainConfig, TrainResult, train


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _real(low: float, *, low_open: bool, high: float = math.inf) -> Callable[[str], float]:
    bounds = (
        f"{'>' if low_open else '>='} {low:g}"
        if high == math.inf
        else f"between {low:g} and {high:g} (exclusive)"
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = value > low if low_open else value >= low
        if not (math.isfinite(value) and inside and value < high):
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text!r}")
        return value

    return parse


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has one worth showing (not None, empty or a False switch)."""

    def _get_help_string(self, action):
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _reference(name: str) -> str:
    """``(default: 4, as the reference)``: the reference code's value, read from TrainConfig."""
    return f"(default: {TrainConfig.__dataclass_fields__[name].default}, as the reference)"


def _renamed(
    parser: argparse.ArgumentParser | argparse._ActionsContainer,
    old: str,
    new: str,
    action: type[argparse.Action],
    **kwargs: Any,
) -> None:
    """``old`` keeps working for one more release as ``new``, with a message saying so."""

    class Renamed(action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(
                f"warning: {old} is deprecated and will be removed in scoredist 0.3; use {new}",
                file=sys.stderr,
            )
            super().__call__(parser, namespace, values, option_string)

    parser.add_argument(old, action=Renamed, help=argparse.SUPPRESS, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scoredist",
        description="USDL / MUSDL score distribution learning for action quality assessment: "
        "train on a vidio.datasets dataset, list what scoredist can see, or run the demo.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    about = "train USDL or MUSDL on a vidio.datasets dataset"
    tr = sub.add_parser("train", help=about, description=about, formatter_class=_Help)
    tr.add_argument("--dataset", required=True, help="a vidio.datasets entry, e.g. mtl-aqa, jigsaws, csv")
    tr.add_argument("--root", required=True, help="the dataset's root (folder or manifest)")
    tr.add_argument(
        "--method", choices=METHODS, default="usdl", help="one score distribution, or one per judge"
    )
    backbone = tr.add_mutually_exclusive_group(required=True)  # --model, or its old spelling
    backbone.add_argument("--model", help="the backbone: a splitnet.backbones entry, e.g. tiny3d or i3d")
    tr.add_argument(
        "--model-opt",
        type=parse_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword for the backbone factory (repeatable)",
    )
    tr.add_argument(
        "--dataset-opt",
        type=parse_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword for the dataset factory (repeatable)",
    )
    tr.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/scoredist/DATASET-METHOD)"
    )
    tr.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="the paper's settings (default: the dataset's name, when it is one)",
    )
    tr.add_argument(
        "--score-range",
        type=_finite,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="final-score bins' range (default: the preset's, else the training split's scores)",
    )
    tr.add_argument("--bins", type=_integer(2), help="number of final-score bins (>= 2)")
    tr.add_argument(
        "--judge-range",
        type=_finite,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="one judge's bins' range (default: the preset's, else the training split's judge scores)",
    )
    tr.add_argument("--judge-bins", type=_integer(2), help="number of bins of one judge's score (>= 2)")
    tr.add_argument("--sigma", type=_real(0, low_open=True), help="soft-label standard deviation, in bins")
    tr.add_argument("--rule", help="scoredist.rules entry combining judge scores (MUSDL)")
    tr.add_argument("--decode", choices=DECODE_METHODS, default=None, help="default: argmax, as the paper")
    tr.add_argument(
        "--kl-reduction",
        choices=KL_REDUCTIONS,
        default=None,
        help="mean: the reference's nn.KLDivLoss() (default); batchmean: the true KL (ours)",
    )
    epochs = TrainConfig.__dataclass_fields__["epochs"].default
    tr.add_argument(
        "--epochs",
        type=_integer(1),
        help=f"passes over the training split (default: the preset's, else {epochs})",
    )
    tr.add_argument(
        "--batch-size", type=_integer(1), help=f"clips per training step {_reference('batch_size')}"
    )
    tr.add_argument(
        "--eval-batch-size",
        type=_integer(1),
        help=f"clips per evaluation step {_reference('eval_batch_size')}",
    )
    tr.add_argument("--lr", type=_real(0, low_open=True), help=f"Adam's learning rate {_reference('lr')}")
    tr.add_argument(
        "--weight-decay",
        type=_real(0, low_open=False),
        help="Adam's weight decay (default: the preset's for the method, else 0)",
    )
    tr.add_argument("--seed", type=_integer(0), help=f"seed of weights and data order {_reference('seed')}")
    tr.add_argument(
        "--segments",
        type=_integer(1),
        nargs=2,
        metavar=("S", "L"),
        help="cut (C,T,H,W) clips into S segments of L frames (default: the preset's)",
    )
    tr.add_argument(
        "--segment-stride",
        type=_integer(1),
        help="frames between segment starts, the last segment ending at the last frame "
        "(default: the preset's; without one, segments are spaced evenly)",
    )
    tr.add_argument("--train-split", default="train", help="the dataset's split to train on")
    tr.add_argument("--test-split", default="test", help="the dataset's split to report")
    tr.add_argument("--val-split", default=None, help="the dataset's own validation split, if it has one")
    tr.add_argument(
        "--val-fraction",
        type=_real(0, low_open=True, high=1),
        default=0.2,
        help="share of train held out for model selection when there is no --val-split",
    )
    tr.add_argument(
        "--folds",
        type=_integer(1),
        default=None,
        help="k-fold protocol: run once per fold with the dataset option fold=0..K-1, then average "
        "(default: the preset's, 4 for jigsaws; 1 trains once)",
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
    tr.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (where the backbone and head run)")
    tr.add_argument(
        "--amp", choices=sorted(AMP), default=None, help="mixed precision (fp16 with a gradient scaler)"
    )
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    # the spellings of scoredist 0.1.0 before the flags were shared with splitnet; removed in 0.3
    _renamed(backbone, "--backbone", "--model", argparse._StoreAction, dest="model")
    _renamed(tr, "--backbone-opt", "--model-opt", argparse._AppendAction, dest="model_opt", type=parse_option)
    _renamed(tr, "--no-progress", "--quiet", argparse._StoreTrueAction, dest="quiet")

    about = "the rules, backbones and datasets scoredist can see"
    sub.add_parser("list", help=about, description=about, formatter_class=_Help)

    about = "USDL and MUSDL on embedded clips (real MTL-AQA judge scores)"
    demo = sub.add_parser(
        "demo",
        help=about,
        description=about + ": render one short clip per dive, train both methods on one thread and "
        "write OUT/aqa.md, aqa.json, aqa.png and the clips under OUT/aqa/.",
        formatter_class=_Help,
    )
    demo.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="folder for the report and the clips"
    )
    demo.add_argument("--seed", type=_integer(0), default=1, help="seed of both methods' runs")
    demo.add_argument("--quick", action="store_true", help="a much smaller run, for smoke tests")
    return parser


def _pick(name: str, given: Any, preset_value: Any, fix: str) -> Any:
    if given is not None:
        return given
    if preset_value is not None:
        return preset_value
    raise ValueError(f"no {name} for this dataset: {fix}")


def training_annotations(
    dataset: Any, exclude: Sequence[str] = ()
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The final scores ``(N,)`` and judge scores ``(N, J)`` (or ``None``) of a training split.

    Read without decoding clips where the dataset allows it: a :class:`FeatureSet`, or a
    dataset whose ``records`` carry ``id``, ``score`` and ``judge_scores`` (vidio's); any
    other dataset is read item by item once. Samples in ``exclude`` are left out.
    """
    if isinstance(dataset, FeatureSet):
        rows = [
            (i, dataset.score[k], None if dataset.judge_scores is None else dataset.judge_scores[k])
            for k, i in enumerate(dataset.ids)
        ]
    elif all(hasattr(r, "score") and hasattr(r, "id") for r in getattr(dataset, "records", [None])):
        rows = [(r.id, r.score, getattr(r, "judge_scores", None)) for r in dataset.records]
    else:
        items = (dataset[k] for k in range(len(dataset)))
        rows = [
            (item["id"], item["score"], item.get("judge_scores"))
            for item in tqdm(items, total=len(dataset), desc="reading the training scores", leave=False)
        ]
    left_out = set(exclude)
    rows = [row for row in rows if str(row[0]) not in left_out]
    # np.asarray keeps a float32 score float32, so that it is read as the decimal it prints as
    scores = as_float64(np.asarray([np.asarray(score) for _, score, _ in rows]))
    if not rows or any(judges is None for _, _, judges in rows):
        return scores, None
    return scores, as_float64([as_float64(judges).tolist() for _, _, judges in rows])


def _bins(
    what: str,
    flags: tuple[str, str],
    given: tuple[Sequence[float] | None, int | None],
    preset: ScoreBins | None,
    training: torch.Tensor | None,
    declared: Sequence[float] | None,
) -> tuple[ScoreBins, str | None]:
    """Bins from the flags, else the preset, else the training split's range; and a note
    saying where a range read from the data came from."""
    given_range, given_num = given
    num = _pick(
        f"number of {what} bins", given_num, None if preset is None else preset.num, f"pass {flags[1]} N"
    )
    note = None
    if given_range is not None:
        low, high = given_range
    elif preset is not None:
        low, high = preset.low, preset.high
    else:
        if training is None or training.numel() == 0:
            raise ValueError(f"no {what} range for this dataset: pass {flags[0]} LOW HIGH")
        low, high = float(training.min()), float(training.max())
        if low == high:
            raise ValueError(
                f"every {what} of the training split is {low:g}, so it gives no range: pass {flags[0]} LOW HIGH"
            )
        note = f"{what} range {low:g}..{high:g}: the training split's {what}s"
        if declared is not None and tuple(map(float, declared)) != (low, high):
            note += f" (the dataset declares {float(declared[0]):g}..{float(declared[1]):g}; {flags[0]} sets another)"
    try:
        return ScoreBins(float(low), float(high), num), note
    except ValueError as exc:
        raise ValueError(f"{flags[0]} {low:g} {high:g} / {flags[1]} {num}: {exc}") from exc


def build_config(
    args: argparse.Namespace, preset: Preset | None, train_split: Any
) -> tuple[TrainConfig, list[str]]:
    """The :class:`TrainConfig` of a ``train`` command, and notes on where data-derived
    settings came from.

    Each setting comes from its option, else the preset, else (the bins' ranges only) the
    training split's own scores, never the test split's; anything still missing is an error
    naming the flag. Options not given are ``None`` and leave :class:`TrainConfig`'s defaults
    (the reference code's) in force.
    """
    exclude = tuple(args.exclude)
    need_scores = args.score_range is None and preset is None
    need_judges = args.method == "musdl" and args.judge_range is None and preset is None
    scores = judges = None
    if need_scores or need_judges:
        scores, judges = training_annotations(train_split, exclude)
    notes = []
    score_bins, note = _bins(
        "score",
        ("--score-range", "--bins"),
        (args.score_range, args.bins),
        preset and preset.score_bins,
        scores,
        getattr(train_split, "score_range", None),
    )
    notes += [note] if note else []
    judge_bins = None
    rule = None
    if args.method == "musdl":
        judge_bins, note = _bins(
            "judge score",
            ("--judge-range", "--judge-bins"),
            (args.judge_range, args.judge_bins),
            preset and preset.judge_bins,
            judges,
            getattr(train_split, "judge_range", None),
        )
        notes += [note] if note else []
        rule = _pick("rule", args.rule, preset and preset.rule, "pass --rule (see python -m scoredist list)")
    given = {
        key: getattr(args, key)
        for key in ("decode", "kl_reduction", "batch_size", "eval_batch_size", "lr", "seed")
        if getattr(args, key) is not None
    }
    if args.epochs is not None:
        given["epochs"] = args.epochs
    elif preset is not None:
        given["epochs"] = preset.epochs
    if args.weight_decay is not None:
        given["weight_decay"] = args.weight_decay
    elif preset is not None:
        given["weight_decay"] = preset.weight_decay[args.method]
    config = TrainConfig(
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
        exclude=exclude,
        **given,
    )
    return config, notes


def _with_exclude(name: str, options: dict[str, Any], exclude: Sequence[str]) -> dict[str, Any]:
    """Hand ``--exclude`` to a dataset that takes an ``exclude`` option, so it never reads them.

    A dataset that validates annotations as it reads them (vidio's MTL-AQA refuses dive
    04_49's impossible judge score) must leave a sample out before checking it; scoredist
    still drops the ids from every batch, for datasets without the option.
    """
    if not exclude or "exclude" in options:
        return options
    accepted = accepted_options(DATASETS.load(name), consumed=2)
    if accepted is None or "exclude" not in accepted:
        return options
    return {**options, "exclude": list(exclude)}


def _train_once(
    args: argparse.Namespace, preset: Preset | None, options: dict[str, Any], out: Path
) -> TrainResult:
    root = str(args.root)
    options = _with_exclude(args.dataset, options, args.exclude)
    train_set = create_dataset(args.dataset, root, args.train_split, **options)
    test_set = create_dataset(args.dataset, root, args.test_split, **options)
    val_set = create_dataset(args.dataset, root, args.val_split, **options) if args.val_split else None
    config, notes = build_config(args, preset, train_set)
    for note in notes:
        print(note)
    device = resolve_device(args.device, args.amp)

    torch.manual_seed(config.seed)
    backbone_options = dict(args.model_opt)
    segments = tuple(args.segments) if args.segments is not None else (preset and preset.segments)
    stride = args.segment_stride if args.segment_stride is not None else (preset and preset.segment_stride)
    encoder = ClipEncoder(
        create_backbone(args.model, **backbone_options),
        args.model,
        segments,
        stride if segments else None,
    )
    metadata = {
        "command": ["python", "-m", "scoredist", *args.argv],
        "dataset": {"name": args.dataset, "root": root, "options": options},
        "backbone": {
            "name": args.model,
            "options": backbone_options,
            "segments": segments,
            "segment_stride": encoder.stride,
        },
        "provenance": provenance(),
        "features": "cached (frozen backbone)" if args.cache_features else "end to end",
        "ranges": notes,
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
                    [train_set[i] for i in range(min(len(train_set), config.eval_batch_size))]
                )
                with torch.no_grad():
                    encoder.to(device).eval()(first["video"].to(device).float())
                warm_up = False
            return extract_features(encoder, dataset, config.eval_batch_size, f"features {split}", device)

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
                "backbone": args.model,
                "backbone_options": backbone_options,
                "segments": segments,
                "segment_stride": encoder.stride,
                "seed": config.seed,
                "provenance": BACKBONES.entry(args.model).as_dict(),
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
        train_idx, val_idx = split_validation(len(train_set), args.val_fraction, config.seed)
        train_set, val_set = Subset(train_set, train_idx), Subset(train_set, val_idx)
        metadata["validation"] = (
            f"{len(val_idx)} samples held out of split '{args.train_split}' (seed {config.seed})"
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
        progress=not args.quiet,
        log=print,
        device=device,
        amp=args.amp,
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
    folds = args.folds if args.folds is not None else (preset and preset.folds)
    if folds is None or folds == 1:
        result = _train_once(args, preset, options, out)
        print(_report(result.summary))
        print(f"metrics: {out / 'metrics.jsonl'}  summary: {out / 'summary.json'}")
        return
    if "fold" in options:
        raise ValueError(
            f"--dataset-opt fold={options['fold']} and a {folds}-fold protocol contradict each other; "
            f"pass --folds 1 to train on that one fold"
        )
    results = []
    for fold in range(folds):
        print(f"fold {fold + 1}/{folds}")
        result = _train_once(args, preset, {**options, "fold": fold}, out / f"fold_{fold}")
        print(_report(result.summary))
        results.append(result)
    average = kfold_summary([r.history for r in results], results[0].summary["metric"])
    write_json(out / "summary.json", {"folds": [r.summary for r in results], "average": average})
    last = average["last_epochs_mean"]
    print(
        f"{folds}-fold average test rho: {average['val_selected']['spearman']:.4f} (epochs chosen on validation), "
        f"{last['spearman']:.4f} (mean of the last {len(last['epochs'])} epochs, the reference's figure), "
        f"{average['test_peeking']['spearman']:.4f} (best test epoch {average['test_peeking']['epoch'] + 1}, "
        f"test-peeking, optimistic)"
    )


VIDEO, IMAGE = 4, 3


def backbone_input(name: str) -> tuple[int, ...] | None:
    """The input a ``splitnet.backbones`` entry declares: its ``default_input_size``.

    Read from the class the factory's return annotation names, else from a model the
    factory builds with its default options on PyTorch's meta device (no memory is
    allocated and no weights are read). ``(C, T, H, W)`` is a video backbone, ``(C, H, W)``
    an image one; ``None`` when the backbone declares nothing.

    Raises:
        RegistryError: the entry cannot be loaded or built.
    """
    factory = BACKBONES.load(name)
    try:
        declared = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve declares nothing
        declared = None
    size = getattr(declared, "default_input_size", None)
    if size is None:
        try:
            with torch.device("meta"):
                model = create_backbone(name)
        except RegistryError:
            raise
        except Exception as exc:
            entry = BACKBONES.entry(name)
            raise RegistryError(
                f"backbone '{name}' from '{entry.distribution} {entry.version}' could not be built "
                f"with its default options ({type(exc).__name__}: {exc})"
            ) from exc
        size = getattr(model, "default_input_size", None)
    return None if size is None else tuple(size)


def _columns(rows: Sequence[Sequence[str]], widths: Sequence[int]) -> list[str]:
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _widths(rows: Sequence[Sequence[str]]) -> list[int]:
    return [max((len(row[k]) for row in rows), default=0) for k in range(max(map(len, rows), default=0))]


def _list_command() -> None:
    def row(entry: Any, *extra: str) -> list[str]:
        return [entry.name, f"{entry.distribution} {entry.version}", *extra, entry.value]

    video, other = [], []
    for entry in BACKBONES.entries():
        try:
            size = backbone_input(entry.name)
        except RegistryError as exc:
            other.append(row(entry, f"not usable: {exc}"))
            continue
        kind = {VIDEO: "video", IMAGE: "image"}.get(len(size or ()), "input not declared")
        (video if len(size or ()) == VIDEO else other).append(
            row(entry, kind if size is None else f"{kind} {tuple(size)}")
        )
    rules, datasets = [row(e) for e in RULES.entries()], [row(e) for e in DATASETS.entries()]
    backbone_widths = _widths(video + other)  # one table in two parts
    sections = [
        (f"rules ({RULES.group}):", rules, _widths(rules)),
        (f"video backbones ({BACKBONES.group} declaring a (C, T, H, W) input):", video, backbone_widths),
        (
            f"other backbones ({BACKBONES.group}; scoredist needs clips (B, C, T, H, W)):",
            other,
            backbone_widths,
        ),
        (f"datasets ({DATASETS.group}):", datasets, _widths(datasets)),
    ]
    for title, rows, widths in sections:
        print(title)
        print("\n".join(_columns(rows, widths)) if rows else "  (none installed)")


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
    except (ValueError, RegistryError, RunError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
