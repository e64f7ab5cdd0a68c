"""Image datasets, found in ``splitnet.datasets``: ``factory(root, split, **options) -> Dataset``.

Built-ins read the official on-disk formats: CIFAR-10/100 (``cifar-10-batches-py``,
``cifar-100-python``), SVHN (``train_32x32.mat``), STL-10 (``stl10_binary``), any ImageFolder
tree (``root/<split>/<class>/<image>``), and ``digits``: scikit-learn's bundled 8x8 handwritten
digits resized to 32x32 RGB, the embedded default that works offline. CIFAR, SVHN and STL-10
are downloaded only when asked (``download=True``, ``--download``), and only when missing,
through torchvision (its URLs, md5 checksums and downloader).

Every dataset yields ``(image, target)`` and carries ``num_classes``, ``task``, ``mean``
and ``std`` (the normalisation its transform applied, which reconstruction objectives
undo). CIFAR, SVHN and STL-10 are normalised and augmented as the InfoPro reference code
does (its ``train.py``): CIFAR with the mean and std ``(125.3, 123.0, 113.9) / 255`` and
``(63.0, 62.1, 66.7) / 255``, a random 32x32 crop of the image padded by 4 reflected pixels
and a horizontal flip; SVHN with mean and std 0.5, a random 32x32 crop of the image
zero-padded by 2, no flip (flips change digits); STL-10 likewise normalised, a random 96x96
crop of the image zero-padded by 4 and a flip. Test splits are only normalised.
"""

from __future__ import annotations

import http.client
import logging
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from localkit_registry import ContractError

from ._registries import DATASETS

log = logging.getLogger(__name__)

