"""Datasets read the official layouts and annotations, and return items as docs/plugins.md specifies."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vidio
from localkit_registry import OptionError as LocalkitOptionError

DATA = Path(__file__).parent / "data"
SMALL = {"frame_size": (32, 40), "crop_size": 24}


def expected_video(source, frames, frame_size, crop_size):
    """The item's ``video`` recomputed the plain way: decode, centre crop, normalise."""
    with vidio.open(source) as video:
        decoded = video.get(frames.reshape(-1).numpy(), size=frame_size)
    clip = torch.from_numpy(decoded).reshape(*frames.shape, *decoded.shape[1:])
    return vidio.Compose([vidio.ToFloatClip(), vidio.CenterCrop(crop_size), vidio.Normalize()])(clip)


def check_contract(item, dataset):
    assert item["video"].dtype == torch.float32
    assert item["score"].shape == () and item["score"].dtype == torch.float32
    assert isinstance(item["id"], str)
    if dataset.num_judges:
        assert item["judge_scores"].shape == (dataset.num_judges,)
        assert dataset.judge_range[0] <= float(item["judge_scores"].min())
        assert float(item["judge_scores"].max()) <= dataset.judge_range[1]
    assert dataset.score_range[0] <= float(item["score"]) <= dataset.score_range[1]


def test_registry_lists_the_builtin_datasets():
    assert {"mtl-aqa", "jigsaws", "aqa-7", "csv"} <= set(vidio.list_datasets())
    with pytest.raises(LookupError, match="vidio.datasets.*jigsaws"):
        vidio.create_dataset("jigsaw", DATA / "jigsaws", "train")


def test_mtl_aqa_reads_the_real_annotations():
    # Dive 04_49 (training split) has a judge score of 45.0 on the 0..10 scale: it must be left out explicitly.
    train = vidio.create_dataset(
        "mtl-aqa", DATA / "mtl_aqa", "train", layout="videos", check_files=False, exclude=["04_49"]
    )
    test = vidio.create_dataset("mtl-aqa", DATA / "mtl_aqa", "test", layout="videos", check_files=False)
    assert (len(train), len(test)) == (1058, 353)
    with open(DATA / "mtl_aqa" / "info" / "augmented_final_annotations_dict.pkl", "rb") as file:
        table = pickle.load(file)
    with open(DATA / "mtl_aqa" / "info" / "train_split_0.pkl", "rb") as file:
        keys = [key for key in pickle.load(file) if key != (4, 49)]
    for record, key in zip(train.records, keys, strict=True):
        entry = table[key]
        assert record.id == f"{key[0]:02d}_{key[1]:02d}"
        assert record.source.endswith(f"videos/{key[0]:02d}.mp4")
        assert (record.start, record.stop) == (entry["start_frame"] - 1, entry["end_frame"])
        assert record.score == entry["final_score"] and record.difficulty == entry["difficulty"]
        np.testing.assert_array_equal(record.judge_scores, entry["judge_scores"])
    assert {r.id for r in train.records}.isdisjoint(r.id for r in test.records)
    assert (train.num_judges, train.score_range, train.judge_range) == (7, (0.0, 104.5), (0.0, 10.0))


@pytest.fixture(scope="module")
def mtl_aqa_root(tmp_path_factory, make_video):
    root = tmp_path_factory.mktemp("mtl-aqa")
    (root / "info").mkdir()
    (root / "videos").mkdir()
    make_video(root / "videos" / "01.mp4", frames=150, width=48, height=36)
    make_video(root / "videos" / "02.mkv", frames=150, width=48, height=36)
    rng = np.random.default_rng(0)
    spans = {(1, 1): (20, 130), (1, 2): (100, 140), (2, 1): (5, 60), (2, 3): (40, 150)}
    table = {
        key: {
            "final_score": float(rng.uniform(0, 100)),
            "difficulty": float(rng.choice([2.0, 3.2, 3.6])),
            "judge_scores": rng.choice(np.arange(0, 10.5, 0.5), 7),
            "start_frame": start,
            "end_frame": end,
            "position": 1,
        }
        for key, (start, end) in spans.items()
    }
    (root / "info" / "augmented_final_annotations_dict.pkl").write_bytes(pickle.dumps(table))
    (root / "info" / "train_split_0.pkl").write_bytes(pickle.dumps([(1, 1), (2, 1)]))
    (root / "info" / "test_split_0.pkl").write_bytes(pickle.dumps([(1, 2), (2, 3)]))
    return root, table


