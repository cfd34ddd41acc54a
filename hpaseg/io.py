"""Reading and writing HPA data: images, label CSVs, masks, JSON. The only module
(with the CLIs) that touches the disk.

Layout read (the Kaggle one)::

    DATA/train.csv                      ID,Label   (Label: '|'-separated ints 0-18)
    DATA/sample_submission.csv          ID,ImageWidth,ImageHeight,PredictionString
    DATA/<split>/{ID}_{red,green,blue,yellow}.png   (.tif, .tiff, .jpg, .jpeg, .tif.gz)

Images come back as ``(H, W, 4)`` uint8 in RGBY order (see :class:`hpaseg.classes.Channel`).

Bit depth
---------
8-bit channels are returned as they are. 16-bit channels are brought to 8 bit by a
fixed linear map of the full 16-bit range, ``round(x / 257)`` (65535 -> 255), the
same for every image, so intensities stay comparable across images and with the
8-bit files of the Kaggle release; no per-image stretching is done. Float images
(some TIFF crops) are taken to be on the 0-255 scale and clipped to it.
Colour files of one channel (the public HPA ``.jpg`` files are tinted RGB) are
reduced to one plane by the maximum over the colour axis.

Masks
-----
Label images are integer arrays, 0 = background, cells 1..N; ``{ID}_cellmask.png`` and
``{ID}_nucleimask.png`` are 16-bit PNGs at the image's original resolution, the
nucleus of cell k labelled k (the format HPA-Cell-Segmentation writes).

All writers are atomic: they write a temporary file in the target folder and rename
it, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import io as _io
import json
import os
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

import numpy as np

from .classes import CHANNEL_NAMES, NUM_CLASSES
from .errors import InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MASK_SUFFIXES",
    "atomic_write",
    "find_channel_file",
    "read_channel",
    "to_uint8",
    "read_rgby",
    "read_image_size",
    "iter_rgby",
    "list_image_ids",
    "write_rgby",
    "write_rgb_png",
    "parse_labels",
    "format_labels",
    "read_labels_csv",
    "write_labels_csv",
    "read_csv_rows",
    "long_csv_fields",
    "write_csv_rows",
    "read_mask",
    "write_mask_png",
    "mask_paths",
    "read_mask_pair",
    "write_mask_pair",
    "read_json",
    "write_json",
    "write_npy",
]

#: Channel file extensions searched, in this order.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".tif.gz")
#: Suffixes of the cell and nucleus mask files written next to each other.
MASK_SUFFIXES: tuple[str, str] = ("_cellmask.png", "_nucleimask.png")
_UINT16_TO_UINT8 = 257.0  # 65535 / 255


# --------------------------------------------------------------------------- atomic writes
_DEFAULT_FILE_MODE = 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    Parent folders are created. ``mode`` is ``"w"`` (text, UTF-8, ``newline=""``)
    or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if "b" in mode:
            fh = os.fdopen(fd, mode, **open_kwargs)
        else:
            open_kwargs.setdefault("encoding", "utf-8")
            open_kwargs.setdefault("newline", "")
            fh = os.fdopen(fd, mode, **open_kwargs)
        with fh:
            yield fh
        os.chmod(tmp, _DEFAULT_FILE_MODE & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- images
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


def _decode_image(path: Path) -> np.ndarray:
    name = path.name.lower()
    try:
        if name.endswith(".tif.gz"):
            import tifffile

            with gzip.open(path, "rb") as fh:
                return tifffile.imread(_io.BytesIO(fh.read()))
        if name.endswith((".tif", ".tiff")):
            import tifffile

            return tifffile.imread(path)
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            return np.asarray(img)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, zlib.error) as exc:  # PIL/tifffile/gzip failures
        raise InputError(f"{path}: cannot decode image ({type(exc).__name__}: {exc}); the file is corrupt, truncated or not an image") from exc


def read_channel(path: str | os.PathLike) -> np.ndarray:
    """Read one channel file as ``(H, W)`` uint8 (see the module docstring for the bit-depth rule)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return to_uint8(_decode_image(path), source=str(path))


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
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            return int(shape[0]), int(shape[1])
        if name.endswith(".tif.gz"):
            plane = _decode_image(path)
            return int(plane.shape[0]), int(plane.shape[1])
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
        return int(height), int(width)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot read image header ({type(exc).__name__}: {exc}); the file is corrupt or not an image") from exc


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
        _write_png(Path(data_dir) / f"{image_id}_{channel}.png", np.ascontiguousarray(image[..., k]))


def write_rgb_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 picture (a composite, an overlay) as PNG (atomically)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{path}: expected an (H, W, 3) uint8 picture, got shape {rgb.shape} dtype {rgb.dtype}")
    _write_png(Path(path), np.ascontiguousarray(rgb))


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    if array.dtype == np.uint16:
        img = Image.fromarray(array)  # mode I;16
    elif array.dtype == np.uint8:
        img = Image.fromarray(array)
    else:
        raise ValueError(f"{path}: cannot write dtype {array.dtype} as PNG; expected uint8 or uint16")
    with atomic_write(path, "wb") as fh:
        img.save(fh, format="PNG")


