"""Build a model without its memory, then give real values to the part one process trains.

A stage-parallel process trains one stage. Building the whole model first would bound the
largest model anyone can train by one process's memory, so the model is built twice,
never whole:

1. :func:`build_on_meta`: every parameter and buffer becomes a meta tensor as its module
   registers it. Shapes, dtypes and the module tree exist, so the model can be traced and
   planned; no values do.
2. :func:`build_part`: the same construction again, from the same random state. The
   parameters and buffers named in ``keep`` stay real, as the model's own code makes them;
   every other one becomes a meta tensor when it is registered.

**Why the kept values equal a full build's.** A full build draws every random number from
the generators (torch's CPU generator, Python's, NumPy's) in the order the model's code
initialises its tensors. Both builds run that code in that order. A random call on a meta
tensor (any ``torch.nn.init`` function, ``Tensor.normal_`` and the other random methods,
``torch.randn(..., device="meta")``) is first run whole on a throwaway CPU tensor of the
same shape, strides and dtype, which draws exactly the numbers the real call would draw,
rejection loops included; then on the meta tensor. So whenever a kept tensor is
initialised the generators stand where they would in a full build, and its values are the
full build's, bit for bit.

**Checks.** The construction must register the same tensors in the same order in both
builds, and the second build must leave torch's generator exactly where the all-meta
build left it: code that draws random numbers only for real tensors (or only for meta
ones) fails that check instead of silently giving other values. A real tensor computed
from a meta one (a kept weight copied from an unbuilt one), a random operation on a meta
tensor that is not one of the calls above, or a value read from a meta tensor
(``.item()``) stops the build with :class:`MetaBuildError`.

**Limits.** A throwaway tensor lives for one call, so the peak is one process's share plus
the largest single tensor. Construction runs twice (and the random numbers of the whole
model are drawn in each), so building takes about twice as long as a full build. Models
must be built on the CPU, as splitnet builds them (they move to their device afterwards).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from ._errors import MetaBuildError

_META = torch.device("meta")
# tensor methods and torch functions that draw random numbers (besides all of torch.nn.init)
_RANDOM_CALLS = frozenset(
    {
        "bernoulli",
        "bernoulli_",
        "cauchy_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "multinomial",
        "normal",
        "normal_",
        "poisson",
        "rand",
        "rand_like",
        "randint",
        "randint_like",
        "randn",
        "randn_like",
        "random_",
        "randperm",
        "uniform_",
    }
)


def _is_meta(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_meta
    return isinstance(value, (str, torch.device)) and torch.device(value) == _META


def _involves_meta(args, kwargs) -> bool:
    leaves = pytree.tree_leaves((args, kwargs))
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in leaves) or _is_meta(kwargs.get("device"))


def _draws_random(func) -> bool:
    return (
        getattr(func, "__module__", None) == "torch.nn.init" or getattr(func, "__name__", "") in _RANDOM_CALLS
    )


def _throwaway(value):
    """A CPU stand-in for a meta tensor (same shape, strides, dtype), or CPU for a meta device."""
    if isinstance(value, torch.Tensor) and value.is_meta:
        scratch = torch.empty_strided(value.size(), value.stride(), dtype=value.dtype).zero_()
        return scratch.requires_grad_(value.requires_grad) if scratch.is_floating_point() else scratch
    if isinstance(value, (str, torch.device)) and _is_meta(value):
        return torch.device("cpu")
    return value


class _Guard(TorchDispatchMode):
    """Stops the build where a meta tensor would silently change what a real one holds."""

    def __init__(self):
        super().__init__()
        self.replaying = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        meta = _involves_meta(args, kwargs)
        if meta and not self.replaying and torch.Tag.nondeterministic_seeded in func.tags:
            raise MetaBuildError(
                f"{func} draws random numbers on a meta tensor from inside an operation splitnet does not "
                "replay (only torch.nn.init and the random tensor methods are)"
            )
        out = func(*args, **kwargs)
        if meta and any(isinstance(t, torch.Tensor) and not t.is_meta for t in pytree.tree_leaves(out)):
            raise MetaBuildError(
                f"{func} computes a real tensor from a meta one: a value of the part being built "
                "depends on a part that is not built"
            )
        return out


class _Replay(TorchFunctionMode):
    """Runs every random call on a meta tensor first on a throwaway CPU tensor (see module doc)."""

    def __init__(self, guard: _Guard):
        super().__init__()
        self.guard = guard

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _draws_random(func) and _involves_meta(args, kwargs):
            func(*pytree.tree_map(_throwaway, args), **pytree.tree_map(_throwaway, kwargs))
            self.guard.replaying = True
            try:
                return func(*args, **kwargs)
            finally:
                self.guard.replaying = False
        return func(*args, **kwargs)


def _initialiser(original):
    def initialise(tensor, *args, **kwargs):
        if isinstance(tensor, torch.Tensor) and tensor.is_meta:
            # a meta tensor has no values to set: only the random numbers the call draws matter
            original(_throwaway(tensor), *args, **kwargs)
            return tensor
        return original(tensor, *args, **kwargs)

    return initialise


@contextlib.contextmanager
def _replaying_initialisers() -> Iterator[None]:
    """Every in-place initialiser of ``torch.nn.init`` replayed on meta tensors.

    Some of them return at once for a meta tensor (``trunc_normal_``, ``orthogonal_``) and
    the others are not all seen by a torch-function mode, so each is wrapped for the
    duration of a build (code calls them through the module, as ``nn.init.trunc_normal_``).
    """
    names = [name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
    originals = {name: getattr(nn.init, name) for name in names}
    try:
        for name, original in originals.items():
            setattr(nn.init, name, _initialiser(original))
        yield
    finally:
        for name, original in originals.items():
            setattr(nn.init, name, original)


class _Registrations:
    """Global registration hooks: each parameter or buffer, in the order the model's code
    registers it, stays real (``keep(index)``) or becomes a meta tensor of the same kind."""

    def __init__(self, keep: Callable[[int], bool]):
        self.keep = keep
        self.registered: list[torch.Tensor] = []  # referenced, so that their ids stay unique
        self.ids: set[int] = set()

    def parameter(self, module: nn.Module, name: str, param):
        if param is not None and type(param) is not nn.Parameter and not param.is_meta:
            raise MetaBuildError(
                f"{type(module).__name__}.{name} is a {type(param).__name__}, which cannot be built on the meta device"
            )
        return self._register(
            module, name, param, lambda t: nn.Parameter(t, requires_grad=param.requires_grad)
        )

    def buffer(self, module: nn.Module, name: str, tensor):
        return self._register(module, name, tensor, lambda t: t)

    def _register(self, module: nn.Module, name: str, tensor, wrap):
        if tensor is None or id(tensor) in self.ids:
            return None  # nothing to build, or a tensor registered again under another name
        index = len(self.registered)
        if self.keep(index):
            if tensor.is_meta:
                raise MetaBuildError(
                    f"{type(module).__name__}.{name} is made on the meta device by the model's own code, "
                    "so its value cannot be built"
                )
            result = tensor
        else:
            result = tensor if tensor.is_meta else wrap(torch.empty_like(tensor, device=_META))
        self.registered.append(result)
        self.ids.add(id(result))
        return None if result is tensor else result


@dataclass
class _RandomState:
    torch: torch.Tensor
    python: object
    numpy: dict

    @classmethod
    def now(cls) -> _RandomState:
        return cls(torch.get_rng_state(), random.getstate(), np.random.get_state(legacy=False))

    def restore(self) -> None:
        torch.set_rng_state(self.torch)
        random.setstate(self.python)
        np.random.set_state(self.numpy)


@contextlib.contextmanager
def _building(keep: Callable[[int], bool], replay: bool) -> Iterator[_Registrations]:
    registrations = _Registrations(keep)
    handles = [
        nn.modules.module.register_module_parameter_registration_hook(registrations.parameter),
        nn.modules.module.register_module_buffer_registration_hook(registrations.buffer),
    ]
    modes = contextlib.ExitStack()
    if replay:
        modes.enter_context(_replaying_initialisers())
        guard = modes.enter_context(_Guard())
        modes.enter_context(_Replay(guard))
    try:
        with modes:
            yield registrations
    except (RuntimeError, NotImplementedError) as exc:
        if "meta" not in str(exc).lower():
            raise  # a failure of the construction itself, which a full build meets too
        raise MetaBuildError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    finally:
        for handle in handles:
            handle.remove()


def named_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of ``model`` under every name it has (shared ones repeated)."""
    yield from model.named_parameters(remove_duplicate=False)
    yield from ((name, b) for name, b in model.named_buffers(remove_duplicate=False) if b is not None)


