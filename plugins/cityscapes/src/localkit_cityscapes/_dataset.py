"""Cityscapes fine annotations in the official layout, as a ``splitnet.datasets`` entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from splitnet import DatasetLayoutError

from ._labels import CLASS_NAMES, NUM_CLASSES, to_train_ids
from ._transforms import JointTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
REGISTER_URL = "https://www.cityscapes-dataset.com/register/"
DOWNLOADS_URL = "https://www.cityscapes-dataset.com/downloads/"
DOWNLOAD_NOTE = (
    f"Cityscapes cannot be downloaded automatically (it needs an account): register at {REGISTER_URL}, "
    f"get leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from {DOWNLOADS_URL} and unpack "
    "both into the same folder."
)


def expected_layout(root: str | Path = "<root>", folder: str = "<split>") -> str:
    """The official layout this dataset reads, as shown in its error messages."""
    return (
        f"{root}/\n"
        f"  leftImg8bit/{folder}/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX}\n"
        f"  gtFine/{folder}/<city>/<city>_<seq>_<frame>{LABEL_SUFFIX}"
    )


def _layout_error(root: Path, folder: str, problem: str) -> DatasetLayoutError:
    hint = ""
    if root.name in ("leftImg8bit", "gtFine"):
        hint = f" Point the root at the folder that contains leftImg8bit/ and gtFine/, not at {root.name}/ itself."
    return DatasetLayoutError(
        f"cityscapes: {problem}.{hint}\nExpected the official layout:\n{expected_layout(root, folder)}\n"
        + DOWNLOAD_NOTE
    )


def find_pairs(root: str | Path, folder: str) -> list[tuple[Path, Path]]:
    """The ``(image, label-id image)`` paths of one official folder, sorted.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``.
        folder: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        One pair per ``*_leftImg8bit.png``, in city and file-name order.

    Raises:
        DatasetLayoutError: a folder is missing, holds no images, keeps images outside city
            folders, or an image has no ``*_gtFine_labelIds.png``; the message shows the
            expected layout.
    """
    root = Path(root).expanduser()
    images_dir, labels_dir = root / "leftImg8bit" / folder, root / "gtFine" / folder
    for needed in (images_dir, labels_dir):
        if not needed.is_dir():
            raise _layout_error(root, folder, f"no folder {needed}")
    loose = sorted(p.name for p in images_dir.glob(f"*{IMAGE_SUFFIX}"))
    if loose:
        raise _layout_error(
            root, folder, f"{images_dir} holds images directly ({loose[0]}, ...); they belong in city folders"
        )
    images = sorted(
        p for city in images_dir.iterdir() if city.is_dir() for p in city.glob(f"*{IMAGE_SUFFIX}")
    )
    if not images:
        raise _layout_error(root, folder, f"no *{IMAGE_SUFFIX} files in the city folders of {images_dir}")
    pairs, missing = [], []
    for image in images:
        label = labels_dir / image.parent.name / (image.name[: -len(IMAGE_SUFFIX)] + LABEL_SUFFIX)
        (pairs if label.is_file() else missing).append((image, label))
    if missing:
        found = sorted(p.name for p in (labels_dir / missing[0][1].parent.name).glob("*_labelTrainIds.png"))
        note = (
            f" (found {found[0]}: this dataset reads the official *{LABEL_SUFFIX} files, not labelTrainIds)"
            if found
            else ""
        )
        raise _layout_error(
            root,
            folder,
            f"{len(missing)} of {len(images)} images have no label file, e.g. {missing[0][1]} is missing{note}",
        )
    return pairs


class CityscapesDataset(Dataset):
    """Cityscapes images with their fine labels mapped to the 19 train ids (255 ignored).

    Items are ``(image, target)``: the image a float tensor ``(3, H, W)`` normalised with
    the ImageNet mean and std, the target a long tensor ``(H, W)``. Training items are
    randomly scaled, cropped and flipped (:class:`JointTransform`); other items are the
    full image.

    It is the ``cityscapes`` entry of ``splitnet.datasets``. Cityscapes needs an account to
    download, so ``download=True`` (splitnet's ``--download``) is refused with the
    registration and download URLs.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/`` (``--data-root``).
        split: ``"train"``, ``"val"`` or ``"test"``. The official test annotations are
            withheld (the released files hold only ignore regions), so ``"test"`` reads
            the ``val`` folders, as the paper's mmsegmentation config does; pass
            ``test_folder="test"`` to read the official test images.
        test_folder: the official folder that ``split="test"`` reads.
        augment: random scale/crop/flip (default: only for ``"train"``).
        crop_size, scale_range, flip, cat_max_ratio: see :class:`JointTransform`.
        download: always refused when true (see above).

    Raises:
        DatasetLayoutError: no root, or ``root`` is not in the official layout (the
            message shows it).
        ValueError: an unknown split or folder.

    Example:
        >>> data = CityscapesDataset("data/cityscapes", "val")  # doctest: +SKIP
        >>> image, target = data[0]  # doctest: +SKIP
        >>> image.shape, target.dtype  # doctest: +SKIP
        (torch.Size([3, 1024, 2048]), torch.int64)
        >>> try:
        ...     CityscapesDataset(None, "train")
        ... except DatasetLayoutError as error:
        ...     print(str(error).splitlines()[0])
        cityscapes needs --data-root: the folder holding leftImg8bit/ and gtFine/.
    """

    num_classes = NUM_CLASSES
    task = "segmentation"
    class_names = CLASS_NAMES
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        root: str | Path | None,
        split: str = "train",
        *,
        test_folder: str = "val",
        augment: bool | None = None,
        crop_size: tuple[int, int] = (512, 1024),
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        cat_max_ratio: float = 0.75,
        download: bool = False,
    ):
        if download:
            raise ValueError(
                f"cityscapes cannot be downloaded for you: it needs an account. Register at {REGISTER_URL}, "
                f"download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from {DOWNLOADS_URL}, "
                "unpack both into one folder and pass that folder as --data-root, without --download."
            )
        if root is None:
            raise DatasetLayoutError(
                "cityscapes needs --data-root: the folder holding leftImg8bit/ and gtFine/.\n"
                + expected_layout()
                + "\n"
                + DOWNLOAD_NOTE
            )
        if split not in SPLITS:
            raise ValueError(f"cityscapes: unknown split {split!r}: choose one of {', '.join(SPLITS)}")
        if test_folder not in SPLITS:
            raise ValueError(
                f"cityscapes: test_folder must be one of {', '.join(SPLITS)}, got {test_folder!r}"
            )
        self.root, self.split = Path(root).expanduser(), split
        self.folder = test_folder if split == "test" else split
        self.pairs = find_pairs(self.root, self.folder)
        self.augment = split == "train" if augment is None else bool(augment)
        # built once, not per item: (3, 1, 1), broadcast over every image (3, H, W)
        self._mean = torch.tensor(self.mean)[:, None, None]
        self._std = torch.tensor(self.std)[:, None, None]
        self.transform = JointTransform(
            crop_size=_pair(crop_size, int),
            scale_range=_pair(scale_range, float),
            flip=bool(flip),
            cat_max_ratio=float(cat_max_ratio),
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image_path, label_path = self.pairs[index]
        image, mask = read_pair(image_path, label_path)
        image = (image - self._mean) / self._std
        if self.augment:
            image, mask = self.transform(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"CityscapesDataset(root={str(self.root)!r}, split={self.split!r}, folder={self.folder!r}, n={len(self)})"


def read_pair(image_path: Path, label_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one image (float ``(3, H, W)`` in [0, 1]) and its train-id mask (long ``(H, W)``).

    Raises:
        DatasetLayoutError: the label image is not a single-channel label-id image, or its
            size differs from the image's.
    """
    from PIL import Image

    with Image.open(image_path) as img:
        rgb = np.asarray(img.convert("RGB"))
    with Image.open(label_path) as lbl:
        ids = np.asarray(lbl)
    if ids.ndim != 2:
        raise DatasetLayoutError(
            f"cityscapes: {label_path} has {ids.shape[-1]} channels; a *{LABEL_SUFFIX} file holds one label "
            "id per pixel (did a *_color.png take its name?)"
        )
    if ids.shape != rgb.shape[:2]:
        raise DatasetLayoutError(
            f"cityscapes: {label_path} is {ids.shape[1]}x{ids.shape[0]} but its image {image_path} is "
            f"{rgb.shape[1]}x{rgb.shape[0]}; they must match pixel for pixel"
        )
    try:
        train_ids = to_train_ids(ids)
    except ValueError as exc:
        raise DatasetLayoutError(f"cityscapes: {label_path}: {exc}") from None
    image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255)
    return image, torch.from_numpy(train_ids.astype(np.int64))


def _pair(value, kind) -> tuple:
    """``(a, b)``, ``[a, b]`` (as a saved config holds it) or one number ``a``, as a typed pair."""
    if not isinstance(value, (tuple, list)):
        value = (value, value)
    if len(value) != 2:
        raise ValueError(f"cityscapes: expected a pair of numbers, got {value!r}")
    return kind(value[0]), kind(value[1])


# The ``cityscapes`` entry of ``splitnet.datasets``: the class is its own factory, so its
# keyword parameters are the dataset options (``--dataset-opt crop_size=512,1024``).
cityscapes = CityscapesDataset
