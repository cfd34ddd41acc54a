"""HPA images in the Kaggle layout: one file per channel, read as ``(H, W, 4)`` uint8 RGBY.

Layout read::

    DATA/<split>/{ID}_{red,green,blue,yellow}.png   (.tif, .tiff, .jpg, .jpeg, .tif.gz)

Bit depth
---------
8-bit channels are returned as they are. 16-bit channels are brought to 8 bit by a
fixed linear map of the full 16-bit range, ``round(x / 257)`` (65535 -> 255), the
same for every image, so intensities stay comparable across images and with the
8-bit files of the Kaggle release; no per-image stretching is done. Float images
(some TIFF crops) are taken to be on the 0-255 scale and clipped to it.
Colour files of one channel (the public HPA ``.jpg`` files are tinted RGB) are
reduced to one plane by the maximum over the colour axis.

Decoding
--------
PNG and JPEG files are decoded with OpenCV (``cv2.imdecode``, ``IMREAD_UNCHANGED``),
TIFF files with tifffile. Measured on a 2048x2048 8-bit HPA channel
(``python -m hpaseg.bench io``): OpenCV decodes PNG faster than Pillow and releases the
GIL, so :func:`iter_rgby`'s threads overlap. Pillow remains the writer (it keeps
16-bit PNGs as they are).
"""

from __future__ import annotations

import gzip
import io as _io
import os
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from PIL import Image

from ..classes import CHANNEL_NAMES
from ..errors import InputError
from .files import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "find_channel_file",
    "to_uint8",
    "decode_image",
    "opencv",
    "read_channel",
    "read_rgby",
    "read_image_size",
    "iter_rgby",
    "list_image_ids",
    "write_rgby",
    "write_rgb_png",
    "write_png",
]

#: Channel file extensions searched, in this order.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".tif.gz")


_UINT16_TO_UINT8 = 257.0  # 65535 / 255


def find_channel_file(data_dir: str | os.PathLike, image_id: str, channel: str) -> Path:
    """Return the file of one channel of one image.

    Parameters
    ----------
    data_dir : path
        Folder holding ``{ID}_{channel}.{ext}`` files.
    image_id : str
        Image ID (the ``ID`` column of ``train.csv``).
    channel : str
        One of ``red``, ``green``, ``blue``, ``yellow``.

    Raises
    ------
    InputError
        When no file with a known extension exists.
    """
    data_dir = Path(data_dir)
    for ext in IMAGE_EXTENSIONS:
        candidate = data_dir / f"{image_id}_{channel}{ext}"
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{data_dir / (image_id + '_' + channel)}.png: missing {channel} channel of image {image_id!r} "
        f"(looked for extensions {', '.join(IMAGE_EXTENSIONS)}); every image needs "
        f"{'/'.join(CHANNEL_NAMES)} files"
    )


