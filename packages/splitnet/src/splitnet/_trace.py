"""Turn any model into an ordered chain of pieces joined by single tensors.

A *cut point* is a place in the forward pass where exactly one tensor carries everything
the rest of the computation needs. Cutting there and feeding the (detached) tensor to the
next piece reproduces the original forward exactly. We find cut points on a torch.fx
graph: a node is a cut point when no earlier value is used after it. Values that do not
depend on the input (parameters read with ``get_attr``, constants, index tables built
from them) are recomputed inside whichever piece uses them, so they never block a cut.

Tracing uses timm's registry of non-traceable modules and functions, and treats as opaque
every module whose own ``forward`` reads ``self.training`` (batch norm variants, drop
path, ...), so each piece keeps switching behaviour with ``train()`` / ``eval()`` at run
time. Functional dropout calls in traced code are rewritten into ``nn.Dropout`` modules
for the same reason. A submodule torch.fx cannot trace is kept opaque (one call, no cut
inside), so only the model's own ``forward`` has to be traceable; wrapping blocks in an
``nn.Sequential`` always gives a traceable one.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ._errors import SplitError, TraceFailure

_MAX_OPAQUE = 64
_DROPOUT_FUNCTIONS = {
    F.dropout: nn.Dropout,
    F.dropout1d: nn.Dropout1d,
    F.dropout2d: nn.Dropout2d,
    F.dropout3d: nn.Dropout3d,
    F.alpha_dropout: nn.AlphaDropout,
}


@functools.cache
def _forward_reads_training(cls: type) -> bool:
    if cls.forward is nn.Module.forward:
        return False
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    return "self.training" in source


def _timm_notrace() -> tuple[set[type], tuple]:
    try:
        from timm.layers import get_notrace_functions, get_notrace_modules
    except ImportError:  # timm is a dependency, but tracing plain torch models needs nothing from it
        return set(), ()
    functions = tuple(f for f in get_notrace_functions() if callable(f))
    return set(get_notrace_modules()), functions


class _Tracer(fx.Tracer):
    """fx tracer with timm's leaf rules; remembers which module it was inside on failure."""

    def __init__(self, leaf_modules: Iterable[type | str] = ()):
        leaf_types, functions = _timm_notrace()
        super().__init__(autowrap_functions=functions)
        extra = list(leaf_modules)
        self.leaf_types = tuple(leaf_types | {t for t in extra if isinstance(t, type)})
        self.leaf_names = {t for t in extra if isinstance(t, str)}
        self.path: list[str] = []

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaf_names or isinstance(m, self.leaf_types):
            return True
        if _forward_reads_training(type(m)):
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        self.path.append(self.path_of_module(m))
        result = super().call_module(m, forward, args, kwargs)
        self.path.pop()
        return result


