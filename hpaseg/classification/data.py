"""Classifier inputs: whole images and single-cell crops, their cache, augmentation and a
torch Dataset of (input, multi-hot label) samples.

Inputs
------
* **Image level**: the whole image resized so its longer side is ``image_size`` px
  (:func:`hpaseg.transforms.resize_image`) and zero-padded at the bottom and right to a
  square (:func:`hpaseg.transforms.square_image`).
* **Cell level**: one crop per segmented cell (:func:`crop_cell`): the square of side
  ``max(height, width)`` of the cell's bounding box, centred on that box (zeros where it
  leaves the image), every pixel outside the cell's mask set to 0, resized to
  ``crop_size`` px. After resizing, the pixels outside the (nearest-neighbour resized)
  mask are zeroed again, so they are exactly 0 at any size.

Channels (:func:`select_channels`): ``"rgby"`` keeps the four channels; ``"green"``
replicates the green (protein) channel to three, the companion study's setting.

Cache
-----
Image level reuses the image cache of :func:`hpaseg.labels.build_cache`
(``DATASET/cache_{size}px/{ID}.image.npy``). Cell level caches, per image, every cell's
crop at original resolution: ``{ID}.crops.npy`` (N, S, S, 4) uint8 and ``{ID}.cellids.npy``
(N,) int32 (:func:`build_crop_cache`). Epochs then read small arrays, not 2048-px PNGs.

Augmentation (on tensors, torchvision.transforms.v2)
----------------------------------------------------
``standard``: horizontal and vertical flips (p 0.5 each), rotation within +-20 degrees
and translation within +-10% (one random affine), then normalisation.
``cutmix``: the same per sample, then on each batch, with probability 0.5, CutMix
(torchvision's ``v2.CutMix``, box from Beta(1, 1)). torchvision's CutMix takes
probability-shaped (N, C) targets as they are and mixes them linearly by the pasted
area, ``y = (1 - a) * y_i + a * y_j`` (``a`` = box area / image area), which is the rule
for multi-hot targets too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torchvision.transforms import v2
from tqdm import tqdm

from .. import io
from ..classes import CHANNEL_NAMES, NEGATIVE, NUM_CLASSES, Channel
from ..errors import InputError
from ..labels import ImageRecord
from ..transforms import resize_image, resize_labels, square_image, to_tensor

__all__ = [
    "build_cell_cache",
    "CHANNEL_MODES",
    "channel_count",
    "select_channels",
    "crop_cell",
    "crop_cells",
    "multi_hot",
    "standard_augment",
    "cutmix",
    "Sample",
    "ClassifierDataset",
    "crop_cache_dir",
    "crop_cache_paths",
    "build_crop_cache",
    "check_cache_inputs",
    "read_image_mask",
    "check_cells_present",
]

#: Channel modes: the green channel replicated to three, or all four RGBY channels.
CHANNEL_MODES: tuple[str, ...] = ("green", "rgby")
_GREEN_REPLICAS = 3


def channel_count(channels: str) -> int:
    """Network input channels of a channel mode.

    >>> channel_count("green"), channel_count("rgby")
    (3, 4)
    """
    if channels not in CHANNEL_MODES:
        raise InputError(f"channels {channels!r}: expected one of {', '.join(CHANNEL_MODES)}", param="channels")
    return _GREEN_REPLICAS if channels == "green" else len(Channel)


def select_channels(image: np.ndarray, channels: str) -> np.ndarray:
    """The channels a network sees.

    Parameters
    ----------
    image : ndarray, shape (H, W, 4)
        RGBY.
    channels : {"green", "rgby"}

    Returns
    -------
    ndarray, shape (H, W, 3) or (H, W, 4), same dtype

    Examples
    --------
    >>> select_channels(np.array([[[1, 2, 3, 4]]], np.uint8), "green").tolist()
    [[[2, 2, 2]]]
    """
    channel_count(channels)
    if image.ndim != 3 or image.shape[2] != len(Channel):
        raise ValueError(f"expected an (H, W, 4) RGBY image, got shape {image.shape}")
    if channels == "rgby":
        return image
    return np.repeat(image[..., Channel.GREEN : Channel.GREEN + 1], _GREEN_REPLICAS, axis=2)


def crop_cell(
    image: np.ndarray, label_image: np.ndarray, cell: int, size: int, *, box: tuple[slice, slice] | None = None
) -> np.ndarray:
    """Crop one cell (see the module docstring): square around its box, background zeroed.

    Parameters
    ----------
    image : ndarray, shape (H, W, C), uint8
    label_image : ndarray, shape (H, W), int
        0 = background, cells 1..N.
    cell : int
        Label of the cell.
    size : int
        Side of the returned crop in px.
    box : (slice, slice), optional
        The cell's bounding box (``scipy.ndimage.find_objects``), if known.

    Returns
    -------
    ndarray, shape (size, size, C), uint8
        Pixels outside the cell are 0.

    Examples
    --------
    >>> img = np.arange(1, 17, dtype=np.uint8).reshape(4, 4, 1)
    >>> lab = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    >>> crop_cell(img, lab, 1, 2)[..., 0].tolist()
    [[6, 7], [10, 0]]
    """
    if image.shape[:2] != label_image.shape:
        raise ValueError(f"image is {image.shape[:2]} but the label image is {label_image.shape}")
    if box is None:
        boxes = ndimage.find_objects((label_image == cell).astype(np.int32))
        if not boxes or boxes[0] is None:
            raise ValueError(f"cell {cell} is not in the label image")
        box = boxes[0]
    ys, xs = box
    h, w = ys.stop - ys.start, xs.stop - xs.start
    side = max(h, w)
    top, left = ys.start - (side - h) // 2, xs.start - (side - w) // 2
    y0, y1 = max(top, 0), min(top + side, image.shape[0])
    x0, x1 = max(left, 0), min(left + side, image.shape[1])
    inside = np.zeros((side, side), bool)
    inside[y0 - top : y1 - top, x0 - left : x1 - left] = label_image[y0:y1, x0:x1] == cell
    crop = np.zeros((side, side, image.shape[2]), np.uint8)
    crop[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    crop[~inside] = 0
    if side != size:
        crop = resize_image(crop, size)
        crop[resize_labels(inside, (size, size)) == 0] = 0
    return crop


def crop_cells(
    image: np.ndarray, label_image: np.ndarray, size: int, cells: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of every cell of a label image (or of ``cells``), in increasing label order.

    Parameters
    ----------
    image : ndarray, shape (H, W, C), uint8
    label_image : ndarray, shape (H, W), int
    size : int
    cells : sequence of int, optional
        Only these cells (each must be in ``label_image``).

    Returns
    -------
    crops : ndarray, shape (N, size, size, C), uint8
    ids : ndarray, shape (N,), int32
    """
    if image.shape[:2] != label_image.shape:
        raise ValueError(f"image is {image.shape[:2]} but the label image is {label_image.shape}")
    boxes = ndimage.find_objects(np.asarray(label_image, dtype=np.int32))
    present = [k + 1 for k, b in enumerate(boxes) if b is not None]
    wanted = present if cells is None else sorted(int(c) for c in cells)
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise ValueError(f"cells {missing[:5]} are not in the label image")
    crops = np.zeros((len(wanted), size, size, image.shape[2]), np.uint8)
    for i, cell in enumerate(wanted):
        crops[i] = crop_cell(image, label_image, cell, size, box=boxes[cell - 1])
    return crops, np.asarray(wanted, dtype=np.int32)


