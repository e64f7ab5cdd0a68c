"""infoloss: local objectives for gradient-isolated local training.

InfoPro (reconstruction + supervised contrastive or cross-entropy, Wang et al. ICLR 2021),
greedy supervised learning through InfoPro's auxiliary heads, and DGL (Belilovsky et al.
ICML 2020). Each objective is registered in splitnet's ``splitnet.objectives`` entry-point
group (``infopro``, ``greedy-aux``, ``dgl``) and can also be used directly, given the cut's
:class:`CutContext` (the same class as ``splitnet.CutContext``)::

    import torch
    import infoloss

    context = infoloss.CutContext(feature_shape=(16, 32, 32), num_classes=10,
                                  input_shape=(3, 32, 32), index=0, num_cuts=3)
    objective = infoloss.infopro(context, lambda_recon="5,0")
    loss = objective(torch.randn(8, 16, 32, 32), torch.rand(8, 3, 32, 32), torch.randint(10, (8,)))

Auxiliary nets are sized from the feature shape at the cut, for image features (NCHW,
NHWC), vision-transformer tokens (NLC, with or without a grid), vectors and video.
"""

from localkit_registry import CutContext

from ._aux import AUX_CONFIGS, DGL_TYPES, AuxHead, DenseAuxHead, DGLHead
from ._decoder import ReconstructionDecoder
from ._lambdas import PAPER_LAMBDAS, PaperLambdas, paper_lambdas
from ._losses import linear_schedule, reconstruction_loss, supcon_loss
from ._objectives import (
    DGLObjective,
    GreedyAuxObjective,
    InfoProObjective,
    dgl,
    greedy_aux,
    infopro,
)

__version__ = "0.1.0"

__all__ = [
    "AUX_CONFIGS",
    "DGL_TYPES",
    "PAPER_LAMBDAS",
    "AuxHead",
    "CutContext",
    "DGLHead",
    "DGLObjective",
    "DenseAuxHead",
    "GreedyAuxObjective",
    "InfoProObjective",
    "PaperLambdas",
    "ReconstructionDecoder",
    "__version__",
    "dgl",
    "greedy_aux",
    "infopro",
    "linear_schedule",
    "paper_lambdas",
    "reconstruction_loss",
    "supcon_loss",
]
