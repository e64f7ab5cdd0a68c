"""Image datasets in their official on-disk layouts, written small by the tests."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T
from torchvision.datasets import CIFAR10

import splitnet
from splitnet import DatasetLayoutError, _datasets
from splitnet._cli import main


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


def test_digits_per_class_keeps_a_nested_stratified_training_subset():
    ten = splitnet.create_dataset("digits", None, "train", augment=False, per_class=10)
    twenty = splitnet.create_dataset("digits", None, "train", augment=False, per_class=20)
    assert torch.bincount(ten.labels).tolist() == [10] * 10 and len(twenty) == 200
    assert all(any(torch.equal(image, other) for other in twenty.images) for image in ten.images)
    assert len(splitnet.create_dataset("digits", None, "test", per_class=10)) == 500
    with pytest.raises(ValueError, match="digits per_class must be an integer from 1 to 124"):
        splitnet.create_dataset("digits", None, "train", per_class=125)


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


def cifar10_archive(tmp_path) -> bytes:
    """A tiny ``cifar-10-python.tar.gz`` in the official layout (6 images per batch)."""
    write_cifar10(tmp_path / "source")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(tmp_path / "source" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


@pytest.fixture
def cifar_server(tmp_path, monkeypatch):
    """torchvision's CIFAR-10 URL and md5 pointed at a server on 127.0.0.1 holding a tiny archive.

    Yields the list of paths requested from it.
    """
    data, requests = cifar10_archive(tmp_path), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{httpd.server_port}/~kriz/cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(data).hexdigest())
    yield requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_fetches_torchvision_s_archive_once(cifar_server, tmp_path):
    root = tmp_path / "data"
    train = splitnet.create_dataset("cifar10", root, "train", download=True)
    assert (root / "cifar-10-python.tar.gz").is_file() and (
        root / "cifar-10-batches-py" / "test_batch"
    ).is_file()
    # torchvision asks once for redirects, then downloads
    assert set(cifar_server) == {"/~kriz/cifar-10-python.tar.gz"}
    fetched = len(cifar_server)
    test = splitnet.create_dataset("cifar10", root, "test", download=True)
    assert len(cifar_server) == fetched  # found on disk: nothing fetched again
    assert (len(train), len(test)) == (30, 6) and test[3][1] == 3


def test_without_download_nothing_is_fetched(cifar_server, tmp_path):
    with pytest.raises(
        DatasetLayoutError, match=r"data/cifar-10-batches-py not found.*download=True \(--download\)"
    ):
        splitnet.create_dataset("cifar10", tmp_path / "data", "train")
    assert cifar_server == []


def test_a_download_that_fails_its_md5_names_the_url_and_the_folder(cifar_server, tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(DatasetLayoutError) as info:
        splitnet.create_dataset("cifar10", tmp_path / "data", "train", download=True)
    message = str(info.value)
    assert f"cifar10: downloading {CIFAR10.url} into {tmp_path / 'data'} failed (RuntimeError" in message
    assert "fetch cifar-10-python.tar.gz yourself and unpack it under" in message
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()


def test_command_line_says_to_pass_download(tmp_path, capsys):
    code = main(
        ["train", "--model", "cifar_resnet20", "--dataset", "cifar10"]
        + ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and f"{tmp_path / 'data' / 'cifar-10-batches-py'} not found" in err
        and "(--download)" in err
    )


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


# The InfoPro reference code's train.py (Experiments on CIFAR-SVHN-STL10, lines 139-188),
# written out here: normalisation (lines 139-146), training augmentation per dataset
# (lines 150-175) and the test transform (lines 185-188).
def reference_normalize(dataset):
    if "cifar" in dataset:
        return T.Normalize(
            mean=[x / 255.0 for x in [125.3, 123.0, 113.9]], std=[x / 255.0 for x in [63.0, 62.1, 66.7]]
        )
    return T.Normalize(
        mean=[x / 255 for x in [127.5, 127.5, 127.5]], std=[x / 255 for x in [127.5, 127.5, 127.5]]
    )


def reference_train_transform(dataset):
    normalize = reference_normalize(dataset)
    if "cifar" in dataset:
        return T.Compose(
            [
                T.ToTensor(),
                T.Lambda(lambda x: F.pad(x.unsqueeze(0), (4, 4, 4, 4), mode="reflect").squeeze()),
                T.ToPILImage(),
                T.RandomCrop(32),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                normalize,
            ]
        )
    if "stl" in dataset:
        return T.Compose([T.RandomCrop(96, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    return T.Compose([T.RandomCrop(32, padding=2), T.ToTensor(), normalize])


@pytest.mark.parametrize(
    ("dataset", "ours", "size"),
    [
        ("cifar10", _datasets.cifar_transform, 32),
        ("svhn", _datasets.svhn_transform, 32),
        ("stl10", _datasets.stl10_transform, 96),
    ],
)
def test_transforms_are_the_reference_code_s(dataset, ours, size):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(4)]
    seen = set()
    for seed in range(8):
        for image in images:
            torch.manual_seed(seed)
            expected = reference_train_transform(dataset)(image)
            torch.manual_seed(seed)
            got = ours(True)(image)
            assert torch.equal(got, expected)
            seen.add(got.sum().item())
        test = T.Compose([T.ToTensor(), reference_normalize(dataset)])
        assert torch.equal(ours(False)(images[0]), test(images[0]))
    assert len(seen) > 8  # the crops and flips do vary


def test_datasets_carry_the_reference_statistics(tmp_path):
    write_cifar10(tmp_path)
    train = splitnet.create_dataset("cifar10", tmp_path, "train")
    assert train.mean == pytest.approx([125.3 / 255, 123.0 / 255, 113.9 / 255], rel=1e-15)
    assert train.std == pytest.approx([63.0 / 255, 62.1 / 255, 66.7 / 255], rel=1e-15)
    assert _datasets.SVHN_MEAN == _datasets.SVHN_STD == _datasets.STL_MEAN == _datasets.STL_STD == (0.5,) * 3
    raw = train.images[4]
    torch.manual_seed(3)
    got = train[4][0]
    torch.manual_seed(3)
    assert torch.equal(got, reference_train_transform("cifar10")(Image.fromarray(raw)))