def multi_hot(labels: Sequence[int], num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Indicator vector of class ids.

    >>> multi_hot([0, 2], 4).tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    out = torch.zeros(num_classes, dtype=torch.float32)
    out[list(labels)] = 1.0
    return out


def standard_augment(
    *, rotation_deg: float = 20.0, translate_fraction: float = 0.1
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random flips, rotation within ``+-rotation_deg`` and translation within
    ``+-translate_fraction`` of the side, on one ``(C, H, W)`` float tensor (zeros fill)."""

    return v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomVerticalFlip(0.5),
            v2.RandomAffine(
                degrees=rotation_deg,
                translate=(translate_fraction, translate_fraction),
                interpolation=v2.InterpolationMode.BILINEAR,
            ),
        ]
    )


def cutmix(
    *, p: float = 0.5, alpha: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Batch CutMix for multi-label targets: ``fn(images (N, C, H, W), targets (N, K) float)``.

    With probability ``p`` a box (area fraction from Beta(alpha, alpha)) of each image is
    replaced by the same box of the previous image in the batch, and the targets become
    ``(1 - a) * y_i + a * y_{i-1}`` with ``a`` the box's area fraction (torchvision's
    ``v2.CutMix``, which keeps 2-D probability targets as they are).
    """

    return v2.RandomApply([v2.CutMix(alpha=alpha)], p=p)


@dataclass(frozen=True)
class Sample:
    """One classifier sample: a cached array and the row in it (-1: the whole array is one
    image), with its class ids. ``cell`` is 0 for an image-level sample."""

    image_id: str
    cell: int
    path: str
    row: int
    labels: tuple[int, ...]
    #: False for a cell given its positive image's labels (propagated): its Negative target
    #: is unknown (NaN, left out of the loss; :func:`hpaseg.classes.negative_known`).
    negative_known: bool = True


class ClassifierDataset(torch.utils.data.Dataset):
    """Samples as ``(input (C, S, S) float32 normalised, target (19,) float32 multi-hot)``;
    a target NaN where unknown (Negative of a propagated cell of a positive image).

    Parameters
    ----------
    samples : sequence of Sample
    channels : {"green", "rgby"}
    size : int
        Side of the inputs (whole images are brought to it by :func:`square_image`).
    mean, std : sequence of float
        Per network channel, on the [0, 1] scale.
    augment : callable, optional
        Applied to the [0, 1] tensor before normalisation.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        channels: str,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:

        self.samples = list(samples)
        self.channels = channels
        self.size = size
        self.augment = augment
        self.normalize = v2.Normalize(list(mean), list(std))

    def __len__(self) -> int:
        return len(self.samples)

    def array(self, index: int) -> np.ndarray:
        """The cached ``(S, S, 4)`` uint8 array of sample ``index``."""
        s = self.samples[index]
        if s.row < 0:
            return square_image(np.load(s.path), self.size)
        return np.asarray(np.load(s.path, mmap_mode="r")[s.row])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(select_channels(self.array(index), self.channels))
        if self.augment is not None:
            x = self.augment(x)
        sample = self.samples[index]
        y = multi_hot(sample.labels)
        if not sample.negative_known:
            y[NEGATIVE] = float("nan")
        return self.normalize(x), y


# --------------------------------------------------------------------------- crop cache
def check_cache_inputs(records: Sequence[ImageRecord], data_dir: str | Path, mask_dir: str | Path) -> None:
    """Fail before any decoding when a channel file or a cell mask of ``records`` is missing."""
    for rec in records:
        for channel in CHANNEL_NAMES:
            io.find_channel_file(data_dir, rec.image_id, channel)
        mask_path = io.mask_paths(mask_dir, rec.image_id)[0]
        if not mask_path.is_file():
            raise InputError(
                f"masks {mask_dir}: no {mask_path.name} for image {rec.image_id!r}; run 'hpaseg segment' for it or give the masks the dataset was propagated from",
                param="masks",
            )


def read_image_mask(
    mask_dir: str | Path, image_id: str, image_shape: tuple[int, ...], data_dir: str | Path
) -> np.ndarray:
    """The cell mask of an image, which must have the image's size."""
    mask_path = io.mask_paths(mask_dir, image_id)[0]
    label_image = io.read_mask(mask_path)
    if label_image.shape != tuple(image_shape[:2]):
        raise InputError(
            f"{mask_path}: mask is {label_image.shape[0]}x{label_image.shape[1]} px but image {image_id!r} in {data_dir} is {image_shape[0]}x{image_shape[1]}; masks must be at the image's original resolution"
        )
    return label_image


def check_cells_present(record: ImageRecord, ids: np.ndarray, mask_path: Path) -> None:
    """Every cell of the dataset's record must be in the mask (else it was propagated from other masks)."""
    unknown = sorted(set(record.cells) - {int(v) for v in ids})
    if unknown:
        raise InputError(
            f"{mask_path}: has no cell {unknown[0]} of image {record.image_id!r} (the dataset has {len(record.cells)} cells); give the masks the dataset was propagated from"
        )


def crop_cache_dir(dataset_dir: str | Path, mask_dir: str | Path, size: int) -> Path:
    """``DATASET/cache_cells_{size}px_{key}``, ``key`` naming the mask folder (other masks, other crops)."""
    key = hashlib.sha1(str(Path(mask_dir).resolve()).encode()).hexdigest()[:8]
    return Path(dataset_dir) / f"cache_cells_{size}px_{key}"


def crop_cache_paths(cache_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """``({ID}.crops.npy, {ID}.cellids.npy)`` in ``cache_dir``."""
    cache_dir = Path(cache_dir)
    return cache_dir / f"{image_id}.crops.npy", cache_dir / f"{image_id}.cellids.npy"


def build_crop_cache(
    records: Sequence[ImageRecord],
    data_dir: str | Path,
    mask_dir: str | Path,
    cache_dir: str | Path,
    size: int,
    *,
    workers: int = 4,
    progress: bool = True,
) -> Path:
    """Crop and cache every cell of every image not cached yet (resumable; atomic files).

    Raises
    ------
    InputError
        A missing channel or mask file, a mask whose size differs from its image, or a
        cell of the dataset that the mask does not have (the dataset was propagated from
        other masks).
    """
    return build_cell_cache(
        records,
        data_dir,
        mask_dir,
        cache_dir,
        paths=crop_cache_paths,
        compute=lambda image, label_image: crop_cells(image, label_image, size),
        desc=f"crop cells {size}px",
        workers=workers,
        progress=progress,
    )


def build_cell_cache(
    records: Sequence[ImageRecord],
    data_dir: str | Path,
    mask_dir: str | Path,
    cache_dir: str | Path,
    *,
    paths: Callable[[Path, str], tuple[Path, Path]],
    compute: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    desc: str,
    workers: int = 4,
    progress: bool = True,
) -> Path:
    """One per-cell cache: for every image not cached yet, ``compute(image, cells)`` gives
    ``(values, cell ids)``, written to ``paths(cache_dir, image_id)`` (ids first, values
    last: a file of values marks the image done; atomic files, so a killed run resumes).

    Raises
    ------
    InputError
        A missing channel or mask file, a mask whose size differs from its image, or a
        cell of the dataset that the mask does not have.
    """
    cache_dir = Path(cache_dir)
    todo = [r for r in records if not all(p.is_file() for p in paths(cache_dir, r.image_id))]
    by_id = {r.image_id: r for r in todo}
    check_cache_inputs(todo, data_dir, mask_dir)
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress or not todo)
    for image_id, image in io.iter_rgby(data_dir, [r.image_id for r in todo], workers=workers):
        label_image = read_image_mask(mask_dir, image_id, image.shape, data_dir)
        values, ids = compute(image, label_image)
        check_cells_present(by_id[image_id], ids, io.mask_paths(mask_dir, image_id)[0])
        values_path, ids_path = paths(cache_dir, image_id)
        io.write_npy(ids_path, ids)
        io.write_npy(values_path, values)
        bar.update()
    bar.close()
    return cache_dir
