"""Command line: ``python -m localkit_cityscapes evaluate --run RUN [--multiscale] [--flip]``."""

from __future__ import annotations

import argparse
import json
import sys

from ._evaluate import AVERAGES, MULTISCALE_SCALES, evaluate_run


def _cmd_evaluate(args) -> int:
    result = evaluate_run(
        args.run,
        split=args.split,
        multiscale=args.multiscale,
        flip=args.flip,
        scales=args.scales,
        average=args.average,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        checkpoint=args.checkpoint,
        progress=not args.quiet,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    mode = (
        "single scale"
        if result["scales"] == [1.0]
        else "scales " + ", ".join(f"{s:g}" for s in result["scales"])
    )
    print(
        f"{result['run']}: {result['dataset']} {result['split']}, {result['images']} images, {mode}"
        + (" + flip" if result["flip"] else "")
    )
    width = max(len(name) for name in result["iou"])
    for name, value in result["iou"].items():
        print(f"  {name:<{width}}  {'-' if value is None else f'{100 * value:6.2f}'}")
    miou = "-" if result["miou"] is None else f"{100 * result['miou']:.2f}"
    accuracy = "-" if result["pixel_accuracy"] is None else f"{100 * result['pixel_accuracy']:.2f}"
    print(f"mIoU {miou}  pixel accuracy {accuracy}")
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has one worth showing (not None, not a False switch)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m localkit_cityscapes",
        description="Cityscapes tools for splitnet runs: evaluate a trained segmentation run.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    about = "mIoU of a finished splitnet run, single- or multi-scale (+ flip)"
    p = sub.add_parser("evaluate", help=about, description=about, formatter_class=_Help)
    p.add_argument("--run", required=True, help="run folder (the --out of python -m splitnet train)")
    p.add_argument("--split", default="val", help="split to evaluate; val is the split the paper reports")
    p.add_argument(
        "--multiscale",
        action="store_true",
        help=f"average over scales {', '.join(f'{s:g}' for s in MULTISCALE_SCALES)}",
    )
    p.add_argument(
        "--scales", type=float, nargs="+", metavar="S", help="explicit scales (overrides --multiscale)"
    )
    p.add_argument("--flip", action="store_true", help="also average over horizontal flips")
    p.add_argument(
        "--average",
        choices=AVERAGES,
        default="logits",
        help="average logits, or softmax probabilities like mmseg",
    )
    p.add_argument("--batch-size", type=int, default=1, help="images per evaluation step")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--checkpoint", default="checkpoint.pt", help="checkpoint file inside the run folder")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m localkit_cityscapes`` and the ``localkit-cityscapes`` script."""
    from splitnet import CheckpointError, RegistryError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RegistryError, CheckpointError, ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