def test_mtl_aqa_videos_decode_the_reference_window_of_each_dive(mtl_aqa_root):
    root, table = mtl_aqa_root
    test = vidio.MTLAQA(root, "test", **SMALL)
    assert [r.id for r in test.records] == ["01_02", "02_03"]
    assert test.records[1].source.endswith("02.mkv")
    for index, key in enumerate([(1, 2), (2, 3)]):
        item = test[index]
        check_contract(item, test)
        end = table[key]["end_frame"]
        starts = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 87]) + end - 103
        np.testing.assert_array_equal(item["frames"], starts[:, None] + np.arange(16))
        assert item["video"].shape == (10, 3, 16, 24, 24)
        torch.testing.assert_close(
            item["video"], expected_video(test.records[index].source, item["frames"], (32, 40), 24)
        )
        assert float(item["score"]) == pytest.approx(table[key]["final_score"])
        assert float(item["difficulty"]) == pytest.approx(table[key]["difficulty"])
        np.testing.assert_allclose(item["judge_scores"], table[key]["judge_scores"])
        assert "action" not in item


def test_mtl_aqa_training_shifts_the_window_by_at_most_three_frames(mtl_aqa_root):
    root, table = mtl_aqa_root
    train = vidio.MTLAQA(root, "train", **SMALL)
    base = vidio.SegmentSampler(103, 10, 16, anchor="end")
    shifts = set()
    for _ in range(12):
        item = train[0]
        delta = np.unique(item["frames"].numpy() - base(150, 19, 130))
        assert len(delta) == 1 and -3 <= delta[0] <= 3
        shifts.add(int(delta[0]))
    assert len(shifts) > 1
    short = train[1]["frames"]
    assert short.min() >= 0 and short.max() <= 105


def test_mtl_aqa_without_segments_gives_one_clip(mtl_aqa_root):
    root, _ = mtl_aqa_root
    item = vidio.MTLAQA(root, "test", segments=None, **SMALL)[0]
    assert item["video"].shape == (3, 103, 24, 24)
    np.testing.assert_array_equal(item["frames"], np.arange(140 - 103, 140))


def test_mtl_aqa_frame_folders_follow_musdl(tmp_path, frame_pattern, make_frame_folder):
    info = tmp_path / "info"
    info.mkdir()
    entry = {
        "final_score": 50.0,
        "difficulty": 2.0,
        "judge_scores": np.full(7, 5.0),
        "start_frame": 1,
        "end_frame": 2,
    }
    (info / "final_annotations_dict.pkl").write_bytes(pickle.dumps({(3, 4): entry}))
    (info / "test_split_0.pkl").write_bytes(pickle.dumps([(3, 4)]))
    make_frame_folder(tmp_path / "frames" / "03_04", 106, 28, 28)
    data = vidio.create_dataset("mtl-aqa", tmp_path, "test", frame_size=None, crop_size=24)
    assert data.layout == "frames"
    item = data[0]
    assert item["id"] == "03_04"
    np.testing.assert_array_equal(item["frames"][:, 0], [0, 10, 20, 30, 40, 50, 60, 70, 80, 87])
    first = torch.from_numpy(frame_pattern(87, 28, 28)).float().div(255).permute(2, 0, 1)[:, 2:26, 2:26]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(item["video"][9, :, 0], (first - mean) / std)


def test_missing_videos_are_reported_with_the_expected_layout(mtl_aqa_root, tmp_path):
    root, _ = mtl_aqa_root
    shutil.copytree(root / "info", tmp_path / "info")
    (tmp_path / "videos").mkdir()
    with pytest.raises(vidio.DatasetError, match=r"2 of 2 .* missing .*NN\.mp4.*check_files=False"):
        vidio.MTLAQA(tmp_path, "train")
    with pytest.raises(vidio.DatasetError, match="splits 'train', 'test'"):
        vidio.MTLAQA(root, "val")


