"""``hpaseg evaluate --truth TRUTH.csv --submission SUB.csv [--iou 0.6] [--out-json FILE]``:
score a submission with the competition metric (:func:`hpaseg.evaluation.competition_map`).

Both files are in the submission format; the truth has one ``label confidence mask``
triple per true (cell, label) (its confidences are ignored). Prints a per-class table
(id, name, true cells, predictions, AP; ``-`` for classes without true cells, which do
not count) and, as the last line, ``mAP=0.xxxx``. A submission with images absent from
the truth is refused (exit 2; :func:`hpaseg.evaluation.check_image_ids`); truth images
absent from the submission are scored as missed, and a line before the mAP says how
many and names the first few.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from .. import io
from ..classes import CLASS_NAMES
from ..errors import InputError
from ..evaluation import COMPETITION_IOU_THRESHOLD, MapResult, check_image_ids, competition_map, few_ids
from ..submission import read_submission
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["format_table", "build_parser", "main"]


def format_table(result: MapResult) -> str:
    """Per-class table of a :class:`~hpaseg.evaluation.MapResult` (no trailing mAP line)."""
    width = max(len(n) for n in CLASS_NAMES)
    lines = [f"{'id':>2}  {'class':<{width}}  {'n_true':>6}  {'n_pred':>6}  {'AP':>6}"]
    for c in sorted(result.ap):
        ap = "-" if math.isnan(result.ap[c]) else f"{result.ap[c]:.4f}"
        lines.append(f"{c:>2}  {CLASS_NAMES[c]:<{width}}  {result.n_true[c]:>6}  {result.n_pred[c]:>6}  {ap:>6}")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg evaluate``."""
    parser = ArgumentParser(
        prog="hpaseg evaluate", description="Score a submission: mAP over classes at mask IoU >= 0.6."
    )
    parser.add_argument("--truth", required=True, metavar="TRUTH.csv", help="true cells, in the submission format")
    parser.add_argument("--submission", required=True, metavar="SUB.csv", help="submission CSV to score")
    parser.add_argument(
        "--iou",
        type=float,
        default=COMPETITION_IOU_THRESHOLD,
        help=f"mask IoU to match a true cell (default {COMPETITION_IOU_THRESHOLD})",
    )
    parser.add_argument("--out-json", metavar="FILE", help="also write the per-class results as JSON")
    add_quiet(parser)
    return parser


@cli_entry("evaluate", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg evaluate``."""
    args = build_parser().parse_args(argv)
    configure_output()
    if not 0.0 < args.iou <= 1.0:
        raise InputError(f"--iou {args.iou}: expected a number in (0, 1]")
    if args.out_json:
        io.check_output_path(args.out_json, option="--out-json", folder=False)
    truth = read_submission(args.truth)
    submission = read_submission(args.submission)
    missing = check_image_ids(truth, submission, truth_source=str(args.truth), submission_source=str(args.submission))
    try:
        result = competition_map(truth, submission, iou_threshold=args.iou)
    except InputError as exc:
        raise InputError(f"{args.truth} vs {args.submission}: {exc}") from exc
    print(format_table(result))
    if missing:
        print(
            f"{len(missing)} of {len(truth)} truth images are absent from {args.submission}, "
            f"their cells scored as missed: {few_ids(missing)}"
        )
    if args.out_json:
        io.write_json(
            args.out_json, {"truth": str(args.truth), "submission": str(args.submission), **result.to_dict()}, indent=2
        )
    print(f"mAP={result.mAP:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