# --------------------------------------------------------------------------- label CSVs
def parse_labels(text: str, *, where: str = "Label") -> tuple[int, ...]:
    """Parse a ``|``-separated label string into sorted unique class ids.

    >>> parse_labels("16|0|16")
    (0, 16)
    >>> parse_labels("19")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: Label: label '19' is outside 0-18; expected '|'-separated class ids 0-18
    """
    parts = [p.strip() for p in str(text).split("|")]
    if not parts or any(p == "" for p in parts):
        raise InputError(f"{where}: empty label in {text!r}; expected '|'-separated class ids 0-{NUM_CLASSES - 1}")
    labels = set()
    for part in parts:
        if not part.isdigit():
            raise InputError(f"{where}: label {part!r} is not an integer; expected '|'-separated class ids 0-{NUM_CLASSES - 1}")
        value = int(part)
        if not 0 <= value < NUM_CLASSES:
            raise InputError(f"{where}: label {part!r} is outside 0-{NUM_CLASSES - 1}; expected '|'-separated class ids 0-{NUM_CLASSES - 1}")
        labels.add(value)
    return tuple(sorted(labels))


def format_labels(labels: Iterable[int]) -> str:
    """Inverse of :func:`parse_labels`.

    >>> format_labels([16, 0])
    '0|16'
    """
    return "|".join(str(v) for v in sorted(set(int(x) for x in labels)))


#: Longest CSV field read: a PredictionString of ~100 cells x 19 labels is ~1 MB, far
#: beyond the ``csv`` module's default limit of 131072 characters.
_MAX_CSV_FIELD_CHARS = 2**31 - 1


@contextlib.contextmanager
def long_csv_fields() -> Iterator[None]:
    """Lift the ``csv`` module's (process-wide) field size limit while reading."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, _MAX_CSV_FIELD_CHARS))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_csv_rows(path: str | os.PathLike, required: Sequence[str]) -> list[dict[str, str]]:
    """Read a CSV with a header, checking that ``required`` columns are present.

    Returns the rows as dicts; each dict also carries ``"_row"``, the 1-based line
    number of the row in the file (header = line 1), for error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with long_csv_fields(), open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise InputError(f"{path}: empty file; expected a header line with columns {','.join(required)}")
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(f"{path}: header is {','.join(header)}; missing column(s) {','.join(missing)}")
            rows = []
            for row in reader:
                line = reader.line_num
                if None in row or any(row.get(c) is None for c in required):
                    raise InputError(f"{path}, line {line}: expected {len(header)} fields ({','.join(header)}), got a different number")
                row["_row"] = str(line)
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text CSV ({exc})") from exc
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from exc
    return rows


def read_labels_csv(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Read an image-level label CSV (``ID,Label``), as Kaggle's ``train.csv``.

    Returns
    -------
    dict
        ``{ID: (class ids, sorted)}`` in file order.

    Raises
    ------
    InputError
        Empty file, missing columns, a row with a bad label or a duplicate ID;
        the message names the file and line.
    """
    rows = read_csv_rows(path, ("ID", "Label"))
    if not rows:
        raise InputError(f"{path}: no rows after the header; expected one 'ID,Label' row per image")
    labels: dict[str, tuple[int, ...]] = {}
    for row in rows:
        where = f"{path}, line {row['_row']}"
        image_id = row["ID"].strip()
        if not image_id:
            raise InputError(f"{where}: empty ID")
        if image_id in labels:
            raise InputError(f"{where}: duplicate ID {image_id!r}; each image must appear once")
        labels[image_id] = parse_labels(row["Label"], where=where)
    return labels


def write_labels_csv(path: str | os.PathLike, labels: dict[str, Iterable[int]]) -> None:
    """Write ``{ID: labels}`` as an ``ID,Label`` CSV (atomically)."""
    write_csv_rows(path, ["ID", "Label"], ([k, format_labels(v)] for k, v in labels.items()))


def write_csv_rows(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV with ``header`` and ``rows`` (atomically)."""
    with atomic_write(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# --------------------------------------------------------------------------- masks
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
        array = _decode_image(path)
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
    _write_png(Path(path), mask.astype(np.uint16))


def mask_paths(mask_dir: str | os.PathLike, image_id: str) -> tuple[Path, Path]:
    """Paths of the cell and nucleus mask PNGs of one image."""
    mask_dir = Path(mask_dir)
    return mask_dir / f"{image_id}{MASK_SUFFIXES[0]}", mask_dir / f"{image_id}{MASK_SUFFIXES[1]}"


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
        raise InputError(f"{nuc_path}: nucleus mask is {nuclei.shape} but the cell mask is {cell.shape}; they must match")
    return cell, nuclei


def write_mask_pair(mask_dir: str | os.PathLike, image_id: str, cell_mask: np.ndarray, nuclei_mask: np.ndarray) -> None:
    """Write the cell and nucleus masks of one image as 16-bit PNGs (each atomically;
    the cell mask last, so its presence marks a finished image)."""
    cell_path, nuc_path = mask_paths(mask_dir, image_id)
    write_mask_png(nuc_path, nuclei_mask)
    write_mask_png(cell_path, cell_mask)


# --------------------------------------------------------------------------- JSON
def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with a one-line error on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    """Write ``obj`` as JSON (atomically)."""
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=indent)
        fh.write("\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as ``.npy`` (atomically)."""
    with atomic_write(path, "wb") as fh:
        np.save(fh, array)
