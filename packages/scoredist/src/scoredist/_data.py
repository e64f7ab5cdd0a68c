"""Real MTL-AQA judge scores shipped with the package (no videos), for the demo and checks."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Dive:
    """One MTL-AQA dive's annotation.

    ``final_score`` is the official score; ``judge_scores`` the seven judges' marks;
    ``split`` is ``"train"`` or ``"test"`` in the official split 0.
    """

    video_id: int
    dive_id: int
    split: str
    difficulty: float
    final_score: float
    judge_scores: tuple[float, ...]

    @property
    def id(self) -> str:
        """``"<video>_<dive>"``, the sample id of the ``vidio.datasets`` contract."""
        return f"{self.video_id:02d}_{self.dive_id:02d}"


@lru_cache(maxsize=1)
def _read() -> tuple[Dive, ...]:
    text = resources.files("scoredist").joinpath("data/mtl_aqa_scores.csv").read_text(encoding="utf-8")
    dives = []
    for row in csv.DictReader(io.StringIO(text)):
        dives.append(
            Dive(
                video_id=int(row["video_id"]),
                dive_id=int(row["dive_id"]),
                split=row["split"],
                difficulty=float(row["difficulty"]),
                final_score=float(row["final_score"]),
                judge_scores=tuple(float(row[f"judge_{j}"]) for j in range(1, 8)),
            )
        )
    return tuple(dives)


def mtl_aqa_dives(split: str | None = None) -> list[Dive]:
    """The 1,412 MTL-AQA dives (official split 0: 1,059 train, 353 test), judge scores included.

    Derived from ``augmented_final_annotations_dict.pkl`` and ``{train,test}_split_0.pkl`` of
    the public MUSDL repository; see ``scoredist/data/README.md``.

    Args:
        split: ``"train"``, ``"test"`` or ``None`` for all.

    Raises:
        ValueError: an unknown split.

    Example:
        >>> len(mtl_aqa_dives()), len(mtl_aqa_dives("test"))
        (1412, 353)
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"MTL-AQA has splits 'train' and 'test', not {split!r}")
    return [d for d in _read() if split is None or d.split == split]
