"""The probe's figure: linear accuracy and reconstruction PSNR against depth, one curve per method.

Results are grouped by what was trained (model, dataset, method and K); the seeds of a
group are drawn as their mean with a band from the lowest to the highest seed. The cuts of
each local method are vertical lines, and the no-information baselines horizontal ones.
Matplotlib is an optional extra: ``pip install 'localkit-splitnet[plot]'``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from localkit_runs import atomic_write

from ._probe import ProbeResult

# end-to-end, then the paper's two local methods, in the colours a reader meets first
_COLOURS = {"end-to-end": "black", "greedy": "tab:red", "infopro": "tab:blue"}
_SPARE = ("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
_STYLES = ("-", "--", "-.", ":")


def require_matplotlib():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "the probe's figure needs matplotlib: pip install 'localkit-splitnet[plot]' (or pass --no-plot)"
        ) from exc
    return plt


def _groups(results: Sequence[ProbeResult]) -> dict[tuple, list[ProbeResult]]:
    groups: dict[tuple, list[ProbeResult]] = {}
    for result in results:
        groups.setdefault((result.model, result.dataset, result.k, result.method), []).append(result)
    for (model, _, _, _), members in groups.items():
        labels = [tuple(d.label for d in r.depths) for r in members]
        if len(set(labels)) > 1:
            raise ValueError(
                f"runs of {members[0].group} ({model}) were probed at different depths and cannot be "
                "averaged: probe them with the same model and settings"
            )
    return dict(
        sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2], item[0][3]))
    )


def _colours(methods: list[str]) -> dict[str, str]:
    """One colour per method: the usual one for its objective the first time, a spare one after."""
    colours, spare = {}, list(_SPARE)
    for method in methods:
        usual = _COLOURS.get(method.split(" ")[0])
        if usual is not None and usual not in colours.values():
            colours[method] = usual
        else:
            colours[method] = spare.pop(0) if spare else "grey"
    return colours


def plot_probe(results: Sequence[ProbeResult], path: str | os.PathLike) -> Path:
    """Draw the probe's figure for ``results`` and write it to ``path`` (PNG), atomically.

    Two panels share the depth axis (0 = the input, then every block output): held-out
    accuracy of a linear classifier (0-100%, the ``I(h, y)`` proxy) and held-out PSNR of
    the reference decoder (from 0 dB, the ``I(h, x)`` proxy). One curve per group of runs
    with the same model, dataset, method and K; several seeds are drawn as their mean and
    a band from the lowest to the highest seed.

    Args:
        results: what :func:`splitnet.probe` returned, for one or several runs.
        path: the PNG to write.

    Returns:
        ``path``.

    Raises:
        ImportError: matplotlib is not installed (the ``plot`` extra).
        ValueError: no results, or runs of one group probed at different depths.

    Example:
        >>> results = [splitnet.probe(f"runs/{name}") for name in ("e2e", "greedy-k4")]  # doctest: +SKIP
        >>> splitnet.plot_probe(results, "runs/probe.png")  # doctest: +SKIP
    """
    if not results:
        raise ValueError("plot_probe needs at least one probe result")
    plt = require_matplotlib()
    import numpy as np

    groups = _groups(results)
    models = {key[:2] for key in groups}
    colours = _colours(list(dict.fromkeys(key[3] for key in groups)))
    styles = {
        k: _STYLES[i % len(_STYLES)] for i, k in enumerate(sorted({key[2] for key in groups if key[2] > 1}))
    }
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True)
    cut_sets: dict[tuple[float, ...], list[tuple[str, str]]] = {}
    depth_count = 0
    for (model, dataset, k, _), members in groups.items():
        first = members[0]
        label = first.group + (f" ({model}, {dataset})" if len(models) > 1 else "")
        label += f", {len(members)} seeds" if len(members) > 1 else ""
        colour = colours[first.method]
        style = styles.get(k, "-")
        x = np.array([d.depth for d in first.depths])
        depth_count = max(depth_count, len(x))
        accuracy = np.array([[100 * d.linear_test_acc for d in r.depths] for r in members])
        psnr = np.array(
            [[np.nan if d.recon_psnr_db is None else d.recon_psnr_db for d in r.depths] for r in members]
        )
        for axis, values in ((top, accuracy), (bottom, psnr)):
            axis.plot(x, values.mean(0), style, color=colour, marker="o", markersize=3.5, label=label)
            if len(members) > 1:
                axis.fill_between(x, values.min(0), values.max(0), color=colour, alpha=0.18, linewidth=0)
        if first.cut_positions:
            cut_sets.setdefault(tuple(first.cut_positions), []).append((first.group, colour))
    for positions, owners in cut_sets.items():
        colour = owners[0][1] if len(owners) == 1 else "grey"
        label = "cuts: " + ", ".join(group for group, _ in owners)
        for i, position in enumerate(positions):
            for axis in (top, bottom):
                axis.axvline(
                    position, color=colour, linestyle=":", linewidth=1.2, label=label if i == 0 else None
                )
    reference = next(iter(groups.values()))[0]
    top.axhline(
        100 * reference.baselines["majority_acc"],
        color="grey",
        linestyle="--",
        linewidth=0.8,
        label="majority class (no information)",
    )
    bottom.axhline(
        reference.baselines["mean_image_psnr_db"],
        color="grey",
        linestyle="--",
        linewidth=0.8,
        label="mean training image (no information)",
    )
    top.set_ylim(0, 100)
    top.set_ylabel("linear probe, held-out accuracy (%)")
    top.set_title("I(h, y) proxy: linear separability", fontsize=10)
    top.grid(axis="y", alpha=0.3)
    finite = [v for r in results for d in r.depths if d.recon_psnr_db is not None for v in [d.recon_psnr_db]]
    finite.append(reference.baselines["mean_image_psnr_db"])
    bottom.set_ylim(0, max(v for v in finite if np.isfinite(v)) * 1.1)
    bottom.set_ylabel("reconstruction, held-out PSNR (dB)")
    bottom.set_title("I(h, x) proxy: reference decoder on frozen features", fontsize=10)
    bottom.grid(axis="y", alpha=0.3)
    names = [d.label for d in reference.depths]
    bottom.set_xticks(range(depth_count))
    bottom.set_xlim(-0.5, depth_count - 0.5)
    bottom.set_xlabel(
        f"depth: 0 = {names[0]}, 1 = {names[1]}, ..., {len(names) - 1} = {names[-1]} (block outputs)"
        if len(names) > 2
        else "depth (block outputs)"
    )
    top.legend(fontsize=7.5, loc="lower right")
    bottom.legend(fontsize=7.5, loc="lower left")
    seeds = "; seeds: mean line, min-max band" if any(len(m) > 1 for m in groups.values()) else ""
    what = ", ".join(sorted(m if d is None else f"{m} on {d}" for m, d in models))
    fig.suptitle(f"Information-flow probe: {what}{seeds}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130))
    plt.close(fig)
    return path
