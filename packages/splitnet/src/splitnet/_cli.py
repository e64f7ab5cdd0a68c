"""Command line: ``python -m splitnet COMMAND ...`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from localkit_registry import RegistryError, parse_option

GROUPS = ("backbones", "objectives", "heads", "datasets")
DESCRIPTION = (
    "Split a timm or torch model into K gradient-isolated local modules: list the registered "
    "entries, plan the cuts, measure memory, train, run the demo and summarize runs."
)


MEMORY_BATCH = "batch size the saved-bytes figures are computed for (default: the example input's, 2)"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has one worth showing (not None, not a False switch)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _config_defaults(p: argparse.ArgumentParser) -> None:
    """Make ``train``'s flags default to None and show TrainConfig's defaults in their help.

    A flag not given stays None, so TrainConfig applies (and checks) its own default: the
    help and the run cannot disagree.
    """
    from dataclasses import MISSING, fields

    from ._config import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    for action in p._actions:
        value = defaults.get(action.dest)
        if not action.option_strings or isinstance(value, bool) or action.dest not in defaults:
            continue
        action.default = None
        if value is not None:
            action.help = f"{action.help} (default: {value})"


def parse_options(pairs: list[tuple[str, object]] | None) -> dict:
    """The ``(name, value)`` pairs of a repeated ``--*-opt NAME=VALUE`` flag as keywords
    (read by :func:`localkit_registry.parse_option`, the grammar of every localkit CLI)."""
    return dict(pairs or ())


def _add_model_args(p: argparse.ArgumentParser, *, planning: bool = True) -> None:
    """The model flags; ``planning`` adds those only plan and memory read (train takes the input
    shape and the task from its dataset, so it does not accept them rather than ignore them)."""
    p.add_argument(
        "--model", required=True, help="backbone: a splitnet.backbones entry or any timm model name"
    )
    p.add_argument(
        "--model-opt",
        action="append",
        type=parse_option,
        metavar="NAME=VALUE",
        help="keyword for the backbone factory",
    )
    if planning:
        p.add_argument(
            "--input-size",
            type=int,
            nargs="+",
            metavar="N",
            help="one input's shape, e.g. 3 32 32 (default: the model's own)",
        )
    p.add_argument("--head", help="splitnet.heads entry to put on the backbone (e.g. for segmentation)")
    p.add_argument(
        "--head-opt", action="append", type=parse_option, metavar="NAME=VALUE", help="option for the head"
    )
    if planning:
        p.add_argument(
            "--task",
            choices=("classification", "segmentation"),
            default="classification",
            help="what the targets are",
        )


def _add_plan_args(p: argparse.ArgumentParser, batch_help: str, *, planning: bool = True) -> None:
    p.add_argument("--k", type=int, help="number of local modules")
    p.add_argument(
        "--balance",
        default="memory",
        help="even | memory | time | a named plan of the model (infopro, infopro*)",
    )
    p.add_argument(
        "--cuts", nargs="+", metavar="CUT", help="explicit cut points (module paths), in forward order"
    )
    p.add_argument(
        "--cut-granularity",
        choices=("block", "node"),
        default="block",
        help="block: cut only where a block of the model ends or begins (default); node: at any "
        "cut point of the traced graph, inside blocks too",
    )
    if planning:
        p.add_argument(
            "--budget-mib", type=float, help="smallest K whose peak saved memory fits this many MiB"
        )
    p.add_argument("--batch-size", type=int, help=batch_help)
    p.add_argument("--objective", default="greedy", help="splitnet.objectives entry costed at each cut")
    p.add_argument(
        "--objective-opt",
        action="append",
        type=parse_option,
        metavar="NAME=VALUE",
        help="option for the objective",
    )
    source = "the output shape" if planning else "the dataset"
    p.add_argument("--num-classes", type=int, help=f"classes of the task (default: from {source})")
    if planning:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_dataset_name(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        help="splitnet.datasets name the plan is for; objectives pick defaults tuned for it "
        "(InfoPro's loss weights). No data is read.",
    )


def _model_and_input(args):
    import torch

    from ._backbones import create_backbone
    from ._plan import example_batch

    torch.manual_seed(0)
    model = create_backbone(args.model, **parse_options(args.model_opt))
    example = example_batch(model, args.input_size)
    if args.head:
        from ._build import attach_head

        if args.num_classes is None:
            raise ValueError("--head needs --num-classes (the head's output classes)")
        model = attach_head(
            model,
            args.head,
            example,
            args.num_classes,
            args.task,
            **parse_options(args.head_opt),
        )
    return model, example


def _build_plan(args):
    from ._plan import plan

    model, x = _model_and_input(args)
    p = plan(
        model,
        args.k,
        balance=args.balance,
        cuts=args.cuts,
        budget_bytes=None if args.budget_mib is None else int(args.budget_mib * 2**20),
        batch_size=args.batch_size,
        example_input=x,
        objective=args.objective,
        objective_options=parse_options(args.objective_opt),
        num_classes=args.num_classes,
        task=args.task,
        granularity=args.cut_granularity,
        backbone=args.model,
        dataset=args.dataset,
        measure_memory=True,
    )
    return model, x, p


def _cmd_list(args) -> int:
    from ._registries import BACKBONES, DATASETS, HEADS, OBJECTIVES

    registries = {"backbones": BACKBONES, "objectives": OBJECTIVES, "heads": HEADS, "datasets": DATASETS}
    groups = GROUPS if args.group == "all" else (args.group,)
    rows = []
    problems = []
    for group in groups:
        registry = registries[group]
        for entry in registry.entries(args.pattern):
            rows.append(entry.as_dict())
        if args.check:
            problems += [str(e) for e in registry.load_all(args.pattern)[1]]
    if args.json:
        print(json.dumps({"entries": rows, "problems": problems}, indent=2))
    else:
        header = ("group", "name", "distribution", "version", "entry point")
        table = [header] + [
            (r["group"], r["name"], r["distribution"], r["version"], r["value"]) for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        print(
            "\ntimm's own models are accepted too: python -c \"import timm; print(timm.list_models('resnet*'))\""
        )
        for problem in problems:
            print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _cmd_plan(args) -> int:
    if args.list_cuts:
        from ._blocks import block_cuts
        from ._trace import trace

        chain = trace(*_model_and_input(args))
        shown = block_cuts(chain) if args.cut_granularity == "block" else chain.cuts
        rows = [
            {"index": c.index, "label": c.label, "aliases": list(c.aliases), "shape": list(c.shape[1:])}
            for c in shown
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['index']:4d}  {r['label']:40s}  {'x'.join(map(str, r['shape']))}")
        return 0
    _, _, p = _build_plan(args)
    objectives = p.objective_descriptions()
    if args.json:
        print(json.dumps({"model": args.model, **p.to_dict(), "objectives": objectives}, indent=2))
    else:
        print(p.table())
        if objectives:
            print("\nobjective at each cut:\n" + "\n".join(f"  {line}" for line in objectives))
    return 0


def _cmd_memory(args) -> int:
    from ._peak import measure_peak

    model, x, p = _build_plan(args)
    report = {
        "model": args.model,
        "input_size": list(x.shape[1:]),
        **p.to_dict(),
        "ledger": "bytes autograd saves for backward (unique storages), peak over the step; "
        "measured at batch 2 and 4, exact at any batch size (affine)",
    }
    if args.real:
        common = {
            "model": args.model,
            "model_options": parse_options(args.model_opt),
            "input_size": list(x.shape[1:]),
            "batch_size": p.batch_size,
            "device": args.device,
            "dataset": args.dataset,
        }
        e2e = measure_peak({**common, "mode": "e2e"})
        local = measure_peak(
            {
                **common,
                "mode": "local",
                "cuts": [c.label for c in p.cuts],
                "granularity": p.granularity,
                "objective": p.objective,
                "objective_options": p.objective_options,
            }
        )
        report["real"] = {
            "e2e_peak_bytes": e2e["peak_bytes"],
            "local_peak_bytes": local["peak_bytes"],
            "ratio": local["peak_bytes"] / e2e["peak_bytes"],
            "method": e2e["method"],
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(p.table())
        if args.real:
            r = report["real"]
            print(
                f"real peak ({r['method']}): end-to-end {r['e2e_peak_bytes'] / 2**20:.1f} MiB, "
                f"local {r['local_peak_bytes'] / 2**20:.1f} MiB ({r['ratio']:.1%})"
            )
    return 0


def _cmd_train(args) -> int:
    from dataclasses import fields

    from ._config import TrainConfig
    from ._train import train

    # a flag not given is None and leaves TrainConfig's default; any value given is checked there
    given = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if f.name in vars(args) and getattr(args, f.name) is not None
    }
    config = TrainConfig(
        **{
            **given,
            "model_options": parse_options(args.model_opt),
            "head_options": parse_options(args.head_opt),
            "dataset_options": parse_options(args.dataset_opt),
            "objective_options": parse_options(args.objective_opt),
            "nesterov": not args.no_nesterov,
            "progress": not args.quiet,
        }
    )
    summary = train(config)
    print(json.dumps({"run": summary["run"], "final": summary["final"]}, indent=2))
    return 0


def _cmd_export(args) -> int:
    from ._export import export_run

    result = export_run(args.run, args.out)
    print(
        f"{result['file']}: {result['tensors']} tensors, {result['bytes'] / 2**20:.1f} MiB, "
        f"from {result['stages']} checkpoint file(s)"
    )
    return 0


def _cmd_demo(args) -> int:
    from ._demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed)
    return 0


def _cmd_summarize(args) -> int:
    from ._summary import summarize

    print(summarize(args.runs))
    return 0


def _cmd_probe(args) -> int:
    from dataclasses import fields
    from pathlib import Path

    from localkit_runs import make_folder, write_json

    from ._probe import SCHEMA, ProbeSettings, check_finished, load_probe, probe

    settings = ProbeSettings(
        **{f.name: getattr(args, f.name) for f in fields(ProbeSettings) if getattr(args, f.name) is not None}
    )
    if not args.no_plot:
        from ._probeplot import require_matplotlib

        require_matplotlib()  # before hours of probing, not after
    # a probe.json is drawn again, not measured again: probes run apart can share one figure
    sources = [load_probe(p) if p.endswith(".json") else check_finished(p) for p in args.runs]
    folders = [s for s in sources if isinstance(s, Path)]
    repeated = sorted({str(f) for f in folders if [g.resolve() for g in folders].count(f.resolve()) > 1})
    if repeated:
        raise ValueError(f"run folder(s) given twice: {', '.join(repeated)}; pass each run once")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    make_folder(out)
    results = []
    for source in sources:
        if isinstance(source, list):
            results.extend(source)
        else:
            results.append(
                probe(source, settings, device=args.device, data_root=args.data_root, progress=not args.quiet)
            )
        # written after every run: an interrupted probe keeps what it measured
        document = {"schema": SCHEMA, "runs": [r.to_dict() for r in results]}
        write_json(out / "probe.json", document)
    written = [out / "probe.json"]
    if not args.no_plot:
        from ._probeplot import plot_probe

        written.append(plot_probe(results, out / "probe.png"))
    if args.json:
        print(json.dumps(document, indent=2, default=str))
        return 0
    for result in results:
        accuracy = "" if result.test_acc is None else f"; its test accuracy {100 * result.test_acc:.1f}%"
        print(f"\n{result.run}: {result.group}{accuracy}")
        print(f"{'depth':>5}  {'features':24}  {'stage':>5}  {'linear acc':>10}  {'PSNR dB':>7}")
        for d in result.depths:
            psnr = "-" if d.recon_psnr_db is None else f"{d.recon_psnr_db:.2f}"
            stage = "-" if d.stage is None else str(d.stage)
            print(f"{d.depth:>5}  {d.label:24}  {stage:>5}  {100 * d.linear_test_acc:>9.1f}%  {psnr:>7}")
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m splitnet", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    about = "list registered backbones, objectives, heads, datasets (imports nothing)"
    p = sub.add_parser("list", help=about, description=about, formatter_class=_Help)
    p.add_argument("group", nargs="?", default="all", choices=("all", *GROUPS), help="which group to list")
    p.add_argument("--pattern", default="*", help="fnmatch pattern, e.g. 'cifar_*'")
    p.add_argument("--check", action="store_true", help="also import every entry and report broken plugins")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_list)

    about = "show where a model is cut into K local modules"
    p = sub.add_parser("plan", help=about, description=about, formatter_class=_Help)
    _add_model_args(p)
    _add_plan_args(p, MEMORY_BATCH)
    p.add_argument(
        "--list-cuts", action="store_true", help="list the cut points (of --cut-granularity) instead"
    )
    _add_dataset_name(p)
    p.set_defaults(func=_cmd_plan)

    about = "saved-for-backward ledger (and real peak) of local vs end-to-end"
    p = sub.add_parser("memory", help=about, description=about, formatter_class=_Help)
    _add_model_args(p)
    _add_plan_args(p, MEMORY_BATCH)
    p.add_argument("--real", action="store_true", help="also measure the real peak in fresh subprocesses")
    p.add_argument("--device", default="cpu", help="device for --real (cpu or cuda)")
    _add_dataset_name(p)
    p.set_defaults(func=_cmd_memory)

    about = "train end-to-end (--k 1) or locally (--k K --objective ...)"
    p = sub.add_parser("train", help=about, description=about, formatter_class=_Help)
    _add_model_args(p, planning=False)
    _add_plan_args(
        p, "examples per training step on each process (per replica under torchrun)", planning=False
    )
    p.add_argument("--dataset", default="digits", help="splitnet.datasets entry (digits works offline)")
    p.add_argument("--data-root", help="folder holding the dataset in its official layout")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument(
        "--dataset-opt",
        action="append",
        type=parse_option,
        metavar="NAME=VALUE",
        help="option for the dataset factory",
    )
    p.add_argument("--eval-split", default="test", help="split evaluated every epoch")
    p.add_argument("--epochs", type=int, help="passes over the training split")
    p.add_argument("--eval-batch-size", type=int, help="examples per evaluation step")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), help="optimizer of every stage")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--momentum", type=float, help="SGD momentum")
    p.add_argument("--no-nesterov", action="store_true", help="plain momentum instead of Nesterov's")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay")
    p.add_argument(
        "--schedule",
        choices=("cosine", "poly", "constant"),
        help="cosine decay, poly (power 0.9, as in segmentation), or constant",
    )
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up before the schedule")
    p.add_argument("--accumulate", type=int, help="gradient accumulation steps per update")
    p.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision (bf16 on CPU; fp16/bf16 on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile every stage")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: SPLITNET_THREADS, else the fewest of physical cores, "
        "CPUs this process may use and CPUs the load average leaves idle)",
    )
    p.add_argument("--seed", type=int, help="seed of weights, data order and augmentation")
    p.add_argument("--out", help="run folder: config, metrics.jsonl, checkpoint.pt")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    p.add_argument("--max-steps-per-epoch", type=int, help="cap the steps of an epoch (smoke runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--stage-parallel",
        action="store_true",
        help="under torchrun: one process per stage, pipelined (K x replicas processes)",
    )
    p.add_argument(
        "--full-build",
        action="store_true",
        help="stage-parallel: every process builds the whole model and keeps its stage (for models "
        "that cannot be built on the meta device, and for --balance time)",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        help="stage-parallel: batches a stage may send ahead of the next one",
    )
    p.add_argument("--dist-timeout", type=float, help="seconds before a stuck collective fails")
    p.set_defaults(func=_cmd_train)
    _config_defaults(p)

    p = sub.add_parser(
        "export",
        help="a run's trained model as one safetensors file, streamed stage by stage",
        description="Write the trained model of RUN (its state dict, under the model's own names) to "
        "one safetensors file, reading a sharded run one stage at a time.",
        formatter_class=_Help,
    )
    p.add_argument("run", help="run folder (--out of train), sharded or not")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "demo",
        help="the main job: end-to-end vs greedy vs InfoPro on digits, with a report",
        description="Train a CIFAR ResNet-32 on scikit-learn's digits end-to-end, with greedy local "
        "learning (K=4) and with InfoPro (K=4); print a table and write OUT/images.md, images.json, "
        "images.png and one run folder per method under OUT/images/.",
        formatter_class=_Help,
    )
    p.add_argument("--out", default="runs/demo", help="folder for the reports and the run folders")
    p.add_argument("--epochs", type=int, default=12, help="epochs of each method")
    p.add_argument("--seed", type=int, default=0, help="seed of every method's run")
    p.set_defaults(func=_cmd_demo)

    about = "mean +- std of finished runs, grouped by method and K"
    p = sub.add_parser("summarize", help=about, description=about, formatter_class=_Help)
    p.add_argument("runs", nargs="+", help="run folders (each with config.json and metrics.jsonl)")
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser(
        "probe",
        help="information-flow probe of finished runs: linear accuracy and reconstruction PSNR at every block",
        description="Measure, at the input and at every block output of each finished run, how linearly "
        "separable the classes are (a linear classifier) and how much of the input can be reconstructed "
        "(the reference code's decoder); write OUT/probe.json and OUT/probe.png.",
        formatter_class=_Help,
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="finished run folders (the --out of train), or probe.json files to draw again without measuring",
    )
    p.add_argument("--out", default="runs/probe", help="folder for probe.json and probe.png")
    p.add_argument("--linear-epochs", type=int, help="epochs of the linear classifier (default 30)")
    p.add_argument("--linear-lr", type=float, help="its Adam learning rate (default 1e-3)")
    p.add_argument("--decoder-epochs", type=int, help="epochs of the reconstruction decoder (default 30)")
    p.add_argument("--decoder-lr", type=float, help="its Adam learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, help="batch size of the probes (default 128)")
    p.add_argument("--train-samples", type=int, help="fit on this many training images (default: all)")
    p.add_argument("--seed", type=int, help="seed of the probes' random choices (default 0)")
    p.add_argument("--device", default="cpu", help="where the probes run (cpu, cuda, cuda:N)")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--data-root", help="where the runs' dataset lies now, if it moved since training")
    p.add_argument("--no-plot", action="store_true", help="write probe.json only (no matplotlib needed)")
    p.add_argument("--json", action="store_true", help="print probe.json instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_probe)
    return parser


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_logs(quiet: bool) -> None:
    """The library reports through ``logging`` (the objective at each cut, each epoch's line);
    the command line shows splitnet's INFO messages on stderr, or only warnings with --quiet."""
    logger = logging.getLogger("splitnet")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m splitnet`` and the ``splitnet`` console script."""
    from ._errors import TrainingError
    from ._peak import MeasurementError

    args = build_parser().parse_args(argv)
    _show_logs(quiet=bool(getattr(args, "quiet", False)))
    try:
        return args.func(args)
    except (
        RegistryError,
        ValueError,
        TrainingError,
        MeasurementError,
        FileNotFoundError,
        ImportError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
