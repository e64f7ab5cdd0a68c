"""The paper's settings per benchmark, used when the dataset's name matches (or --preset names one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
        weight_decay: per method.
        segments: ``(S, L)``: clips are cut into ``S`` segments of ``L`` frames.
    """

    score_bins: ScoreBins
    judge_bins: ScoreBins
    sigma: float
    rule: str
    epochs: int
    weight_decay: Mapping[str, float] = field(default_factory=dict)
    segments: tuple[int, int] | None = None


PRESETS: dict[str, Preset] = {
    # 0..104.5 onto 101 bins and sigma 5 for both heads, as the reference MTL-AQA code;
    # 103 frames in 10 segments of 16.
    "mtl-aqa": Preset(
        score_bins=ScoreBins(0.0, 104.5, 101),
        judge_bins=ScoreBins.from_step(0.0, 10.0, 0.5),
        sigma=5.0,
        rule="diving",
        epochs=100,
        weight_decay={"usdl": 0.0, "musdl": 1e-5},
        segments=(10, 16),
    ),
    # Global rating 6..30 in 25 bins, six sub-scores 1..5; 160 frames in 10 segments of 16.
    "jigsaws": Preset(
        score_bins=ScoreBins.from_step(6.0, 30.0, 1.0),
        judge_bins=ScoreBins.from_step(1.0, 5.0, 1.0),
        sigma=1.0,
        rule="sum",
        epochs=80,
        weight_decay={"usdl": 0.0, "musdl": 0.0},
        segments=(10, 16),
    ),
}
