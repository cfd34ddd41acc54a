"""``hpaseg submit --masks MASKS --cells CELLS.csv --out SUB.csv [--data DIR]``: a Kaggle
submission from cell masks and a per-cell label table (:func:`hpaseg.submission.build_submission`).

* ``MASKS`` holds ``{ID}_cellmask.png`` label images (from ``hpaseg segment``) at the
  images' original resolution; each is read once and all its cells are encoded in one
  pass.
* ``CELLS.csv`` has columns ``ID,cell,label,confidence``, one row per (cell, label):
  ``cell`` is the cell's value in the mask, ``label`` a class id 0-18, ``confidence``
  a finite number in [0, 1]. Extra columns are ignored.
* The submission has one row per image, sorted by ID, ImageWidth/ImageHeight taken
  from the mask; images with a mask but no rows in CELLS.csv get an empty
  PredictionString.
* With ``--data DIR`` the image list is that of DIR instead: every image there needs
  a mask of its size, masks of other images are ignored, and CELLS.csv rows for
  images not in DIR are an error.

Bad input (an unknown cell, a label outside 0-18, a bad confidence, a duplicate
(ID, cell, label), a missing mask) stops the run with one line naming the CSV line
or file, exit status 2, and nothing written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import io
from ..errors import InputError
from ..submission import build_submission, read_cell_labels, write_submission
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def _read_masks(mask_dir: Path, image_ids: Sequence[str], data_dir: str | None) -> Iterator[tuple[str, np.ndarray]]:
    for image_id in image_ids:
        path = io.mask_paths(mask_dir, image_id)[0]
        mask = io.read_mask(path)
        if data_dir is not None:
            height, width = io.read_image_size(data_dir, image_id)
            if mask.shape != (height, width):
                raise InputError(
                    f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} px but the image in {data_dir} is {width}x{height}; "
                    f"masks must be at the image's original resolution"
                )
        yield image_id, mask


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg submit``."""
    parser = ArgumentParser(
        prog="hpaseg submit", description="Cell masks + per-cell label table -> Kaggle submission CSV."
    )
    group = parser.add_argument_group("input and output")
    group.add_argument("--masks", required=True, metavar="MASKS", help="folder of {ID}_cellmask.png label images")
    group.add_argument(
        "--cells",
        required=True,
        metavar="CELLS.csv",
        help="per-cell labels: ID,cell,label,confidence, one row per (cell, label)",
    )
    group.add_argument("--out", required=True, metavar="SUB.csv", help="submission CSV to write")
    group.add_argument(
        "--data", metavar="DIR", help="test image folder: the submission lists exactly its images, sizes checked"
    )
    add_quiet(parser)
    return parser


def _image_ids(args, mask_dir: Path, mask_ids: list[str]) -> tuple[list[str], str]:
    """The images of the submission and where their list came from."""
    if args.data is None:
        if not mask_ids:
            raise InputError(f"--masks {mask_dir}: no {{ID}}{io.MASK_SUFFIXES[0]} files in the folder")
        return mask_ids, f"masks in {mask_dir}"
    image_ids = io.list_image_ids(args.data)
    if not image_ids:
        raise InputError(f"--data {args.data}: no images ({{ID}}_green.png files) in the folder")
    have = set(mask_ids)
    for image_id in image_ids:
        if image_id not in have:
            raise InputError(
                f"{io.mask_paths(mask_dir, image_id)[0]}: no such mask file; every image in {args.data} needs one"
            )
    return image_ids, f"images in {args.data}"


@cli_entry("submit", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg submit``."""
    args = build_parser().parse_args(argv)
    configure_output()
    io.check_output_path(args.out, option="--out", folder=False)
    cells = read_cell_labels(args.cells)
    mask_dir = Path(args.masks)
    mask_ids = io.mask_image_ids(mask_dir)
    image_ids, source = _image_ids(args, mask_dir, mask_ids)
    known, with_masks = set(image_ids), set(mask_ids)
    for c in cells:
        if c.image_id not in known:
            if args.data is not None and c.image_id not in with_masks:
                missing = f"not an image in {args.data} and has no mask file {io.mask_paths(mask_dir, c.image_id)[0]}"
            elif args.data is not None:
                missing = f"not an image in {args.data}"
            else:
                missing = f"has no mask file {io.mask_paths(mask_dir, c.image_id)[0]}"
            raise InputError(
                f"{c.where}: image {c.image_id!r} is {missing}; expected one of the {len(image_ids)} {source}"
            )
    masks = tqdm(
        _read_masks(mask_dir, image_ids, args.data),
        total=len(image_ids),
        desc="encode",
        unit="image",
        disable=True if args.quiet else None,
    )
    rows = build_submission(masks, cells)
    write_submission(args.out, rows)
    n_pred = sum(len(r.predictions) for r in rows)
    n_empty = sum(not r.predictions for r in rows)
    print(f"wrote {args.out}: {len(rows)} images ({n_empty} without predictions), {n_pred} predictions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