@pytest.fixture(scope="module")
def jigsaws_root(tmp_path_factory, make_video):
    root = tmp_path_factory.mktemp("jigsaws")
    shutil.copy(DATA / "jigsaws" / "label.pkl", root / "label.pkl")
    shutil.copy(DATA / "jigsaws" / "splits.pkl", root / "splits.pkl")
    with open(root / "splits.pkl", "rb") as file:
        folds = pickle.load(file)
    (root / "Needle_Passing" / "video").mkdir(parents=True)
    for trial in (t for fold in folds["Needle_Passing"] for t in fold):
        make_video(
            root / "Needle_Passing" / "video" / f"{trial}_capture1.avi",
            codec="mpeg4",
            frames=24,
            width=32,
            height=32,
        )
    return root, folds


@pytest.mark.parametrize("fold", range(4))
def test_jigsaws_folds_partition_the_trials(fold):
    train = vidio.JIGSAWS(DATA / "jigsaws", "train", fold=fold, check_files=False)
    test = vidio.JIGSAWS(DATA / "jigsaws", "test", fold=fold, check_files=False)
    with open(DATA / "jigsaws" / "splits.pkl", "rb") as file:
        folds = pickle.load(file)
    with open(DATA / "jigsaws" / "label.pkl", "rb") as file:
        labels = pickle.load(file)
    assert [r.id for r in test.records] == [t for task in JIGSAWS_TASKS for t in folds[task][fold]]
    assert {r.id for r in train.records} | {r.id for r in test.records} == {
        t for task in JIGSAWS_TASKS for f in folds[task] for t in f
    }
    assert not {r.id for r in train.records} & {r.id for r in test.records}
    for record in train.records + test.records:
        assert record.judge_scores == tuple(labels[record.id])
        assert record.score == sum(labels[record.id])
        assert record.action == record.id.rsplit("_", 1)[0]
        assert record.source.endswith(f"{record.action}/video/{record.id}_capture1.avi")
    assert (train.num_judges, train.score_range, train.judge_range) == (6, (6.0, 30.0), (1.0, 5.0))


JIGSAWS_TASKS = ("Knot_Tying", "Needle_Passing", "Suturing")


def test_jigsaws_items_from_the_official_video_layout(jigsaws_root):
    root, folds = jigsaws_root
    data = vidio.create_dataset("jigsaws", root, "test", fold=1, task="Needle_Passing", crop_size=24)
    assert [r.id for r in data.records] == folds["Needle_Passing"][1]
    item = data[3]
    check_contract(item, data)
    assert item["video"].shape == (3, 160, 24, 24)
    np.testing.assert_array_equal(item["frames"], np.linspace(0, 23, 160).astype(int))
    assert item["action"] == "Needle_Passing" and item["id"] == folds["Needle_Passing"][1][3]
    with pytest.raises(vidio.DatasetError, match="fold must be an integer in 0..3, got 4"):
        vidio.JIGSAWS(root, "train", fold=4, task="Needle_Passing")
    with pytest.raises(vidio.DatasetError, match="missing"):
        vidio.JIGSAWS(root, "train", fold=0, task="Suturing")


@pytest.fixture(scope="module")
def aqa7_root(tmp_path_factory, make_video):
    scipy_io = pytest.importorskip(
        "scipy.io", reason="AQA-7's .mat files need scipy (the 'test' extra has it)"
    )
    root = tmp_path_factory.mktemp("aqa7")
    (root / "Split_4").mkdir()
    train = np.array([[1, 1, 80.5], [1, 2, 45.0], [2, 1, 15.1], [5, 3, 90.2]])
    test = np.array([[1, 4, 30.0], [2, 2, 13.2], [5, 7, 60.0]])
    scipy_io.savemat(root / "Split_4" / "split_4_train_list.mat", {"consolidated_train_list": train})
    scipy_io.savemat(root / "Split_4" / "split_4_test_list.mat", {"consolidated_test_list": test})
    for action, sample in [(1, 1), (1, 2), (2, 1), (5, 3), (1, 4), (2, 2), (5, 7)]:
        folder = root / "Actions" / vidio.AQA7.ACTIONS[action - 1]
        folder.mkdir(parents=True, exist_ok=True)
        make_video(folder / f"{sample:03d}.avi", codec="mpeg4", frames=30 + sample, width=32, height=32)
    return root


