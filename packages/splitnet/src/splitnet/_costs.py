"""What a stage costs under each balance: the matrices :mod:`splitnet._partition` minimises.

Every builder returns ``cost[a][b]`` for a stage made of pieces ``a .. b-1`` of a chain of
``n`` pieces (``inf`` where ``b <= a``):

* ``even``: the number of units in the stage: pieces, or runs of pieces between the
  allowed cuts (at block granularity, blocks).
* ``memory``: the stage's peak saved-for-backward bytes at the planned batch size, its cut
  tensor and its objective's auxiliary nets included (from the ledger, ``_memory.py``).
* ``time``: the stage's forward+backward seconds plus its objective's at the cut it ends on
  (from ``measure_times``, ``_memory.py``).

:func:`only_at` then forbids the cuts where no objective can be built. To add a balance,
add a builder here and its measurement and name in ``_plan.py``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from ._memory import MemoryLedger


def even_costs(num_pieces: int, boundaries: Collection[int] | None = None) -> list[list[float]]:
    """The number of units of every stage: the largest stage has as few units as possible.

    A unit is a piece, or with ``boundaries`` (the cut indices a stage may end at; cut ``i``
    lies after piece ``i``) a run of pieces from one boundary to the next, so that at block
    granularity an even plan counts blocks. ``cost[a][b] = b - a`` without ``boundaries``.

    Example:
        >>> even_costs(4, boundaries={1})[0]
        [inf, 1.0, 1.0, 2.0, 2.0]
    """
    inside = set(range(num_pieces - 1)) if boundaries is None else set(boundaries)
    # prefix[i]: boundaries among cuts 0 .. i-1
    prefix = [0]
    for i in range(num_pieces):
        prefix.append(prefix[-1] + (i in inside))
    return [
        [float(1 + prefix[b - 1] - prefix[a]) if b > a else math.inf for b in range(num_pieces + 1)]
        for a in range(num_pieces + 1)
    ]


def memory_costs(ledger: MemoryLedger, batch_size: int) -> list[list[float]]:
    """Peak saved-for-backward bytes of every possible stage at ``batch_size``."""
    return ledger.cost_matrix(batch_size)


def time_costs(piece_seconds: Sequence[float], aux_seconds: Sequence[float]) -> list[list[float]]:
    """Seconds of every possible stage: its pieces, plus the objective at the cut it ends on.

    ``aux_seconds[i]`` is the objective's time at cut ``i`` (after piece ``i``); the last
    stage ends at the model's output and has none (its task loss is timed with the last piece).

    Example:
        >>> time_costs([1.0, 2.0], [0.5])
        [[inf, 1.5, 3.0], [inf, inf, 2.0], [inf, inf, inf]]
    """
    n = len(piece_seconds)
    if len(aux_seconds) != n - 1:
        raise ValueError(f"{n} pieces have {n - 1} cuts, got {len(aux_seconds)} objective times")
    prefix = [0.0]
    for seconds in piece_seconds:
        prefix.append(prefix[-1] + seconds)
    return [
        [
            prefix[b] - prefix[a] + (aux_seconds[b - 1] if b < n else 0.0) if b > a else math.inf
            for b in range(n + 1)
        ]
        for a in range(n + 1)
    ]


def only_at(cost: list[list[float]], usable: Collection[int]) -> list[list[float]]:
    """``cost`` with every stage that ends at a cut outside ``usable`` forbidden (``inf``).

    Cut ``i`` lies after piece ``i``; the last stage, which ends at the output, stays allowed.

    Example:
        >>> only_at(even_costs(3), usable={1})[0]
        [inf, inf, 2.0, 3.0]
    """
    n = len(cost) - 1
    return [[value if b == n or b - 1 in usable else math.inf for b, value in enumerate(row)] for row in cost]
