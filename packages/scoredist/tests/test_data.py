import csv
import io
import pickle
from importlib import resources

import pytest

from scoredist import mtl_aqa_dives


def _regenerate(annotations, train, test) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["video_id", "dive_id", "split", "difficulty", "final_score"] + [f"judge_{i}" for i in range(1, 8)]
    )
    for key in sorted(annotations):
        a = annotations[key]
        writer.writerow(
            [
                key[0],
                key[1],
                "train" if key in train else "test",
                repr(float(a["difficulty"])),
                repr(float(a["final_score"])),
            ]
            + [repr(float(x)) for x in a["judge_scores"]]
        )
    return out.getvalue()


def test_embedded_csv_is_exactly_derived_from_the_real_pickles(mtl_aqa):
    annotations, train, test = mtl_aqa
    train, test = set(train), set(test)
    assert len(train) == 1059 and len(test) == 353 and not train & test and train | test == set(annotations)
    shipped = resources.files("scoredist").joinpath("data/mtl_aqa_scores.csv").read_text(encoding="utf-8")
    assert shipped == _regenerate(annotations, train, test)


def test_mtl_aqa_dives_api(mtl_aqa):
    annotations, _, _ = mtl_aqa
    dives = mtl_aqa_dives()
    assert len(dives) == 1412 and len(mtl_aqa_dives("train")) == 1059
    first = dives[0]
    assert first.id == "01_01" and first.judge_scores == tuple(annotations[(1, 1)]["judge_scores"])
    # Judge scores are in steps of 0.5 within 0..10, except one recording error: dive 04_49
    # has a judge score of 45.0 (4.5 intended). Training on it raises a clear error.
    off = {
        d.id: d.judge_scores
        for d in dives
        if not all(0 <= s <= 10 and (2 * s).is_integer() for s in d.judge_scores)
    }
    assert off == {"04_49": (2.5, 4.0, 4.0, 45.0, 3.5, 5.0, 4.0)}
    assert max(d.final_score for d in dives) <= 104.5
    with pytest.raises(ValueError, match="splits 'train' and 'test'"):
        mtl_aqa_dives("val")


def test_restricted_unpickler_refuses_anything_else(tmp_path, restricted_load, jigsaws):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"x": print}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        restricted_load(evil)
    labels, splits = jigsaws
    assert len(labels) == 103 and sorted(splits) == ["Knot_Tying", "Needle_Passing", "Suturing"]
    assert all(len(folds) == 4 for folds in splits.values())
