"""The dataset on the tiny official tree: items, splits, joint transforms, layout errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import splitnet
from localkit_cityscapes import CityscapesDataset, JointTransform, cityscapes, to_train_ids
from splitnet import DatasetLayoutError

MEAN = torch.tensor((0.485, 0.456, 0.406))[:, None, None]
STD = torch.tensor((0.229, 0.224, 0.225))[:, None, None]


def decode_ids(image: torch.Tensor, step: int) -> torch.Tensor:
    """The label id that the red channel of a normalised tree image encodes."""
    red = (image[0] * STD[0] + MEAN[0]) * 255 / step
    return red.round().long()


def uniform_neighbourhood(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """True where every pixel within ``radius`` has the same mask value, never at the border.

    At scales up to 2, a pixel whose 3x3 neighbourhood is uniform in the nearest-exact mask
    has its bilinear support inside one source block, so its colour is exact. Beyond a
    crop's edge the neighbours are unknown, hence no border pixels.
    """
    padded = torch.nn.functional.pad(mask.float(), (radius,) * 4, value=-1.0)
    same = torch.ones_like(mask, dtype=torch.bool)
    height, width = mask.shape
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            same &= padded[dy : dy + height, dx : dx + width] == mask
    return same


def test_created_through_the_entry_point_with_the_contract_attributes(tree):
    data = splitnet.create_dataset("cityscapes", tree, "train")
    assert isinstance(data, CityscapesDataset)
    assert (data.num_classes, data.task, len(data)) == (19, "segmentation", 4)
    assert data.mean == (0.485, 0.456, 0.406) and data.std == (0.229, 0.224, 0.225)
    image, target = data[0]
    assert image.dtype == torch.float32 and image.shape == (3, 64, 128)
    assert target.dtype == torch.int64 and target.shape == (64, 128)


def test_val_items_are_the_files_mapped_to_train_ids_without_augmentation(tree):
    data = cityscapes(tree, "val")
    assert len(data) == 2 and not data.augment
    for index, (image_path, label_path) in enumerate(data.pairs):
        assert image_path.parts[-4:-1] == ("leftImg8bit", "val", "frankfurt")
        assert label_path.name == image_path.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        image, target = data[index]
        ids = np.asarray(Image.open(label_path))
        assert torch.equal(target, torch.from_numpy(to_train_ids(ids).astype(np.int64)))
        raw = torch.from_numpy(np.asarray(Image.open(image_path)).copy()).permute(2, 0, 1).float() / 255
        torch.testing.assert_close(image, (raw - MEAN) / STD)
    assert {int(v) for v in torch.unique(data[0][1])} <= set(range(19)) | {255}
    assert 255 in torch.unique(torch.cat([data[i][1].flatten() for i in range(2)]))


def test_test_split_reads_val_unless_the_official_test_folder_is_asked_for(tree):
    default = cityscapes(tree, "test")
    assert default.folder == "val" and default.pairs == cityscapes(tree, "val").pairs
    official = cityscapes(tree, "test", test_folder="test")
    assert official.folder == "test" and {p.parent.name for p, _ in official.pairs} == {"berlin"}
    # the official test labels are ignore regions only
    assert all(bool((official[i][1] == 255).all()) for i in range(len(official)))


def test_train_items_are_random_crops_of_the_configured_size_reproducible_by_seed(tree):
    data = cityscapes(tree, "train", crop_size=(32, 48))
    torch.manual_seed(5)
    first = [data[i] for i in range(4)]
    torch.manual_seed(5)
    again = [data[i] for i in range(4)]
    for (image, target), (image2, target2) in zip(first, again):
        assert image.shape == (3, 32, 48) and target.shape == (32, 48)
        assert torch.equal(image, image2) and torch.equal(target, target2)
    torch.manual_seed(6)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, [data[i] for i in range(4)]))


def test_crop_larger_than_the_image_is_capped_at_the_image_size(tree):
    image, target = cityscapes(tree, "train")[0]  # default crop 512x1024
    assert image.shape == (3, 64, 128) and target.shape == (64, 128)


@pytest.mark.parametrize("seed", range(8))
def test_joint_transform_keeps_image_and_mask_aligned(tree, tree_tools, seed):
    data = cityscapes(tree, "val")
    image, _ = data[seed % 2]
    # transform the raw label ids (not train ids) so that every block keeps a distinct value
    ids = torch.from_numpy(np.asarray(Image.open(data.pairs[seed % 2][1])).astype(np.int64))
    transform = JointTransform(crop_size=(48, 96), scale_range=(0.5, 2.0), cat_max_ratio=0.75)
    out_image, out_ids = transform(image, ids, torch.Generator().manual_seed(seed))
    assert out_image.shape == (3, 48, 96) and out_ids.shape == (48, 96)
    padded = (out_image == 0).all(0)
    assert bool((out_ids[padded] == 255).all())
    check = uniform_neighbourhood(out_ids) & ~padded
    assert int(check.sum()) > 100
    assert torch.equal(decode_ids(out_image, tree_tools.RED_STEP)[check], out_ids[check])


def test_scale_below_the_crop_pads_image_with_zero_and_mask_with_ignore(tree):
    image, target = cityscapes(tree, "val")[0]
    transform = JointTransform(crop_size=(64, 128), scale_range=(0.5, 0.5), flip=False)
    out_image, out_mask = transform(image, target, torch.Generator().manual_seed(0))
    assert bool((out_image[:, 32:] == 0).all()) and bool((out_image[:, :, 64:] == 0).all())
    assert bool((out_mask[32:] == 255).all()) and bool((out_mask[:, 64:] == 255).all())
    assert bool((out_image[2, :32, :64] != 0).all())
    # nearest-exact at scale 1/2 keeps the odd source pixels: rows and columns 1, 3, 5, ...
    assert torch.equal(out_mask[:32, :64], target[1::2, 1::2])


def test_flip_mirrors_image_and_mask_together(tree):
    image, target = cityscapes(tree, "val")[0]
    transform = JointTransform(crop_size=(64, 128), scale_range=(1.0, 1.0), cat_max_ratio=1.0)
    flipped = None
    for seed in range(20):
        out_image, out_mask = transform(image, target, torch.Generator().manual_seed(seed))
        if not torch.equal(out_mask, target):
            flipped = (out_image, out_mask)
            break
    assert flipped is not None, "no flip in 20 draws of p = 0.5"
    assert torch.equal(flipped[1], target.flip(-1)) and torch.equal(flipped[0], image.flip(-1))


def test_cat_max_ratio_redraws_crops_dominated_by_one_class():
    mask = torch.zeros(64, 64, dtype=torch.long)
    mask[:, 28:36] = 1  # an 8-pixel stripe of class 1; most 16x16 crops see class 0 only
    image = torch.zeros(3, 64, 64)

    def balanced_crops(ratio: float) -> int:
        transform = JointTransform(
            crop_size=(16, 16), scale_range=(1.0, 1.0), flip=False, cat_max_ratio=ratio
        )
        count = 0
        for seed in range(30):
            crop = transform(image, mask, torch.Generator().manual_seed(seed))[1]
            count += float(torch.bincount(crop.flatten()).max()) / crop.numel() < 0.75
        return count

    assert balanced_crops(1.0) < 15  # about 30% of single draws
    assert balanced_crops(0.75) >= 25  # up to 10 draws each: about 97%


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crop_size": (0, 10)}, "crop_size"),
        ({"scale_range": (2.0, 1.0)}, "scale_range"),
        ({"cat_max_ratio": 0.0}, "cat_max_ratio"),
    ],
)
def test_bad_transform_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JointTransform(**kwargs)


def test_sizes_may_be_lists_as_a_saved_config_holds_them_or_one_number(tree):
    assert cityscapes(tree, "train", crop_size=[32, 64], scale_range=[1, 1])[0][0].shape == (3, 32, 64)
    assert cityscapes(tree, "train", crop_size=40)[0][0].shape == (3, 40, 40)


# ---- layout errors -------------------------------------------------------------------------


def test_no_root_names_the_flag_and_the_layout():
    with pytest.raises(DatasetLayoutError, match=r"--data-root(.|\n)*leftImg8bit/<split>/<city>/"):
        splitnet.create_dataset("cityscapes", None, "train")


def test_empty_folder_shows_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        cityscapes(tmp_path, "train")
    message = str(info.value)
    assert f"no folder {tmp_path / 'leftImg8bit' / 'train'}" in message
    assert "leftImg8bit/train/<city>/<city>_<seq>_<frame>_leftImg8bit.png" in message
    assert "gtFine/train/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png" in message
    assert "register at https://www.cityscapes-dataset.com/register/" in message
    assert "from https://www.cityscapes-dataset.com/downloads/" in message


def test_download_is_refused_with_the_registration_and_download_urls(tree):
    # refused even where the data is complete: --download asks for something Cityscapes cannot do
    with pytest.raises(ValueError) as info:
        splitnet.create_dataset("cityscapes", tree, "train", download=True)
    message = str(info.value)
    assert message.startswith("cityscapes cannot be downloaded for you: it needs an account.")
    assert "Register at https://www.cityscapes-dataset.com/register/" in message
    assert "gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com/downloads/" in message
    assert "without --download" in message
    assert len(splitnet.create_dataset("cityscapes", tree, "train", download=False)) > 0


def test_missing_annotations_folder(tree, tmp_path):
    shutil.copytree(tree / "leftImg8bit", tmp_path / "leftImg8bit")
    with pytest.raises(DatasetLayoutError, match=f"no folder {tmp_path / 'gtFine' / 'val'}"):
        cityscapes(tmp_path, "val")


def test_root_pointing_at_leftimg8bit_gets_a_hint(tree):
    with pytest.raises(DatasetLayoutError, match="not at leftImg8bit/ itself"):
        cityscapes(tree / "leftImg8bit", "train")


def test_images_outside_city_folders(tree, tmp_path):
    shutil.copytree(tree, tmp_path / "cs")
    city = tmp_path / "cs" / "leftImg8bit" / "val" / "frankfurt"
    for image in city.iterdir():
        image.rename(city.parent / image.name)
    city.rmdir()
    with pytest.raises(DatasetLayoutError, match="holds images directly"):
        cityscapes(tmp_path / "cs", "val")


def test_image_without_label_names_the_missing_file(tree, tmp_path):
    shutil.copytree(tree, tmp_path / "cs")
    label = sorted((tmp_path / "cs" / "gtFine" / "val" / "frankfurt").glob("*_gtFine_labelIds.png"))[1]
    label.unlink()
    with pytest.raises(
        DatasetLayoutError, match=f"1 of 2 images have no label file, e.g. {label} is missing"
    ):
        cityscapes(tmp_path / "cs", "val")


def test_only_train_id_labels_get_a_hint(tree, tmp_path):
    shutil.copytree(tree, tmp_path / "cs")
    for label in (tmp_path / "cs" / "gtFine" / "val" / "frankfurt").glob("*_gtFine_labelIds.png"):
        label.rename(label.with_name(label.name.replace("labelIds", "labelTrainIds")))
    with pytest.raises(DatasetLayoutError, match="not labelTrainIds"):
        cityscapes(tmp_path / "cs", "val")


def test_colour_or_mis_sized_label_images_are_refused_when_read(tree, tmp_path):
    shutil.copytree(tree, tmp_path / "cs")
    labels = sorted((tmp_path / "cs" / "gtFine" / "val" / "frankfurt").glob("*_gtFine_labelIds.png"))
    Image.new("RGB", (128, 64)).save(labels[0])
    Image.new("L", (64, 32)).save(labels[1])
    data = cityscapes(tmp_path / "cs", "val")
    with pytest.raises(DatasetLayoutError, match="3 channels"):
        data[0]
    with pytest.raises(DatasetLayoutError, match="is 64x32 but its image"):
        data[1]


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'validation': choose one of train, val, test"):
        cityscapes("anywhere", "validation")
