"""Mean intersection over union from a confusion matrix, as the Cityscapes benchmark defines it."""

from __future__ import annotations

import math

import torch

from ._labels import CLASS_NAMES, IGNORE_INDEX


class ConfusionMatrix:
    """Counts of (true class, predicted class) pixel pairs; ignored pixels never count.

    ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``. A class that appears in neither the labels
    nor the predictions has no IoU (NaN) and is left out of the mean, as in the official
    evaluation script; a class that is only predicted has IoU 0 and counts.

    Args:
        num_classes: number of classes (19 for Cityscapes).
        ignore_index: label value whose pixels are left out (255).

    Example:
        >>> import torch
        >>> cm = ConfusionMatrix(3)
        >>> cm.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 255]))
        >>> [round(v, 3) for v in cm.iou().tolist()]
        [1.0, 0.5, 0.0]
        >>> round(cm.miou(), 3)
        0.5
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be at least 1, got {num_classes}")
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: predicted and true class indices of the same shape.

        Raises:
            ValueError: shapes differ, or a label outside ``0 .. num_classes - 1`` that is not
                the ignore index, or a prediction outside that range.
        """
        if prediction.shape != target.shape:
            raise ValueError(
                f"ConfusionMatrix: predictions {tuple(prediction.shape)} and targets {tuple(target.shape)} "
                "must have the same shape; resize the logits to the label size before the argmax"
            )
        keep = target != self.ignore_index
        target, prediction = target[keep].long().cpu(), prediction[keep].long().cpu()
        for what, values in (("labels", target), ("predictions", prediction)):
            if values.numel() and (int(values.min()) < 0 or int(values.max()) >= self.num_classes):
                raise ValueError(
                    f"ConfusionMatrix: {what} must lie in 0..{self.num_classes - 1} (or {self.ignore_index} "
                    f"for ignored labels), got {int(values.min())}..{int(values.max())}"
                )
        self.matrix += torch.bincount(
            target * self.num_classes + prediction, minlength=self.num_classes**2
        ).reshape(self.num_classes, self.num_classes)

    def iou(self) -> torch.Tensor:
        """Per-class IoU (float64), NaN for classes absent from both labels and predictions."""
        m = self.matrix.double()
        intersection = m.diag()
        union = m.sum(0) + m.sum(1) - intersection
        return torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, math.nan))

    def miou(self) -> float:
        """Mean IoU over the classes that have one (NaN if none does)."""
        iou = self.iou()
        present = ~iou.isnan()
        return float(iou[present].mean()) if present.any() else math.nan

    def pixel_accuracy(self) -> float:
        """Share of the labelled pixels predicted right (NaN if none is labelled)."""
        total = int(self.matrix.sum())
        return int(self.matrix.diag().sum()) / total if total else math.nan

    def summary(self, class_names: tuple[str, ...] | None = None) -> dict:
        """``{"miou", "pixel_accuracy", "iou": {class: value or None}, "labelled_pixels"}``.

        Class names default to the 19 Cityscapes classes when there are 19 classes, else
        to the class indices.
        """
        if class_names is None:
            class_names = (
                CLASS_NAMES
                if self.num_classes == len(CLASS_NAMES)
                else tuple(map(str, range(self.num_classes)))
            )
        iou = self.iou().tolist()
        miou, accuracy = self.miou(), self.pixel_accuracy()
        return {
            "miou": None if math.isnan(miou) else miou,
            "pixel_accuracy": None if math.isnan(accuracy) else accuracy,
            "iou": {name: None if math.isnan(v) else v for name, v in zip(class_names, iou)},
            "labelled_pixels": int(self.matrix.sum()),
        }
