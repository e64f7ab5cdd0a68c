"""The paper's settings per benchmark, used when the dataset's name matches (or --preset names one).

Every value is the official MUSDL code's (github.com/nzl-thu/MUSDL); the tests cite the file
and line each one comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._bins import ScoreBins


@dataclass(frozen=True)
class Preset:
    """Defaults of one benchmark, from the CVPR 2020 paper and its reference code.

    Args:
        score_bins: bins of the final score (USDL).
        judge_bins: bins of one judge's score or one sub-score (MUSDL).
        sigma: soft-label standard deviation in bins.
        rule: the ``scoredist.rules`` entry that makes the final score (MUSDL).
        epochs: training epochs.
        weight_decay: per method, ``{"usdl": ..., "musdl": ...}``.
        segments: ``(S, L)``: clips are cut into ``S`` segments of ``L`` frames.
        segment_stride: frames between the starts of consecutive segments; the last
            segment ends at the clip's last frame (see :func:`cut_segments`).
        folds: ``K`` for a K-fold cross-validation protocol, ``None`` for a benchmark
            with one official train/test split.

    Example:
        >>> PRESETS["jigsaws"].folds, PRESETS["mtl-aqa"].segment_stride
        (4, 10)
    """

    score_bins: ScoreBins
    judge_bins: ScoreBins
    sigma: float
    rule: str
    epochs: int
    weight_decay: Mapping[str, float]
    segments: tuple[int, int]
    segment_stride: int
    folds: int | None


PRESETS: dict[str, Preset] = {
    # 0..104.5 onto 101 bins, 0..10 in steps of 0.5 per judge, sigma 5; 103 frames cut into
    # 10 segments of 16 starting at 0, 10, ..., 80 and 87; one official split.
    "mtl-aqa": Preset(
        score_bins=ScoreBins(0.0, 104.5, 101),
        judge_bins=ScoreBins.from_step(0.0, 10.0, 0.5),
        sigma=5.0,
        rule="diving",
        epochs=100,
        weight_decay={"usdl": 0.0, "musdl": 1e-5},
        segments=(10, 16),
        segment_stride=10,
        folds=None,
    ),
    # Global rating 6..30 in 25 bins, six sub-scores 1..5, sigma 1; 160 frames in 10
    # non-overlapping segments of 16; 4-fold cross-validation.
    "jigsaws": Preset(
        score_bins=ScoreBins.from_step(6.0, 30.0, 1.0),
        judge_bins=ScoreBins.from_step(1.0, 5.0, 1.0),
        sigma=1.0,
        rule="sum",
        epochs=80,
        weight_decay={"usdl": 0.0, "musdl": 0.0},
        segments=(10, 16),
        segment_stride=16,
        folds=4,
    ),
}
