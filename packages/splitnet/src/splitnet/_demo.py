"""The main job on the embedded default: end-to-end vs greedy vs InfoPro, side by side.

Trains a CIFAR ResNet-32 on scikit-learn's handwritten digits three ways (end-to-end, greedy
supervised learning with K=4, InfoPro with K=4, memory-balanced cuts), then prints and writes
a report: test accuracy, peak memory (the saved-tensor ledger and the real peak of a fresh
process) and time per step, each relative to end-to-end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ._config import TrainConfig
from ._peak import measure_peak
from ._registries import OBJECTIVES
from ._train import train

MODEL = "cifar_resnet32"
BATCH = 64
METHODS = [
    ("end-to-end", 1, "greedy"),
    ("greedy SL, K=4", 4, "greedy"),
    ("InfoPro (contrast), K=4", 4, "infopro"),
]


def _slug(label: str) -> str:
    """A run folder name: ``"InfoPro (contrast), K=4"`` -> ``"infopro-contrast-k-4"``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def run_demo(out: str | Path, epochs: int = 12, seed: int = 0) -> list[dict]:
    """Train the three methods into ``out/images/`` and write ``out/images.{md,json,png}``."""
    out = Path(out)
    rows, skipped = [], []
    for label, k, objective in METHODS:
        if objective not in OBJECTIVES:
            skipped.append(
                f"{label}: objective '{objective}' is not installed (pip install localkit-infoloss)"
            )
            continue
        print(f"== {label}")
        config = TrainConfig(
            model=MODEL,
            dataset="digits",
            k=k,
            objective=objective,
            epochs=epochs,
            batch_size=BATCH,
            lr=0.05,
            weight_decay=5e-4,
            seed=seed,
            out=str(out / "images" / _slug(label)),
            resume=True,
        )
        summary = train(config)
        spec = {
            "model": MODEL,
            "input_size": [3, 32, 32],
            "batch_size": BATCH,
            "model_options": {"num_classes": 10},
        }
        if k == 1:
            real = measure_peak({**spec, "mode": "e2e"})
        else:
            real = measure_peak({**spec, "mode": "local", "cuts": summary["cuts"], "objective": objective})
        rows.append(
            {
                "method": label,
                "k": k,
                "objective": objective,
                "cuts": summary["cuts"],
                "test_acc": summary["final"]["test_acc"],
                "seconds_per_step": summary["final"]["seconds_per_step"],
                "ledger_bytes": max(summary["per_stage_bytes"]),
                "ledger_e2e_bytes": summary["e2e_bytes"],
                "per_stage_bytes": summary["per_stage_bytes"],
                "real_peak_bytes": real["peak_bytes"],
                "real_method": real["method"],
            }
        )
    base = rows[0]
    for row in rows:
        row["ledger_ratio"] = row["ledger_bytes"] / base["ledger_e2e_bytes"]
        row["real_ratio"] = row["real_peak_bytes"] / base["real_peak_bytes"]
        row["time_ratio"] = row["seconds_per_step"] / base["seconds_per_step"]
    table = _table(rows)
    print("\n" + table)
    for note in skipped:
        print(f"skipped {note}")
    (out / "images.json").write_text(
        json.dumps(
            {
                "model": MODEL,
                "batch_size": BATCH,
                "epochs": epochs,
                "seed": seed,
                "rows": rows,
                "skipped": skipped,
            },
            indent=2,
        )
    )
    (out / "images.md").write_text(_report(table, rows, epochs, seed, skipped))
    _plot(rows, out / "images.png")
    return rows


def _table(rows: list[dict]) -> str:
    lines = [
        "| method | K | test acc | saved for backward (ledger) | real peak (RSS growth) | time / step (wall-clock) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['k']} | {100 * r['test_acc']:.1f}% | {r['ledger_bytes'] / 2**20:.1f} MiB "
            f"({r['ledger_ratio']:.0%}) | {r['real_peak_bytes'] / 2**20:.1f} MiB ({r['real_ratio']:.0%}) | "
            f"{1e3 * r['seconds_per_step']:.0f} ms ({r['time_ratio']:.2f}x) |"
        )
    return "\n".join(lines)


def _report(table: str, rows: list[dict], epochs: int, seed: int, skipped: list[str]) -> str:
    cuts = "\n".join(f"- {r['method']}: cuts after {', '.join(r['cuts']) or '(none)'}" for r in rows)
    notes = "".join(f"\nSkipped: {s}\n" for s in skipped)
    return f"""# Demo: local learning on the embedded digits data

{MODEL}, scikit-learn handwritten digits resized to 32x32 (1,297 train / 500 test images),
{epochs} epochs, batch {BATCH}, SGD with cosine schedule, seed {seed}. Percentages are relative to
end-to-end training. The ledger counts the bytes autograd saves for backward (the largest stage,
auxiliary nets included); the real peak is the growth of a fresh process's resident set over one
training step at batch {BATCH}. Time per step is wall-clock time, so it grows when other
processes share the CPU. Reproduce: `nox -s demo` (or `python -m splitnet demo`).

{table}

![memory per stage, accuracy and time per step](images.png)

{cuts}
{notes}"""


def _plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            f"no plot written: matplotlib is missing (pip install 'localkit-splitnet[plot]'); wanted {path}"
        )
        return
    fig = _figure(rows, plt)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _figure(rows: list[dict], plt):
    """Memory per stage (1..K, end-to-end as a reference line), accuracy and wall-clock time."""
    colours = {r["method"]: f"C{i}" for i, r in enumerate(rows)}
    fig, (memory, accuracy, time) = plt.subplots(1, 3, figsize=(14, 4))
    local = [r for r in rows if r["k"] > 1]
    width = 0.8 / max(len(local), 1)
    for i, r in enumerate(local):
        stages = range(1, len(r["per_stage_bytes"]) + 1)
        xs = [s + (i - (len(local) - 1) / 2) * width for s in stages]
        memory.bar(
            xs,
            [b / 2**20 for b in r["per_stage_bytes"]],
            width,
            label=r["method"],
            color=colours[r["method"]],
        )
    for r in rows:
        if r["k"] == 1:
            memory.axhline(
                r["ledger_e2e_bytes"] / 2**20,
                color=colours[r["method"]],
                linestyle="--",
                label=f"{r['method']} (whole network)",
            )
    most = max((r["k"] for r in rows), default=1)
    memory.set_xticks(range(1, most + 1), [str(s) for s in range(1, most + 1)])
    memory.set_xlabel("stage")
    memory.set_ylabel("saved for backward, ledger (MiB)")
    memory.set_ylim(bottom=0)
    memory.set_title(f"memory per stage, batch {BATCH}")
    memory.legend(fontsize=8)
    names = [r["method"] for r in rows]
    accuracy.bar(names, [100 * r["test_acc"] for r in rows], color=[colours[n] for n in names])
    accuracy.axhline(10, color="grey", linestyle=":", label="chance (10 classes)")
    accuracy.set_ylim(0, 100)
    accuracy.set_ylabel("test accuracy (%)")
    accuracy.set_title("accuracy per method")
    accuracy.legend(fontsize=8)
    time.bar(names, [1e3 * r["seconds_per_step"] for r in rows], color=[colours[n] for n in names])
    time.set_ylim(bottom=0)
    time.set_ylabel("wall-clock time per step (ms)")
    time.set_title("time per training step (wall-clock)")
    for axes in (accuracy, time):
        axes.tick_params(axis="x", labelsize=8, labelrotation=15)
    fig.tight_layout()
    return fig
