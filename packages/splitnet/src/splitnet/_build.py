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


def attach_head(
    backbone: nn.Module, name: str, example: torch.Tensor, num_classes: int, task: str, **options
) -> HeadedModel:
    """Put head ``name`` on ``backbone``, sized from the backbone's output on ``example``."""
    was_training = backbone.training
    with torch.no_grad():
        features = backbone.eval()(example)
    backbone.train(was_training)
    feature_shape, input_shape = tuple(features.shape[1:]), tuple(example.shape[1:])
    context = HeadContext(
        feature_shape=feature_shape,
        layout=infer_layout(feature_shape, input_shape),
        num_classes=num_classes,
        input_shape=input_shape,
        task=task,
    )
    head = create_head(name, context, **options)
    return HeadedModel(backbone, head.to(example.device))


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
    options = dict(config.model_options)
    if config.head is None:
        options.setdefault("num_classes", num_classes)
    model = create_backbone(config.model, **options)
    provenance = {"backbone": backbone_provenance(config.model)}
    model = model.to(example.device)
    if config.head is not None:
        model = attach_head(model, config.head, example, num_classes, task, **config.head_options)
        provenance["head"] = HEADS.entry(config.head).as_dict()
    explicit = cuts if cuts is not None else config.cuts
    p = plan(
        model,
        None if explicit is not None else config.k,
        balance=config.balance,
        cuts=explicit,
        example_input=example,
        objective=config.objective,
        objective_options=config.objective_options,
        num_classes=num_classes,
        task=task,
        input_mean=mean,
        input_std=std,
        granularity=config.cut_granularity,
        backbone=config.model,
        dataset=config.dataset,
        batch_size=config.batch_size,
        measure_memory=True,
    )
    if p.k > 1:
        provenance["objective"] = OBJECTIVES.entry(config.objective).as_dict()
    torch.manual_seed(config.seed + 1)  # auxiliary nets start the same however the cuts were found
    net = split(model, p).to(example.device)
    return model, p, net, provenance
