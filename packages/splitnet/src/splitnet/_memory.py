"""Memory you can trust: an exact ledger of what autograd saves, and the real peak.

The ledger runs the forward pass piece by piece under ``saved_tensors_hooks`` and records
every storage autograd keeps for the backward pass (unique storages: a tensor saved by two
operations counts once; parameters and buffers never count). A local stage holds, at its
peak, what its own pieces saved plus what its objective's auxiliary nets saved; end-to-end
training holds what every piece saved. Saved bytes are affine in the batch size, so two small
measured batches give the ledger at any batch size exactly.

The real peak is measured in a fresh subprocess (see ``_peak.py``): CUDA's max allocated
bytes on GPU, the resident-set high-water mark on CPU.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ._trace import Chain


class _SavedRecorder:
    """Pack hook that attributes each saved storage to the bucket currently open."""

    def __init__(self, excluded: set[int]):
        self.excluded = excluded
        self.buckets: dict[object, dict[int, int]] = {}
        self.current: object = None

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.current is not None and tensor.layout == torch.strided:
            ptr = storage_key(tensor)
            if ptr and ptr not in self.excluded:
                self.buckets.setdefault(self.current, {})[ptr] = tensor.untyped_storage().nbytes()
        # not the tensor itself: a saved output would then hold its own grad_fn, a cycle through
        # C++ that Python never collects, and the whole measured graph (weights included) would leak
        return tensor.detach()

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @contextlib.contextmanager
    def bucket(self, key: object):
        previous, self.current = self.current, key
        try:
            yield
        finally:
            self.current = previous


@contextlib.contextmanager
def training_without_side_effects(*modules: nn.Module):
    """Train mode for a measurement, then restore modes, buffers (BN statistics), gradients and RNG."""
    modes = [(m, m.training) for root in modules for m in root.modules()]
    buffers = [(b, b.detach().clone()) for root in modules for b in root.buffers()]
    grads = [(p, p.grad) for root in modules for p in root.parameters()]
    rng = torch.get_rng_state()
    for p, _ in grads:
        p.grad = None
    for root in modules:
        root.train()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for p, grad in grads:
            p.grad = grad
        torch.set_rng_state(rng)


def storage_key(tensor: torch.Tensor) -> int:
    """What identifies a tensor's storage: its data pointer, or for a meta tensor (which has
    none) the storage itself, so that a plan made on the meta device costs the same bytes."""
    storage = tensor.untyped_storage()
    return storage._cdata if tensor.is_meta else storage.data_ptr()


def _storage_ptrs(*modules: nn.Module) -> set[int]:
    ptrs = set()
    for root in modules:
        for t in (*root.parameters(), *root.buffers()):
            ptrs.add(storage_key(t))
    return ptrs


@dataclass
class MemoryProfile:
    """Saved-for-backward storages of every piece, cut tensor, objective and the task loss.

    Measured at one batch size; combine two with :class:`MemoryLedger` for any batch size.
    """

    batch_size: int
    pieces: list[dict[int, int]]
    outputs: list[tuple[int, int]]
    aux: list[dict[int, int] | None]
    task: dict[int, int]

    def cost_matrix(self) -> list[list[float]]:
        """``cost[a][b]``: peak saved bytes of a local stage made of pieces ``a .. b-1``.

        A stage that ends at a cut holds its pieces' storages, the cut tensor and its
        objective's storages; the last stage holds its pieces' storages and the task loss's.
        ``inf`` where the objective cannot be built at that cut.
        """
        n = len(self.pieces)
        cost = [[math.inf] * (n + 1) for _ in range(n + 1)]
        for a in range(n):
            union: dict[int, int] = {}
            total = 0
            for b in range(a + 1, n + 1):
                for ptr, size in self.pieces[b - 1].items():
                    if ptr not in union:
                        union[ptr] = size
                        total += size
                if b == n:
                    extra = self.task
                elif self.aux[b - 1] is None:
                    continue
                else:
                    extra = {**self.aux[b - 1], self.outputs[b - 1][0]: self.outputs[b - 1][1]}
                cost[a][b] = total + sum(s for p, s in extra.items() if p not in union)
        return cost

    def e2e_bytes(self) -> int:
        """Saved bytes of end-to-end training: every piece's storages plus the task loss's."""
        union: dict[int, int] = {}
        for piece in self.pieces:
            union.update(piece)
        union.update(self.task)
        return sum(union.values())


def measure_profile(
    chain: Chain,
    objectives: dict[int, nn.Module],
    task_loss: Callable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> MemoryProfile:
    """Run one forward pass through every piece and record what autograd saves.

    Args:
        chain: the traced model.
        objectives: the objective to cost at each cut index (missing: unusable cut).
        task_loss: ``(output, targets) -> loss`` of the last stage.
        inputs: one batch of inputs.
        targets: its targets.
    """
    pieces = chain.pieces()
    aux_modules = list(objectives.values())
    recorder = _SavedRecorder(_storage_ptrs(chain.model, *aux_modules, *pieces))
    outputs: list[tuple[int, int]] = []
    with (
        training_without_side_effects(chain.model, *aux_modules, *pieces),
        torch.autograd.graph.saved_tensors_hooks(recorder.pack, recorder.unpack),
    ):
        h = inputs
        for i, piece in enumerate(pieces):
            with recorder.bucket(("piece", i)):
                h = piece(h)
            if i < len(pieces) - 1:
                outputs.append((storage_key(h), h.untyped_storage().nbytes()))
                if i in objectives:
                    with recorder.bucket(("aux", i)):
                        objectives[i](h, inputs, targets)
        with recorder.bucket("task"):
            task_loss(h, targets)
    buckets = recorder.buckets
    return MemoryProfile(
        batch_size=inputs.shape[0],
        pieces=[buckets.get(("piece", i), {}) for i in range(len(pieces))],
        outputs=outputs,
        aux=[buckets.get(("aux", i), {}) if i in objectives else None for i in range(len(pieces) - 1)],
        task=buckets.get("task", {}),
    )


@dataclass
class MemoryLedger:
    """Exact saved-for-backward bytes at any batch size, from two measured batch sizes.

    Every saved storage is either proportional to the batch or independent of it (weights,
    batch-norm statistics), so bytes(B) = fixed + per_sample * B holds exactly; a third
    measurement in the tests confirms it.
    """

    small: MemoryProfile
    large: MemoryProfile

    def _affine(self, at_small: float, at_large: float, batch_size: int) -> float:
        if math.isinf(at_small) or math.isinf(at_large):
            return math.inf
        b1, b2 = self.small.batch_size, self.large.batch_size
        slope = (at_large - at_small) / (b2 - b1)
        return round(at_small + slope * (batch_size - b1))

    def cost_matrix(self, batch_size: int) -> list[list[float]]:
        """Local-stage costs ``cost[a][b]`` in bytes at ``batch_size`` (see MemoryProfile)."""
        small, large = self.small.cost_matrix(), self.large.cost_matrix()
        return [[self._affine(s, lg, batch_size) for s, lg in zip(rs, rl)] for rs, rl in zip(small, large)]

    def e2e_bytes(self, batch_size: int) -> int:
        """End-to-end saved bytes at ``batch_size``."""
        return int(self._affine(self.small.e2e_bytes(), self.large.e2e_bytes(), batch_size))


def measure_ledger(
    chain: Chain,
    objectives: dict[int, nn.Module],
    task_loss: Callable,
    make_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    batch_sizes: tuple[int, int] = (2, 4),
) -> MemoryLedger:
    """Measure the ledger at two batch sizes (``make_batch(b)`` gives inputs and targets)."""
    profiles = [measure_profile(chain, objectives, task_loss, *make_batch(b)) for b in batch_sizes]
    return MemoryLedger(*profiles)


def measure_times(
    chain: Chain,
    objectives: dict[int, nn.Module],
    task_loss: Callable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    repeats: int = 3,
) -> tuple[list[float], list[float]]:
    """Median forward+backward seconds of every piece (the last with the task loss) and of the
    objective at every cut (``inf`` where none can be built), on the inputs' device (see
    :func:`median_seconds`)."""
    pieces = chain.pieces()
    modules = [chain.model, *objectives.values(), *pieces]

    def timed(fn: Callable[[], torch.Tensor]) -> float:
        return median_seconds(lambda: fn().backward(), inputs.device, repeats)

    with training_without_side_effects(*modules):
        with torch.no_grad():
            carried = [inputs]
            for piece in pieces[:-1]:
                carried.append(piece(carried[-1]))
        piece_times = []
        for i, piece in enumerate(pieces):
            x = carried[i].detach().requires_grad_(i > 0)

            def step(piece=piece, x=x, i=i):
                # inside a stage every piece but the first also computes its input's gradient;
                # the clone lets in-place first operations run on a tensor that requires grad
                out = piece(x.clone() if i > 0 else x)
                if i == len(pieces) - 1:
                    return task_loss(out, targets)
                return (out * torch.randn_like(out)).sum()

            piece_times.append(timed(step))
        aux_times = []
        for i in range(chain.num_pieces - 1):
            if i not in objectives:
                aux_times.append(math.inf)
                continue
            h = carried[i + 1].detach().requires_grad_(True)
            aux_times.append(timed(lambda i=i, h=h: objectives[i](h, inputs, targets)))
    return piece_times, aux_times


def median_seconds(run: Callable[[], object], device: torch.device, repeats: int = 3) -> float:
    """Median wall-clock seconds of ``run()`` over ``repeats`` calls, after one warm-up call.

    CUDA runs kernels asynchronously: the clock starts and stops only when the device's
    queue is empty (``torch.cuda.synchronize``), so the figure is the work done, not the
    time it took to launch it.

    Example:
        >>> median_seconds(lambda: sum(range(1000)), torch.device("cpu")) > 0
        True
    """
    cuda = device.type == "cuda"
    run()  # warm-up: first calls pick kernels and allocate
    samples = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize(device)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]
