"""splitnet: split any timm or PyTorch model into gradient-isolated local modules.

Trace a model into a chain of cut points, plan K stages (even, memory- or time-balanced,
the paper's hand-picked cuts, or a memory budget), split it into a :class:`LocalNet` whose
inference equals the original model, and train each stage on a local objective.

Example:
    >>> import torch, splitnet
    >>> model = splitnet.create_backbone("cifar_resnet32", num_classes=10)
    >>> net = splitnet.split(model, splitnet.plan(model, 4, balance="memory"))
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> result = net.local_step(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    >>> opt.step()
    >>> len(result.losses)
    4
"""

from localkit_registry import (
    ContractError,
    CutContext,
    DuplicateEntryError,
    HeadContext,
    OptionError,
    PluginLoadError,
    RegistryError,
    UnknownEntryError,
)

from ._backbones import backbone_provenance, create_backbone, list_backbones
from ._blocks import block_cuts
from ._build import HeadedModel, attach_head
from ._config import TrainConfig
from ._datasets import DatasetLayoutError, create_dataset, list_datasets
from ._errors import (
    CheckpointError,
    NonFiniteLossError,
    RunFolderError,
    SplitError,
    TraceFailure,
    TrainingError,
)
from ._evaluation import evaluate
from ._heads import create_head, list_heads
from ._localnet import LocalNet, StepResult, split
from ._objectives import create_objective, list_objectives
from ._plan import Plan, plan
from ._probe import DepthProbe, ProbeResult, ProbeSettings, load_probe, probe
from ._probeplot import plot_probe
from ._trace import Chain, CutPoint, trace
from ._train import Run, load_run, train

__version__ = "0.1.0"

__all__ = [
    "Chain",
    "CheckpointError",
    "ContractError",
    "CutContext",
    "CutPoint",
    "DepthProbe",
    "DatasetLayoutError",
    "DuplicateEntryError",
    "HeadContext",
    "HeadedModel",
    "LocalNet",
    "NonFiniteLossError",
    "OptionError",
    "Plan",
    "ProbeResult",
    "ProbeSettings",
    "Run",
    "PluginLoadError",
    "RegistryError",
    "RunFolderError",
    "SplitError",
    "StepResult",
    "TraceFailure",
    "TrainConfig",
    "TrainingError",
    "UnknownEntryError",
    "attach_head",
    "backbone_provenance",
    "block_cuts",
    "create_backbone",
    "create_dataset",
    "create_head",
    "create_objective",
    "evaluate",
    "list_backbones",
    "list_datasets",
    "list_heads",
    "list_objectives",
    "load_probe",
    "load_run",
    "plan",
    "plot_probe",
    "probe",
    "split",
    "trace",
    "train",
]
