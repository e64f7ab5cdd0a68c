"""Time per training step: InfoPro and greedy local training at K=4 vs end-to-end.

ResNet-110 on 32x32 inputs, memory-balanced cuts (costed with each objective), measured
side by side in one process, interleaved, median of several steps. The paper reports
1.134x wall time for InfoPro K=4 on GPU; our target on CPU is at most 1.10x.

    python packages/splitnet/benchmarks/bench_step_time.py --out runs/bench [--batch 128] [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import device_name, interleaved_medians

import splitnet

METHODS = [
    ("greedy K=4", "greedy", {}),
    ("InfoPro (contrast) K=4", "infopro", {"check_inputs": False}),
    ("InfoPro (softmax) K=4", "infopro", {"check_inputs": False, "task_loss": "cross_entropy"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats at batch 32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    batch, repeats = (32, 3) if args.quick else (args.batch, args.repeats)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = splitnet.create_backbone("cifar_resnet110").to(device).train()
    example = torch.randn(2, 3, 32, 32, device=device)
    chain = splitnet.trace(model, example)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def e2e():
        F.cross_entropy(model(x), y).backward()

    runs, cuts = {"end-to-end": e2e}, {}
    for label, objective, options in METHODS:
        if objective not in splitnet.list_objectives():
            print(
                f"skipping {label}: objective '{objective}' is not installed (pip install localkit-infoloss)"
            )
            continue
        p = splitnet.plan(
            model,
            4,
            balance="memory",
            chain=chain,
            objective=objective,
            objective_options=options,
            batch_size=batch,
        )
        net = splitnet.split(model, p).to(device).train()
        cuts[label] = [c.label for c in p.cuts]
        runs[label] = lambda n=net: n.local_step(x, y, check_labels=False)
    seconds = interleaved_medians(runs, repeats, device, before=lambda: model.zero_grad(set_to_none=True))
    name = device_name(device)
    result = {
        "model": "cifar_resnet110",
        "batch_size": batch,
        "device": name,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "seconds_per_step": seconds,
        "ratio_to_e2e": {k: v / seconds["end-to-end"] for k, v in seconds.items()},
        "cuts": cuts,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_time.json").write_text(json.dumps(result, indent=2))
    print(f"ResNet-110, 32x32, batch {batch}, {name}, {result['threads']} threads, median of {repeats}")
    print("| method | ms / step | vs end-to-end |\n|---|---|---|")
    for label, s in seconds.items():
        print(f"| {label} | {1e3 * s:.0f} | {result['ratio_to_e2e'][label]:.3f}x |")


if __name__ == "__main__":
    main()
