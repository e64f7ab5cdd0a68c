"""scoredist's --exclude reaches a vidio dataset that validates annotations as it reads them.

vidio's MTL-AQA refuses dive 04_49 (a judge score of 45.0 on the 0-10 scale) when the
split is built, so dropping it from batches afterwards, as scoredist does for any
dataset, would come too late: ``--exclude 04_49`` must be handed to the dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scoredist import _cli

MTL_AQA = Path(__file__).resolve().parents[1] / "packages" / "vidio" / "tests" / "data" / "mtl_aqa"


def test_exclude_is_handed_to_a_dataset_that_takes_it():
    assert _cli._with_exclude("mtl-aqa", {}, ["04_49"]) == {"exclude": ["04_49"]}
    assert _cli._with_exclude("mtl-aqa", {"exclude": ["01_01"]}, ["04_49"]) == {"exclude": ["01_01"]}
    assert _cli._with_exclude("mtl-aqa", {"fold": 1}, []) == {"fold": 1}


def test_exclude_stays_with_scoredist_for_a_dataset_without_the_option():
    assert _cli._with_exclude("csv", {}, ["a"]) == {}


def test_the_real_mtl_aqa_split_builds_once_04_49_is_excluded():
    from scoredist import create_dataset

    options = {"layout": "videos", "check_files": False}
    with pytest.raises(Exception, match="04_49"):
        create_dataset("mtl-aqa", str(MTL_AQA), "train", **options)
    train = create_dataset(
        "mtl-aqa", str(MTL_AQA), "train", **_cli._with_exclude("mtl-aqa", options, ["04_49"])
    )
    assert len(train) == 1058 and "04_49" not in {str(r.id) for r in train.records}
