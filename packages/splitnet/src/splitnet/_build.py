"""The model a run trains: backbone (and head), plan and LocalNet, with who supplied each part."""

from __future__ import annotations

import torch
from torch import nn

from localkit_registry import HeadContext

from ._backbones import backbone_provenance, create_backbone
from ._config import TrainConfig
from ._heads import create_head
from ._layout import infer_layout
from ._localnet import split
from ._plan import plan
from ._registries import HEADS, OBJECTIVES


class HeadedModel(nn.Module):
    """A backbone followed by a head from ``splitnet.heads`` (traced and split as one model)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head
        # the backbone's hand-picked plans still apply: its cut points are now under "backbone."
        self.named_plans = {
            name: {k: [f"backbone.{cut}" for cut in cuts] for k, cuts in by_k.items()}
            for name, by_k in (getattr(backbone, "named_plans", None) or {}).items()
        }

    def forward(self, x):
        return self.head(self.backbone(x))


def head_context(backbone: nn.Module, example: torch.Tensor, num_classes: int, task: str) -> HeadContext:
    """What a head on ``backbone`` is told: the backbone's output shape on ``example``, and more."""
    was_training = backbone.training
    with torch.no_grad():
        features = backbone.eval()(example)
    backbone.train(was_training)
    feature_shape, input_shape = tuple(features.shape[1:]), tuple(example.shape[1:])
    return HeadContext(
        feature_shape=feature_shape,
        layout=infer_layout(feature_shape, input_shape),
        num_classes=num_classes,
        input_shape=input_shape,
        task=task,
    )


def attach_head(
    backbone: nn.Module, name: str, example: torch.Tensor, num_classes: int, task: str, **options
) -> HeadedModel:
    """Put head ``name`` on ``backbone``, sized from the backbone's output on ``example``."""
    head = create_head(name, head_context(backbone, example, num_classes, task), **options)
    return HeadedModel(backbone, head.to(example.device))


def create_model(
    config: TrainConfig,
    example: torch.Tensor,
    num_classes: int,
    task: str,
    context: HeadContext | None = None,
) -> tuple[nn.Module, dict, HeadContext | None]:
    """The backbone (and head) a config describes, on ``example``'s device, with who supplied them.

    The head is sized from ``context`` when given (a rebuild that cannot run the backbone),
    else from the backbone's output on ``example``.

    Returns:
        The model, the provenance of its parts, and the head's context (``None``: no head).
    """
    options = dict(config.model_options)
    if config.head is None:
        options.setdefault("num_classes", num_classes)
    model = _moved(create_backbone(config.model, **options), example.device)
    provenance = {"backbone": backbone_provenance(config.model)}
    if config.head is not None:
        context = context or head_context(model, example, num_classes, task)
        head = create_head(config.head, context, **config.head_options)
        model = HeadedModel(model, _moved(head, example.device))
        provenance["head"] = HEADS.entry(config.head).as_dict()
    return model, provenance, context


def _moved(module: nn.Module, device: torch.device) -> nn.Module:
    # models are built on the CPU: a move there changes nothing, except that it would fail on
    # the meta tensors of a model built one stage at a time
    return module if device.type == "cpu" else module.to(device)


def build(
    config: TrainConfig,
    example: torch.Tensor,
    num_classes: int,
    task: str,
    mean,
    std,
    cuts: list[int] | None = None,
):
    """The model, plan and LocalNet a config describes, and the provenance of each part.

    ``cuts`` (cut indices) overrides the planning, so that every process of a distributed
    run trains the same stages (rank 0 plans, the others follow).
    """
    model, provenance, _ = create_model(config, example, num_classes, task)
    explicit = cuts if cuts is not None else config.cuts
    p = plan(
        model,
        None if explicit is not None else config.k,
        **plan_options(config, num_classes, task, mean, std),
        cuts=explicit,
        example_input=example,
    )
    if p.k > 1:
        provenance["objective"] = OBJECTIVES.entry(config.objective).as_dict()
    torch.manual_seed(config.seed + 1)  # auxiliary nets start the same however the cuts were found
    net = split(model, p).to(example.device)
    return model, p, net, provenance


def plan_options(config: TrainConfig, num_classes: int, task: str, mean, std) -> dict:
    """The keywords of :func:`splitnet.plan` that a run's settings fix."""
    return {
        "balance": config.balance,
        "objective": config.objective,
        "objective_options": config.objective_options,
        "num_classes": num_classes,
        "task": task,
        "input_mean": mean,
        "input_std": std,
        "granularity": config.cut_granularity,
        "backbone": config.model,
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "measure_memory": True,
    }
