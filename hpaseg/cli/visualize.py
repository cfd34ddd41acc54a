"""``hpaseg visualize``: for each image asked for, ``OUT/{ID}_overlay.png``: predicted cells in
class colours with the top class and its confidence | the segmentation masks with their
propagated (weak) labels | the per-cell truth, as far as those were given
(:func:`hpaseg.viz.read_image_panels`, :func:`hpaseg.viz.plot_cell_panels`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .. import io
from ..errors import InputError
from ..viz import DEFAULT_DPI, figure_to_rgb, plot_cell_panels, read_image_panels
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]

#: Lowest resolution accepted for the PNGs (below it the cell labels are unreadable).
_MIN_DPI = 20


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg visualize``."""
    parser = ArgumentParser(
        prog="hpaseg visualize",
        description="Draw predicted cells in class colours next to the weak labels and the truth, as {ID}_overlay.png.",
    )
    g = parser.add_argument_group("images")
    g.add_argument("--data", required=True, help="folder of {ID}_{red,green,blue,yellow}.png images")
    g.add_argument("--ids", required=True, nargs="+", metavar="ID", help="images to draw")
    g = parser.add_argument_group("prediction (one of)")
    p = g.add_mutually_exclusive_group(required=True)
    p.add_argument(
        "--masks", metavar="DIR", help="predicted {ID}_cellmask.png and cells.csv (hpaseg predict --save-masks DIR)"
    )
    p.add_argument("--submission", metavar="SUB.csv", help="a submission CSV (each distinct mask is a cell)")
    g.add_argument(
        "--cells",
        dest="cells_csv",
        metavar="CSV",
        help="per-cell labels ID,cell,label,confidence of --masks (default DIR/cells.csv)",
    )
    g = parser.add_argument_group("references (optional)")
    g.add_argument(
        "--weak-labels",
        metavar="CSV",
        help="DATASET/cells.csv of hpaseg propagate: the segmentation's cells with their image's labels",
    )
    g.add_argument(
        "--weak-masks",
        metavar="DIR",
        help="cell masks the weak labels refer to (default: the folder recorded in DATASET/propagate.json)",
    )
    g.add_argument(
        "--truth", metavar="TRUTH.csv", help="true cells in the submission format (hpaseg synth's truth.csv)"
    )
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="folder for {ID}_overlay.png")
    g.add_argument("--pixel-size-um", type=float, help="pixel size in µm at the original resolution: draws a scale bar")
    g.add_argument(
        "--no-stretch", action="store_true", help="show channels as they are (default: stretch each for display)"
    )
    g.add_argument("--dpi", type=int, default=DEFAULT_DPI, help=f"resolution of the PNGs (default {DEFAULT_DPI})")
    add_quiet(parser)
    return parser


@cli_entry("visualize", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg visualize``."""
    args = build_parser().parse_args(argv)
    configure_output()
    if args.dpi < _MIN_DPI:
        raise InputError(f"--dpi {args.dpi}: expected at least {_MIN_DPI}")
    if args.pixel_size_um is not None and not args.pixel_size_um > 0:
        raise InputError(f"--pixel-size-um {args.pixel_size_um}: expected a positive number")
    if args.cells_csv and not args.masks:
        raise InputError("--cells labels the cells of --masks; give --masks too")
    if len(set(args.ids)) != len(args.ids):
        raise InputError(f"--ids: an ID is given twice ({', '.join(args.ids)})")
    io.check_output_path(args.out, option="--out", folder=True)
    views = read_image_panels(
        args.data,
        args.ids,
        masks=args.masks,
        cells_csv=args.cells_csv,
        submission=args.submission,
        weak_labels=args.weak_labels,
        weak_masks=args.weak_masks,
        truth=args.truth,
        require_all=True,
    )
    pictures = {}
    for image_id, (image, panels) in views.items():  # draw everything before writing anything
        fig = plot_cell_panels(
            image, panels, title=image_id, stretch=not args.no_stretch, pixel_size_um=args.pixel_size_um
        )
        pictures[image_id] = figure_to_rgb(fig, dpi=args.dpi)
    out = Path(args.out)
    for image_id, rgb in pictures.items():
        io.write_rgb_png(out / f"{image_id}_overlay.png", rgb)
    print(f"wrote {len(pictures)} overlay(s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
