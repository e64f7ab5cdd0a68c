"""Plans: where to cut a model into K local modules.

Balances: ``even`` (equal numbers of blocks), ``memory`` (minimise the largest stage's
saved-for-backward bytes, objective auxiliary nets included, by an exact min-max contiguous
partition), ``time`` (minimise the slowest stage's forward+backward time, for pipelining),
a named plan the model carries (the paper's ``infopro`` / ``infopro*`` cuts for the CIFAR
ResNets), explicit ``cuts``, or a memory ``budget_bytes`` (the smallest K that fits).

Plans cut at block boundaries (``granularity="block"``, see ``_blocks.py``); with
``granularity="node"`` every cut point of the traced graph may be used, inside blocks too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from localkit_registry import CutContext, RegistryError

from ._blocks import GRANULARITIES, block_cuts
from ._costs import even_costs, memory_costs, only_at, time_costs
from ._errors import SplitError
from ._layout import infer_layout, token_grid
from ._memory import MemoryLedger, measure_ledger, measure_times
from ._objectives import create_objective, describe_objective, segmentation_loss
from ._partition import iter_min_max_partitions, min_max_partition
from ._trace import Chain, CutPoint, trace

BALANCES = ("even", "memory", "time")
TIME_BATCH_CAP = 256  # balance="time" times pieces at min(batch_size, this) rows


class TaskLoss(nn.Module):
    """The last stage's default loss: cross-entropy (per pixel, 255 ignored, for segmentation)."""

    def __init__(self, task: str = "classification"):
        super().__init__()
        self.task = task

    def forward(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task == "segmentation":
            return segmentation_loss(output, targets.long())
        return F.cross_entropy(output, targets.long())

    def extra_repr(self) -> str:
        return f"task={self.task!r}"


def default_task_loss(task: str) -> TaskLoss:
    """Cross-entropy; for segmentation with label 255 ignored."""
    return TaskLoss(task)


def example_batch(model: nn.Module, input_size: Sequence[int] | None, batch_size: int = 2) -> torch.Tensor:
    """A random batch of the size the model expects (``input_size`` or the model's default)."""
    if input_size is None:
        input_size = getattr(model, "default_input_size", None)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        input_size = input_size or cfg.get("input_size")
    if input_size is None:
        raise SplitError(
            f"cannot tell what input {type(model).__name__} takes: pass example_input= (one batch) "
            "or input_size=(C, H, W)"
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.rand(batch_size, *input_size, device=device)  # image-like values in [0, 1]


@dataclass
class PlanContext:
    """What a plan tells objective factories: call it for the :class:`CutContext` of one cut."""

    chain: Chain
    num_classes: int
    task: str = "classification"
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    backbone: str | None = None
    dataset: str | None = None
    named_plan: str | None = None

    def __call__(self, cut: CutPoint, index: int, num_cuts: int) -> CutContext:
        input_shape = tuple(self.chain.input_shape[1:])
        layout = infer_layout(cut.feature_shape, input_shape)
        grid, prefix = (None, 0)
        if layout == "NLC":
            grid, prefix = token_grid(self.chain.model, cut.feature_shape[0])
        return CutContext(
            feature_shape=cut.feature_shape,
            layout=layout,
            token_grid=grid,
            num_prefix_tokens=prefix,
            input_shape=input_shape,
            input_mean=self.input_mean,
            input_std=self.input_std,
            num_classes=self.num_classes,
            task=self.task,
            index=index,
            num_cuts=num_cuts,
            backbone=self.backbone,
            dataset=self.dataset,
            named_plan=self.named_plan,
        )


def _targets(num_classes: int, task: str, inputs: torch.Tensor) -> torch.Tensor:
    if task == "segmentation":
        return torch.randint(0, num_classes, (inputs.shape[0], *inputs.shape[-2:]), device=inputs.device)
    return torch.randint(0, num_classes, (inputs.shape[0],), device=inputs.device)


def infer_num_classes(chain: Chain, task: str) -> int:
    """The class count from the model's output shape: ``(B, C)`` or ``(B, C, H, W)``."""
    shape = chain.output_shape
    if shape is not None and (
        (task == "classification" and len(shape) == 2) or (task == "segmentation" and len(shape) == 4)
    ):
        return int(shape[1])
    raise SplitError(
        f"cannot infer the number of classes from the model's output shape {shape} for a "
        f"{task} task: pass num_classes="
    )


@dataclass
class Plan:
    """Where a model is cut into K local modules, with what it costs.

    Attributes:
        chain: the traced model.
        ends: for each stage, the piece index it ends before (the last is ``num_pieces``).
        balance: how the cuts were chosen.
        objective: the ``splitnet.objectives`` name the cuts were costed with.
        objective_options: the options given to it.
        context: what objectives are told about each cut.
        batch_size: the batch size memory figures refer to.
        ledger: saved-bytes ledger (``None`` when not measured).
        times: (piece seconds, objective seconds per cut) when measured.
        granularity: ``"block"`` (cuts only at block boundaries) or ``"node"``.
    """

    chain: Chain
    ends: list[int]
    balance: str
    objective: str
    objective_options: dict
    context: PlanContext
    batch_size: int
    ledger: MemoryLedger | None = None
    times: tuple[list[float], list[float]] | None = None
    granularity: str = "block"
    _costs: list[list[float]] | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        """Number of local modules (stages)."""
        return len(self.ends)

    @property
    def stages(self) -> list[tuple[int, int]]:
        """``(first piece, end piece)`` of every stage."""
        starts = [0, *self.ends[:-1]]
        return list(zip(starts, self.ends))

    @property
    def cuts(self) -> list[CutPoint]:
        """The K - 1 cut points between stages."""
        return [self.chain.cuts[end - 1] for end in self.ends[:-1]]

    def _cost_matrix(self) -> list[list[float]] | None:
        if self.ledger is None:
            return None
        if self._costs is None:
            self._costs = self.ledger.cost_matrix(self.batch_size)
        return self._costs

    @property
    def stage_bytes(self) -> list[int] | None:
        """Peak saved-for-backward bytes of each stage at :attr:`batch_size` (ledger)."""
        costs = self._cost_matrix()
        return None if costs is None else [int(costs[a][b]) for a, b in self.stages]

    @property
    def e2e_bytes(self) -> int | None:
        """Saved-for-backward bytes of end-to-end training at :attr:`batch_size`."""
        return None if self.ledger is None else self.ledger.e2e_bytes(self.batch_size)

    @property
    def stage_seconds(self) -> list[float] | None:
        """Forward+backward seconds of each stage, measured at ``min(batch_size, 256)`` rows."""
        if self.times is None:
            return None
        cost = time_costs(*self.times)
        return [cost[a][b] for a, b in self.stages]

    def to_dict(self) -> dict:
        """A JSON-able summary."""
        local = max(self.stage_bytes) if self.ledger is not None else None
        return {
            "k": self.k,
            "balance": self.balance,
            "granularity": self.granularity,
            "named_plan": self.context.named_plan,
            "objective": self.objective,
            "objective_options": self.objective_options,
            "cuts": [c.label for c in self.cuts],
            "stages": [
                {
                    "pieces": [a, b - 1],
                    "starts_after": self._cut_label(a - 1),
                    "ends_at": self._cut_label(b - 1),
                }
                for a, b in self.stages
            ],
            "batch_size": self.batch_size,
            "per_stage_bytes": self.stage_bytes,
            "e2e_bytes": self.e2e_bytes,
            "local_bytes": local,
            "ratio": None if local is None else local / self.e2e_bytes,
            "per_stage_seconds": self.stage_seconds,
        }

    def objective_descriptions(self) -> list[str]:
        """One line per cut: the objective :func:`splitnet.split` builds there, with its settings.

        The objectives are built as ``split`` builds them (each cut's index among the K - 1),
        so the line shows the values in force, such as InfoPro's loss weights at that cut.
        """
        return [
            f"{cut.label}: {describe_objective(self._objective_at(i))}" for i, cut in enumerate(self.cuts)
        ]

    def _objective_at(self, i: int) -> nn.Module:
        return create_objective(
            self.objective, self.context(self.cuts[i], i, self.k - 1), **self.objective_options
        )

    def _cut_label(self, index: int) -> str:
        if index < 0:
            return "input"
        if index < len(self.chain.cuts):
            return self.chain.cuts[index].label
        return "output"

    def table(self) -> str:
        """A human-readable table of the stages: pieces, output shape, bytes, share."""
        stage_bytes = self.stage_bytes
        seconds = self.stage_seconds
        rows = [("stage", "pieces", "ends after", "output shape", "saved MiB", "share", "fwd+bwd ms")]
        for i, (a, b) in enumerate(self.stages):
            shape = self.chain.cuts[b - 1].shape if b - 1 < len(self.chain.cuts) else self.chain.output_shape
            rows.append(
                (
                    str(i + 1),
                    f"{a}-{b - 1}",
                    self._cut_label(b - 1),
                    "x".join(map(str, shape[1:])) if shape else "?",
                    f"{stage_bytes[i] / 2**20:.1f}" if stage_bytes else "-",
                    f"{stage_bytes[i] / self.e2e_bytes:.1%}" if stage_bytes else "-",
                    f"{seconds[i] * 1e3:.1f}" if seconds else "-",
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        head = (
            f"{type(self.chain.model).__name__}: K={self.k}, balance={self.balance}, "
            f"{self.granularity} granularity, objective={self.objective}, batch size {self.batch_size}"
        )
        if self.ledger is not None:
            local = max(stage_bytes)
            head += (
                f"\nend-to-end saved {self.e2e_bytes / 2**20:.1f} MiB; local peak {local / 2**20:.1f} MiB "
                f"({local / self.e2e_bytes:.1%} of end-to-end)"
            )
        return head + "\n" + "\n".join(lines)


def _build_objectives(
    context: PlanContext, name: str, options: dict, cut_indices, final: bool
) -> tuple[dict, dict]:
    """The objective at each of ``cut_indices``, keyed by cut index, and why it failed where it did.

    ``final``: the cuts are the plan's own, so each objective is told its place among them;
    otherwise they are candidates, each told its place among all the chain's cut points.
    """
    built, failures = {}, {}
    num_cuts = len(cut_indices) if final else len(context.chain.cuts)
    for j, i in enumerate(cut_indices):
        try:
            cut = context.chain.cuts[i]
            built[i] = create_objective(name, context(cut, j if final else i, num_cuts), **options)
        except RegistryError:
            raise  # a misspelled option or a broken plugin fails at every cut: never skip one
        except (ValueError, TypeError, NotImplementedError, RuntimeError) as exc:
            failures[i] = f"{type(exc).__name__}: {exc}"
    return built, failures


def plan(
    model: nn.Module,
    k: int | None = None,
    *,
    balance: str = "memory",
    cuts: Sequence[str | int] | None = None,
    budget_bytes: int | None = None,
    batch_size: int | None = None,
    example_input: torch.Tensor | None = None,
    input_size: Sequence[int] | None = None,
    objective: str = "greedy",
    objective_options: dict | None = None,
    num_classes: int | None = None,
    task: str = "classification",
    input_mean: Sequence[float] | None = None,
    input_std: Sequence[float] | None = None,
    granularity: str = "block",
    backbone: str | None = None,
    dataset: str | None = None,
    leaf_modules: Sequence[type | str] = (),
    measure_memory: bool = True,
    chain: Chain | None = None,
) -> Plan:
    """Choose where to cut ``model`` into ``k`` local modules.

    Args:
        model: the model to split (any traceable ``nn.Module`` or ``nn.Sequential``).
        k: number of local modules. Not needed with ``cuts`` or ``budget_bytes``.
        balance: ``"even"`` (equal numbers of blocks), ``"memory"``, ``"time"``, or a name in
            ``model.named_plans`` (``"infopro"``, ``"infopro*"`` on the CIFAR ResNets).
        cuts: explicit cut points (module paths such as ``"layer2.3"``, or cut indices), in
            forward order; overrides ``k`` and ``balance``.
        budget_bytes: pick the smallest K whose memory-balanced peak saved bytes at
            ``batch_size`` fit this budget.
        batch_size: the batch size memory figures, budgets and ``balance="time"`` refer to
            (default: the example batch's); times are measured at ``min(batch_size, 256)``.
        example_input: one batch; default: random, of ``input_size`` or the model's default
            input size, batch 2.
        input_size: ``(C, H, W)`` when no example input is given.
        objective: the ``splitnet.objectives`` entry whose auxiliary nets are costed.
        objective_options: options for it.
        num_classes: classes of the task (default: from the output shape).
        task: ``"classification"`` or ``"segmentation"``.
        input_mean, input_std: the normalisation of the inputs (for reconstruction objectives).
        granularity: ``"block"`` (default): cut only at block boundaries, where a block of the
            model (a stem, stage, residual or transformer block, a child of an
            ``nn.Sequential`` model) ends or begins; ``"node"``: at any cut point of the traced
            graph, inside blocks too (after a residual addition, before its activation).
        backbone: the name the model was created under (``"cifar_resnet110"``); objectives
            read it to pick defaults tuned for that network (InfoPro's loss weights).
        dataset: the ``splitnet.datasets`` name of the training data, read the same way.
        leaf_modules: module classes or names to keep opaque when tracing.
        measure_memory: measure the saved-bytes ledger (needed by ``memory`` and budgets;
            cheap: two forward passes at batch 2 and 4).
        chain: reuse an existing trace of ``model``.

    Returns:
        A :class:`Plan`; print ``plan.table()`` to see it, pass it to :func:`split`.

    Raises:
        SplitError: ``k`` larger than the cut points allow, cuts out of order or unknown,
            a cut inside a block with ``granularity="block"``, an unknown balance or
            granularity, a budget nothing fits, an input the model rejects, a
            ``batch_size`` or ``num_classes`` below 1, a ``budget_bytes`` not above 0.
        TraceFailure: the model cannot be traced.

    Example:
        >>> import splitnet
        >>> model = splitnet.create_backbone("cifar_resnet20")
        >>> p = splitnet.plan(model, 2, balance="memory")
        >>> p.k, [cut.label for cut in p.cuts]
        (2, ['layer1.2'])
    """
    objective_options = dict(objective_options or {})
    _check_count("batch_size", batch_size, "the example batch's size")
    _check_count("num_classes", num_classes, "from the model's output shape")
    if budget_bytes is not None and not (
        isinstance(budget_bytes, numbers.Real)
        and not isinstance(budget_bytes, bool)
        and 0 < budget_bytes < math.inf
    ):
        raise SplitError(
            f"budget_bytes must be a finite number > 0 (or None: no budget), got {budget_bytes!r}"
        )
    if granularity not in GRANULARITIES:
        raise SplitError(
            f"unknown granularity {granularity!r}: use 'block' (cuts at block boundaries) or 'node' "
            "(any cut point, inside blocks too)"
        )
    if example_input is None:
        example_input = example_batch(model, input_size)
    if example_input.shape[0] < 2:
        raise SplitError("example_input needs at least 2 samples (batch norm cannot train on 1)")
    chain = chain or trace(model, example_input, leaf_modules)
    if task not in ("classification", "segmentation"):
        raise SplitError(f"task must be 'classification' or 'segmentation', got {task!r}")
    if num_classes is None:
        num_classes = infer_num_classes(chain, task)
    context = PlanContext(
        chain,
        num_classes,
        task,
        tuple(input_mean) if input_mean is not None else None,
        tuple(input_std) if input_std is not None else None,
        backbone,
        dataset,
    )
    task_loss = default_task_loss(task)
    n = chain.num_pieces
    if batch_size is None:
        batch_size = example_input.shape[0]
    named = getattr(model, "named_plans", {}) or {}
    allowed = {c.index for c in block_cuts(chain)} if granularity == "block" else set(range(n - 1))

    def make_batch(b: int):
        # rows of the example itself: measurement batches have the values real inputs have
        rows = torch.arange(b, device=example_input.device) % example_input.shape[0]
        x = example_input[rows].clone()
        return x, _targets(num_classes, task, x)

    chosen = cuts is not None or balance in named
    if cuts is not None:
        ends = _explicit_ends(chain, cuts)
        balance = "explicit"
    elif balance in named:
        if k not in named[balance]:
            raise SplitError(
                f"the {balance!r} plan of {type(model).__name__} exists for K in "
                f"{sorted(named[balance])}, not K={k}"
            )
        ends = _explicit_ends(chain, named[balance][k])
    elif balance not in BALANCES and budget_bytes is None:
        raise SplitError(
            f"unknown balance {balance!r}: use one of {', '.join(BALANCES)}"
            + (f" or a named plan of this model ({', '.join(named)})" if named else "")
        )
    if chosen:
        used = [e - 1 for e in ends[:-1]]
        _check_granularity(chain, used, allowed)
        # asked for by name: that name, even where another named plan has the same cuts
        context.named_plan = balance if cuts is None else _named_plan_of(chain, named, used)
    else:
        used = sorted(allowed)
    objectives, failures = _build_objectives(context, objective, objective_options, used, final=chosen)
    # factories build on the CPU; the measurements below feed them features on the example's device
    objectives = {i: o.to(example_input.device) for i, o in objectives.items()}
    if chosen:
        bad = [i for i in used if i in failures]
        if bad:
            raise SplitError(
                f"objective {objective!r} cannot be built at cut '{chain.cuts[bad[0]].label}': "
                f"{failures[bad[0]]}"
            )
    ledger = None
    if measure_memory or balance == "memory" or budget_bytes is not None:
        ledger = measure_ledger(chain, objectives, task_loss, make_batch)
    times = None
    if balance == "time":
        # per-sample costs dominate only at real batch sizes: time at the batch the plan is for
        times = measure_times(chain, objectives, task_loss, *make_batch(min(batch_size, TIME_BATCH_CAP)))
    if not chosen:
        usable = [i for i in used if i not in failures]
        if budget_bytes is not None:
            k, ends, balance = _fit_budget(ledger, batch_size, budget_bytes, usable, type(model).__name__)
        else:
            ends = _balanced_ends(
                chain, k, balance, ledger, batch_size, times, usable, failures, objective, granularity
            )
        context.named_plan = _named_plan_of(chain, named, [e - 1 for e in ends[:-1]])
    return Plan(
        chain,
        ends,
        balance,
        objective,
        objective_options,
        context,
        batch_size,
        ledger,
        times,
        granularity=granularity,
    )


def _check_granularity(chain: Chain, used: Sequence[int], allowed: set[int]) -> None:
    inside = [i for i in used if i not in allowed]
    if not inside:
        return
    label = chain.cuts[inside[0]].label
    before = [chain.cuts[i].label for i in sorted(allowed) if i < inside[0]][-1:]
    after = [chain.cuts[i].label for i in sorted(allowed) if i > inside[0]][:1]
    nearby = " or ".join(repr(x) for x in before + after)
    raise SplitError(
        f"cut '{label}' lies inside a block, and plans cut at block boundaries by default"
        + (f" (the nearest are {nearby})" if nearby else "")
        + ": choose a block boundary, or pass granularity='node' (--cut-granularity node) to cut inside blocks"
    )


def _named_plan_of(chain: Chain, named: dict, used: Sequence[int]) -> str | None:
    """The name of the model's hand-picked plan whose cuts are exactly ``used``, if any."""
    for name, by_k in named.items():
        labels = by_k.get(len(used) + 1)
        if labels is not None and [chain.find(label).index for label in labels] == list(used):
            return name
    return None


def _check_count(name: str, value, unset: str) -> None:
    if value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1):
        return
    raise SplitError(f"{name} must be an integer >= 1 (or None: {unset}), got {value!r}")


def _explicit_ends(chain: Chain, cuts: Sequence[str | int]) -> list[int]:
    indices = []
    for c in cuts:
        if isinstance(c, int):
            if not 0 <= c < len(chain.cuts):
                raise SplitError(
                    f"cut index {c} is out of range: the model has cuts 0..{len(chain.cuts) - 1}"
                )
            indices.append(c)
        else:
            indices.append(chain.find(c).index)
    for (prev, a), (cur, b) in zip(zip(cuts, indices), zip(cuts[1:], indices[1:])):
        if b <= a:
            raise SplitError(
                f"cuts must be in forward order without repeats: {cur!r} (cut {b}) comes "
                f"{'at' if a == b else 'before'} {prev!r} (cut {a}); list them as the data flows"
            )
    return [i + 1 for i in indices] + [chain.num_pieces]


def _balanced_ends(
    chain, k, balance, ledger, batch_size, times, usable, failures, objective, granularity
) -> list[int]:
    n = chain.num_pieces
    if k is None:
        raise SplitError("pass k (the number of local modules), cuts=[...] or budget_bytes=")
    if k < 1:
        raise SplitError(f"k must be at least 1, got {k}")
    if k - 1 > len(usable):
        why = (
            f" ({len(failures)} cuts where objective {objective!r} cannot be built are excluded)"
            if failures
            else ""
        )
        where = (
            " at block boundaries (granularity='node' also cuts inside blocks)"
            if granularity == "block"
            else ""
        )
        raise SplitError(
            f"K={k} needs {k - 1} cut points but {type(chain.model).__name__} has only {len(usable)} "
            f"usable ones{where}{why}: choose K <= {len(usable) + 1}"
        )
    if balance == "memory":
        cost = memory_costs(ledger, batch_size)
    elif balance == "time":
        cost = time_costs(*times)
    else:
        cost = even_costs(n, boundaries={*usable, *failures})
    _, ends = min_max_partition(only_at(cost, set(usable)), k)
    if not ends:
        raise SplitError(f"no {balance}-balanced plan with K={k} exists for {type(chain.model).__name__}")
    return ends


def _fit_budget(ledger: MemoryLedger, batch_size: int, budget: int, usable: list[int], name: str):
    best = math.inf
    cost = only_at(memory_costs(ledger, batch_size), set(usable))
    for k, value, ends in iter_min_max_partitions(cost, len(usable) + 1):
        best = min(best, value)
        if value <= budget:
            return k, ends, "memory"
    raise SplitError(
        f"no plan of {name} fits {budget / 2**20:.1f} MiB at batch size {batch_size}: the smallest "
        f"possible stage peak is {best / 2**20:.1f} MiB. Raise the budget or lower the batch size."
    )