@dataclass(frozen=True)
class CutPoint:
    """A place where the forward pass can be cut.

    Attributes:
        index: position in :attr:`Chain.cuts` (0-based).
        node: the fx node whose output is carried across the cut.
        aliases: module paths whose forward ends exactly here, outermost first
            (``("layer1", "layer1.17", "layer1.17.act")``); empty for root-level code.
        label: the name shown in tables: the deepest alias that is a container module (a
            block rather than its final activation), else the deepest alias, else the node
            inside its innermost module (``"layer1.3[add_7]"``), else ``node``.
        shape: the carried tensor's shape at the traced batch size, batch dimension first.
        dtype: its dtype.
    """

    index: int
    node: str
    aliases: tuple[str, ...]
    label: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample (batch dimension removed)."""
        return tuple(self.shape[1:])


@dataclass
class Chain:
    """A model as pieces ``0..n`` joined at cut points ``0..n-1``.

    Piece ``i`` maps the tensor at cut ``i-1`` (the model input for ``i == 0``) to the tensor
    at cut ``i`` (the model output for the last piece). Build runnable modules for any
    contiguous range of pieces with :meth:`module`; they share parameters with the model.
    """

    model: nn.Module
    graph_module: fx.GraphModule
    cuts: list[CutPoint]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    _positions: list[int] = field(default_factory=list, repr=False)
    _pieces: list[nn.Module] = field(default_factory=list, repr=False)

    @property
    def num_pieces(self) -> int:
        return len(self.cuts) + 1

    def find(self, name: str) -> CutPoint:
        """The cut point with this alias or node name.

        Raises:
            SplitError: no cut point has that name; the message lists nearby ones.
        """
        for cut in self.cuts:
            if name in (cut.node, cut.label) or name in cut.aliases:
                return cut
        import difflib

        names = [a for c in self.cuts for a in c.aliases] + [c.node for c in self.cuts]
        close = difflib.get_close_matches(name, names, n=5)
        raise SplitError(
            f"'{name}' is not a cut point of {type(self.model).__name__}"
            + (f"; closest: {', '.join(close)}" if close else "")
            + ". A cut must sit where one tensor carries the whole forward (for example after a "
            "residual block, not inside it); list them with `python -m splitnet plan --model ... "
            "--list-cuts` or Chain.cuts."
        )

    def pieces(self) -> list[nn.Module]:
        """One module per piece (built once, then cached)."""
        if not self._pieces:
            self._pieces = [self.module(i, i + 1) for i in range(self.num_pieces)]
        return self._pieces

    def module(self, start: int, stop: int) -> nn.Module:
        """A module computing pieces ``start .. stop-1`` (``0 <= start < stop <= num_pieces``)."""
        if not 0 <= start < stop <= self.num_pieces:
            raise SplitError(f"piece range [{start}, {stop}) is outside 0..{self.num_pieces}")
        return _graph_range(self, start, stop)


def _node_shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata):
        return tuple(meta.shape)
    return None


def module_paths(node: fx.Node) -> list[str]:
    """Module paths enclosing ``node`` (fx marks repeated calls as ``path@2``; drop that)."""
    paths = [p.split("@")[0] for p in node.meta.get("nn_module_stack", {})]
    if node.op == "call_module":
        paths.append(node.target)
    return list(dict.fromkeys(p for p in paths if p))


def _aliases(order: list[fx.Node], pos: int) -> tuple[str, ...]:
    """Module paths that contain node ``pos`` and no later node: their forward ends here."""
    later: set[str] = set()
    for node in order[pos + 1 : -1]:
        later.update(module_paths(node))
    ending = [p for p in module_paths(order[pos]) if p not in later]
    return tuple(sorted(ending, key=lambda p: p.count(".")))


def _has_children(roots: tuple[nn.Module, ...], path: str) -> bool:
    for root in roots:
        try:
            return any(True for _ in root.get_submodule(path).children())
        except AttributeError:
            continue
    return False


def _label(roots: tuple[nn.Module, ...], aliases: tuple[str, ...], node: fx.Node) -> str:
    containers = [a for a in aliases if _has_children(roots, a)]
    if containers:
        return containers[-1]
    if aliases:
        return aliases[-1]
    enclosing = module_paths(node)
    return f"{enclosing[-1]}[{node.name}]" if enclosing else node.name


def _default_arguments(model: nn.Module) -> dict:
    """Every forward argument after the first that has a default is traced at that default."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default
        for p in params[1:]
        if p.default is not inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _rewrite_functional_dropout(gm: fx.GraphModule, traced_training: bool) -> None:
    """Make ``F.dropout(x, p, training=self.training)`` follow the mode at run time."""
    for i, node in enumerate(list(gm.graph.nodes)):
        if node.op == "call_function" and node.target in _DROPOUT_FUNCTIONS:
            p = node.kwargs.get("p", node.args[1] if len(node.args) > 1 else 0.5)
            training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
            if not isinstance(p, (int, float)) or training is not traced_training:
                continue  # a constant mode chosen on purpose (e.g. MC dropout): keep it
            name = f"_splitnet_dropout_{i}"
            gm.add_submodule(name, _DROPOUT_FUNCTIONS[node.target](p=float(p)).train(traced_training))
            with gm.graph.inserting_after(node):
                new = gm.graph.call_module(name, (node.args[0],))
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