def to_uint8(array: np.ndarray, *, source: str = "image") -> np.ndarray:
    """Bring one channel to uint8 by the documented fixed rule (see module docstring).

    Parameters
    ----------
    array : ndarray, shape (H, W) or (H, W, C)
        uint8, uint16 or float pixel values; a colour axis is reduced by its maximum.
    source : str
        Named in the error message.

    Returns
    -------
    ndarray, shape (H, W), uint8

    Examples
    --------
    >>> to_uint8(np.array([[0, 257, 65535]], dtype=np.uint16))
    array([[  0,   1, 255]], dtype=uint8)
    >>> to_uint8(np.array([[-3.0, 12.4, 300.0]]))
    array([[  0,  12, 255]], dtype=uint8)
    """
    if array.ndim == 3:
        array = array.max(axis=2)
    if array.ndim != 2:
        raise InputError(f"{source}: expected a 2-D channel image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype.itemsize > 2 and array.size and int(array.max()) > 65535:
            raise InputError(f"{source}: integer pixel values above 65535 (dtype {array.dtype}); expected 8- or 16-bit")
        return np.rint(array.astype(np.float32) / _UINT16_TO_UINT8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return np.rint(np.clip(array, 0, 255)).astype(np.uint8)
    raise InputError(f"{source}: unsupported pixel type {array.dtype}; expected uint8, uint16 or float")


def opencv() -> Any:
    """The ``cv2`` module, with OpenCV's own log lines silenced (hpaseg reports failures itself)."""

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def decode_image(path: Path) -> np.ndarray:
    """Decode one image file as stored: ``(H, W)`` or ``(H, W, C)``, uint8, uint16, float or bool.

    Raises
    ------
    InputError
        The file is corrupt, truncated or not an image.
    """
    name = path.name.lower()
    try:
        if name.endswith(".tif.gz"):
            with gzip.open(path, "rb") as fh:
                return tifffile.imread(_io.BytesIO(fh.read()))
        if name.endswith((".tif", ".tiff")):
            return tifffile.imread(path)
        cv2 = opencv()
        array = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ValueError("OpenCV could not decode it")
        return array
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, zlib.error) as exc:  # OpenCV/tifffile/gzip failures
        raise InputError(
            f"{path}: cannot decode image ({type(exc).__name__}: {exc}); the file is corrupt, truncated or not an image"
        ) from exc


def read_channel(path: str | os.PathLike) -> np.ndarray:
    """Read one channel file as ``(H, W)`` uint8 (see the module docstring for the bit-depth rule)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return to_uint8(decode_image(path), source=str(path))


def _check_same_size(shapes: list[tuple[Path, tuple[int, int]]]) -> tuple[int, int]:
    """The common ``(H, W)`` of an image's channel files, or an InputError naming the odd one."""
    first, shape = shapes[0]
    for path, other in shapes[1:]:
        if other != shape:
            raise InputError(
                f"{path}: channel is {other[0]}x{other[1]} px but {first.name} is "
                f"{shape[0]}x{shape[1]}; all four channels of an image must have the same size"
            )
    return shape


def read_rgby(data_dir: str | os.PathLike, image_id: str) -> np.ndarray:
    """Read the four channels of one image.

    Returns
    -------
    ndarray, shape (H, W, 4), uint8
        Channels in RGBY order.

    Raises
    ------
    InputError
        Missing, corrupt or differently sized channel files.
    """
    paths = [find_channel_file(data_dir, image_id, channel) for channel in CHANNEL_NAMES]
    planes = [read_channel(path) for path in paths]
    _check_same_size([(path, plane.shape) for path, plane in zip(paths, planes)])
    return np.stack(planes, axis=-1)


def _header_size(path: Path) -> tuple[int, int]:
    name = path.name.lower()
    try:
        if name.endswith((".tif", ".tiff")):
            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            return int(shape[0]), int(shape[1])
        if name.endswith(".tif.gz"):
            plane = decode_image(path)
            return int(plane.shape[0]), int(plane.shape[1])

        with Image.open(path) as img:
            width, height = img.size
        return int(height), int(width)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise InputError(
            f"{path}: cannot read image header ({type(exc).__name__}: {exc}); the file is corrupt or not an image"
        ) from exc


def read_image_size(data_dir: str | os.PathLike, image_id: str, *, all_channels: bool = False) -> tuple[int, int]:
    """``(height, width)`` of an image from file headers, without decoding pixels
    (``.tif.gz`` files are decompressed).

    Reads the green channel's header; with ``all_channels`` all four, checking they agree.
    """
    channels = CHANNEL_NAMES if all_channels else ("green",)
    shapes = [(path, _header_size(path)) for path in (find_channel_file(data_dir, image_id, c) for c in channels)]
    return _check_same_size(shapes)


def iter_rgby(
    data_dir: str | os.PathLike, image_ids: Iterable[str], *, workers: int = 4, prefetch: int = 8
) -> Iterator[tuple[str, np.ndarray]]:
    """Read images lazily, ``workers`` at a time in threads, yielding ``(ID, image)`` in order.

    At most ``prefetch`` decoded images are held ahead of the consumer, so memory stays
    bounded on the 21,806-image training set. PNG/TIFF decoding releases the GIL, so
    threads give real parallelism here.
    """
    ids = iter(image_ids)
    if workers <= 1:
        for image_id in ids:
            yield image_id, read_rgby(data_dir, image_id)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[tuple[str, Any]] = []
        for image_id in ids:
            pending.append((image_id, pool.submit(read_rgby, data_dir, image_id)))
            if len(pending) >= max(prefetch, workers):
                head_id, fut = pending.pop(0)
                yield head_id, fut.result()
        for head_id, fut in pending:
            yield head_id, fut.result()


def list_image_ids(data_dir: str | os.PathLike) -> list[str]:
    """IDs of all images in ``data_dir`` with a green channel file, sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such folder; expected a folder of {{ID}}_{{red,green,blue,yellow}}.png files")
    ids = set()
    for ext in IMAGE_EXTENSIONS:
        suffix = f"_green{ext}"
        for path in data_dir.glob(f"*{suffix}"):
            ids.add(path.name[: -len(suffix)])
    return sorted(ids)


def write_rgby(data_dir: str | os.PathLike, image_id: str, image: np.ndarray) -> None:
    """Write an ``(H, W, 4)`` uint8 or uint16 image as four ``{ID}_{channel}.png`` files (atomically)."""
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) RGBY image, got shape {image.shape}")
    for k, channel in enumerate(CHANNEL_NAMES):
        write_png(Path(data_dir) / f"{image_id}_{channel}.png", np.ascontiguousarray(image[..., k]))


def write_rgb_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 picture (a composite, an overlay) as PNG (atomically)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{path}: expected an (H, W, 3) uint8 picture, got shape {rgb.shape} dtype {rgb.dtype}")
    write_png(Path(path), np.ascontiguousarray(rgb))


def write_png(path: Path, array: np.ndarray) -> None:

    if array.dtype == np.uint16:
        img = Image.fromarray(array)  # mode I;16
    elif array.dtype == np.uint8:
        img = Image.fromarray(array)
    else:
        raise ValueError(f"{path}: cannot write dtype {array.dtype} as PNG; expected uint8 or uint16")
    with atomic_write(path, "wb") as fh:
        img.save(fh, format="PNG")
