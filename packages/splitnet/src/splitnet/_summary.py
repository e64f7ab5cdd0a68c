"""Aggregate finished runs: mean +- std of the final test metric per method and K."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def method_label(config: dict) -> str:
    """``end-to-end`` for K = 1, else the objective with its non-default options."""
    if config.get("k", 1) == 1 and not config.get("cuts"):
        return "end-to-end"
    options = ", ".join(f"{k}={v}" for k, v in sorted(config.get("objective_options", {}).items()))
    return config["objective"] + (f" ({options})" if options else "")


def load_run(folder: str | Path) -> dict:
    """A finished run's config and final metrics.

    Raises:
        FileNotFoundError: the folder has no config.json or metrics.jsonl.
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    if not lines:
        raise FileNotFoundError(f"{folder / 'metrics.jsonl'} is empty: the run has not finished an epoch")
    return {"config": config["config"], "plan": config.get("plan", {}), "final": json.loads(lines[-1])}


def summarize(folders: list[str]) -> str:
    """A markdown table grouping finished runs (those with summary.json) by model, method and K.

    A folder without summary.json is listed as unfinished.

    Raises:
        FileNotFoundError: a path that does not exist or is not a folder (a mistyped run).
    """
    missing = [f for f in folders if not Path(f).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"not a run folder: {', '.join(missing)} (no such folder); pass the --out folders of "
            "`python -m splitnet train`"
        )
    groups: dict[tuple, list[dict]] = {}
    unfinished = [f for f in folders if not (Path(f) / "summary.json").exists()]
    for folder in folders:
        if folder in unfinished:
            continue
        run = load_run(folder)
        cfg = run["config"]
        k = run["plan"].get("k", cfg["k"])
        groups.setdefault((cfg["model"], method_label(cfg), k), []).append(run)
    rows = [
        "| model | method | K | runs | epochs | test accuracy (%) | test error (%) | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (model, label, k), runs in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][2], item[0][1])
    ):
        accs = [100 * r["final"]["test_acc"] for r in runs if "test_acc" in r["final"]]
        mean = statistics.fmean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        seeds = ",".join(str(r["config"]["seed"]) for r in runs)
        epochs = ",".join(sorted({str(r["final"]["epoch"]) for r in runs}))
        rows.append(
            f"| {model} | {label} | {k} | {len(runs)} | {epochs} | {mean:.2f} ± {std:.2f} | "
            f"{100 - mean:.2f} | {seeds} |"
        )
    if unfinished:
        rows.append(f"\n{len(unfinished)} unfinished run(s) left out: {', '.join(unfinished)}")
    return "\n".join(rows)
