"""Leave-one-field-out agreement of the watershed segmenter with reference masks of real
fields: ``python -m hpaseg.bench segreal DIR [DIR ...] [--check DIR ...]``.

The development fields are the images of the ``DIR`` folders that have a reference cell
mask ``{ID}_cellmask.png`` (HPA-Cell-Segmentation's, say). Every candidate setting of a
small grid of :class:`~hpaseg.segmentation.WatershedParams` (``--grid``; by default
:data:`DEFAULT_GRID`) segments every field once. Then, for each field, the setting with
the best pooled F1 at IoU 0.6 on the *other* fields is chosen and scored on the left-out
field (ties go to grid order, whose first point is the earlier defaults; today's
defaults are a column, not a candidate: they were chosen on these fields). The table
gives, per field: F1 at IoU 0.6 of today's defaults, of the setting chosen on all fields
(in-sample) and of the setting chosen without the field (LOFO), then the pooled figures;
the pooled LOFO F1 is the figure that counts. ``--check`` folders are scored with the
defaults and with the in-sample setting (F1 at IoU 0.5 and 0.6), never used for a choice.

Fields without a green channel file (the segmenter does not use green) are read with a
zero green channel, and the run says so. The last line is
``lofo_f1=N.NNN insample_f1=N.NNN default_f1=N.NNN fields=K settings=S``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import io
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..errors import InputError
from ..evaluation.segmentation import SegmentationScore, pool_scores, score_segmentation
from ..segmentation import WatershedParams, segment_watershed

__all__ = ["DEFAULT_GRID", "build_parser", "choose_lofo", "grid_settings", "main", "read_reference_fields"]

#: Candidate values per parameter of the default grid (their product is searched).
DEFAULT_GRID: dict[str, tuple] = {
    "nucleus_merge_neck_fraction": (0.0, 0.7),
    "seam_fraction": (0.7, 0.5),
    "relief_distance_weight": (0.0, 0.3),
}


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench segreal``."""
    parser = ArgumentParser(prog="hpaseg bench segreal", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of development fields with {ID}_cellmask.png")
    parser.add_argument("--check", nargs="*", type=Path, default=[], help="folders of further fields, only scored")
    parser.add_argument(
        "--grid",
        type=Path,
        help="JSON file {parameter: [values, ...]} of WatershedParams fields to search (default: DEFAULT_GRID)",
    )
    parser.add_argument("--out-json", help="also write the table and every setting's scores here")
    add_quiet(parser)
    return parser


def grid_settings(grid: dict[str, Sequence]) -> list[dict]:
    """Every combination of ``grid`` (parameter -> values) as keyword dicts, checked.

    >>> grid_settings({"seam_fraction": [0.7, 0.5], "relief_edge_weight": [2.0]})
    [{'seam_fraction': 0.7, 'relief_edge_weight': 2.0}, {'seam_fraction': 0.5, 'relief_edge_weight': 2.0}]
    """
    known = {f.name for f in dataclasses.fields(WatershedParams)}
    unknown = sorted(set(grid) - known)
    if unknown:
        raise InputError(f"grid: unknown parameter(s) {', '.join(unknown)}; expected fields of WatershedParams")
    names = list(grid)
    settings = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    for kw in settings:
        WatershedParams(**kw)  # raises InputError on a bad value
    return settings


def read_reference_fields(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """``{ID: (RGBY uint8 image, reference cell mask, note)}`` for each ``{ID}_cellmask.png``
    of ``folder``; a missing green channel is read as zeros (``note`` says so)."""
    ids = sorted(p.name[: -len("_cellmask.png")] for p in folder.glob("*_cellmask.png"))
    if not ids:
        raise InputError(f"{folder}: no {{ID}}_cellmask.png reference masks")
    out = {}
    for image_id in ids:
        note = ""
        try:
            image = io.read_rgby(folder, image_id)
        except InputError:
            planes = {c: io.read_channel(io.find_channel_file(folder, image_id, c)) for c in ("red", "blue", "yellow")}
            zeros = np.zeros_like(planes["red"])
            image = np.stack([planes["red"], zeros, planes["blue"], planes["yellow"]], axis=-1)
            note = "no green file: read with a zero green channel"
        out[image_id] = (image, io.read_mask(folder / f"{image_id}_cellmask.png"), note)
    return out


def choose_lofo(
    scores: list[dict[str, SegmentationScore]], fields: Sequence[str], candidates: Sequence[int] | None = None
) -> dict:
    """For each of ``fields``, the index of the candidate setting with the best pooled F1
    at IoU 0.6 over the other fields (ties: the earlier candidate), and ``"all"``: the
    best over all fields.

    ``scores[s][field]`` is the score of setting ``s`` on ``field``; ``candidates`` are the
    settings to choose from (default: all). The choice never depends on today's defaults
    (they were themselves chosen on these fields): ties go to grid order, whose first
    point is the earlier defaults.

    >>> from hpaseg.evaluation.segmentation import SegmentationScore as S
    >>> sc = [{"a": S(2, 2, 2, 2, 0, 0), "b": S(2, 2, 0, 0, 0, 0)}, {"a": S(2, 2, 0, 0, 0, 0), "b": S(2, 2, 2, 2, 0, 0)}]
    >>> choose_lofo(sc, ["a", "b"])
    {'a': 1, 'b': 0, 'all': 0}
    >>> choose_lofo(sc, ["a", "b"], candidates=[1])
    {'a': 1, 'b': 1, 'all': 1}
    """
    pool = list(range(len(scores))) if candidates is None else list(candidates)

    def best(used: Sequence[str]) -> int:
        return min(pool, key=lambda s: (-pool_scores([scores[s][f] for f in used]).f1_06, pool.index(s)))

    chosen = {f: best([g for g in fields if g != f]) for f in fields}
    chosen["all"] = best(list(fields))
    return chosen


@cli_entry("bench segreal", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Print the LOFO table; the last line is ``lofo_f1=... insample_f1=... default_f1=... fields=K settings=S``."""
    args = build_parser().parse_args(argv)
    grid = io.read_json(args.grid) if args.grid else DEFAULT_GRID
    settings = [{}] + grid_settings(grid)  # setting 0: today's defaults
    dev: dict[str, tuple] = {}
    for folder in args.folders:
        dev.update(read_reference_fields(folder))
    check: dict[str, tuple] = {}
    for folder in args.check:
        check.update(read_reference_fields(folder))
    for image_id, (_, _, note) in {**dev, **check}.items():
        if note:
            print(f"{image_id}: {note}")
    fields = list(dev)
    print(f"{len(fields)} development fields, {len(check)} check fields, {len(settings) - 1} settings + defaults")
    scores: list[dict[str, SegmentationScore]] = []
    seconds = []
    done: dict[WatershedParams, dict[str, SegmentationScore]] = {}
    for kw in settings:
        params = WatershedParams(**kw)
        if params in done:  # a grid point equal to an earlier one (the defaults, say)
            scores.append(done[params])
            continue
        row = done[params] = {}
        for image_id in fields:
            image, reference, _ = dev[image_id]
            t0 = time.perf_counter()
            cells, _ = segment_watershed(image, params=params)
            seconds.append(time.perf_counter() - t0)
            row[image_id] = score_segmentation(reference, cells)
        scores.append(row)
        if not args.quiet:
            print(f"  {kw or 'defaults'}: pooled F1@0.6 {pool_scores(list(row.values())).f1_06:.3f}", flush=True)
    chosen = choose_lofo(scores, fields, candidates=range(1, len(settings)))  # the grid, not the defaults
    print(f"in-sample setting (chosen on all fields): {settings[chosen['all']] or 'defaults'}")
    header = f"{'field':<40} {'cells':>5} {'default':>8} {'in-sample':>9} {'LOFO':>6}  LOFO setting"
    print(header)
    lofo, insample, default = [], [], []
    for f in fields:
        d, i, o = scores[0][f], scores[chosen["all"]][f], scores[chosen[f]][f]
        default.append(d)
        insample.append(i)
        lofo.append(o)
        print(
            f"{f:<40} {d.n_true:>5} {d.f1_06:>8.3f} {i.f1_06:>9.3f} {o.f1_06:>6.3f}  {settings[chosen[f]] or 'defaults'}"
        )
    pooled = [pool_scores(x).f1_06 for x in (default, insample, lofo)]
    print(f"{'pooled':<40} {sum(s.n_true for s in default):>5} {pooled[0]:>8.3f} {pooled[1]:>9.3f} {pooled[2]:>6.3f}")
    print(f"segment_watershed: median {np.median(seconds):.2f} s per field (max {max(seconds):.2f})")
    check_rows = {}
    for image_id, (image, reference, _) in check.items():
        d = score_segmentation(reference, segment_watershed(image)[0])
        i = score_segmentation(
            reference, segment_watershed(image, params=WatershedParams(**settings[chosen["all"]]))[0]
        )
        check_rows[image_id] = {"default": d.row(), "insample": i.row()}
        print(
            f"check {image_id}: defaults F1 {d.f1_05:.3f} @0.5, {d.f1_06:.3f} @0.6; "
            f"in-sample setting F1 {i.f1_05:.3f} @0.5, {i.f1_06:.3f} @0.6"
        )
    if args.out_json:
        io.write_json(
            args.out_json,
            {
                "settings": settings,
                "scores": [{f: s.row() for f, s in row.items()} for row in scores],
                "chosen": chosen,
                "pooled_f1_06": dict(zip(("default", "insample", "lofo"), pooled)),
                "check": check_rows,
            },
            indent=2,
        )
    print(
        f"lofo_f1={pooled[2]:.3f} insample_f1={pooled[1]:.3f} default_f1={pooled[0]:.3f} "
        f"fields={len(fields)} settings={len(settings) - 1}"
    )
    return 0
