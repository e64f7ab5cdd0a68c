"""InfoPro's default loss weights: the reference code's command table, by network, dataset and K.

The reference code (github.com/blackfeather-wang/InfoPro-Pytorch, ``Experiments on
CIFAR-SVHN-STL10/comand.sh``) gives one command per network, dataset, split and number of
local modules K, each with four weights: ``--ixx_1`` / ``--ixx_2``, the reconstruction
weight ``lambda_1`` at the first and at the last cut, and ``--ixy_1`` / ``--ixy_2``, the
task weight ``lambda_2`` likewise (linear in between). :data:`PAPER_LAMBDAS` holds them all.

Where the table has no row for a network, dataset or K, :func:`paper_lambdas` falls back
(our choice, not the paper's), one step at a time:

1. network: ``cifar_resnet32`` and ``cifar_resnet110`` are the tuned ones; another CIFAR
   ResNet takes the tuned depth nearest on a log scale (20, 44, 56 -> 32; 1202 -> 110);
   any other network, or none given, takes ResNet-110's rows (tuned on every dataset).
2. dataset: ``cifar10``, ``stl10`` and ``svhn`` where that network has rows (ResNet-32 was
   tuned on CIFAR-10 only); any other dataset, or none given, takes CIFAR-10's.
3. cuts: the InfoPro* rows (the paper's memory-balanced cuts, ResNet-110 on CIFAR-10 and
   STL-10, K = 2, 3, 4) when the plan is one of the model's InfoPro* plans (``infopro*``,
   ``infopro*-stl10``); otherwise InfoPro's.
4. K: the tuned K of the row nearest on a log2 scale (InfoPro: 3 -> 4, 5 -> 4, 6..11 -> 8,
   12 and more -> 16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# comand.sh of the reference code: (network, dataset, cuts) -> K -> (line, ixx_1, ixy_1, ixx_2, ixy_2)
_COMAND_SH: dict[tuple[str, str, str], dict[int, tuple[int, float, float, float, float]]] = {
    ("resnet32", "cifar10", "infopro"): {
        2: (7, 5, 1, 0, 0),
        4: (8, 6, 0, 1, 2),
        8: (9, 5, 0, 0, 2),
        16: (10, 5, 0.05, 0.2, 0.5),
    },
    ("resnet110", "cifar10", "infopro"): {
        2: (15, 5, 0.5, 0, 0),
        4: (16, 1, 0, 0, 1),
        8: (17, 5, 0, 0, 1),
        16: (18, 5, 0, 0.5, 1),
    },
    ("resnet110", "cifar10", "infopro*"): {
        2: (23, 5, 0.1, 0, 0),
        3: (24, 5, 0, 5, 0.1),
        4: (25, 5, 0, 5, 0.1),
    },
    ("resnet110", "stl10", "infopro"): {
        2: (34, 10, 1, 0, 0),
        4: (35, 20, 0.2, 5, 2),
        8: (36, 20, 0.2, 5, 1),
        16: (37, 20, 0.5, 10, 0.1),
    },
    ("resnet110", "stl10", "infopro*"): {
        2: (42, 20, 1, 0, 0),
        3: (43, 20, 0.5, 5, 2),
        4: (44, 20, 0.5, 10, 1),
    },
    ("resnet110", "svhn", "infopro"): {
        2: (53, 1, 0.1, 0, 0),
        4: (54, 5, 0, 0.5, 1),
        8: (55, 5, 0, 0.5, 2),
        16: (56, 5, 0.2, 0.5, 1),
    },
}

Pair = tuple[float, float]

PAPER_LAMBDAS: dict[tuple[str, str, str], dict[int, tuple[Pair, Pair]]] = {
    row: {
        k: ((float(ixx_1), float(ixx_2)), (float(ixy_1), float(ixy_2)))
        for k, (_, ixx_1, ixy_1, ixx_2, ixy_2) in by_k.items()
    }
    for row, by_k in _COMAND_SH.items()
}
"""``(network, dataset, cuts) -> {K: ((recon_first, recon_last), (task_first, task_last))}``."""

_NETWORKS = {"cifar_resnet32": "resnet32", "cifar_resnet110": "resnet110"}
_TITLES = {"resnet32": "ResNet-32", "resnet110": "ResNet-110", "infopro": "InfoPro", "infopro*": "InfoPro*"}


@dataclass(frozen=True)
class PaperLambdas:
    """The default weights :func:`paper_lambdas` chose, and where they come from.

    Attributes:
        lambda_recon: ``(first cut, last cut)`` reconstruction weights (``--ixx_1``, ``--ixx_2``).
        lambda_task: ``(first cut, last cut)`` task weights (``--ixy_1``, ``--ixy_2``).
        network, dataset, cuts: the row of the table (``"resnet110"``, ``"cifar10"``,
            ``"infopro"`` or ``"infopro*"``).
        k: the K of the row.
        line: the row's line in the reference code's ``comand.sh``.
        fallbacks: what was asked and not in the table, and what was taken instead
            (empty when the table has the exact row).
    """

    lambda_recon: Pair
    lambda_task: Pair
    network: str
    dataset: str
    cuts: str
    k: int
    line: int
    fallbacks: tuple[str, ...] = ()

    def describe(self) -> str:
        """``"comand.sh line 16 (ResNet-110 + InfoPro, cifar10, K=4)"``, plus any fallback."""
        text = (
            f"comand.sh line {self.line} ({_TITLES[self.network]} + {_TITLES[self.cuts]}, "
            f"{self.dataset}, K={self.k})"
        )
        if self.fallbacks:
            text += "; our fallback: " + "; ".join(self.fallbacks)
        return text


def _network(backbone: str | None) -> tuple[str, str | None]:
    if backbone in _NETWORKS:
        return _NETWORKS[backbone], None
    depth = backbone[len("cifar_resnet") :] if backbone and backbone.startswith("cifar_resnet") else ""
    if depth.isdigit():
        tuned = min((32, 110), key=lambda d: abs(math.log(int(depth)) - math.log(d)))
        return f"resnet{tuned}", f"{backbone} -> the nearest tuned depth, ResNet-{tuned}"
    asked = "no network named" if backbone is None else f"{backbone} is not in the table"
    return "resnet110", f"{asked} -> ResNet-110"


def paper_lambdas(
    num_cuts: int,
    *,
    backbone: str | None = None,
    dataset: str | None = None,
    named_plan: str | None = None,
) -> PaperLambdas:
    """InfoPro's default weights for ``K = num_cuts + 1`` local modules of ``backbone`` on ``dataset``.

    Looks the reference code's command table up (:data:`PAPER_LAMBDAS`), with the fallbacks
    of the module docstring where it has no row.

    Args:
        num_cuts: number of cuts, ``K - 1`` (at least 1).
        backbone: the network's name (``"cifar_resnet110"``), or ``None``.
        dataset: the ``splitnet.datasets`` name (``"cifar10"``, ``"stl10"``, ``"svhn"``), or ``None``.
        named_plan: the model's named plan the cuts are (``"infopro*"`` and ``"infopro*-stl10"``
            select InfoPro*'s rows).

    Returns:
        The weights and the row they come from.

    Raises:
        ValueError: ``num_cuts < 1``.

    Example:
        >>> chosen = paper_lambdas(3, backbone="cifar_resnet110", dataset="cifar10")
        >>> chosen.lambda_recon, chosen.lambda_task
        ((1.0, 0.0), (0.0, 1.0))
        >>> chosen.describe()
        'comand.sh line 16 (ResNet-110 + InfoPro, cifar10, K=4)'
    """
    if num_cuts < 1:
        raise ValueError(f"paper_lambdas: num_cuts must be at least 1, got {num_cuts}")
    network, fallback = _network(backbone)
    fallbacks = [fallback] if fallback else []
    row_data = dataset
    if (network, dataset, "infopro") not in PAPER_LAMBDAS:
        asked = "no dataset named" if dataset is None else f"{_TITLES[network]} was not tuned on {dataset}"
        fallbacks.append(f"{asked} -> cifar10")
        row_data = "cifar10"
    cuts = "infopro*" if named_plan is not None and named_plan.startswith("infopro*") else "infopro"
    if (network, row_data, cuts) not in PAPER_LAMBDAS:
        fallbacks.append(f"no InfoPro* row for {_TITLES[network]} on {row_data} -> InfoPro's")
        cuts = "infopro"
    row = PAPER_LAMBDAS[network, row_data, cuts]
    k = num_cuts + 1
    if k not in row:
        nearest = min(row, key=lambda tuned: abs(math.log2(k) - math.log2(tuned)))
        fallbacks.append(f"K={k} is not tuned -> K={nearest}, the nearest on a log2 scale")
        k = nearest
    recon, task = row[k]
    line = _COMAND_SH[network, row_data, cuts][k][0]
    return PaperLambdas(recon, task, network, row_data, cuts, k, line, tuple(fallbacks))
