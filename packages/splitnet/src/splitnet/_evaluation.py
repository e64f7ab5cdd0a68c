"""Test metrics of a run: accuracy and loss, or mIoU and pixel accuracy for segmentation.

:class:`EvalTally` holds the sums behind the metrics, so that processes which each scored
part of the split add them up before reporting; :func:`evaluate` runs a whole model, the
stage-parallel trainer feeds the tally from its last stage.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ._config import TrainConfig, autocast_dtype
from ._device import pin_memory
from ._distributed import Topology


class EvalTally:
    """Sums behind the test metrics; adds up across processes before :meth:`metrics`."""

    def __init__(self, task: str, num_classes: int):
        self.task, self.num_classes = task, num_classes
        self.sums = torch.zeros(3, dtype=torch.float64)  # loss * n, samples, correct
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def add(self, out: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        n = targets.shape[0]
        pred = out.argmax(1)
        self.sums += torch.tensor([float(loss) * n, n, 0.0], dtype=torch.float64)
        if self.task == "segmentation":
            valid = targets != 255
            flat = (targets[valid] * self.num_classes + pred[valid]).cpu()
            self.confusion += torch.bincount(flat, minlength=self.num_classes**2).view(self.num_classes, -1)
        else:
            self.sums[2] += int((pred == targets).sum())

    def all_reduce(self) -> None:
        """Sum across processes; the sums stay on the CPU (the run's backend reduces CPU tensors over gloo)."""
        import torch.distributed as dist

        for tensor in (self.sums, self.confusion):
            dist.all_reduce(tensor)

    def metrics(self) -> dict:
        loss_sum, total, correct = self.sums.tolist()
        result = {"test_loss": loss_sum / max(total, 1)}
        if self.task == "segmentation":
            inter = self.confusion.diag().double()
            union = self.confusion.sum(0).double() + self.confusion.sum(1).double() - inter
            present = union > 0
            result["test_miou"] = float((inter[present] / union[present]).mean()) if present.any() else 0.0
            result["test_pixel_acc"] = float(inter.sum() / self.confusion.sum().clamp(min=1))
        else:
            result["test_acc"] = correct / max(total, 1)
        return result


def evaluate(
    net: nn.Module,
    dataset,
    config: TrainConfig,
    task: str,
    num_classes: int,
    topology: Topology | None = None,
) -> dict:
    """Top-1 accuracy and loss (classification) or mIoU and pixel accuracy (segmentation).

    Under data parallelism every process evaluates every ``world``-th sample and the sums
    are reduced, so all processes return the metrics of the whole split.

    Args:
        net: a :class:`LocalNet` (anything with ``parameters()`` and ``task_loss``).
        dataset: the split to score, yielding ``(input, target)``.
        config: the run's settings (``eval_batch_size``, ``workers``, ``amp``).
        task: ``"classification"`` or ``"segmentation"``.
        num_classes: classes of the task.
        topology: this process's place in a distributed run (``None``: one process).

    Returns:
        ``test_loss`` and ``test_acc``, or ``test_loss``, ``test_miou`` and ``test_pixel_acc``.

    Example:
        >>> run = splitnet.load_run("runs/infopro-k4")  # doctest: +SKIP
        >>> splitnet.evaluate(run.net, run.test_set, run.config, run.task, run.num_classes)  # doctest: +SKIP
        {'test_loss': 0.05, 'test_acc': 0.986}
    """
    if topology is not None and topology.distributed:
        dataset = Subset(dataset, range(topology.rank, len(dataset), topology.world))
    device = next(net.parameters()).device
    loader = DataLoader(
        dataset,
        batch_size=config.eval_batch_size,
        shuffle=False,
        num_workers=config.workers,
        pin_memory=pin_memory(device),
    )
    was_training = net.training
    net.eval()
    tally = EvalTally(task, num_classes)
    dtype = autocast_dtype(config)
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True).long()
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                out = net(x)
            tally.add(out, y, net.task_loss(out.float(), y))
    net.train(was_training)
    if topology is not None and topology.distributed:
        tally.all_reduce()
    return tally.metrics()
