"""A synthetic dataset on disk: :func:`generate_dataset` writes the Kaggle layout plus the
truth (see :mod:`hpaseg.synth`); no command-line handling here (that is :mod:`.cli`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import io
from ..classes import NUM_CLASSES, Channel
from ..errors import InputError
from ..runtime.pool import spawn_pool
from ..submission import Prediction, SubmissionRow, encode_label_image, write_submission
from .image import DEFAULT_STYLE, MIN_SIZE_PX, SPLITS, SynthImage, check_style, image_id, image_rng, synth_image

__all__ = ["SynthSummary", "generate_dataset"]

_MANIFEST = "synth.json"
_TABLES = ("train.csv", "sample_submission.csv", "truth.csv", "cell_labels.csv")


@dataclass
class SynthSummary:
    """What :func:`generate_dataset` wrote."""

    out_dir: Path
    n_train: int
    n_test: int
    size: int
    bit_depth: int
    seed: int
    n_cells: int
    #: images carrying each class (index = class id), over both splits
    image_label_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    #: cells carrying each class (index = class id), over both splits
    cell_label_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    seconds: float = 0.0
    style: str = DEFAULT_STYLE


def _check_options(n_train: int, n_test: int, size: int, seed: int, bit_depth: int) -> None:
    """InputError naming the option when a count, the size, the seed or the bit depth is bad."""
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value < 0:
            raise InputError(f"{name} {value}: expected a count of images >= 0", param=name)
    if n_train + n_test == 0:
        raise InputError(
            "n_train 0 and n_test 0: nothing to generate; ask for at least one image", param=("n_train", "n_test")
        )
    if size < MIN_SIZE_PX:
        raise InputError(
            f"size {size}: expected an image size of at least {MIN_SIZE_PX} px (HPA images are 2048 px)", param="size"
        )
    if seed < 0:
        raise InputError(f"seed {seed}: expected a non-negative integer", param="seed")
    if bit_depth not in (8, 16):
        raise InputError(f"bit_depth {bit_depth}: expected 8 or 16", param="bit_depth")


def _previous_manifest(out_dir: Path, overwrite: bool) -> dict | None:
    """The manifest of an earlier run in ``out_dir``, if any; refuse a foreign non-empty folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"out {out_dir}: exists and is not a folder; choose a folder path", param="out")
    manifest_path = out_dir / _MANIFEST
    if manifest_path.is_file():
        try:
            manifest = io.read_json(manifest_path)
        except InputError:
            manifest = None
        if isinstance(manifest, dict) and manifest.get("generator") == "hpaseg.synth":
            return manifest
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(
            f"out {out_dir}: folder is not empty and holds no {_MANIFEST} of an earlier 'hpaseg synth' run; "
            "choose a new or empty folder, or allow overwrite to write into it",
            param=("out", "overwrite"),
        )
    return None


def _remove_stale(out_dir: Path, manifest: dict, new_ids: set[str]) -> None:
    """Delete the files of images an earlier run wrote that this run does not rewrite."""
    for split in SPLITS:
        try:
            count = int(manifest.get(f"n_{split}", 0))
        except (TypeError, ValueError):
            continue
        for index in range(count):
            old = image_id(split, index)
            if old in new_ids:
                continue
            paths = [out_dir / split / f"{old}_{ch.name.lower()}.png" for ch in Channel]
            paths += list(io.mask_paths(out_dir / "masks", old))
            for path in paths:
                path.unlink(missing_ok=True)


def _draw(job: tuple[int, str, int, int, str]) -> SynthImage:
    """One synthetic image from ``(seed, split, index, size, style)`` (a worker's task)."""
    seed, split, index, size, style = job
    return synth_image(image_rng(seed, split, index), size, style=style)


