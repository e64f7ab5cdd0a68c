"""Build one stage of a model and nothing else: what a stage-parallel process trains.

The model is built on the meta device, traced and planned there (the saved-bytes ledger
is measured on meta tensors, which have shapes but no values); then only the parameters and
buffers of this process's stage get real values, the very values a full build from the
same seed gives (see ``_metabuild.py`` for how, and its limits). The auxiliary nets of the
cuts before this stage are built on the meta device too, drawing the random numbers they
would draw, so that this stage's auxiliary net starts where a full build's does; the nets
of the other cuts are not built at all. The other stages of the :class:`LocalNet` are
:class:`RemoteStage` placeholders: they hold nothing and refuse to run.

Limits: ``balance="time"`` needs the real model (it times it), so it needs a full build;
on the meta device PyTorch may cost attention by its math path, so a memory-balanced plan
of an attention model can cut elsewhere than a full build's plan (the run's index records
the cuts it used, and a resumed run keeps them).
"""

from __future__ import annotations

import torch
from torch import nn

from ._build import create_model, plan_options
from ._config import TrainConfig
from ._distributed import Topology
from ._errors import MetaBuildError, SplitError
from ._localnet import LocalNet
from ._metabuild import (
    build_ghost,
    build_on_meta,
    build_part,
    fill,
    named_tensors,
    on_meta,
    release_freed_memory,
)
from ._objectives import create_objective
from ._plan import default_task_loss, plan
from ._registries import OBJECTIVES

FALLBACK = (
    "Build the whole model in every process instead: --full-build (TrainConfig(full_build=True)); "
    "each process then needs the memory of the whole model while it builds"
)


class RemoteStage(nn.Module):
    """Stands in for a stage, or a cut's objective, that another process builds and trains."""

    def __init__(self, index: int, count: int, what: str = "stage"):
        super().__init__()
        self.index, self.count, self.what = index, count, what

    def forward(self, *args):
        raise SplitError(
            f"{self.what} {self.index + 1} of {self.count} is built and trained by another process "
            "of this stage-parallel run; this process holds only its own stage"
        )

    def extra_repr(self) -> str:
        return f"{self.what} {self.index + 1} of {self.count}, built by another process"


def build_stage(
    config: TrainConfig,
    example: torch.Tensor,
    num_classes: int,
    task: str,
    mean,
    std,
    topology: Topology,
    cuts: list[int] | None = None,
):
    """The plan and a LocalNet holding only this process's stage (and its objective), and the provenance.

    ``cuts`` (cut indices) overrides the planning, as in :func:`splitnet._build.build`. The
    stage's values equal those of a full build from the same random state.

    Raises:
        MetaBuildError: the model cannot be built on the meta device (the message says why
            and names the fallback, ``full_build=True``).
        ValueError: the plan has another number of stages than the launch has processes per replica.
    """
    stage = topology.stage
    meta_example = torch.empty_like(example, device="meta")
    made = {}

    def skeleton() -> nn.Module:
        made["model"], made["provenance"], made["context"] = create_model(
            config, meta_example, num_classes, task
        )
        return made["model"]

    cpu = example.new_empty((0,), device="cpu")
    try:
        blueprint = build_on_meta(skeleton)
        model = blueprint.model
        explicit = cuts if cuts is not None else config.cuts
        p = on_meta(
            lambda: plan(
                model,
                None if explicit is not None else config.k,
                **plan_options(config, num_classes, task, mean, std),
                cuts=explicit,
                example_input=meta_example,
            )
        )
        if p.k != topology.stages:
            raise ValueError(
                f"--stage-parallel needs one process per stage: the plan has K={p.k}, the launch {topology.stages}"
            )
        start, end = p.stages[stage]
        module = p.chain.module(start, end)
        known = {name for name, _ in named_tensors(model)}
        keep = {name for name, _ in named_tensors(module) if name in known}
        fill(
            model,
            build_part(
                lambda: create_model(config, cpu, num_classes, task, made["context"])[0], blueprint, keep
            ),
        )
        module.train(model.training)
        objective = _objective(config, p, stage)
        release_freed_memory()
    except MetaBuildError as exc:
        raise MetaBuildError(
            f"{config.model} cannot be built one stage at a time: {exc}. {FALLBACK}"
        ) from exc
    provenance = made["provenance"]
    if p.k > 1:
        provenance["objective"] = OBJECTIVES.entry(config.objective).as_dict()
    stages = [module if k == stage else RemoteStage(k, p.k) for k in range(p.k)]
    objectives = [objective if k == stage else RemoteStage(k, p.k - 1, "objective") for k in range(p.k - 1)]
    net = LocalNet(stages, objectives, default_task_loss(task), p, num_classes, task).to(example.device)
    unbuilt = [name for name, tensor in named_tensors(net) if tensor.is_meta]
    if unbuilt:
        raise MetaBuildError(
            f"{config.model} cannot be built one stage at a time: {', '.join(unbuilt[:5])} of stage "
            f"{stage + 1} exist only on the meta device (made inside the traced forward). {FALLBACK}"
        )
    return p, net, provenance


def _objective(config: TrainConfig, p, stage: int) -> nn.Module | None:
    """The auxiliary net at the cut after ``stage``, as a full build's ``split`` makes it."""
    OBJECTIVES.entry(config.objective)
    options = dict(p.objective_options)

    def make(i: int) -> nn.Module:
        return create_objective(config.objective, p.context(p.cuts[i], i, p.k - 1), **options)

    torch.manual_seed(config.seed + 1)  # as in a full build: auxiliary nets start from their own seed
    for i in range(min(stage, p.k - 1)):
        build_ghost(lambda i=i: make(i))
    return make(stage) if stage < p.k - 1 else None
