"""Plans: balances, the paper's cuts, explicit cuts, budgets, and the errors users meet."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
from torch import nn

import splitnet
from splitnet._costs import even_costs, only_at, time_costs
from splitnet._memory import median_seconds
from splitnet._partition import iter_min_max_partitions, min_max_partition


@pytest.fixture(scope="module")
def resnet32():
    torch.manual_seed(0)
    return splitnet.create_backbone("cifar_resnet32")


@pytest.fixture(scope="module")
def resnet32_chain(resnet32):
    return splitnet.trace(resnet32, torch.randn(2, 3, 32, 32))


def brute_force(cost, k):
    n = len(cost) - 1
    best = math.inf
    for inner in itertools.combinations(range(1, n), k - 1):
        ends = [*inner, n]
        starts = [0, *inner]
        best = min(best, max(cost[a][b] for a, b in zip(starts, ends)))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_min_max_partition_is_exact(seed):
    rng = random.Random(seed)
    n, k = rng.randint(3, 9), rng.randint(1, 3)
    k = min(k, n)
    cost = [[rng.random() * 10 if b > a else math.inf for b in range(n + 1)] for a in range(n + 1)]
    value, ends = min_max_partition(cost, k)
    assert value == pytest.approx(brute_force(cost, k))
    starts = [0, *ends[:-1]]
    assert max(cost[a][b] for a, b in zip(starts, ends)) == pytest.approx(value)
    assert ends[-1] == n and len(ends) == k


def additive(pieces):
    """Costs of stages that cost the sum of their pieces (no objective at the cuts)."""
    return time_costs([float(p) for p in pieces], [0.0] * (len(pieces) - 1))


@pytest.mark.parametrize(
    ("pieces", "k", "value", "ends"),
    [
        ([1, 2, 3, 4, 5, 6], 2, 11, [4, 6]),
        ([5, 1, 1, 1, 5], 3, 5, [1, 4, 5]),
        ([1, 1, 1, 1, 10], 2, 10, [4, 5]),
        ([3, 3, 3], 3, 3, [1, 2, 3]),
        ([0, 0], 2, 0, [1, 2]),
        ([7], 1, 7, [1]),
    ],
)
def test_min_max_partition_of_known_chains(pieces, k, value, ends):
    assert min_max_partition(additive(pieces), k) == (value, ends)


def test_ties_go_to_the_longest_last_stage():
    # 7 pieces in 3 stages of at most 3: the last stage takes 3, the 4 before it split 2 + 2
    assert min_max_partition(even_costs(7), 3) == (3.0, [2, 4, 7])
    assert [(k, value) for k, value, _ in iter_min_max_partitions(even_costs(4), 4)] == [
        (1, 4.0),
        (2, 2.0),
        (3, 2.0),
        (4, 1.0),
    ]


def test_every_k_up_to_the_budget_walk():
    walk = [(k, value, ends) for k, value, ends in iter_min_max_partitions(additive([4, 4, 4, 4]), 4)]
    assert walk == [(1, 16.0, [4]), (2, 8.0, [2, 4]), (3, 8.0, [1, 2, 4]), (4, 4.0, [1, 2, 3, 4])]


def test_an_objectives_time_moves_the_cut():
    assert min_max_partition(time_costs([1.0, 2.0, 3.0], [0.0, 0.0]), 2) == (3.0, [2, 3])
    # the objective at the second cut costs 5: cutting there is now the slower plan
    assert min_max_partition(time_costs([1.0, 2.0, 3.0], [0.0, 5.0]), 2) == (5.0, [1, 3])


def test_forbidden_cuts_are_never_chosen():
    assert min_max_partition(only_at(even_costs(4), {1}), 2) == (2.0, [2, 4])
    assert min_max_partition(only_at(even_costs(4), {1}), 3) == (math.inf, [])
    assert min_max_partition(only_at(even_costs(4), set()), 1) == (4.0, [4])


def test_partition_arguments_are_checked():
    with pytest.raises(ValueError, match="at least 1 stage, got k=0"):
        min_max_partition(even_costs(3), 0)
    with pytest.raises(ValueError, match=r"\(n\+1\) x \(n\+1\) matrix"):
        min_max_partition([[0.0, 1.0], [0.0]], 1)
    with pytest.raises(ValueError, match="3 pieces have 2 cuts, got 1 objective times"):
        time_costs([1.0, 1.0, 1.0], [0.0])


def test_timing_takes_the_median_of_repeats_after_a_warm_up(monkeypatch):
    import splitnet._memory as memory

    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # three timed calls: 5 s, 1 s, 3 s
    monkeypatch.setattr(memory.time, "perf_counter", lambda: next(clock))
    calls = []

    def never(device=None):
        raise AssertionError("no CUDA synchronisation on CPU")

    monkeypatch.setattr(torch.cuda, "synchronize", never)
    assert median_seconds(lambda: calls.append(1), torch.device("cpu"), repeats=3) == 3.0
    assert len(calls) == 4


def test_cuda_timing_waits_for_the_queue_before_and_after(monkeypatch):
    import splitnet._memory as memory

    events = []
    monkeypatch.setattr(memory.time, "perf_counter", lambda: events.append("clock") or 0.0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append(f"sync {device}"))
    median_seconds(lambda: events.append("run"), torch.device("cuda", 1), repeats=2)
    one = ["sync cuda:1", "clock", "run", "sync cuda:1", "clock"]
    assert events == ["run", *one, *one]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_timing_measures_the_kernels_not_their_launch():
    device = torch.device("cuda")
    x = torch.randn(4096, 4096, device=device)

    def work():
        for _ in range(20):
            x @ x

    work()
    gpu_seconds = []
    for _ in range(3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        work()
        end.record()
        torch.cuda.synchronize()
        gpu_seconds.append(start.elapsed_time(end) / 1e3)
    # every timed call runs from an empty queue to an empty queue, so it lasts at least as long
    # as the GPU worked; timing the launches alone would take a small fraction of that
    assert median_seconds(work, device, repeats=3) >= 0.99 * min(gpu_seconds)


def test_memory_balance_beats_even_and_reaches_the_targets():
    """DESIGN.md: ResNet-110, 32x32, batch 1024, greedy aux nets counted: K=2/3/4 <= 55/40/30%."""
    model = splitnet.create_backbone("cifar_resnet110")
    chain = splitnet.trace(model, torch.randn(2, 3, 32, 32))
    ratios = {}
    for balance in ("even", "memory"):
        for k in (2, 3, 4):
            p = splitnet.plan(model, k, balance=balance, chain=chain, batch_size=1024)
            ratios[balance, k] = max(p.stage_bytes) / p.e2e_bytes
    for k in (2, 3, 4):
        assert ratios["memory", k] <= ratios["even", k]
    assert ratios["memory", 2] <= 0.55 and ratios["memory", 3] <= 0.40 and ratios["memory", 4] <= 0.30


def test_paper_plans_cut_where_the_paper_did(resnet32, resnet32_chain):
    p = splitnet.plan(resnet32, 4, balance="infopro", chain=resnet32_chain, measure_memory=False)
    assert [c.label for c in p.cuts] == ["layer1.2", "layer2.1", "layer3.0"]
    p16 = splitnet.plan(resnet32, 16, balance="infopro", chain=resnet32_chain, measure_memory=False)
    assert p16.k == 16 and p16.cuts[0].label == "stem"
    with pytest.raises(splitnet.SplitError, match=r"K in \[2, 3, 4, 8, 16\]"):
        splitnet.plan(resnet32, 5, balance="infopro", chain=resnet32_chain)
    resnet110 = splitnet.create_backbone("cifar_resnet110")
    star = splitnet.plan(resnet110, 3, balance="infopro*", measure_memory=False)
    assert [c.label for c in star.cuts] == ["layer1.9", "layer2.2"]


def test_even_plan_splits_pieces_evenly(resnet32, resnet32_chain):
    # pieces of the traced graph: with cuts allowed inside blocks, every piece can be a boundary
    p = splitnet.plan(
        resnet32, 4, balance="even", chain=resnet32_chain, measure_memory=False, granularity="node"
    )
    sizes = [b - a for a, b in p.stages]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == resnet32_chain.num_pieces


def test_time_balance_measures_every_stage(resnet32, resnet32_chain):
    p = splitnet.plan(resnet32, 3, balance="time", chain=resnet32_chain, measure_memory=False)
    seconds = p.stage_seconds
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    even = splitnet.plan(resnet32, 3, balance="even", chain=resnet32_chain, measure_memory=False)
    even.times = p.times
    assert max(seconds) <= max(even.stage_seconds) * 1.0001


def test_time_balance_times_the_batch_the_plan_is_for(resnet32, resnet32_chain, monkeypatch):
    # per-sample costs only dominate at real batch sizes; a batch of 2 misjudges the stages
    import splitnet._plan as plan_module

    rows = []
    real = plan_module.measure_times

    def spy(chain, objectives, task_loss, inputs, targets, repeats=3):
        rows.append(inputs.shape[0])
        return real(chain, objectives, task_loss, inputs, targets, repeats=1)

    monkeypatch.setattr(plan_module, "measure_times", spy)
    splitnet.plan(resnet32, 2, balance="time", chain=resnet32_chain, batch_size=8, measure_memory=False)
    splitnet.plan(resnet32, 2, balance="time", chain=resnet32_chain, batch_size=4096, measure_memory=False)
    assert rows == [8, plan_module.TIME_BATCH_CAP]


def test_explicit_cuts_and_their_errors(resnet32, resnet32_chain):
    p = splitnet.plan(resnet32, cuts=["layer1.4", "layer2.4"], chain=resnet32_chain, measure_memory=False)
    assert p.k == 3 and [c.label for c in p.cuts] == ["layer1.4", "layer2.4"]
    with pytest.raises(splitnet.SplitError, match="forward order"):
        splitnet.plan(resnet32, cuts=["layer2.4", "layer1.4"], chain=resnet32_chain)
    with pytest.raises(splitnet.SplitError, match="forward order"):
        splitnet.plan(resnet32, cuts=["layer1.4", "layer1.4"], chain=resnet32_chain)
    with pytest.raises(splitnet.SplitError, match="not a cut point.*closest: layer1.4"):
        splitnet.plan(resnet32, cuts=["layer1.44"], chain=resnet32_chain)
    with pytest.raises(splitnet.SplitError, match="inside it"):
        splitnet.plan(resnet32, cuts=["layer1.2.conv2"], chain=resnet32_chain)


def test_k_larger_than_the_cut_points(resnet32_chain, resnet32):
    n = resnet32_chain.num_pieces
    with pytest.raises(splitnet.SplitError, match=rf"K={n + 1} needs {n} cut points.*choose K <= {n}"):
        splitnet.plan(
            resnet32, n + 1, balance="even", chain=resnet32_chain, measure_memory=False, granularity="node"
        )
    with pytest.raises(splitnet.SplitError, match="at least 1"):
        splitnet.plan(resnet32, 0, balance="even", chain=resnet32_chain, measure_memory=False)
    with pytest.raises(splitnet.SplitError, match="unknown balance 'fast'.*infopro"):
        splitnet.plan(resnet32, 2, balance="fast", chain=resnet32_chain)


def test_budget_picks_the_smallest_k_that_fits(resnet32, resnet32_chain):
    full = splitnet.plan(resnet32, 1, chain=resnet32_chain, batch_size=256)
    budget = int(full.e2e_bytes * 0.45)
    p = splitnet.plan(resnet32, budget_bytes=budget, batch_size=256, chain=resnet32_chain)
    assert max(p.stage_bytes) <= budget
    smaller = splitnet.plan(resnet32, p.k - 1, balance="memory", batch_size=256, chain=resnet32_chain)
    assert max(smaller.stage_bytes) > budget
    with pytest.raises(splitnet.SplitError, match="no plan of CifarResNet fits.*Raise the budget"):
        splitnet.plan(resnet32, budget_bytes=1024, batch_size=256, chain=resnet32_chain)


def test_an_input_the_model_rejects():
    model = splitnet.create_backbone("cifar_resnet20")
    with pytest.raises(
        splitnet.SplitError, match=r"expects 3 channels, got 1 \(an input of shape \(2, 1, 32, 32\)\)"
    ):
        splitnet.plan(model, 2, example_input=torch.randn(2, 1, 32, 32))
    flat = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(
        splitnet.SplitError, match=r"rejected an input of shape \(2, 3, 2, 3\): RuntimeError: mat1"
    ):
        splitnet.plan(flat, 2, example_input=torch.randn(2, 3, 2, 3))
    with pytest.raises(splitnet.SplitError, match="at least 2 samples"):
        splitnet.plan(model, 2, example_input=torch.randn(1, 3, 32, 32))
    with pytest.raises(splitnet.SplitError, match="pass example_input"):
        splitnet.plan(nn.Sequential(nn.Linear(4, 4)), 1)


def test_plan_table_and_dict_describe_every_stage(resnet32, resnet32_chain):
    p = splitnet.plan(resnet32, 3, chain=resnet32_chain, batch_size=128)
    table = p.table()
    assert "K=3" in table and table.count("\n") >= 6 and "% of end-to-end" in table
    d = p.to_dict()
    assert d["k"] == 3 and len(d["cuts"]) == 2 and len(d["per_stage_bytes"]) == 3
    assert d["stages"][0]["starts_after"] == "input" and d["stages"][-1]["ends_at"] == "output"
    assert d["local_bytes"] == max(d["per_stage_bytes"]) and 0 < d["ratio"] < 1