# the InfoPro reference code's train.py: CIFAR's statistics in 0..255, 127.5 for SVHN and STL-10
CIFAR_MEAN = tuple(x / 255 for x in (125.3, 123.0, 113.9))
CIFAR_STD = tuple(x / 255 for x in (63.0, 62.1, 66.7))
SVHN_MEAN = SVHN_STD = STL_MEAN = STL_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder is missing or not in the layout the dataset reads."""


def list_datasets(pattern: str = "*", exclude: str | list[str] = ()) -> list[str]:
    """Names registered in the ``splitnet.datasets`` group. Imports nothing."""
    return DATASETS.names(pattern, exclude)


def create_dataset(name: str, root: str | Path | None, split: str, **options) -> Dataset:
    """Build dataset ``name`` for ``split`` (``"train"`` or ``"test"``) from ``root``.

    Args:
        name: a ``splitnet.datasets`` entry.
        root: the folder holding the data (``None`` for embedded data such as ``digits``).
        split: ``"train"`` or ``"test"`` (``"val"`` where the dataset has one).
        **options: the dataset's own options (``augment=False``, ``download=True``, ...).

    Raises:
        UnknownEntryError: no distribution provides ``name``.
        OptionError: an option the dataset does not accept; names the accepted ones.
        ContractError: the dataset lacks an attribute the contract asks for.
        DatasetLayoutError: ``root`` is not in the layout the dataset reads; the message
            shows the expected layout.
        ValueError: an unknown split.

    Example:
        >>> import splitnet
        >>> splitnet.create_dataset("digits", None, "test", augment=False).num_classes
        10
    """
    dataset = DATASETS.create(name, root, split, **options)
    for attribute in ("num_classes", "task", "mean", "std"):
        if not hasattr(dataset, attribute):
            entry = DATASETS.entry(name)
            raise ContractError(
                f"dataset '{name}' from '{entry.distribution}' lacks the attribute '{attribute}' that "
                "splitnet.datasets entries must carry (see docs/plugins.md)"
            )
    return dataset


def _check_split(split: str, allowed=("train", "test")) -> None:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(allowed)}")


def _transforms(train: bool, size: int, mean, std, flip: bool, padding: int, padding_mode: str = "constant"):
    from torchvision import transforms as T

    steps = []
    if train:
        steps.append(T.RandomCrop(size, padding=padding, padding_mode=padding_mode))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def cifar_transform(train: bool):
    """CIFAR-10/100's transform: normalised with the reference's statistics; training images
    cropped at random from the image padded by 4 reflected pixels, and flipped."""
    return _transforms(train, 32, CIFAR_MEAN, CIFAR_STD, flip=True, padding=4, padding_mode="reflect")


def svhn_transform(train: bool):
    """SVHN's transform: normalised with mean and std 0.5; training images cropped at random
    from the image zero-padded by 2, never flipped."""
    return _transforms(train, 32, SVHN_MEAN, SVHN_STD, flip=False, padding=2)


def stl10_transform(train: bool):
    """STL-10's transform: normalised with mean and std 0.5; training images cropped at random
    from the image zero-padded by 4, and flipped."""
    return _transforms(train, 96, STL_MEAN, STL_STD, flip=True, padding=4)


class _Wrapped(Dataset):
    """A torchvision dataset plus the attributes the ``splitnet.datasets`` contract asks for."""

    def __init__(self, inner, num_classes: int, mean, std, task: str = "classification"):
        self.inner, self.num_classes, self.mean, self.std, self.task = inner, num_classes, mean, std, task

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int):
        return self.inner[index]


def _require(root: str | Path | None, name: str, layout: str, marker: str, download: bool) -> Path:
    if root is None:
        raise DatasetLayoutError(
            f"{name} needs --data-root (a folder holding {layout}; with --download, the folder to download it into)"
        )
    root = Path(root).expanduser()
    if not download and not (root / marker).exists():
        raise DatasetLayoutError(
            f"{name}: {root / marker} not found. Expected the official layout {layout} under {root}. "
            "Point --data-root at the folder that contains it, or pass download=True (--download) to fetch it."
        )
    return root


def _download(name: str, root: Path, url: str, filename: str, md5: str, extract: bool) -> None:
    """torchvision's download of ``url`` into ``root`` (unpacked if ``extract``), its md5 checked."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    log.info("%s: downloading %s into %s", name, url, root)
    try:
        if extract:
            download_and_extract_archive(url, str(root), filename=filename, md5=md5)
        else:
            download_url(url, str(root), filename=filename, md5=md5)
    except (
        OSError,
        RuntimeError,
        http.client.HTTPException,
    ) as exc:  # torchvision: RuntimeError for a bad md5
        raise DatasetLayoutError(
            f"{name}: downloading {url} into {root} failed ({type(exc).__name__}: {exc}). Run again when the "
            f"connection works, or fetch {filename} yourself and unpack it under {root}."
        ) from exc


