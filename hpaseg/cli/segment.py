"""``hpaseg segment``: cell and nucleus masks of a folder of images
(:func:`hpaseg.segmentation.segment_images` with a segmenter of :func:`hpaseg.segmentation.make_segmenter`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import io
from ..errors import InputError
from ..evaluation.segmentation import compare_to_reference
from ..io import check_output_path
from ..segmentation import CELL_MAPS, METHODS, WatershedParams, make_segmenter, segment_ids, segment_images
from ..segmentation.hpacellseg import HPA_WEIGHTS_HINT
from ..segmentation.precomputed import NUCLEI_SOURCES
from .base import ArgumentParser, add_quiet, add_shard, cli_entry, configure_output, parse_shard

__all__ = ["REFERENCE_SCORES", "build_parser", "main"]

#: File in the masks folder with the agreement per image and pooled (``--reference``).
REFERENCE_SCORES = "reference_scores.csv"


def build_parser() -> ArgumentParser:
    """The ``hpaseg segment`` argument parser."""
    parser = ArgumentParser(
        prog="hpaseg segment",
        description="Segment cells and nuclei: write {ID}_cellmask.png and {ID}_nucleimask.png (16-bit, original size, cell k holds nucleus k).",
    )
    files = parser.add_argument_group("input and output")
    files.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="IMAGE_DIR",
        help="folder of {ID}_{red,green,blue,yellow}.png images",
    )
    files.add_argument("--out", required=True, type=Path, metavar="MASKS", help="folder for the mask PNGs")
    files.add_argument("--ids", nargs="+", metavar="ID", help="segment only these images (default: all)")
    method = parser.add_argument_group("method")
    method.add_argument(
        "--method",
        choices=METHODS,
        default="watershed",
        help="watershed (default; its few kB of learned cell maps ship with hpaseg), hpacellseg "
        "(HPA-Cell-Segmentation models) or precomputed (read masks)",
    )
    method.add_argument(
        "--cell-maps",
        choices=CELL_MAPS,
        default=WatershedParams.cell_maps,
        help="watershed: grow cells over the learned cell maps (default) or the classical stain maps",
    )
    method.add_argument(
        "--cell-map-model",
        type=Path,
        metavar="NPZ",
        help="watershed: a cell-map model written by `python -m hpaseg.bench segreal --save-model` "
        "(default: the one shipped with hpaseg)",
    )
    method.add_argument(
        "--working-size-px",
        type=int,
        default=WatershedParams.working_size_px,
        help="watershed: longest side of the working image (default %(default)s)",
    )
    method.add_argument(
        "--precomputed",
        dest="mask_dir",
        type=Path,
        metavar="DIR",
        help="precomputed: folder of {ID}_cellmask.png + {ID}_nucleimask.png or {ID}.npz",
    )
    method.add_argument(
        "--nuclei-from",
        choices=NUCLEI_SOURCES,
        default=None,
        help="precomputed: nuclei from the nucleus masks (mask, default) or found in the blue channel within each cell (blue: for cell masks alone)",
    )
    hpa = parser.add_argument_group("hpacellseg method")
    hpa.add_argument(
        "--nuclei-model",
        type=Path,
        metavar="PATH",
        help="nucleus model file (dpn_unet_nuclei_v1.pth); trusted files only (whole pickled model)",
    )
    hpa.add_argument(
        "--cell-model", type=Path, metavar="PATH", help="3-channel cell model file (dpn_unet_cell_3ch_v1.pth)"
    )
    hpa.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    hpa.add_argument(
        "--scale-factor", type=float, default=0.25, help="scale images by this before the networks (default 0.25)"
    )
    hpa.add_argument(
        "--padding", action="store_true", help="pad scaled images to a multiple of 32 px (for e.g. 1728-px images)"
    )
    run = parser.add_argument_group("execution")
    run.add_argument("--workers", type=int, default=1, help="segmenting processes (default 1: in this process)")
    run.add_argument("--read-threads", type=int, default=4, help="image-decoding threads (default 4)")
    add_shard(run)
    run.add_argument("--overwrite", action="store_true", help="redo images whose masks exist (default: skip them)")
    check = parser.add_argument_group("agreement with reference masks")
    check.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="reference cell masks ({ID}_cellmask.png or {ID}.npz, e.g. HPA-Cell-Segmentation's): print F1 at IoU 0.5 and 0.6, mean best IoU, splits and merges per image and pooled, and write MASKS/reference_scores.csv",
    )
    add_quiet(parser)
    return parser


def _options(args: Any) -> dict[str, Any]:
    """Options of the chosen method; options of another method are an error."""
    given = {  # option: (its value, the method it belongs to)
        "--precomputed": (args.mask_dir, "precomputed"),
        "--nuclei-model": (args.nuclei_model, "hpacellseg"),
        "--cell-model": (args.cell_model, "hpacellseg"),
        "--cell-map-model": (args.cell_map_model, "watershed"),
    }
    for option, (value, owner) in given.items():
        if value is not None and owner != args.method:
            raise InputError(f"{option} is only used with --method {owner} (got --method {args.method})")
    if args.nuclei_from is not None and args.method != "precomputed":
        raise InputError(f"--nuclei-from is only used with --method precomputed (got --method {args.method})")
    if args.method == "watershed":
        return {
            "working_size_px": args.working_size_px,
            "cell_maps": args.cell_maps,
            "cell_map_model": str(args.cell_map_model or ""),
        }
    if args.method == "precomputed":
        if args.mask_dir is None:
            raise InputError("--method precomputed needs --precomputed DIR (the folder of the masks)")
        return {"mask_dir": args.mask_dir, "nuclei_from": args.nuclei_from or "mask"}
    missing = [o for o in ("--nuclei-model", "--cell-model") if given[o] is None]
    if missing:
        raise InputError(f"--method hpacellseg needs {' and '.join(missing)} PATH; {HPA_WEIGHTS_HINT}")
    return {
        "nuclei_model": args.nuclei_model,
        "cell_model": args.cell_model,
        "device": args.device,
        "scale_factor": args.scale_factor,
        "padding": args.padding,
    }


@cli_entry("segment", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """``hpaseg segment``: see :func:`build_parser`; returns 0, or 2 on bad input."""
    args = build_parser().parse_args(argv)
    configure_output()
    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.read_threads < 1:
        raise InputError(f"--read-threads: expected at least 1, got {args.read_threads}")
    segmenter = make_segmenter(args.method, **_options(args))
    check_output_path(args.out, option="--out", folder=True)
    if args.reference is not None and not args.reference.is_dir():
        raise InputError(f"--reference {args.reference}: no such folder")
    summary = segment_images(
        args.data,
        args.out,
        args.ids,
        segmenter,
        workers=args.workers,
        shard=shard,
        overwrite=args.overwrite,
        read_threads=args.read_threads,
        progress=not args.quiet,
    )
    hint = " (--overwrite redoes them)" if summary.n_skipped else ""
    print(summary.line() + hint)
    if args.reference is not None:
        _score_against(args)
    return 0


def _score_against(args) -> None:
    """Print and write the agreement of the masks of this run with the reference masks."""
    ids = segment_ids(args.data, args.ids, parse_shard(args.shard) if args.shard else None)
    table = compare_to_reference(
        args.out, args.reference, [i for i in ids if io.has_cell_mask(args.reference, i)] or None
    )
    io.write_table(Path(args.out) / REFERENCE_SCORES, table)
    print(table.to_string(index=False))
    pooled = table.iloc[-1]
    print(
        f"pooled: {pooled['n_true']} reference cells, {pooled['n_pred']} cells: F1 {pooled['f1_iou05']:.3f} at IoU 0.5, {pooled['f1_iou06']:.3f} at IoU 0.6, mean best IoU {pooled['mean_best_iou']:.3f} -> {Path(args.out) / REFERENCE_SCORES}"
    )


if __name__ == "__main__":
    sys.exit(main())
