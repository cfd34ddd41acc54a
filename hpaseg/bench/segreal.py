"""Leave-one-field-out agreement of the built-in segmenter with reference masks of real
fields: ``python -m hpaseg.bench segreal DIR [DIR ...] [--check DIR ...]``.

The development fields are the images of the ``DIR`` folders that have a reference cell
mask ``{ID}_cellmask.png`` (HPA-Cell-Segmentation's, say). Two kinds of cell maps are
measured (``--maps``, both by default):

``learned`` (the default maps)
    For each seed of ``--seeds`` and each field, the cell-map model
    (:mod:`hpaseg.segmentation.cellmaps`) is fitted on the *other* fields and the field
    is segmented with it (LOFO); a model fitted on all fields scores every field
    (in-sample) and the ``--check`` fields. Every fit also learns from ``--synthetic N``
    real-like synthetic fields of 2048 px with their true cells (:mod:`hpaseg.synth`,
    seed ``--synthetic-seed``; default :data:`SYNTHETIC_FIELDS`): shapes the few real
    fields lack (long protrusions, confluent sheets), never scored; with ``--zooms``
    each real field is also seen at those apparent cell sizes (default :data:`ZOOMS`),
    its pixels drawn equally from each view. The table gives
    mean ± sd over seeds; the pooled LOFO F1 at IoU 0.6 is the figure that counts.
    ``--save-model PATH`` writes the all-fields model of seed 0: that is how
    ``hpaseg/segmentation/cellmaps.npz``, the model hpaseg ships, is made.
``classical``
    Every candidate setting of a small grid of
    :class:`~hpaseg.segmentation.WatershedParams` (``--grid``; by default
    :data:`DEFAULT_GRID`) segments every field with the classical maps. For each field
    the setting with the best pooled F1 at IoU 0.6 on the *other* fields is scored on it
    (ties go to grid order, whose first point is the earlier defaults; today's defaults
    are a column, not a candidate: they were chosen on these fields).

Fields without a green channel file (the segmenter does not use green) are read with a
zero green channel, and the run says so. The last line is ``lofo_f1=N.NNN lofo_sd=N.NNN
insample_f1=N.NNN classical_lofo_f1=N.NNN default_f1=N.NNN fields=K settings=S seeds=N
synthetic=M zooms=Z`` (the first three of the learned maps when they were measured).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import io
from ..classes import REFERENCE_SIZE_PX
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..errors import InputError
from ..evaluation.segmentation import SegmentationScore, pool_scores, score_segmentation
from ..segmentation import WatershedParams, segment_watershed
from ..segmentation.fit_cellmaps import check_zooms, fit_cell_map_model, training_field, training_views
from ..synth.compare import synthetic_fields
from .common import plus_minus

__all__ = [
    "DEFAULT_GRID",
    "SYNTHETIC_FIELDS",
    "SYNTHETIC_SEED",
    "ZOOMS",
    "build_parser",
    "choose_lofo",
    "grid_settings",
    "main",
    "read_reference_fields",
]

#: Candidate values per parameter of the default grid (their product is searched).
DEFAULT_GRID: dict[str, tuple] = {
    "nucleus_merge_neck_fraction": (0.0, 0.7),
    "seam_fraction": (0.7, 0.5),
    "relief_distance_weight": (0.0, 0.3),
}
#: Real-like synthetic fields (2048 px, true cells) added to every fit of the learned maps,
#: and their seed. Fixed before measuring: about as many as the real fields.
SYNTHETIC_FIELDS = 6
SYNTHETIC_SEED = 11
#: Apparent cell sizes at which every real development field is seen by the fits of the
#: learned maps (``--zooms``): the field as it is. Seeing each field also with its cells
#: 0.8 and 1.25 times their size was chosen by nested leave-one-field-out on one seed and
#: then, measured once over three, did not help (benchmarks/RESULTS.md): not the default.
ZOOMS: tuple[float, ...] = (1.0,)


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
    parser.add_argument(
        "--maps",
        choices=("learned", "classical", "both"),
        default="both",
        help="which cell maps to measure (default both): the learned model, fitted without each "
        "field in turn, and/or the classical maps' settings grid",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the learned model (default 3)")
    parser.add_argument(
        "--pixels-per-field", type=int, default=100_000, help="training pixels drawn per field (default 100000)"
    )
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training pixels (default 20)")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=SYNTHETIC_FIELDS,
        help=f"real-like synthetic 2048-px fields added to every fit of the learned maps (default {SYNTHETIC_FIELDS}; 0: real fields only)",
    )
    parser.add_argument(
        "--synthetic-seed", type=int, default=SYNTHETIC_SEED, help=f"seed of those fields (default {SYNTHETIC_SEED})"
    )
    parser.add_argument(
        "--zooms",
        nargs="+",
        type=float,
        default=list(ZOOMS),
        help="apparent cell-size factors at which every real field is seen by the learned maps' fits, "
        f"its pixels drawn equally from each (default {' '.join(f'{z:g}' for z in ZOOMS)})",
    )
    parser.add_argument(
        "--save-model",
        help="write the learned model fitted on all development fields (seed 0) here: "
        "hpaseg/segmentation/cellmaps.npz is the one hpaseg ships",
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


def _classical(dev: dict, check: dict, grid: dict, quiet: bool) -> dict:
    """The classical maps: every grid setting on every field, LOFO choice among the grid."""
    base = {"cell_maps": "classical"}
    settings = [{}] + grid_settings(grid)  # setting 0: today's defaults (with the classical maps)
    fields = list(dev)
    scores: list[dict[str, SegmentationScore]] = []
    seconds = []
    done: dict[WatershedParams, dict[str, SegmentationScore]] = {}
    for kw in settings:
        params = WatershedParams(**{**base, **kw})
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
        if not quiet:
            print(
                f"  classical {kw or 'defaults'}: pooled F1@0.6 {pool_scores(list(row.values())).f1_06:.3f}", flush=True
            )
    chosen = choose_lofo(scores, fields, candidates=range(1, len(settings)))  # the grid, not the defaults
    print(f"classical maps: in-sample setting (chosen on all fields): {settings[chosen['all']] or 'defaults'}")
    print(f"{'field':<40} {'cells':>5} {'default':>8} {'in-sample':>9} {'LOFO':>6}  LOFO setting")
    cols: dict[str, list[SegmentationScore]] = {"default": [], "insample": [], "lofo": []}
    for f in fields:
        d, i, o = scores[0][f], scores[chosen["all"]][f], scores[chosen[f]][f]
        for key, value in zip(cols, (d, i, o)):
            cols[key].append(value)
        print(
            f"{f:<40} {d.n_true:>5} {d.f1_06:>8.3f} {i.f1_06:>9.3f} {o.f1_06:>6.3f}  {settings[chosen[f]] or 'defaults'}"
        )
    pooled = {key: pool_scores(value).f1_06 for key, value in cols.items()}
    n_true = sum(s.n_true for s in cols["default"])
    print(f"{'pooled':<40} {n_true:>5} {pooled['default']:>8.3f} {pooled['insample']:>9.3f} {pooled['lofo']:>6.3f}")
    print(f"classical segment_watershed: median {np.median(seconds):.2f} s per field (max {max(seconds):.2f})")
    check_rows = {}
    for image_id, (image, reference, _) in check.items():
        d = score_segmentation(reference, segment_watershed(image, params=WatershedParams(**base))[0])
        i = score_segmentation(
            reference, segment_watershed(image, params=WatershedParams(**{**base, **settings[chosen["all"]]}))[0]
        )
        check_rows[image_id] = {"default": d.row(), "insample": i.row()}
        print(
            f"check {image_id} (classical): defaults F1 {d.f1_05:.3f} @0.5, {d.f1_06:.3f} @0.6; "
            f"in-sample setting F1 {i.f1_05:.3f} @0.5, {i.f1_06:.3f} @0.6"
        )
    return {
        "settings": settings,
        "scores": [{f: s.row() for f, s in row.items()} for row in scores],
        "chosen": chosen,
        "pooled_f1_06": pooled,
        "check": check_rows,
        "n_settings": len(settings) - 1,
    }


def _learned(
    dev: dict,
    check: dict,
    *,
    seeds: int,
    pixels_per_field: int,
    epochs: int,
    synthetic: int,
    synthetic_seed: int,
    zooms: Sequence[float],
    save_model: str | None,
    quiet: bool,
) -> dict:
    """The learned maps: per seed, a model fitted without each field scores it (LOFO) and a
    model fitted on all fields scores every field (in-sample) and the check fields; every
    fit also learns from ``synthetic`` real-like synthetic fields (never scored) and sees
    every real field at each of ``zooms``."""
    fields = list(dev)
    params = WatershedParams()
    t0 = time.perf_counter()
    data = {f: training_views(dev[f][0], dev[f][1], zooms, params=params) for f in fields}
    extra = {
        f"synthetic:{name}": training_field(image, cells, params=params)
        for name, image, cells in synthetic_fields(synthetic, seed=synthetic_seed, size=REFERENCE_SIZE_PX)
    }
    if not quiet:
        print(
            f"learned maps: features of {len(fields)} fields and {len(extra)} synthetic fields "
            f"(seed {synthetic_seed}), real fields at zooms {', '.join(f'{z:g}' for z in zooms)}, "
            f"in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )

    def fit(names: list[str], seed: int):
        return fit_cell_map_model(
            [data[f] for f in names] + list(extra.values()),
            pixels_per_field=pixels_per_field,
            epochs=epochs,
            seed=seed,
            names=names + list(extra),
        )

    lofo: dict[int, dict[str, SegmentationScore]] = {}
    insample: dict[int, dict[str, SegmentationScore]] = {}
    checks: dict[int, dict[str, SegmentationScore]] = {}
    seconds = []
    models = {}
    for seed in range(seeds):
        lofo[seed], insample[seed], checks[seed] = {}, {}, {}
        for f in fields:
            model = fit([g for g in fields if g != f], seed)
            lofo[seed][f] = score_segmentation(dev[f][1], segment_watershed(dev[f][0], params=params, model=model)[0])
        models[seed] = model = fit(fields, seed)
        for f in fields:
            t1 = time.perf_counter()
            cells = segment_watershed(dev[f][0], params=params, model=model)[0]
            seconds.append(time.perf_counter() - t1)
            insample[seed][f] = score_segmentation(dev[f][1], cells)
        for f, (image, reference, _) in check.items():
            checks[seed][f] = score_segmentation(reference, segment_watershed(image, params=params, model=model)[0])
        if not quiet:
            print(
                f"  seed {seed}: LOFO pooled F1@0.6 {pool_scores(list(lofo[seed].values())).f1_06:.3f}, "
                f"in-sample {pool_scores(list(insample[seed].values())).f1_06:.3f}",
                flush=True,
            )
    runs = list(range(seeds))

    def spread(values: list[float]) -> str:
        return plus_minus(float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"))

    print(f"learned maps ({seeds} seeds of the model; mean ± sd over seeds):")
    print(f"{'field':<40} {'cells':>5} {'in-sample':>15} {'LOFO':>15}")
    for f in fields:
        print(
            f"{f:<40} {lofo[0][f].n_true:>5} {spread([insample[s][f].f1_06 for s in runs]):>15} "
            f"{spread([lofo[s][f].f1_06 for s in runs]):>15}"
        )
    pooled_lofo = [pool_scores(list(lofo[s].values())).f1_06 for s in runs]
    pooled_in = [pool_scores(list(insample[s].values())).f1_06 for s in runs]
    n_true = sum(lofo[0][f].n_true for f in fields)
    print(f"{'pooled':<40} {n_true:>5} {spread(pooled_in):>15} {spread(pooled_lofo):>15}")
    print(f"learned segment_watershed: median {np.median(seconds):.2f} s per field (max {max(seconds):.2f})")
    for f in check:
        print(
            f"check {f} (learned, fitted on all fields): F1 {spread([checks[s][f].f1_05 for s in runs])} @0.5, "
            f"{spread([checks[s][f].f1_06 for s in runs])} @0.6"
        )
    if save_model:
        models[0].save(save_model)
        print(f"wrote {save_model} (fitted on all {len(fields)} fields, seed 0)")
    return {
        "lofo": {s: {f: v.row() for f, v in lofo[s].items()} for s in runs},
        "insample": {s: {f: v.row() for f, v in insample[s].items()} for s in runs},
        "check": {s: {f: v.row() for f, v in checks[s].items()} for s in runs},
        "pooled_f1_06": {"lofo": pooled_lofo, "insample": pooled_in},
        "synthetic": {"fields": synthetic, "seed": synthetic_seed},
        "zooms": list(zooms),
    }


@cli_entry("bench segreal", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Print the LOFO tables; the last line is ``lofo_f1=... lofo_sd=... insample_f1=...
    classical_lofo_f1=... default_f1=... fields=K settings=S seeds=N``."""
    args = build_parser().parse_args(argv)
    if args.seeds < 1 or args.epochs < 1 or args.pixels_per_field < 1:
        raise InputError("--seeds, --epochs, --pixels-per-field: expected positive integers")
    if args.synthetic < 0:
        raise InputError(f"--synthetic: expected a count >= 0, got {args.synthetic}")
    zooms = check_zooms(args.zooms)
    if args.save_model and args.maps == "classical":
        raise InputError("--save-model: needs --maps learned or both (it writes the learned maps' model)")
    grid = io.read_json(args.grid) if args.grid else DEFAULT_GRID
    dev: dict[str, tuple] = {}
    for folder in args.folders:
        dev.update(read_reference_fields(folder))
    check: dict[str, tuple] = {}
    for folder in args.check:
        check.update(read_reference_fields(folder))
    for image_id, (_, _, note) in {**dev, **check}.items():
        if note:
            print(f"{image_id}: {note}")
    print(f"{len(dev)} development fields, {len(check)} check fields")
    out: dict = {}
    if args.maps in ("classical", "both"):
        out["classical"] = _classical(dev, check, grid, args.quiet)
    if args.maps in ("learned", "both"):
        out["learned"] = _learned(
            dev,
            check,
            seeds=args.seeds,
            pixels_per_field=args.pixels_per_field,
            epochs=args.epochs,
            synthetic=args.synthetic,
            synthetic_seed=args.synthetic_seed,
            zooms=zooms,
            save_model=args.save_model,
            quiet=args.quiet,
        )
    if args.out_json:
        io.write_json(args.out_json, out, indent=2)
    fields = f"fields={len(dev)} settings={out['classical']['n_settings'] if 'classical' in out else 0}"
    if "learned" in out:
        lofo, inside = out["learned"]["pooled_f1_06"]["lofo"], out["learned"]["pooled_f1_06"]["insample"]
        head = (
            f"lofo_f1={np.mean(lofo):.3f} lofo_sd={np.std(lofo, ddof=1) if len(lofo) > 1 else 0.0:.3f} "
            f"insample_f1={np.mean(inside):.3f} "
        )
    else:
        head = (
            f"lofo_f1={out['classical']['pooled_f1_06']['lofo']:.3f} "
            f"insample_f1={out['classical']['pooled_f1_06']['insample']:.3f} "
        )
    if "classical" in out:
        head += (
            f"classical_lofo_f1={out['classical']['pooled_f1_06']['lofo']:.3f} "
            f"default_f1={out['classical']['pooled_f1_06']['default']:.3f} "
        )
    synthetic = args.synthetic if "learned" in out else 0
    zoomed = ",".join(f"{z:g}" for z in zooms) if "learned" in out else "-"
    print(f"{head}{fields} seeds={args.seeds if 'learned' in out else 0} synthetic={synthetic} zooms={zoomed}")
    return 0
