"""The main job on the embedded default: end-to-end vs greedy vs InfoPro, side by side.

Trains a CIFAR ResNet-32 on scikit-learn's handwritten digits three ways (end-to-end, greedy
supervised learning with K=4, InfoPro with K=4, memory-balanced cuts), then prints and writes
a report: test accuracy, peak memory (the saved-tensor ledger and the real peak of a fresh
process) and time per step, each relative to end-to-end.
"""

from __future__ import annotations

import json
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
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


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
        "| method | K | test acc | saved for backward (ledger) | real peak | time / step |",
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
training step at batch {BATCH}. Reproduce: `nox -s demo` (or `python -m splitnet demo`).

{table}

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
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [s + i * width for s in range(len(r["per_stage_bytes"]))]
        left.bar(xs, [b / 2**20 for b in r["per_stage_bytes"]], width, label=r["method"])
    left.set_xlabel("stage")
    left.set_ylabel("saved for backward (MiB)")
    left.set_title(f"memory per stage, batch {BATCH}")
    left.legend(fontsize=8)
    right.bar([r["method"] for r in rows], [100 * r["test_acc"] for r in rows], color="tab:green")
    right.set_ylabel("test accuracy (%)")
    right.set_ylim(min(100 * r["test_acc"] for r in rows) - 5, 100)
    right.set_title("accuracy per method")
    right.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