def test_aqa7_reads_per_action_folders_and_mat_splits(aqa7_root):
    train = vidio.create_dataset("aqa-7", aqa7_root, "train", crop_size=24, num_frames=12)
    assert [r.id for r in train.records] == [
        "diving_001",
        "diving_002",
        "gym_vault_001",
        "sync_diving_3m_003",
    ]
    # ranges from the training split alone: the test split's 30.0, 13.2 and 60.0 never leak in
    assert train.action_score_ranges == {
        "diving": (45.0, 80.5),
        "gym_vault": (15.1, 15.1),
        "sync_diving_3m": (90.2, 90.2),
    }
    assert train.score_range == (15.1, 90.2)
    item = train[3]
    check_contract(item, train)
    assert item["action"] == "sync_diving_3m" and item["video"].shape == (3, 12, 24, 24)
    np.testing.assert_array_equal(item["frames"], np.linspace(0, 32, 12).astype(int))
    dives = vidio.AQA7(aqa7_root, "test", actions=["diving", 5], crop_size=24)
    assert [r.id for r in dives.records] == ["diving_004", "sync_diving_3m_007"]
    assert dives.score_range == (30.0, 60.0)
    with pytest.raises(vidio.DatasetError, match="no action 'surfing'"):
        vidio.AQA7(aqa7_root, "test", actions=["surfing"])


@pytest.fixture
def csv_root(tmp_path, long_video):
    shutil.copy(long_video, tmp_path / "a.mp4")
    (tmp_path / "clips").mkdir()
    shutil.copy(long_video, tmp_path / "clips" / "b.mp4")
    (tmp_path / "scores.csv").write_text(
        "path,score,judge_1,judge_2,judge_3,difficulty,start,end,split,action\n"
        "a.mp4,7.5,2.5,3,2,1.5,10,60,train,jump\n"
        "clips/b.mp4,4,1,1.5,1.5,2.0,,,train,spin\n"
        "a.mp4,9,3,3,3,3.0,100,200,test,jump\n"
    )
    return tmp_path


def test_csv_manifest_brings_any_dataset(csv_root):
    train = vidio.create_dataset("csv", csv_root / "scores.csv", "train", num_frames=8, crop_size=16)
    assert [r.id for r in train.records] == ["a_10-60", "clips/b"]
    # the test row's 9.0 does not widen the training split's range
    assert (train.score_range, train.judge_range, train.num_judges) == ((4.0, 7.5), (1.0, 3.0), 3)
    item = train[0]
    check_contract(item, train)
    assert item["video"].shape == (3, 8, 16, 16) and item["action"] == "jump"
    np.testing.assert_array_equal(item["frames"], np.linspace(10, 59, 8).astype(int))
    np.testing.assert_allclose(item["judge_scores"], [2.5, 3, 2])
    assert float(item["difficulty"]) == 1.5
    np.testing.assert_array_equal(train[1]["frames"], np.linspace(0, 199, 8).astype(int))
    test = vidio.CSVDataset(csv_root / "scores.csv", "test", crop_size=16)
    assert [r.id for r in test.records] == ["a_100-200"]
    with pytest.raises(TypeError, match="unexpected keyword argument 'future_option'"):
        vidio.CSVDataset(csv_root / "scores.csv", "test", crop_size=16, future_option=True)


