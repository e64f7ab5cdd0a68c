"""Image datasets in their official on-disk layouts, written small by the tests."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import splitnet
from splitnet import DatasetLayoutError


def test_digits_is_real_offline_data_with_a_fixed_split():
    train = splitnet.create_dataset("digits", None, "train")
    test = splitnet.create_dataset("digits", None, "test", augment=False)
    assert (len(train), len(test)) == (1297, 500)
    assert torch.bincount(test.labels).tolist() == [50] * 10
    image, label = test[0]
    assert image.shape == (3, 32, 32) and float(image.min()) >= -1.0 and float(image.max()) <= 1.0
    assert train.num_classes == 10 and train.task == "classification" and train.mean == (0.5, 0.5, 0.5)
    again = splitnet.create_dataset("digits", None, "test", augment=False)
    assert torch.equal(again[7][0], test[7][0])


def write_cifar10(root, n=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": list(range(n)),
            b"batch_label": name.encode(),
            b"filenames": [b"x.png"] * n,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)


def test_cifar10_reads_the_official_format(tmp_path):
    write_cifar10(tmp_path)
    train = splitnet.create_dataset("cifar10", tmp_path, "train")
    test = splitnet.create_dataset("cifar10", tmp_path, "test")
    assert (len(train), len(test)) == (30, 6)
    image, label = test[3]
    assert image.shape == (3, 32, 32) and label == 3 and train.num_classes == 10


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"cifar-10-batches-py not found.*--download"):
        splitnet.create_dataset("cifar10", tmp_path, "train")
    with pytest.raises(DatasetLayoutError, match="needs --data-root"):
        splitnet.create_dataset("stl10", None, "train")
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        splitnet.create_dataset("digits", None, "validation")


def test_imagefolder_layout_and_its_errors(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((40, 30, 3), 40 * i, np.uint8)).save(
                tmp_path / "train" / cls / f"{i}.png"
            )
    ds = splitnet.create_dataset("imagefolder", tmp_path, "train", image_size=32)
    assert len(ds) == 4 and ds.num_classes == 2 and ds[0][0].shape == (3, 32, 32)
    with pytest.raises(DatasetLayoutError, match=r"no folder .*test"):
        splitnet.create_dataset("imagefolder", tmp_path, "test")
    flat = tmp_path / "flat" / "train"
    flat.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "a.png")
    with pytest.raises(
        DatasetLayoutError, match=r"one sub-folder per class.*found images directly inside \(a.png"
    ):
        splitnet.create_dataset("imagefolder", tmp_path / "flat", "train")