def trace(
    model: nn.Module,
    example_input: torch.Tensor,
    leaf_modules: Sequence[type | str] = (),
) -> Chain:
    """Find every cut point of ``model`` and return it as a :class:`Chain`.

    Args:
        model: any ``nn.Module`` taking one tensor whose own ``forward`` torch.fx can trace
            (timm models trace with timm's leaf registrations; an ``nn.Sequential`` always does).
        example_input: one batch (at least 2 samples, so batch norm can run in train mode);
            used to record the shape and dtype at every cut.
        leaf_modules: module classes or qualified names to keep opaque while tracing (use it
            for submodules with data-dependent control flow).

    Returns:
        The chain; ``chain.module(0, chain.num_pieces)`` computes the same output as ``model``.

    A submodule torch.fx cannot trace (data-dependent control flow, shape checks) is kept
    opaque automatically, with a warning naming it: it runs as one call and no cut falls
    inside it.

    Raises:
        TraceFailure: the model's own forward cannot be traced, or the split would change
            its output; the message says why and what to do.
        SplitError: the example input is rejected by the model.
    """
    if not isinstance(example_input, torch.Tensor):
        raise SplitError(f"example_input must be one tensor, got {type(example_input).__name__}")
    leaves, opaque = list(leaf_modules), []
    while True:
        tracer = _Tracer(leaves)
        try:
            graph = tracer.trace(model, concrete_args=_default_arguments(model))
            break
        except Exception as exc:
            failing = tracer.path[-1] if tracer.path else ""
            if failing and failing not in leaves and len(opaque) < _MAX_OPAQUE:
                # a submodule torch.fx cannot trace runs as one opaque call: correct, just no cut inside
                leaves.append(failing)
                opaque.append(f"{failing} ({type(model.get_submodule(failing)).__name__})")
                continue
            where = f"'{failing}'" if failing else "the top-level forward"
            raise TraceFailure(
                f"cannot trace {type(model).__name__}: torch.fx failed inside {where}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}. Fix: make that forward traceable (no "
                "Python control flow on tensor values), register non-traceable helper functions with "
                "timm.layers.register_notrace_function, or give an nn.Sequential of blocks (cut between "
                "its children)."
            ) from exc
    if opaque:
        warnings.warn(
            f"{type(model).__name__}: kept {', '.join(opaque)} opaque because torch.fx cannot trace "
            "through it; no cut falls inside (pass leaf_modules= to choose this yourself)",
            stacklevel=2,
        )
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    _rewrite_functional_dropout(gm, model.training)
    _propagate_shapes(gm, model, example_input)
    order = list(gm.graph.nodes)
    positions = _cut_positions(order)
    cuts = []
    for i, p in enumerate(positions):
        aliases = _aliases(order, p)
        cuts.append(
            CutPoint(
                i,
                order[p].name,
                aliases,
                _label((model, gm), aliases, order[p]),
                _node_shape(order[p]),
                order[p].meta["tensor_meta"].dtype,
            )
        )
    output = order[-1].args[0]
    out_shape = _node_shape(output) if isinstance(output, fx.Node) else None
    chain = Chain(model, gm, cuts, tuple(example_input.shape), out_shape, positions)
    _verify(chain, example_input)
    return chain


def _verify(chain: Chain, example: torch.Tensor) -> None:
    """Run the pieces one after another and check they reproduce the model exactly.

    Runs in the mode the model was traced in, with the same random state for both passes
    and every buffer restored afterwards, so the check leaves no trace.
    """
    if example.is_meta:
        return  # a model built on the meta device has no values to compare
    model = chain.model
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[example.device] if example.is_cuda else []):
            torch.manual_seed(0)
            reference = model(example)
            torch.manual_seed(0)
            h = example
            for piece in chain.pieces():
                h = piece(h)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    if not (isinstance(reference, torch.Tensor) and isinstance(h, torch.Tensor)):
        return
    diff = (h.float() - reference.float()).abs().max().item() if h.shape == reference.shape else float("inf")
    if diff > 1e-5 * max(1.0, reference.abs().max().item()):
        raise TraceFailure(
            f"splitting {type(model).__name__} at its {len(chain.cuts)} cut points changes its output "
            f"(max abs difference {diff:.3g}): some operation's effect is not captured by the traced graph. "
            "Keep the offending submodule opaque with leaf_modules=[...], or give an nn.Sequential; "
            "please report the model."
        )


