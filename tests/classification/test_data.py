"""Tests of hpaseg.classification.data: cell crops, channels, augmentation, the crop cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg import io
from hpaseg.classification.data import (
    ClassifierDataset,
    Sample,
    build_crop_cache,
    crop_cache_paths,
    crop_cell,
    crop_cells,
    cutmix,
    multi_hot,
    select_channels,
    square_image,
    standard_augment,
)
from hpaseg.errors import InputError
from hpaseg.labels import load_coco_split


def _scene():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, size=(40, 50, 4), dtype=np.uint8)  # no zero pixel inside
    labels = np.zeros((40, 50), np.int32)
    labels[5:15, 10:30] = 1  # 10 x 20, wide
    labels[20:38, 2:8] = 2  # 18 x 6, tall, near the left border
    labels[30:40, 40:50] = 3  # in the bottom-right corner
    labels[8:12, 12:16] = 0  # a hole in cell 1
    return image, labels


def test_crop_cell_keeps_only_the_cell_at_native_size():
    image, labels = _scene()
    crop = crop_cell(image, labels, 1, 20)  # side = max(10, 20) = 20: no resize
    assert crop.shape == (20, 20, 4) and crop.dtype == np.uint8
    # The square is centred on the 10 x 20 box: rows 0..19 of the crop are image rows 0..19.
    expected = np.where((labels[0:20, 10:30] == 1)[..., None], image[0:20, 10:30], 0)
    np.testing.assert_array_equal(crop, expected)
    assert (crop[labels[0:20, 10:30] != 1] == 0).all()  # other cells, the hole and background are 0
    assert (crop[labels[0:20, 10:30] == 1] > 0).all()


def test_crop_cell_pads_outside_the_image_and_zeroes_background_after_resizing():
    image, labels = _scene()
    crop = crop_cell(image, labels, 2, 18)  # box 18 x 6 at columns 2..7: square reaches column -4
    inside = np.zeros((18, 18), bool)
    inside[:, 6:12] = True  # columns 2..7 of the image sit at 6..11 of the square
    np.testing.assert_array_equal(crop[~inside], 0)
    np.testing.assert_array_equal(crop[inside], image[20:38, 2:8].reshape(-1, 4))
    for size in (7, 32):  # shrinking and enlarging: pixels outside the resized mask stay exactly 0
        crops, ids = crop_cells(image, labels, size)
        assert ids.tolist() == [1, 2, 3] and crops.shape == (3, size, size, 4)
        from hpaseg.transforms import resize_labels

        for crop, cell in zip(crops, ids):
            ys, xs = np.nonzero(labels == cell)
            h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
            side = max(h, w)
            top, left = ys.min() - (side - h) // 2, xs.min() - (side - w) // 2
            square = np.zeros((side, side), bool)
            for y, x in zip(ys, xs):
                square[y - top, x - left] = True
            assert (crop[resize_labels(square, (size, size)) == 0] == 0).all()
            assert crop.any()
    with pytest.raises(ValueError, match="not in the label image"):
        crop_cells(image, labels, 8, cells=[4])


def test_select_channels_and_square_image():
    image, _ = _scene()
    green = select_channels(image, "green")
    assert green.shape == (40, 50, 3)
    for c in range(3):
        np.testing.assert_array_equal(green[..., c], image[..., 1])
    assert select_channels(image, "rgby") is image
    with pytest.raises(InputError, match="channels 'rgb'"):
        select_channels(image, "rgb")
    sq = square_image(image, 25)
    assert sq.shape == (25, 25, 4)
    assert (sq[20:] == 0).all() and sq[:20].any()  # 40 x 50 -> 20 x 25, padded at the bottom


def test_cutmix_mixes_multilabel_targets_by_pasted_area():
    """Image 0 is all 0 and image 1 all 1, so the pasted box's area (a multiple of 1/100 on
    10 x 10 images) is counted from the output pixels and the targets checked against it."""
    mix = cutmix(p=1.0, alpha=1.0)
    images = torch.stack([torch.zeros(4, 10, 10), torch.ones(4, 10, 10)])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    torch.manual_seed(3)
    seen = set()
    for _ in range(8):
        out, mixed = mix(images.clone(), targets.clone())
        area = float(out[0].mean())  # fraction of image 0 replaced by image 1
        seen.add(round(area, 2))
        assert float(1 - out[1].mean()) == pytest.approx(area)  # same box, pasted from image 0
        torch.testing.assert_close(mixed[0], (1 - area) * targets[0] + area * targets[1])
        torch.testing.assert_close(mixed[1], (1 - area) * targets[1] + area * targets[0])
        assert mixed[:, 2].tolist() == [1.0, 1.0]  # a label both share stays 1
    assert len(seen) > 2  # the box varies
    never = cutmix(p=0.0)
    same, same_t = never(images, targets)
    assert same is images and same_t is targets


def test_standard_augment_keeps_shape_and_dataset_items(tmp_path):
    torch.manual_seed(0)
    aug = standard_augment()
    x = torch.rand(4, 32, 32)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    crops = np.random.default_rng(0).integers(0, 256, size=(3, 16, 16, 4), dtype=np.uint8)
    np.save(tmp_path / "a.crops.npy", crops)
    np.save(tmp_path / "b.image.npy", np.full((8, 16, 4), 255, np.uint8))
    samples = [
        Sample("a", 7, str(tmp_path / "a.crops.npy"), 1, (0, 16)),
        Sample("b", 0, str(tmp_path / "b.image.npy"), -1, (18,)),
    ]
    ds = ClassifierDataset(samples, channels="rgby", size=16, mean=[0.5] * 4, std=[0.5] * 4)
    x0, y0 = ds[0]
    assert x0.shape == (4, 16, 16)
    torch.testing.assert_close(x0, torch.from_numpy(crops[1].transpose(2, 0, 1)).float() / 255 * 2 - 1)
    assert y0.tolist() == multi_hot([0, 16]).tolist() and y0.sum() == 2
    x1, y1 = ds[1]
    assert x1.shape == (4, 16, 16) and float(x1[:, :8].min()) == 1.0 and float(x1[:, 8:].max()) == -1.0  # padded square
    green = ClassifierDataset(samples, channels="green", size=16, mean=[0.0] * 3, std=[1.0] * 3, augment=aug)
    assert green[0][0].shape == (3, 16, 16)


def test_build_crop_cache_and_bad_masks(tiny_dataset, tmp_path):
    records = load_coco_split(tiny_dataset["dataset"] / "val.json")
    cache = tmp_path / "cache"
    build_crop_cache(records, tiny_dataset["train"], tiny_dataset["masks"], cache, 24, workers=1, progress=False)
    rec = records[0]
    crops_path, ids_path = crop_cache_paths(cache, rec.image_id)
    crops, ids = np.load(crops_path), np.load(ids_path)
    assert crops.shape == (len(ids), 24, 24, 4) and set(rec.cells) <= set(ids.tolist())
    image = io.read_rgby(tiny_dataset["train"], rec.image_id)
    mask = io.read_mask(io.mask_paths(tiny_dataset["masks"], rec.image_id)[0])
    np.testing.assert_array_equal(crops[0], crop_cell(image, mask, int(ids[0]), 24))
    # A mask of another size is refused, naming the file, before anything is cached.
    bad = tmp_path / "bad_masks"
    io.write_mask_png(bad / f"{rec.image_id}_cellmask.png", mask[:100])
    with pytest.raises(InputError, match="masks must be at the image's original resolution"):
        build_crop_cache(records, tiny_dataset["train"], bad, tmp_path / "cache2", 24, workers=1, progress=False)
    assert not list((tmp_path).glob("cache2/*.npy"))
    with pytest.raises(InputError, match="no .*_cellmask.png for image"):
        build_crop_cache(records, tiny_dataset["train"], tmp_path / "none", tmp_path / "cache3", 24, progress=False)


def test_a_propagated_cell_of_a_positive_image_leaves_negative_out_of_the_loss(tmp_path):
    """Kaggle convention on the study's CNN trainer: a cell given its positive image's labels
    has an unknown Negative target (NaN), which the losses leave out; per-cell labels keep it
    (weak supervision of a CNN goes through the bags' losses, tests/weak)."""
    import numpy as np
    import torch

    from hpaseg.classification.data import ClassifierDataset, Sample
    from hpaseg.classification.losses import make_loss

    crops = tmp_path / "crops.npy"
    np.save(crops, np.zeros((2, 8, 8, 4), np.uint8))
    samples = [Sample("a", 1, str(crops), 0, (0,), negative_known=False), Sample("b", 1, str(crops), 1, (18,))]
    data = ClassifierDataset(samples, channels="rgby", size=8, mean=[0.0] * 4, std=[1.0] * 4)
    y_a, y_b = data[0][1], data[1][1]
    assert torch.isnan(y_a[18]) and y_a[0] == 1 and not torch.isnan(y_a[:18]).any()
    assert y_b[18] == 1 and not torch.isnan(y_b).any()
    logits = torch.zeros(2, 19)
    logits[0, 18] = 9.0  # confidently Negative: no cost where Negative is unknown
    for name in ("bce", "focal"):
        loss = make_loss(name)
        masked = loss(logits, torch.stack([y_a, y_b]))
        assert torch.isfinite(masked)
        known = torch.stack([y_a, y_b]).nan_to_num(0.0)  # as if Negative were known to be 0
        assert float(masked) < float(loss(logits, known))
