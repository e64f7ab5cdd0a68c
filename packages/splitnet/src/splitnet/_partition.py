"""Min-max partitions of a chain of pieces into K contiguous stages (pure: no torch, no model).

Given ``cost[a][b]``, the cost of one stage made of pieces ``a .. b-1`` (``inf`` where such
a stage is not allowed), find the K stages whose largest cost is smallest. The cost
builders in ``_costs.py`` say what a stage costs under each balance; :func:`splitnet.plan`
measures, builds the costs and calls this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence


def iter_min_max_partitions(
    cost: Sequence[Sequence[float]], k_max: int
) -> Iterator[tuple[int, float, list[int]]]:
    """Yield ``(k, optimum, ends)`` for k = 1, 2, ... k_max: exact min-max contiguous partitions.

    ``cost[a][b]`` is the cost of a stage of pieces ``a .. b-1``; a partition's value is its
    largest stage cost. Dynamic programming, O(n^2) per k. ``ends`` lists each stage's end
    piece (the last is ``n``); it is empty and the optimum ``inf`` when every partition into
    k stages contains an infinite cost. Among equally good partitions, the last stage starts
    as early as possible and the stages before it are, by the same rule, the best partition
    of the pieces before it.

    Raises:
        ValueError: ``k_max`` below 1, or ``cost`` is not an (n+1) x (n+1) matrix.

    Example:
        >>> cost = [[float(b - a) if b > a else math.inf for b in range(4)] for a in range(4)]
        >>> [(k, value, ends) for k, value, ends in iter_min_max_partitions(cost, 3)]
        [(1, 3.0, [3]), (2, 2.0, [1, 3]), (3, 1.0, [1, 2, 3])]
    """
    n = len(cost) - 1
    if k_max < 1:
        raise ValueError(f"a partition needs at least 1 stage, got k={k_max}")
    if n < 1 or any(len(row) != n + 1 for row in cost):
        raise ValueError(f"cost must be an (n+1) x (n+1) matrix for n >= 1 pieces, got {len(cost)} rows")
    prev = [0.0] + [math.inf] * n
    choices: list[list[int]] = []
    for k in range(1, k_max + 1):
        row, pick = [math.inf] * (n + 1), [-1] * (n + 1)
        for b in range(k, n + 1):
            for a in range(k - 1, b):
                value = prev[a] if prev[a] > cost[a][b] else cost[a][b]
                if value < row[b]:
                    row[b], pick[b] = value, a
        choices.append(pick)
        prev = row
        ends: list[int] = []
        if not math.isinf(row[n]):
            b = n
            for j in range(k, 0, -1):
                ends.append(b)
                b = choices[j - 1][b]
        yield k, row[n], ends[::-1]


def min_max_partition(cost: Sequence[Sequence[float]], k: int) -> tuple[float, list[int]]:
    """The exact min-max partition of the pieces into ``k`` contiguous stages.

    Returns:
        ``(largest stage cost, ends)`` as :func:`iter_min_max_partitions` yields them for ``k``.

    Example:
        >>> from splitnet._costs import time_costs
        >>> min_max_partition(time_costs([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0] * 5), 2)
        (11.0, [4, 6])
    """
    *_, (_, value, ends) = iter_min_max_partitions(cost, k)
    return value, ends