@contextlib.contextmanager
def _drawn_images(
    jobs: list[tuple[str, int]], seed: int, size: int, style: str, workers: int
) -> Iterator[Iterator[SynthImage]]:
    """The images of ``jobs`` (``(split, index)``), in order, drawn by ``workers`` processes."""
    tasks = [(seed, split, index, size, style) for split, index in jobs]
    if workers == 1 or len(tasks) < 2:
        yield map(_draw, tasks)
        return
    with spawn_pool(min(workers, len(tasks))) as pool:
        yield pool.map(_draw, tasks, chunksize=max(1, len(tasks) // (8 * workers)))


def generate_dataset(
    out_dir: str | Path,
    n_train: int,
    n_test: int,
    size: int,
    seed: int,
    bit_depth: int = 8,
    progress: bool = True,
    *,
    overwrite: bool = False,
    style: str = DEFAULT_STYLE,
    workers: int = 1,
) -> SynthSummary:
    """Write a synthetic dataset in the Kaggle layout plus its truth (see the module docstring).

    Parameters
    ----------
    out_dir : path
        Created if needed. A non-empty folder is written into only when it holds the
        ``synth.json`` of an earlier run (whose images not rewritten now are deleted) or
        when ``overwrite`` is True (nothing else in it is deleted).
    n_train, n_test : int
        Images per split, >= 0, not both 0.
    size : int
        Image height and width in px, >= :data:`MIN_SIZE_PX`.
    seed : int
        >= 0; the same seed gives byte-identical files.
    bit_depth : {8, 16}
        16 writes 16-bit channel PNGs holding the 8-bit values times 257.
    progress : bool
        Show a tqdm progress bar on stderr.
    overwrite : bool
        Allow writing into a non-empty folder not made by this function.
    style : {"real-like", "compact"}
        The look of the fields (:data:`STYLES`), recorded in ``synth.json``.
    workers : int
        Processes drawing the images (>= 1); the files are the same for any count.

    Returns
    -------
    SynthSummary

    Raises
    ------
    InputError
        Bad counts, size, seed or bit depth, or a foreign non-empty ``out_dir``.
    """

    _check_options(n_train, n_test, size, seed, bit_depth)
    check_style(style)
    if workers < 1:
        raise InputError(f"workers: expected a count >= 1, got {workers}", param="workers")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    previous = _previous_manifest(out_dir, overwrite)
    manifest = {
        "generator": "hpaseg.synth",
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "size": size,
        "bit_depth": bit_depth,
        "style": style,
        "complete": False,
    }
    io.write_json(out_dir / _MANIFEST, manifest, indent=2)  # marks the folder as ours from the start
    if previous is not None:  # an interrupted rerun must not leave the old tables beside new images
        for name in _TABLES:
            (out_dir / name).unlink(missing_ok=True)

    summary = SynthSummary(out_dir, n_train, n_test, size, bit_depth, seed, n_cells=0, style=style)
    train_labels: dict[str, tuple[int, ...]] = {}
    truth_rows: list[SubmissionRow] = []
    cell_rows: list[list] = []
    jobs = [(split, i) for split, count in zip(SPLITS, (n_train, n_test)) for i in range(count)]
    with _drawn_images(jobs, seed, size, style, workers) as drawn:
        for (split, index), img in tqdm(
            zip(jobs, drawn), total=len(jobs), desc="synth", unit="img", disable=not progress
        ):
            iid = image_id(split, index)
            pixels = img.image.astype(np.uint16) * np.uint16(257) if bit_depth == 16 else img.image
            io.write_rgby(out_dir / split, iid, pixels)
            io.write_mask_pair(out_dir / "masks", iid, img.cell_mask, img.nuclei_mask)
            for cell, labs in img.cell_labels.items():
                cell_rows.append([iid, split, cell, io.format_labels(labs)])
                for lab in labs:
                    summary.cell_label_counts[lab] += 1
            for lab in img.image_labels:
                summary.image_label_counts[lab] += 1
            summary.n_cells += len(img.cell_labels)
            if split == "train":
                train_labels[iid] = img.image_labels
            else:
                masks = encode_label_image(img.cell_mask, sorted(img.cell_labels))
                preds = [
                    Prediction(lab, 1.0, masks[cell]) for cell, labs in sorted(img.cell_labels.items()) for lab in labs
                ]
                truth_rows.append(SubmissionRow(iid, size, size, preds))

    io.write_labels_csv(out_dir / "train.csv", train_labels)
    write_submission(
        out_dir / "sample_submission.csv", [SubmissionRow(r.image_id, r.width, r.height) for r in truth_rows]
    )
    write_submission(out_dir / "truth.csv", truth_rows)
    io.write_table(out_dir / "cell_labels.csv", pd.DataFrame(cell_rows, columns=["ID", "split", "cell", "Label"]))
    if previous is not None:
        _remove_stale(out_dir, previous, {image_id(s, i) for s, i in jobs})
    io.write_json(out_dir / _MANIFEST, {**manifest, "complete": True}, indent=2)
    summary.seconds = time.perf_counter() - start
    return summary


# --------------------------------------------------------------------------- CLI