def test_csv_folder_of_split_files_and_clear_errors(csv_root):
    (csv_root / "train.csv").write_text("path,score\na.mp4,1\nclips/b.mp4,2\n")
    assert len(vidio.CSVDataset(csv_root, "train")) == 2
    (csv_root / "bad.csv").write_text("path,score,start\na.mp4,1,ten\n")
    with pytest.raises(vidio.DatasetError, match="line 2: column 'start' should be a number"):
        vidio.CSVDataset(csv_root / "bad.csv", "train")
    (csv_root / "beyond.csv").write_text("path,score,start,end\na.mp4,1,150,260\n")
    with pytest.raises(
        vidio.DatasetError, match=r"frames \[150, 260\) do not fit .*a\.mp4', which has 200 frames"
    ):
        vidio.CSVDataset(csv_root / "beyond.csv", "train", crop_size=8)[0]
    (csv_root / "noscore.csv").write_text("path\na.mp4\n")
    with pytest.raises(vidio.DatasetError, match=r"lacks the column\(s\) \['score'\]"):
        vidio.CSVDataset(csv_root / "noscore.csv", "train")


def _epoch(loader):
    return torch.cat([batch["frames"] for batch in loader])


def test_random_sampling_is_worker_safe_and_reproducible(csv_root):
    manifest = csv_root / "many.csv"
    manifest.write_text("path,score\n" + "a.mp4,1\n" * 8)
    data = vidio.CSVDataset(
        manifest, "train", sampler=vidio.ClipSampler(4, position="random"), crop_size=8, threads=1
    )

    def loader():
        return torch.utils.data.DataLoader(data, batch_size=2, num_workers=2)

    torch.manual_seed(0)
    first = loader()
    epoch_one, epoch_two = _epoch(first), _epoch(first)
    torch.manual_seed(0)
    again = _epoch(loader())
    torch.manual_seed(1)
    other = _epoch(loader())
    assert torch.equal(epoch_one, again)
    assert not torch.equal(epoch_one, epoch_two)
    assert not torch.equal(epoch_one, other)
    assert len({int(f[0]) for f in epoch_one}) > 4
    single = torch.cat([data[i]["frames"][None] for i in range(8)])
    assert (single[:, 1:] - single[:, :-1] == 1).all() and single.max() < 200


def test_test_split_items_are_deterministic(csv_root):
    data = vidio.CSVDataset(
        csv_root / "scores.csv", "test", sampler=vidio.ClipSampler(4, position="random"), crop_size=8
    )
    assert torch.equal(data[0]["frames"], data[0]["frames"])
    assert torch.equal(data[0]["video"], data[0]["video"])


def test_provenance_names_the_distribution(csv_root):
    vidio.create_dataset("csv", csv_root / "scores.csv", "train", crop_size=16)
    record = vidio.provenance()["vidio.datasets"]["csv"]
    assert (
        record["distribution"] == "localkit-vidio"
        and record["value"] == "vidio._datasets.csv_manifest:CSVDataset"
    )


@pytest.mark.parametrize(
    ("name", "typo", "suggestion"),
    [
        ("jigsaws", "folds", "fold"),
        ("mtl-aqa", "segment_lenght", "segment_length"),
        ("aqa-7", "action", "actions"),
        ("csv", "num_frame", "num_frames"),
        ("csv", "backnd", "backend"),
    ],
)
def test_a_misspelled_dataset_option_names_the_accepted_ones(name, typo, suggestion):
    root = {"jigsaws": DATA / "jigsaws", "mtl-aqa": DATA / "mtl_aqa", "aqa-7": DATA, "csv": DATA}[name]
    with pytest.raises(LocalkitOptionError) as info:
        vidio.create_dataset(name, root, "train", **{typo: 1})
    message = str(info.value)
    assert message.startswith(
        f"dataset '{name}' from 'localkit-vidio {vidio.__version__}' does not accept option"
    )
    assert f"did you mean '{suggestion}'" in message
    accepted = info.value.accepted
    assert suggestion in accepted and {"backend", "threads", "timeout", "check_files", "sampler"} <= set(
        accepted
    )
    assert "score_range" not in accepted or name == "csv"  # the built-in datasets set it themselves


def test_a_dataset_class_refuses_an_unknown_keyword_too():
    with pytest.raises(TypeError, match="unexpected keyword argument 'folds'"):
        vidio.JIGSAWS(DATA / "jigsaws", "train", folds=1, check_files=False)
