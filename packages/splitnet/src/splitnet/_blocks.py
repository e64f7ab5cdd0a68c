"""Which cut points lie at block boundaries: where plans cut by default.

A traced model can often be cut inside a block as well as between blocks (after a
residual addition but before its activation, for example), since one tensor carries the
computation there too. Plans cut only at block boundaries unless asked otherwise
(``granularity="node"``), so every local module ends where the model's author ended a unit
and hands finished features to its objective.

Definitions, on the modules torch.fx recorded while tracing (the model itself excluded):

* a **block** is a module that has submodules of its own (a stem, a stage, a residual or
  transformer block, a patch embedding, a timm ``BatchNormAct2d``), or any direct child
  of the model when the model is an ``nn.Sequential`` (a Sequential of plain layers is cut
  between its layers);
* a cut point is at a **block boundary** when a block's forward ends there (the carried
  tensor is the block's output) or the very next computation is the first of a block (the
  carried tensor is the block's input: the output of timm's ResNet ``maxpool``, the stem's
  last layer, is ``layer1``'s input).

Cuts inside a block fall where no block ends or begins: after the addition of a residual
block (its activation still to come), after a convolution of a stem made of plain layers.
"""

from __future__ import annotations

import torch.fx as fx
from torch import nn

from ._trace import Chain, CutPoint, carried_nodes, module_paths

GRANULARITIES = ("block", "node")


def _is_container(model: nn.Module, path: str) -> bool:
    try:
        module = model.get_submodule(path)
    except AttributeError:
        return False
    return any(True for _ in module.children())


def block_cuts(chain: Chain) -> list[CutPoint]:
    """The cut points of ``chain`` that lie at block boundaries, where plans cut by default.

    A block is a submodule with submodules of its own (a stem, stage, residual or
    transformer block), or a direct child of a model that is an ``nn.Sequential``; a cut
    point is at a block boundary when a block's forward ends there or begins right after it.

    Example:
        >>> import torch, splitnet
        >>> chain = splitnet.trace(splitnet.create_backbone("cifar_resnet20"), torch.randn(2, 3, 32, 32))
        >>> [cut.label for cut in splitnet.block_cuts(chain)][:3]
        ['stem', 'layer1.0', 'layer1.1']
    """
    model = chain.model
    order: list[fx.Node] = list(chain.graph_module.graph.nodes)
    dependent = carried_nodes(order)
    sequential_root = isinstance(model, nn.Sequential)

    def is_block(path: str) -> bool:
        if sequential_root and "." not in path:
            return True
        return _is_container(model, path)

    first: dict[str, int] = {}  # where each module's forward begins
    for pos, node in enumerate(order):
        for path in module_paths(node):
            first.setdefault(path, pos)
    blocks = []
    for cut, pos in zip(chain.cuts, chain._positions):
        if any(is_block(path) for path in cut.aliases):
            blocks.append(cut)
            continue
        following = next((n for n in order[pos + 1 : -1] if n in dependent), None)
        if following is None:
            continue
        starting = [p for p in module_paths(following) if first[p] > pos]
        if any(is_block(path) for path in starting):
            blocks.append(cut)
    return blocks
