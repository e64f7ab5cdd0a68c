"""LocalNet: a model cut into K gradient-isolated stages, and its local training step."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ._errors import NonFiniteLossError, SplitError
from ._objectives import check_targets, create_objective, describe_objective
from ._plan import Plan, default_task_loss
from ._plan import plan as make_plan
from ._registries import OBJECTIVES

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What one local training step returns.

    Attributes:
        losses: the loss of every stage (objectives, then the task loss), detached.
        output: the last stage's output (the model's prediction), detached.
    """

    losses: list[torch.Tensor]
    output: torch.Tensor

    @property
    def task_loss(self) -> torch.Tensor:
        """The last stage's loss."""
        return self.losses[-1]


class LocalStage(nn.Module):
    """One stage and the loss it trains on: ``forward(h, inputs, targets) -> (out, loss)``."""

    def __init__(self, stage: nn.Module, loss: nn.Module, last: bool):
        super().__init__()
        self.stage, self.loss, self.last = stage, loss, last

    def forward(self, h: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor):
        out = self.stage(h)
        return out, self.loss(out, targets) if self.last else self.loss(out, inputs, targets)


class LocalNet(nn.Module):
    """A model as K stages; each stage trains on its own local objective.

    ``forward`` is the plain chain of stages and equals the original model's output.
    :meth:`local_step` trains: for every stage, forward, its local loss, backward, then
    the output is detached before the next stage, so no gradient crosses a cut and each
    stage's activations are freed before the next stage runs.

    Attributes:
        stages: the K stage modules (they share parameters with the original model).
        objectives: the K - 1 local objectives, one per cut (with their auxiliary nets).
        plan: the plan the net was built from.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        objectives: Sequence[nn.Module],
        task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        plan: Plan | None = None,
        num_classes: int | None = None,
        task: str = "classification",
    ):
        super().__init__()
        if len(objectives) != len(stages) - 1:
            raise SplitError(f"{len(stages)} stages need {len(stages) - 1} objectives, got {len(objectives)}")
        self.stages = nn.ModuleList(stages)
        self.objectives = nn.ModuleList(objectives)
        self.task_loss = task_loss
        self.plan = plan
        self.num_classes = num_classes
        self.task = task
        # a plain list: the runners share the stages' modules and must not duplicate state-dict keys
        self._runners: list[nn.Module] = [
            LocalStage(stage, objectives[k] if k < len(objectives) else task_loss, k == len(stages) - 1)
            for k, stage in enumerate(stages)
        ]

    @property
    def k(self) -> int:
        """Number of stages."""
        return len(self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def stage_parameters(self, k: int) -> list[nn.Parameter]:
        """Parameters trained by stage ``k``: the stage's own and its objective's."""
        params = list(self.stages[k].parameters())
        if k < len(self.objectives):
            params += list(self.objectives[k].parameters())
        return params

    def local_step(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        loss_scale: float = 1.0,
        autocast_dtype: torch.dtype | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        check_labels: bool = True,
        check_inputs: bool = True,
        sync: bool = True,
    ) -> StepResult:
        """Forward and backward every stage on its local loss; gradients accumulate in ``.grad``.

        Call ``optimizer.step()`` afterwards (any optimizer over ``self.parameters()``). For
        gradient accumulation call this several times with ``loss_scale=1/n`` before stepping.

        Args:
            inputs: a batch of inputs.
            targets: class labels ``(B,)``, or ``(B, H, W)`` for segmentation (255 ignored).
            loss_scale: multiplies every loss before backward (finite and positive).
            autocast_dtype: run forward passes and losses under ``torch.autocast`` with this
                dtype (``torch.bfloat16`` on CPU; ``float16``/``bfloat16`` on CUDA).
            grad_scaler: a ``torch.amp.GradScaler`` of the inputs' device type; float16
                autocast needs one (its small gradients would flush to zero), bfloat16 does not.
            check_labels: validate label ranges (one cheap reduction per step).
            check_inputs: refuse NaN or infinite inputs before any backward pass (one cheap
                reduction per step); inputs that already make a loss NaN raise
                ``NonFiniteLossError`` as any non-finite loss does.
            sync: after :meth:`distribute`, reduce gradients across processes in this step
                (pass ``False`` for all but the last micro-batch of an accumulation).

        Returns:
            The detached losses and output.

        Raises:
            NonFiniteLossError: a loss is NaN or infinite; names the stage and the loss.
            ValueError: labels outside ``0 .. num_classes - 1``, inputs holding NaN or inf,
                a ``loss_scale`` that is not a finite positive number, or float16 autocast
                without a ``grad_scaler``.

        Example:
            >>> import torch, splitnet
            >>> model = splitnet.create_backbone("cifar_resnet20")
            >>> net = splitnet.split(model, splitnet.plan(model, 2, measure_memory=False))
            >>> result = net.local_step(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))
            >>> len(result.losses)
            2
        """
        _check_loss_scale(loss_scale)
        if check_labels and self.num_classes is not None:
            check_targets(targets, self.num_classes, self.task, "LocalNet.local_step")
        h, losses = inputs, []
        for k in range(self.k):
            h, loss = self.stage_step(
                k,
                h,
                inputs,
                targets,
                loss_scale=loss_scale,
                autocast_dtype=autocast_dtype,
                grad_scaler=grad_scaler,
                check_inputs=check_inputs and k == 0,
                sync=sync,
            )
            losses.append(loss)
        return StepResult(losses, h)

    def stage_step(
        self,
        k: int,
        h: torch.Tensor,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        loss_scale: float = 1.0,
        autocast_dtype: torch.dtype | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        check_inputs: bool = False,
        sync: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train stage ``k`` alone on input ``h``: forward, its loss, backward.

        This is one iteration of :meth:`local_step`; a stage-parallel worker that owns stage
        ``k`` calls it with the activations it received. Returns the detached output and loss.
        ``check_inputs`` refuses an ``h`` holding NaN or inf before the backward pass.

        Raises:
            NonFiniteLossError: the stage's loss is NaN or infinite.
            ValueError: a ``loss_scale`` that is not a finite positive number, float16
                autocast without a ``grad_scaler``, or (with ``check_inputs``) an input
                holding NaN or inf.
        """
        _check_loss_scale(loss_scale)
        if autocast_dtype == torch.float16 and grad_scaler is None:
            raise ValueError(
                "float16 autocast needs a gradient scaler, or small gradients flush to zero: pass "
                f"grad_scaler=torch.amp.GradScaler({inputs.device.type!r}) and step the optimizer "
                "through it, or use autocast_dtype=torch.bfloat16"
            )
        runner = self._runners[k]
        amp = (
            torch.autocast(inputs.device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        no_sync = runner.no_sync() if hasattr(runner, "no_sync") and not sync else contextlib.nullcontext()
        with no_sync:
            with amp:
                out, loss = runner(h, inputs, targets)
            value = float(loss.detach())
            if not math.isfinite(value):
                what = (
                    f"objective {k + 1} of {len(self.objectives)}"
                    if k < len(self.objectives)
                    else "the task loss"
                )
                raise NonFiniteLossError(
                    f"stage {k + 1} of {self.k}: {what} is {value}. Lower the learning rate, check the "
                    "inputs for NaN/inf, or use bfloat16 instead of float16."
                )
            if check_inputs and h.is_floating_point() and not bool(torch.isfinite(h).all()):
                bad = int((~torch.isfinite(h)).sum())
                raise ValueError(
                    f"stage {k + 1} of {self.k}: its input holds {bad} NaN or infinite values (of "
                    f"{h.numel()}) although the loss is finite; training on them would be silently wrong. "
                    "Check the dataset and its normalisation."
                )
            scaled = loss * loss_scale
            (grad_scaler.scale(scaled) if grad_scaler is not None else scaled).backward()
        return out.detach(), loss.detach()

    def distribute(self, stages: list[int] | None = None, **ddp_options) -> LocalNet:
        """Reduce gradients across processes with ``DistributedDataParallel``, one per stage.

        Each stage and its loss are wrapped together, so every local backward pass reduces
        exactly that stage's (and its auxiliary nets') gradients. Needs an initialised
        ``torch.distributed`` process group.

        Args:
            stages: the stages this process trains (default: all; a stage-parallel worker
                passes its own).
            **ddp_options: passed to ``DistributedDataParallel`` (``process_group``,
                ``device_ids``, ``find_unused_parameters``, ...).
        """
        from torch.nn.parallel import DistributedDataParallel

        for k in range(self.k) if stages is None else stages:
            self._runners[k] = DistributedDataParallel(self._runners[k], **ddp_options)
        return self

    def compile_stages(self, **kwargs) -> LocalNet:
        """``torch.compile`` every stage and objective in place (state-dict keys unchanged)."""
        for module in (*self.stages, *self.objectives):
            module.compile(**kwargs)
        return self


def _check_loss_scale(loss_scale) -> None:
    try:
        value = float(loss_scale)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(loss_scale, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"loss_scale must be a finite number > 0 (1/n to accumulate n steps), got {loss_scale!r}: "
            "a NaN, infinite, zero or negative scale would corrupt every gradient"
        )


def split(
    model: nn.Module,
    plan: Plan | int,
    *,
    objective: str | None = None,
    objective_options: dict | None = None,
    task_loss: Callable | None = None,
) -> LocalNet:
    """Cut ``model`` as ``plan`` says and attach a local objective at every cut.

    Args:
        model: the model the plan was made for.
        plan: a :class:`Plan`, or an int K for a memory-balanced plan with default settings.
        objective: ``splitnet.objectives`` entry to train each cut with (default: the one the
            plan was costed with, ``greedy`` unless said otherwise).
        objective_options: options for it (default: the plan's).
        task_loss: ``(output, targets) -> loss`` of the last stage (default: cross-entropy,
            ignoring label 255 for segmentation).

    Returns:
        A :class:`LocalNet` whose stages share parameters with ``model``. The objective built
        at each cut, with its settings (InfoPro's loss weights and where they come from), is
        logged at INFO level.

    Raises:
        SplitError: the plan belongs to another model.
        UnknownEntryError: the objective is not installed.

    Example:
        >>> import torch, splitnet
        >>> model = splitnet.create_backbone("cifar_resnet20").eval()
        >>> net = splitnet.split(model, splitnet.plan(model, 3)).eval()
        >>> x = torch.randn(2, 3, 32, 32)
        >>> bool(torch.equal(net(x), model(x)))
        True
    """
    if isinstance(plan, int):
        plan = make_plan(model, plan)
    if plan.chain.model is not model:
        raise SplitError("this plan was made for another model; call splitnet.plan(model, ...) on this one")
    name = objective or plan.objective
    options = dict(plan.objective_options if objective_options is None else objective_options)
    OBJECTIVES.entry(name)
    stages = [plan.chain.module(a, b) for a, b in plan.stages]
    for stage in stages:
        stage.train(model.training)
    context = plan.context
    objectives = [
        create_objective(name, context(cut, i, plan.k - 1), **options) for i, cut in enumerate(plan.cuts)
    ]
    for i, (cut, built) in enumerate(zip(plan.cuts, objectives)):
        log.info("cut %d of %d (%s): %s", i + 1, plan.k - 1, cut.label, describe_objective(built))
    # objective factories build on the CPU; their auxiliary nets train where the model does
    anchor = next(model.parameters(), None)
    if anchor is not None:
        objectives = [o.to(anchor.device) for o in objectives]
    return LocalNet(
        stages,
        objectives,
        task_loss or default_task_loss(context.task),
        plan,
        context.num_classes,
        context.task,
    )
