"""Single-scale and multi-scale (+ flip) evaluation of segmentation models and finished runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ._labels import IGNORE_INDEX
from ._metrics import ConfusionMatrix

# the ratios of the reference mmsegmentation Cityscapes test pipeline
MULTISCALE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
AVERAGES = ("logits", "probs")


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    average: str = "logits",
) -> torch.Tensor:
    """Class scores at the images' full resolution, averaged over scales and flips.

    Each scale resizes the batch bilinearly (sides ``round(H * s)``, ``round(W * s)``), runs
    the model, and resizes its logits bilinearly back to ``H x W``; with ``flip`` the
    horizontally flipped batch runs too and its logits are flipped back. The scores are
    then averaged: raw logits (``average="logits"``) or softmax probabilities
    (``average="probs"``, what mmsegmentation's ``aug_test`` averages).

    Args:
        model: maps ``(B, 3, h, w)`` to logits ``(B, C, h', w')`` (any ``h', w'``); it runs
            as it is, so put it in eval mode first (:func:`evaluate_segmentation` does).
        images: normalised batch ``(B, 3, H, W)``.
        scales: resize factors; ``(1.0,)`` is single-scale.
        flip: also run the horizontally flipped images.
        average: ``"logits"`` or ``"probs"``.

    Returns:
        Float scores ``(B, C, H, W)``; ``argmax(1)`` is the prediction.

    Raises:
        ValueError: no scales, a scale that is not positive, or an unknown ``average``.

    Example:
        >>> import torch
        >>> model = torch.nn.Conv2d(3, 19, 1)
        >>> predict(model, torch.randn(1, 3, 32, 64), scales=(0.5, 1.0), flip=True).shape
        torch.Size([1, 19, 32, 64])
    """
    if average not in AVERAGES:
        raise ValueError(f"predict: average must be one of {', '.join(AVERAGES)}, got {average!r}")
    if not scales or min(scales) <= 0:
        raise ValueError(f"predict: scales must be positive numbers, got {tuple(scales)}")
    height, width = images.shape[-2:]
    total, count = None, 0
    for scale in scales:
        size = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
        scaled = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        for flipped in (False, True) if flip else (False,):
            scores = model(scaled.flip(-1) if flipped else scaled).float()
            if flipped:
                scores = scores.flip(-1)
            if scores.shape[-2:] != (height, width):
                scores = F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=False)
            if average == "probs":
                scores = scores.softmax(1)
            total = scores if total is None else total + scores
            count += 1
    return total / count


def evaluate_segmentation(
    model: nn.Module,
    dataset,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    average: str = "logits",
    num_classes: int | None = None,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    workers: int = 0,
    progress: bool = False,
) -> dict:
    """mIoU, per-class IoU and pixel accuracy of ``model`` on a segmentation dataset.

    Args:
        model: maps normalised images to logits (a splitnet ``LocalNet``, a ``HeadedModel``,
            any module); it is put in eval mode for the evaluation and restored after.
        dataset: yields ``(image (3, H, W), target (H, W))`` with 255 ignored, e.g.
            :class:`CityscapesDataset` (its ``class_names`` label the result).
        scales, flip, average: see :func:`predict`; ``MULTISCALE_SCALES`` is the usual set.
        num_classes: default ``dataset.num_classes``.
        batch_size: images per forward pass (images of one batch must share their size).
        device: where the model runs.
        workers: ``DataLoader`` worker processes.
        progress: show a progress bar.

    Returns:
        ``{"miou", "pixel_accuracy", "iou": {class: IoU or None}, "labelled_pixels",
        "images", "scales", "flip", "average"}``; IoUs are fractions in [0, 1].

    Example:
        >>> import torch
        >>> data = [(torch.randn(3, 8, 8), torch.randint(0, 3, (8, 8))) for _ in range(2)]
        >>> result = evaluate_segmentation(torch.nn.Conv2d(3, 3, 1), data, num_classes=3)
        >>> sorted(result["iou"])
        ['0', '1', '2']
    """
    num_classes = int(num_classes or dataset.num_classes)
    device = torch.device(device)
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = model.training
    model.eval()
    images = 0
    try:
        with _progress(progress, len(loader)) as bar:
            for x, y in loader:
                scores = predict(model, x.to(device), scales=scales, flip=flip, average=average)
                confusion.update(scores.argmax(1).cpu(), y)
                images += x.shape[0]
                bar.update(1)
    finally:
        model.train(was_training)
    return {
        **confusion.summary(getattr(dataset, "class_names", None)),
        "images": images,
        "scales": [float(s) for s in scales],
        "flip": bool(flip),
        "average": average,
    }


def evaluate_run(
    run: str | Path,
    *,
    split: str = "val",
    multiscale: bool = False,
    flip: bool = False,
    scales: Sequence[float] | None = None,
    average: str = "logits",
    batch_size: int = 1,
    device: str = "cpu",
    workers: int = 0,
    checkpoint: str = "checkpoint.pt",
    progress: bool = False,
) -> dict:
    """Load a finished ``python -m splitnet train`` run and evaluate it on a split.

    The run's own dataset entry and data root are used (``splitnet.load_run`` rebuilds the
    model and loads ``checkpoint``); the split is read without augmentation.

    Args:
        run: the run folder (``--out`` of ``splitnet train``).
        split: the dataset split (Cityscapes: ``"val"``, the split the paper reports).
        multiscale: use :data:`MULTISCALE_SCALES` (unless ``scales`` is given).
        flip: add horizontal flips.
        scales: explicit scales; overrides ``multiscale``.
        average, batch_size, device, workers, progress: see :func:`evaluate_segmentation`.
        checkpoint: the checkpoint file inside the run folder.

    Returns:
        :func:`evaluate_segmentation`'s result plus ``"run"``, ``"dataset"``, ``"split"``.

    Raises:
        FileNotFoundError: not a run folder (no ``config.json``) or no checkpoint.
        DatasetLayoutError: the run's data root is gone or not in the dataset's layout.
        ValueError: the run is not a segmentation run.

    Example:
        >>> result = evaluate_run("runs/deeplab", multiscale=True, flip=True)  # doctest: +SKIP
        >>> print(f"{100 * result['miou']:.2f}")  # doctest: +SKIP
    """
    import splitnet

    folder = Path(run)
    loaded = splitnet.load_run(folder, device=device, checkpoint=checkpoint)
    if loaded.task != "segmentation":
        raise ValueError(
            f"{folder} is a {loaded.task} run (dataset {loaded.config.dataset!r}); this evaluates segmentation runs"
        )
    options = {**loaded.config.dataset_options, "augment": False}  # e.g. the run's test_folder
    dataset = splitnet.create_dataset(loaded.config.dataset, loaded.config.data_root, split, **options)
    chosen = tuple(scales) if scales else (MULTISCALE_SCALES if multiscale else (1.0,))
    result = evaluate_segmentation(
        loaded.net,
        dataset,
        scales=chosen,
        flip=flip,
        average=average,
        num_classes=loaded.num_classes,
        batch_size=batch_size,
        device=device,
        workers=workers,
        progress=progress,
    )
    return {"run": str(folder), "dataset": loaded.config.dataset, "split": split, **result}


def _progress(show: bool, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="evaluating", leave=False, dynamic_ncols=True, disable=not show)
