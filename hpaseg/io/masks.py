"""Label images: cell and nucleus masks.

Label images are integer arrays, 0 = background, cells 1..N; ``{ID}_cellmask.png`` and
``{ID}_nucleimask.png`` are 16-bit PNGs at the image's original resolution, the
nucleus of cell k labelled k (the format HPA-Cell-Segmentation writes). Precomputed
masks may also come as ``{ID}.npz`` with arrays ``cell_mask``/``cellmask`` and
``nuclei_mask``/``nucleimask``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .images import decode_image, write_png

__all__ = [
    "MASK_SUFFIXES",
    "NPZ_CELL_KEYS",
    "NPZ_NUCLEI_KEYS",
    "read_mask",
    "write_mask_png",
    "mask_paths",
    "mask_image_ids",
    "read_mask_pair",
    "write_mask_pair",
    "read_precomputed_masks",
    "has_cell_mask",
    "read_cell_mask",
]

#: Suffixes of the cell and nucleus mask files written next to each other.
MASK_SUFFIXES: tuple[str, str] = ("_cellmask.png", "_nucleimask.png")

#: Accepted names of the two arrays in a precomputed ``{ID}.npz``.
NPZ_CELL_KEYS: tuple[str, ...] = ("cell_mask", "cellmask")


NPZ_NUCLEI_KEYS: tuple[str, ...] = ("nuclei_mask", "nucleimask")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a label image (16-bit PNG, TIFF or ``.npy``) as ``(H, W)`` int32."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such mask file")
    if path.suffix == ".npy":
        try:
            array = np.load(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read mask ({exc})") from exc
    else:
        array = decode_image(path)
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise InputError(f"{path}: expected a 2-D integer label image, got shape {array.shape} dtype {array.dtype}")
    return array.astype(np.int32)


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a label image as a 16-bit PNG (atomically). Labels must fit in 0..65535."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D label image, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 65535):
        raise ValueError(f"{path}: labels must lie in 0..65535 to fit a 16-bit PNG, got {mask.min()}..{mask.max()}")
    write_png(Path(path), mask.astype(np.uint16))


def mask_paths(mask_dir: str | os.PathLike, image_id: str) -> tuple[Path, Path]:
    """Paths of the cell and nucleus mask PNGs of one image."""
    mask_dir = Path(mask_dir)
    return mask_dir / f"{image_id}{MASK_SUFFIXES[0]}", mask_dir / f"{image_id}{MASK_SUFFIXES[1]}"


def mask_image_ids(mask_dir: str | Path) -> list[str]:
    """IDs of the ``{ID}_cellmask.png`` files in ``mask_dir``, sorted.

    Raises
    ------
    InputError
        When ``mask_dir`` is not a folder.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise InputError(f"{mask_dir}: no such folder; expected a folder of {{ID}}{MASK_SUFFIXES[0]} files")
    suffix = MASK_SUFFIXES[0]
    return sorted(p.name[: -len(suffix)] for p in mask_dir.glob(f"*{suffix}") if p.is_file())


