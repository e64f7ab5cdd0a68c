"""scoredist: USDL and MUSDL score distribution learning for action quality assessment.

Gaussian soft labels over score bins, one distribution (USDL) or one per judge (MUSDL),
scoring rules from the ``scoredist.rules`` entry-point group, AQA metrics, and honest
protocols (model selection on a validation split). Backbones come from the
``splitnet.backbones`` group and datasets from ``vidio.datasets``, read through entry
points: scoredist imports neither splitnet nor vidio.

Example:
    >>> import torch, scoredist
    >>> bins = scoredist.ScoreBins.from_step(0, 10, 0.5)
    >>> bins.gaussian(torch.tensor([7.5]), sigma=1.0).shape
    torch.Size([1, 21])
"""

from importlib.metadata import PackageNotFoundError, version

from localkit_registry import ContractError, OptionError, PluginLoadError, RegistryError, UnknownEntryError

from ._bins import ScoreBins
from ._data import Dive, mtl_aqa_dives
from ._features import ClipEncoder, FeatureSet, cut_segments, extract_features, segment_starts
from ._heads import MUSDLHead, ScoreDistributionHead, USDLHead, kl_loss
from ._metrics import evaluate, fisher_z_mean, kfold_average, l2, relative_l2, spearman
from ._plugins import create_backbone, create_dataset
from ._presets import PRESETS, Preset
from ._protocol import kfold_summary, select_epoch, split_validation, summarize
from ._rules import apply_rule, check_judge_scores, get_rule, list_rules
from ._train import ScoreModel, TrainConfig, TrainResult, load_model, predict, soft_labels, train

try:
    __version__ = version("localkit-scoredist")
except PackageNotFoundError:
    __version__ = "0+unknown"

__all__ = [
    "PRESETS",
    "ClipEncoder",
    "ContractError",
    "Dive",
    "FeatureSet",
    "MUSDLHead",
    "OptionError",
    "PluginLoadError",
    "Preset",
    "RegistryError",
    "ScoreBins",
    "ScoreDistributionHead",
    "ScoreModel",
    "TrainConfig",
    "TrainResult",
    "USDLHead",
    "UnknownEntryError",
    "__version__",
    "apply_rule",
    "check_judge_scores",
    "create_backbone",
    "create_dataset",
    "cut_segments",
    "evaluate",
    "extract_features",
    "fisher_z_mean",
    "get_rule",
    "kfold_average",
    "kfold_summary",
    "kl_loss",
    "l2",
    "list_rules",
    "load_model",
    "mtl_aqa_dives",
    "predict",
    "relative_l2",
    "segment_starts",
    "select_epoch",
    "soft_labels",
    "spearman",
    "split_validation",
    "summarize",
    "train",
]