def _set_tensor(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner)
    (module._parameters if leaf in module._parameters else module._buffers)[leaf] = tensor


def _to_meta(tensor: torch.Tensor) -> torch.Tensor:
    meta = torch.empty_like(tensor, device=_META)
    return (
        nn.Parameter(meta, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
    )


def _meta_elsewhere(model: nn.Module, keep: set[str]) -> None:
    """Make meta every tensor the registration hooks did not see (set behind nn.Module's back)."""
    done: dict[int, torch.Tensor] = {}
    for name, tensor in list(named_tensors(model)):
        if not tensor.is_meta and name not in keep:
            _set_tensor(model, name, done.setdefault(id(tensor), _to_meta(tensor)))


@dataclass
class Blueprint:
    """A model built on the meta device, and what :func:`build_part` needs to build a part of it.

    Attributes:
        model: the model, every parameter and buffer a meta tensor.
        names: for each registration, in order, the names the registered tensor has in the
            model (empty for one the construction replaced later).
        start: the random state the construction began from.
        end: torch's generator state after it (random calls on meta tensors replayed).
    """

    model: nn.Module
    names: list[frozenset[str]]
    start: _RandomState
    end: torch.Tensor


def build_on_meta(make: Callable[[], nn.Module]) -> Blueprint:
    """Run ``make()`` with every parameter and buffer on the meta device (see module doc).

    Raises:
        MetaBuildError: the construction reads a value from a meta tensor, or draws random
            numbers in a way that cannot be replayed.
    """
    start = _RandomState.now()
    with _building(lambda index: False, replay=True) as registrations:
        model = make()
    end = torch.get_rng_state()
    holders: dict[int, set[str]] = {}
    for name, tensor in named_tensors(model):
        holders.setdefault(id(tensor), set()).add(name)
    names = [frozenset(holders.get(id(t), ())) for t in registrations.registered]
    _meta_elsewhere(model, set())
    return Blueprint(model, names, start, end)


def build_part(
    make: Callable[[], nn.Module], blueprint: Blueprint, keep: set[str]
) -> dict[str, torch.Tensor]:
    """Build the model again with real values for the parameters and buffers named ``keep``.

    Returns:
        ``{name: tensor}`` for every name in ``keep``: the values a full build from the same
        random state gives.

    Raises:
        MetaBuildError: a name in ``keep`` does not exist or cannot be made real, the
            construction registers other tensors than the blueprint's, or it draws random
            numbers differently for real and meta tensors.
    """
    blueprint.start.restore()
    wanted = [bool(names & keep) for names in blueprint.names]
    with _building(lambda index: index < len(wanted) and wanted[index], replay=True) as registrations:
        model = make()
    if len(registrations.registered) != len(wanted):
        raise MetaBuildError(
            f"the construction registered {len(registrations.registered)} parameters and buffers, "
            f"{len(wanted)} the first time: it does not build the same model twice"
        )
    if not torch.equal(torch.get_rng_state(), blueprint.end):
        raise MetaBuildError(
            "the construction draws random numbers differently for real and meta tensors, so the "
            "values of a part cannot be those of a full build"
        )
    values = {name: tensor for name, tensor in named_tensors(model) if name in keep}
    missing = sorted(keep - set(values))
    unbuilt = sorted(name for name, tensor in values.items() if tensor.is_meta)
    if missing or unbuilt:
        raise MetaBuildError(
            f"these tensors could not be built: {', '.join((missing + unbuilt)[:5])}"
            + (f" and {len(missing + unbuilt) - 5} more" if len(missing + unbuilt) > 5 else "")
        )
    return values


def build_ghost(make: Callable[[], object]) -> None:
    """Run ``make()`` all on the meta device, drawing the random numbers it would draw, and
    forget the result: the generators end where building it for real would leave them."""
    with _building(lambda index: False, replay=True):
        make()


def on_meta(make: Callable[[], object]):
    """``make()`` with every parameter and buffer on the meta device, random draws not replayed."""
    with _building(lambda index: False, replay=False):
        return make()


def release_freed_memory() -> None:
    """Give the pages of freed C heap memory back to the system (glibc only; elsewhere nothing).

    A build frees a tensor for every one it does not keep (the throwaway tensors of replayed
    draws, the tensors a module makes before registering them). Below glibc's adaptive mmap
    threshold those land in the heap between kept tensors, where they stay resident: a ViT-B
    stage held about 300 MiB more after its build than its own tensors until trimmed.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def fill(model: nn.Module, values: dict[str, torch.Tensor]) -> None:
    """Give the meta tensors of ``model`` named in ``values`` those real tensors, in place.

    The tensor objects are swapped (``torch.utils.swap_tensors``), so every holder of a
    reference (traced graphs, stages cut from it) sees the real values.
    """
    gc.collect()  # autograd graphs of earlier forward passes (planning) may still hold the tensors
    swapped: set[int] = set()
    current = dict(named_tensors(model))
    for name, real in values.items():
        target = current[name]
        if id(target) in swapped:
            continue
        torch.utils.swap_tensors(target, real)
        swapped.add(id(target))
