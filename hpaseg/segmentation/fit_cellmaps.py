"""Fitting the cell-map model of :mod:`hpaseg.segmentation.cellmaps` (torch; only the
benchmark that writes the shipped weights imports it, segmentation itself runs on numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..classes import Channel
from ..errors import InputError
from ..transforms import resize_image, resize_labels
from .base import check_rgby
from .cellmaps import CellMapModel, map_grid, map_targets, pixel_features
from .ops import scaled_shape
from .watershed import WatershedParams, segment_nuclei, working_scale

__all__ = ["FieldData", "FieldViews", "check_zooms", "fit_cell_map_model", "training_field", "training_views"]

#: One field's training data: its features and targets (:func:`training_field`).
FieldData = tuple[np.ndarray, np.ndarray, np.ndarray]
#: One field seen at one or more zooms (:func:`training_views`); its pixels are drawn
#: equally from its views, so a field counts alike however many views it has.
FieldViews = list[FieldData]


def fit_cell_map_model(
    fields: list[FieldData | FieldViews],
    *,
    pixels_per_field: int = 100_000,
    hidden: int = 64,
    epochs: int = 20,
    lr: float = 3e-3,
    seed: int = 0,
    names: list[str] | None = None,
) -> CellMapModel:
    """Fit the cell-map model on fields with reference cells.

    Parameters
    ----------
    fields : list of (features, is_cell, distance), or of lists of them
        Per field: :func:`pixel_features` (H, W, F) and :func:`map_targets` (H, W) each
        (:func:`training_field`), or a list of such views of the field
        (:func:`training_views`), whose pixels are drawn equally from each view.
    pixels_per_field : int
        Pixels drawn at random from each field (all when fewer), so that every field
        counts alike whatever its size and however many views it has.
    hidden, epochs, lr, seed : int, int, float, int
        Width of the two hidden layers; passes over the drawn pixels (batches of 4096,
        AdamW with weight decay 1e-4, one-cycle schedule peaking at ``lr``); seed of the
        draw and of the initial weights.
    names : list of str, optional
        Field names, recorded in the model's ``meta``.

    Returns
    -------
    CellMapModel
        Its ``meta`` records the fields' names, the seed, the pixels drawn per field and
        in all, and the epochs.
    """
    if not fields:
        raise InputError("fit_cell_map_model: expected at least one field with reference cells")
    rng = np.random.default_rng(seed)
    xs, fgs, ds = [], [], []
    for entry in fields:
        views = entry if isinstance(entry, list) else [entry]
        for k, (features, is_cell, distance) in enumerate(views):
            share = pixels_per_field // len(views) + (k < pixels_per_field % len(views))
            x = features.reshape(-1, features.shape[-1])
            take = rng.choice(len(x), min(share, len(x)), replace=False)
            xs.append(x[take])
            fgs.append(is_cell.reshape(-1)[take])
            ds.append(distance.reshape(-1)[take])
    x_all = np.concatenate(xs).astype(np.float32)
    mean, std = x_all.mean(0), x_all.std(0) + 1e-6
    torch.manual_seed(seed)
    xt = torch.from_numpy((x_all - mean) / std)
    fgt = torch.from_numpy(np.concatenate(fgs).astype(np.float32))
    dt = torch.from_numpy(np.concatenate(ds).astype(np.float32))
    net = torch.nn.Sequential(
        torch.nn.Linear(xt.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 2),
    )
    batch = 4096
    steps = epochs * -(-len(xt) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), batch):
            idx = order[i : i + batch]
            out = net(xt[idx])
            cell = fgt[idx] > 0
            loss = bce(out[:, 0], fgt[idx])
            if cell.any():  # the distance is learned inside cells only
                loss = loss + bce(out[cell, 1], dt[idx][cell])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = tuple((m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linear)
    meta = {
        "fields": list(names or []),
        "seed": seed,
        "pixels_per_field": pixels_per_field,
        "pixels": len(x_all),
        "epochs": epochs,
    }
    return CellMapModel(layers, mean.astype(np.float32), std.astype(np.float32), meta)


def training_field(
    image: np.ndarray, reference: np.ndarray, *, params: WatershedParams = WatershedParams(), zoom: float = 1.0
) -> FieldData:
    """Features and targets of one RGBY field with reference cells, on the maps' grid
    (:func:`~hpaseg.segmentation.cellmaps.map_grid`, as at run time).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4)
        RGBY field as :func:`~hpaseg.segmentation.watershed.segment_watershed` takes it.
    reference : ndarray, shape (H, W), int
        Reference cells (HPA-Cell-Segmentation's, say).
    params : WatershedParams
        Working size and nucleus settings (the nuclei are the segmenter's own, as at run time).
    zoom : float
        The field as it would look if its cells and nuclei were ``zoom`` times their size
        (the working image is resized by ``zoom`` while its nominal scale is kept): how
        a cell line of larger (> 1) or smaller (< 1) cells would reach the segmenter.

    Returns
    -------
    features, is_cell, distance
        :func:`~hpaseg.segmentation.cellmaps.pixel_features` and
        :func:`~hpaseg.segmentation.cellmaps.map_targets` of the field.
    """
    image = check_rgby(image, "training_field")
    if reference.shape != image.shape[:2]:
        raise InputError(f"reference: expected shape {image.shape[:2]} like its image, got {reference.shape}")
    if not (np.isfinite(zoom) and zoom > 0):
        raise InputError(f"zoom {zoom}: expected a number > 0", param="zoom")
    resize, scale = working_scale(image.shape, params.working_size_px)
    work = resize_image(image.astype(np.float32), scaled_shape(image.shape, resize * zoom))
    nuclei = segment_nuclei(work[..., Channel.BLUE], scale=scale, params=params)
    small, small_scale, small_nuclei = map_grid(work, scale, nuclei)  # as predict_maps sees the field
    features = pixel_features(small, small_scale, small_nuclei)
    is_cell, distance = map_targets(resize_labels(np.asarray(reference), small.shape[:2]), small_scale)
    return features, is_cell, distance


def training_views(
    image: np.ndarray,
    reference: np.ndarray,
    zooms: Sequence[float] = (1.0,),
    *,
    params: WatershedParams = WatershedParams(),
) -> FieldViews:
    """:func:`training_field` of one field at each of ``zooms`` (cell sizes the field's own
    cell line does not have), for :func:`fit_cell_map_model`.

    Parameters
    ----------
    image, reference : ndarray
        As :func:`training_field`.
    zooms : sequence of float
        Apparent cell-size factors, each > 0 (1: the field as it is).
    params : WatershedParams

    Returns
    -------
    list of (features, is_cell, distance)
    """
    return [training_field(image, reference, params=params, zoom=z) for z in check_zooms(zooms)]


def check_zooms(zooms: Sequence[float]) -> tuple[float, ...]:
    """The zoom factors of :func:`training_views` as floats, or an :class:`InputError`
    naming ``zooms`` when there are none or one is not a number > 0.

    >>> check_zooms([0.8, 1, 1.25])
    (0.8, 1.0, 1.25)
    """
    zooms = tuple(float(z) for z in zooms)
    if not zooms:
        raise InputError("zooms: expected at least one zoom factor", param="zooms")
    if not all(np.isfinite(z) and z > 0 for z in zooms):
        raise InputError(f"zooms: expected factors > 0, got {' '.join(f'{z:g}' for z in zooms)}", param="zooms")
    return zooms