class _ArraysOnly(pickle.Unpickler):
    """CIFAR's python batches are pickles: allow numpy arrays and nothing that could run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a CIFAR batch holds only arrays and lists")


class ArrayImages(Dataset):
    """Images held as a uint8 array ``(N, H, W, 3)`` with integer labels, through a transform."""

    def __init__(self, images: np.ndarray, labels, transform, num_classes: int, mean, std):
        self.images, self.labels, self.transform = (
            images,
            torch.as_tensor(labels, dtype=torch.int64),
            transform,
        )
        self.num_classes, self.mean, self.std, self.task = num_classes, mean, std, "classification"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def _read_cifar(folder: Path, files: list[str], label_key: bytes) -> tuple[np.ndarray, list[int]]:
    data, labels = [], []
    for name in files:
        path = folder / name
        try:
            with open(path, "rb") as f:
                batch = _ArraysOnly(f, encoding="bytes").load()
            data.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += list(batch[label_key])
        except FileNotFoundError:
            raise DatasetLayoutError(
                f"{path} is missing: the official CIFAR layout has {', '.join(files)}"
            ) from None
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
            raise DatasetLayoutError(
                f"{path} is not a CIFAR python batch ({type(exc).__name__}: {exc})"
            ) from exc
    return np.concatenate(data).transpose(0, 2, 3, 1), labels


def _cifar(root, split, download, augment, name, folder, files, label_key, num_classes):
    _check_split(split)
    root = _require(root, name, f"{folder}/", folder, download)
    if download and not (root / folder).exists():
        from torchvision.datasets import CIFAR10, CIFAR100

        # only the archive comes from torchvision: its CIFAR class unpickles batches without limits
        official = CIFAR10 if num_classes == 10 else CIFAR100
        _download(name, root, official.url, official.filename, official.tgz_md5, extract=True)
    images, labels = _read_cifar(root / folder, files[split], label_key)
    tf = cifar_transform(split == "train" and augment)
    return ArrayImages(images, labels, tf, num_classes, CIFAR_MEAN, CIFAR_STD)


def cifar10(root, split, *, download: bool = False, augment: bool = True) -> Dataset:
    """CIFAR-10 in its official python format: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch}``.

    ``download=True`` fetches torchvision's copy of the official archive into ``root`` when missing.
    """
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    return _cifar(root, split, download, augment, "cifar10", "cifar-10-batches-py", files, b"labels", 10)


def cifar100(root, split, *, download: bool = False, augment: bool = True) -> Dataset:
    """CIFAR-100 in its official python format: ``root/cifar-100-python/{train,test}`` (fine labels).

    ``download=True`` fetches torchvision's copy of the official archive into ``root`` when missing.
    """
    files = {"train": ["train"], "test": ["test"]}
    return _cifar(root, split, download, augment, "cifar100", "cifar-100-python", files, b"fine_labels", 100)


def svhn(root, split, *, download: bool = False, augment: bool = True) -> Dataset:
    """SVHN (cropped digits): ``root/{train,test}_32x32.mat``. Needs scipy to read .mat files.

    ``download=True`` fetches the split's official file into ``root`` when missing.
    """
    from torchvision.datasets import SVHN

    _check_split(split)
    root = _require(root, "svhn", "train_32x32.mat and test_32x32.mat", f"{split}_32x32.mat", download)
    try:
        import scipy.io  # noqa: F401  (torchvision reads .mat files with it)
    except ImportError as exc:
        raise ImportError("reading SVHN needs scipy: pip install 'localkit-splitnet[data]'") from exc
    if download and not (root / f"{split}_32x32.mat").exists():
        url, filename, md5 = SVHN.split_list[split]
        _download("svhn", root, url, filename, md5, extract=False)
    tf = svhn_transform(split == "train" and augment)
    return _Wrapped(SVHN(str(root), split=split, transform=tf), 10, SVHN_MEAN, SVHN_STD)


def stl10(root, split, *, download: bool = False, augment: bool = True) -> Dataset:
    """STL-10 (labelled part): ``root/stl10_binary/{train,test}_{X,y}.bin``.

    ``download=True`` fetches the official archive (2.5 GB) into ``root`` when missing.
    """
    from torchvision.datasets import STL10

    _check_split(split)
    root = _require(root, "stl10", "stl10_binary/", "stl10_binary", download)
    if download and not (root / "stl10_binary").exists():
        _download("stl10", root, STL10.url, STL10.filename, STL10.tgz_md5, extract=True)
    tf = stl10_transform(split == "train" and augment)
    return _Wrapped(STL10(str(root), split=split, transform=tf), 10, STL_MEAN, STL_STD)


def _read_image(path: str):
    """An RGB image, or a ValueError naming the file: a corrupt image stops a run with its name."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f, Image.open(f) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(
            f"imagefolder: {path} is not a readable image ({exc}); delete or replace it"
        ) from exc


