"""Peak training memory of local vs end-to-end training, as in the InfoPro paper's Table 2.

ResNet-110 on 32x32 inputs at batch 1024, cut at block boundaries (the default), trained
with the greedy objective and with InfoPro (the loss weights of the reference code's
CIFAR-10 rows), auxiliary nets counted; K = 1..8, even and memory-balanced cuts, plus the
paper's own InfoPro* cuts. Reports the saved-tensor ledger and the real peak of a fresh
process (CPU: resident-set high-water mark; CUDA: max allocated) for every plan, and the
time per step relative to end-to-end.

    python packages/splitnet/benchmarks/bench_memory.py --out runs/bench           # full
    python packages/splitnet/benchmarks/bench_memory.py --out runs/bench --quick   # smoke
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import device_name, interleaved_medians

import splitnet
from splitnet._peak import measure_peak

PAPER = {2: 0.572, 3: 0.449, 4: 0.374}  # InfoPro*, ResNet-110, CIFAR-10 (Table 2)
TARGET = {2: 0.55, 3: 0.40, 4: 0.30}
MODEL, DATASET = "cifar_resnet110", "cifar10"


def step_seconds(model, plans, batch_size, repeats, device):
    """Median seconds per training step of end-to-end and of each plan, interleaved."""
    x = torch.rand(batch_size, 3, 32, 32, device=device)  # images in [0, 1], as InfoPro's decoder expects
    y = torch.randint(0, 10, (batch_size,), device=device)
    nets = {key: splitnet.split(model, p).train() for key, p in plans.items()}

    def e2e():
        F.cross_entropy(model(x), y).backward()

    runs = {
        "e2e": e2e,
        **{key: (lambda n=net: n.local_step(x, y, check_labels=False)) for key, net in nets.items()},
    }
    return interleaved_medians(runs, repeats, device, before=lambda: model.zero_grad(set_to_none=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--quick", action="store_true", help="batch 128, K in 1,2,4, no real peaks")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--time-batch", type=int, default=128, help="batch size of the step-time comparison")
    parser.add_argument(
        "--objectives",
        nargs="+",
        default=["greedy", "infopro"],
        help="objectives whose auxiliary nets are trained and counted (infopro needs localkit-infoloss)",
    )
    parser.add_argument(
        "--balances", nargs="+", default=["even", "memory", "infopro*"], help="how the cuts are chosen"
    )
    parser.add_argument(
        "--real-ks",
        type=int,
        nargs="+",
        default=list(range(2, 9)),
        help="K values whose real peak is measured (each is a fresh process at full batch, about a minute)",
    )
    parser.add_argument(
        "--per-stage",
        action="store_true",
        help="also measure each stage's real peak (one more step per measured plan): where the step peaks",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip the time-per-step comparison")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = 128 if args.quick else 1024
    ks = [2, 4] if args.quick else list(range(2, 9))
    torch.manual_seed(0)
    model = splitnet.create_backbone(MODEL).to(device)
    chain = splitnet.trace(model, torch.rand(2, 3, 32, 32, device=device))
    objectives = [o for o in args.objectives if o in splitnet.list_objectives()]
    for missing in sorted(set(args.objectives) - set(objectives)):
        print(f"objective {missing!r} is not installed: skipped", flush=True)
    rows, plans = [], {}
    for objective in objectives:
        for balance in args.balances:
            for k in ks:
                if balance in model.named_plans and k not in model.named_plans[balance]:
                    continue
                p = splitnet.plan(
                    model,
                    k,
                    balance=balance,
                    chain=chain,
                    batch_size=batch,
                    objective=objective,
                    backbone=MODEL,
                    dataset=DATASET,
                )
                plans[objective, balance, k] = p
                rows.append(
                    {
                        "objective": objective,
                        "balance": balance,
                        "k": k,
                        "cuts": [c.label for c in p.cuts],
                        "per_stage_bytes": p.stage_bytes,
                        "e2e_bytes": p.e2e_bytes,
                        "ledger_ratio": max(p.stage_bytes) / p.e2e_bytes,
                    }
                )
    real = not args.quick
    if real:
        spec = {"model": MODEL, "input_size": [3, 32, 32], "batch_size": batch, "device": args.device}
        e2e = measure_peak({**spec, "mode": "e2e"})
        for row in rows:
            if row["k"] not in args.real_ks:
                continue
            local = measure_peak(
                {
                    **spec,
                    "mode": "local",
                    "cuts": row["cuts"],
                    "objective": row["objective"],
                    "dataset": DATASET,
                    "per_stage": args.per_stage,
                }
            )
            row["real_peak_bytes"] = local["peak_bytes"]
            row["real_ratio"] = local["peak_bytes"] / e2e["peak_bytes"]
            stages = ""
            if args.per_stage:
                row["real_stage_peak_bytes"] = local["stage_peak_bytes"]
                mib = ", ".join(f"{b / 2**20:,.0f}" for b in local["stage_peak_bytes"])
                stages = f" (stages {mib} MiB)"
            print(
                f"{row['objective']:8s} {row['balance']:8s} K={row['k']}: ledger {row['ledger_ratio']:.1%}, "
                f"real {row['real_ratio']:.1%}{stages}",
                flush=True,
            )
    seconds = {}
    if not args.no_timing:
        timing_plans = {f"{o} {b} K={k}": p for (o, b, k), p in plans.items()}
        seconds = step_seconds(model, timing_plans, args.time_batch, 3 if args.quick else 5, device)
        for row in rows:
            key = f"{row['objective']} {row['balance']} K={row['k']}"
            if key in seconds:
                row["time_ratio"] = seconds[key] / seconds["e2e"]
    result = {
        "model": MODEL,
        "dataset": DATASET,
        "input": [3, 32, 32],
        "batch_size": batch,
        "granularity": "block",
        "objectives": objectives,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "time_batch": None if args.no_timing else args.time_batch,
        "e2e_seconds_per_step": seconds.get("e2e"),
        "rows": rows,
        "e2e_real_peak_bytes": e2e["peak_bytes"] if real else None,
        "real_method": e2e["method"] if real else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(result, indent=2))
    print(table(result))


def table(result: dict) -> str:
    lines = [
        f"ResNet-110, 32x32, batch {result['batch_size']}, block cuts, auxiliary nets counted; "
        f"device {result['device']}",
        "| objective | balance | K | ledger (% of E2E) | real peak (% of E2E) | paper InfoPro* | target "
        "| time / step vs E2E |",
        "|---|---|---|---|---|---|---|---|",
        "| end-to-end | | 1 | 100% | 100% | 100% | | 1.000x |",
    ]
    for r in result["rows"]:
        real = f"{r['real_ratio']:.1%}" if "real_ratio" in r else "-"
        paper = f"{PAPER[r['k']]:.1%}" if r["balance"] != "even" and r["k"] in PAPER else ""
        target = f"<= {TARGET[r['k']]:.0%}" if r["balance"] != "even" and r["k"] in TARGET else ""
        timing = f"{r['time_ratio']:.3f}x" if "time_ratio" in r else ""
        lines.append(
            f"| {r['objective']} | {r['balance']} | {r['k']} | {r['ledger_ratio']:.1%} | {real} | {paper} "
            f"| {target} | {timing} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