def read_mask_pair(mask_dir: str | os.PathLike, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``{ID}_cellmask.png`` and ``{ID}_nucleimask.png``.

    Returns
    -------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
    """
    cell_path, nuc_path = mask_paths(mask_dir, image_id)
    cell = read_mask(cell_path)
    nuclei = read_mask(nuc_path)
    if cell.shape != nuclei.shape:
        raise InputError(
            f"{nuc_path}: nucleus mask is {nuclei.shape} but the cell mask is {cell.shape}; they must match"
        )
    return cell, nuclei


def write_mask_pair(mask_dir: str | os.PathLike, image_id: str, cell_mask: np.ndarray, nuclei_mask: np.ndarray) -> None:
    """Write the cell and nucleus masks of one image as 16-bit PNGs (each atomically;
    the cell mask last, so its presence marks a finished image)."""
    cell_path, nuc_path = mask_paths(mask_dir, image_id)
    write_mask_png(nuc_path, nuclei_mask)
    write_mask_png(cell_path, cell_mask)


def read_precomputed_masks(mask_dir: str | os.PathLike, image_id: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """Read the precomputed mask pair of one image as stored, from ``{ID}_cellmask.png`` +
    ``{ID}_nucleimask.png`` or ``{ID}.npz``.

    Returns
    -------
    cell, nuclei : ndarray, shape (H, W), int64
        As stored (ids not renumbered).
    source : Path
        The file read, for messages.

    Raises
    ------
    InputError
        No masks for the image, only one of the pair, a bad archive or array.
    """
    mask_dir = Path(mask_dir)
    cell_path, nuc_path = mask_paths(mask_dir, image_id)
    npz_path = mask_dir / f"{image_id}.npz"
    if cell_path.is_file() or nuc_path.is_file():
        for present, absent in ((cell_path, nuc_path), (nuc_path, cell_path)):
            if present.is_file() and not absent.is_file():
                raise InputError(
                    f"{absent}: missing; found {present.name} but precomputed masks need both the cell and the nucleus mask "
                    "(nothing is derived from one alone)"
                )
        cell, nuclei = read_mask_pair(mask_dir, image_id)
        return cell, nuclei, cell_path
    if not npz_path.is_file():
        raise InputError(
            f"{mask_dir}: no precomputed masks for image {image_id!r}; "
            f"expected {cell_path.name} + {nuc_path.name} or {npz_path.name}"
        )
    try:
        with np.load(npz_path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:  # zipfile/numpy raise many types for a bad archive
        raise InputError(f"{npz_path}: cannot read as .npz ({type(exc).__name__}: {exc})") from exc
    cell_key = next((k for k in NPZ_CELL_KEYS if k in arrays), None)
    nuc_key = next((k for k in NPZ_NUCLEI_KEYS if k in arrays), None)
    if cell_key is None or nuc_key is None:
        raise InputError(
            f"{npz_path}: has arrays {sorted(arrays) or 'none'}; expected a cell mask under {' or '.join(map(repr, NPZ_CELL_KEYS))} "
            f"and a nucleus mask under {' or '.join(map(repr, NPZ_NUCLEI_KEYS))} (nothing is derived from a cell mask alone)"
        )
    cell, nuclei = arrays[cell_key], arrays[nuc_key]
    for key, array in ((cell_key, cell), (nuc_key, nuclei)):
        if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise InputError(
                f"{npz_path}: array {key!r} has shape {array.shape} dtype {array.dtype}; "
                "expected a 2-D integer label image"
            )
    if cell.shape != nuclei.shape:
        raise InputError(f"{npz_path}: {cell_key!r} is {cell.shape} but {nuc_key!r} is {nuclei.shape}; they must match")
    return cell.astype(np.int64), nuclei.astype(np.int64), npz_path


def has_cell_mask(mask_dir: str | os.PathLike, image_id: str) -> bool:
    """Whether ``mask_dir`` holds a cell mask of the image (``{ID}_cellmask.png`` or ``{ID}.npz``)."""
    return mask_paths(mask_dir, image_id)[0].is_file() or (Path(mask_dir) / f"{image_id}.npz").is_file()


def read_cell_mask(mask_dir: str | os.PathLike, image_id: str) -> tuple[np.ndarray, Path]:
    """Read the cell mask of one image, ``{ID}_cellmask.png`` or the cell array of ``{ID}.npz``.

    Returns
    -------
    cell_mask : ndarray, shape (H, W), int32
        As stored (ids not renumbered).
    source : Path
        The file read.

    Raises
    ------
    InputError
        No such mask, a bad archive or array.
    """
    mask_dir = Path(mask_dir)
    png = mask_paths(mask_dir, image_id)[0]
    if png.is_file():
        return read_mask(png), png
    npz = mask_dir / f"{image_id}.npz"
    if not npz.is_file():
        raise InputError(f"{mask_dir}: no cell mask of image {image_id!r}; expected {png.name} or {npz.name}")
    try:
        with np.load(npz, allow_pickle=False) as archive:
            key = next((k for k in NPZ_CELL_KEYS if k in archive.files), None)
            if key is None:
                raise InputError(
                    f"{npz}: has arrays {sorted(archive.files) or 'none'}; expected a cell mask under {' or '.join(map(repr, NPZ_CELL_KEYS))}"
                )
            array = archive[key]
    except InputError:
        raise
    except Exception as exc:  # zipfile/numpy raise many types for a bad archive
        raise InputError(f"{npz}: cannot read as .npz ({type(exc).__name__}: {exc})") from exc
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise InputError(
            f"{npz}: array {key!r} has shape {array.shape} dtype {array.dtype}; expected a 2-D integer label image"
        )
    return array.astype(np.int32), npz