def imagefolder(root, split, *, image_size: int = 224, augment: bool = True) -> Dataset:
    """Any tree ``root/<split>/<class>/<image>`` (ImageNet style), resized to ``image_size``."""
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if root is None:
        raise DatasetLayoutError(
            "imagefolder needs --data-root (a folder with <split>/<class>/<image> inside)"
        )
    folder = Path(root).expanduser() / split
    expected = f"{Path(root) / split}/<class>/<image>.jpg|png|..."
    if not folder.is_dir():
        raise DatasetLayoutError(f"imagefolder: no folder {folder}. Expected the layout {expected}.")
    classes = [d for d in sorted(folder.iterdir()) if d.is_dir()]
    loose = [f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS]
    if not classes or loose:
        raise DatasetLayoutError(
            f"imagefolder: {folder} must contain one sub-folder per class holding the images"
            + (
                f"; found images directly inside ({', '.join(loose[:3])}...)"
                if loose
                else "; found no class folders"
            )
            + f". Expected the layout {expected}."
        )
    if split == "train" and augment:
        tf = T.Compose(
            [
                T.RandomResizedCrop(image_size),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
    else:
        tf = T.Compose(
            [
                T.Resize(int(image_size * 8 / 7)),
                T.CenterCrop(image_size),
                T.ToTensor(),
                T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
    try:
        inner = ImageFolder(str(folder), transform=tf, loader=_read_image)
    except FileNotFoundError as exc:
        raise DatasetLayoutError(f"imagefolder: {exc}. Expected the layout {expected}.") from exc
    return _Wrapped(inner, len(inner.classes), IMAGENET_MEAN, IMAGENET_STD)


class DigitsDataset(Dataset):
    """scikit-learn's 1,797 handwritten digits (8x8, 16 grey levels) as 32x32 RGB images.

    A fixed stratified split: 1,297 training and 500 test images. Training images get a
    random 32x32 crop of the 2-pixel-padded image (no flips: they change digits).
    ``per_class`` keeps only that many training images of each class (the first ones of a
    fixed shuffle, so a smaller subset is part of a larger one); the test split is whole.
    """

    num_classes = 10
    task = "classification"
    TEST_SIZE = 500

    def __init__(self, split: str, augment: bool = True, size: int = 32, per_class: int | None = None):
        _check_split(split)
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ImportError(
                "the digits dataset ships with scikit-learn: pip install 'localkit-splitnet[data]'"
            ) from exc
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.int64)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        test = torch.cat([order[labels[order] == c][: self.TEST_SIZE // 10] for c in range(10)])
        is_test = torch.zeros(len(labels), dtype=torch.bool)
        is_test[test] = True
        chosen = is_test if split == "test" else ~is_test
        if per_class is not None and split == "train":
            available = min(int((labels[~is_test] == c).sum()) for c in range(10))
            if (
                isinstance(per_class, bool)
                or not isinstance(per_class, int)
                or not 1 <= per_class <= available
            ):
                raise ValueError(
                    f"digits per_class must be an integer from 1 to {available} (training images of the "
                    f"rarest class), got {per_class!r}"
                )
            kept = torch.cat([order[(labels[order] == c) & ~is_test[order]][:per_class] for c in range(10)])
            chosen = torch.zeros(len(labels), dtype=torch.bool)
            chosen[kept] = True
        images = torch.nn.functional.interpolate(
            images[chosen][:, None], size=(size, size), mode="bilinear", align_corners=False
        ).clamp(0, 1)
        self.images = images.expand(-1, 3, -1, -1).contiguous()
        self.labels = labels[chosen]
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        self.augment = augment and split == "train"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.augment:
            padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
            top, left = torch.randint(0, 5, (2,)).tolist()
            image = padded[:, top : top + image.shape[1], left : left + image.shape[2]]
        return (image - 0.5) / 0.5, self.labels[index]


def digits(root, split, *, augment: bool = True, per_class: int | None = None) -> Dataset:
    """The embedded default: scikit-learn's handwritten digits at 32x32 (``root`` is ignored).

    It ships with scikit-learn, so it has no ``download`` option. ``per_class=10`` trains
    on 10 images of each digit (a harder regime: ``--dataset-opt per_class=10``).
    """
    return DigitsDataset(split, augment=augment, per_class=per_class)