def _propagate_shapes(gm: fx.GraphModule, model: nn.Module, example: torch.Tensor) -> None:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as exc:
        first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
        if first is not None and example.dim() >= 2 and example.shape[1] != first.in_channels:
            raise SplitError(
                f"{type(model).__name__} expects {first.in_channels} channels, got {example.shape[1]} "
                f"(an input of shape {tuple(example.shape)}): pass images with {first.in_channels} "
                "channels, or build the model for yours (e.g. in_chans=)"
            ) from exc
        cause = exc
        while cause.__cause__ is not None:  # ShapeProp wraps the model's own error in its own
            cause = cause.__cause__
        raise SplitError(
            f"{type(model).__name__} rejected an input of shape {tuple(example.shape)}: "
            f"{type(cause).__name__}: {cause}. Pass an example input the model accepts (check the "
            "channel count and the image size it was built for, e.g. timm's img_size=)."
        ) from exc
    finally:
        for m, mode in modes.items():
            m.training = mode


def carried_nodes(order: list[fx.Node]) -> set[fx.Node]:
    """Nodes that must run in place, in order: never recomputed inside a later piece.

    That is every value depending on the input, and every node without users (an in-place
    update such as ``t.add_(...)``: its effect is the point) together with what it mutates,
    since recomputing a mutated value elsewhere would miss the mutation. The rest (weights,
    constants, index tables) is recomputed wherever it is used.
    """
    carried: set[fx.Node] = {order[0]}  # the input; other placeholders keep their defaults
    for node in order[1:]:
        if any(a in carried for a in node.all_input_nodes):
            carried.add(node)
    pinned = [
        n for n in order[1:-1] if not n.users and n.op in ("call_method", "call_function", "call_module")
    ]
    while pinned:
        node = pinned.pop()
        if node not in carried:
            carried.add(node)
            pinned.extend(a for a in node.all_input_nodes if a.op != "get_attr")
        elif not node.users:
            pinned.extend(a for a in node.all_input_nodes if a not in carried and a.op != "get_attr")
    return carried


def _cut_positions(order: list[fx.Node]) -> list[int]:
    """Positions of nodes after which no other input-dependent value is still needed."""
    dependent = carried_nodes(order)
    index = {n: i for i, n in enumerate(order)}
    last_use = {n: max((index[u] for u in n.users), default=index[n]) for n in dependent}
    final = order[-1].args[0]
    positions = []
    reach = 0  # furthest position any earlier dependent value is still used at
    for pos, node in enumerate(order[:-1]):
        if (
            node in dependent
            and node.op != "placeholder"
            and reach <= pos
            and node is not final
            and isinstance(node.meta.get("tensor_meta"), TensorMetadata)
            and any(index[u] > pos for u in node.users)
        ):
            positions.append(pos)
        if node in dependent:
            reach = max(reach, last_use[node])
    return positions


def _graph_range(chain: Chain, start: int, stop: int) -> fx.GraphModule:
    order = list(chain.graph_module.graph.nodes)
    first = 0 if start == 0 else chain._positions[start - 1] + 1
    last = len(order) - 2 if stop == chain.num_pieces else chain._positions[stop - 1]
    dependent = carried_nodes(order)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    if start == 0:
        env[order[0]] = graph.placeholder(order[0].name)
    else:
        carried = order[chain._positions[start - 1]]
        env[carried] = graph.placeholder(carried.name)

    def materialise(node: fx.Node) -> fx.Node:
        if node not in env:
            if node in dependent:
                raise AssertionError(f"value {node.name} crosses a cut")  # guarded by _cut_positions
            for arg in node.all_input_nodes:
                materialise(arg)
            env[node] = graph.node_copy(node, lambda n: env[n])
        return env[node]

    for node in order[first : last + 1]:
        if node in dependent and node not in env:
            for arg in node.all_input_nodes:
                materialise(arg)
            env[node] = graph.node_copy(node, lambda n: env[n])
    if stop == chain.num_pieces:
        result = fx.map_arg(order[-1].args[0], materialise)
    else:
        result = env[order[last]]
    graph.output(result)
    # no dead-code elimination: a node without users may be an in-place update that matters
    return fx.GraphModule(chain.graph_module, graph, f"{type(chain.model).__name__}Pieces{start}to{stop}")
