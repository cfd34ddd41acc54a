"""Feature maps of a network's layer, as a grid of the most active channels."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import InputError
from .figures import new_figure, show_image
from .images import display_rgb

__all__ = ["feature_maps", "top_channels", "feature_grid", "plot_feature_maps"]


def _named_layer(model: torch.nn.Module, layer: str) -> torch.nn.Module:
    modules = dict(model.named_modules())
    for name in (layer, f"backbone.body.{layer}"):
        if name and name in modules:
            return modules[name]
    body = modules.get("backbone.body")
    choices = [n for n, _ in body.named_children()] if body is not None else sorted(n for n in modules if n)[:20]
    raise InputError(f"layer {layer!r} is not in the model; expected one of {', '.join(choices)}")


def feature_maps(model: torch.nn.Module, image: np.ndarray | torch.Tensor, layer: str) -> np.ndarray:
    """Activations of one layer of a Mask R-CNN backbone for one image, via a forward hook.

    The image goes through the model's own transform (normalisation, resizing to its
    working size) and its backbone only (no detection heads). For the DenseNet121
    backbones, ``layer`` names a child of ``model.backbone.body`` (torchvision's
    ``densenet121().features``: ``conv0``, ``pool0``, ``denseblock1`` .. ``denseblock4``,
    ``transition1`` .. ``transition3``, ``norm5``); any full module name
    (``backbone.fpn.layer_blocks.0``) works too.

    Parameters
    ----------
    model : torchvision MaskRCNN
        Its training mode is restored afterwards.
    image : ndarray (H, W, 4) uint8, or Tensor (4, H, W) float in [0, 1]
    layer : str

    Returns
    -------
    ndarray, shape (C, h, w), float32
        Cropped to the image (the padding the transform adds is removed), so the
        maps keep the image's aspect ratio.
    """

    module = _named_layer(model, layer)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 4:
            raise InputError(f"image has shape {image.shape}; expected an (H, W, 4) RGBY image")
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255.0)
    else:
        tensor = image.float()
    if tensor.ndim != 3 or tensor.shape[0] != 4:
        raise InputError(f"image tensor has shape {tuple(tensor.shape)}; expected (4, H, W)")
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output) -> None:
        out = output
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if isinstance(out, (list, tuple)):
            out = out[0]
        captured.append(out.detach())

    was_training = model.training
    handle = module.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            images, _ = model.transform([tensor.to(device)])
            model.backbone(images.tensors)
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise InputError(f"layer {layer!r} was not run by the backbone; choose a layer of model.backbone")
    out = captured[0][0].float()
    (h, w), (ph, pw) = images.image_sizes[0], images.tensors.shape[-2:]
    fh, fw = math.ceil(out.shape[-2] * h / ph), math.ceil(out.shape[-1] * w / pw)
    return out[:, :fh, :fw].cpu().numpy()


def top_channels(maps: np.ndarray, n: int) -> list[int]:
    """Indices of the ``n`` channels with the highest mean activation, highest first.

    >>> top_channels(np.arange(3)[:, None, None] * np.ones((3, 2, 2)), 2)
    [2, 1]
    """
    if maps.ndim != 3:
        raise ValueError(f"maps has shape {maps.shape}; expected (C, h, w)")
    means = maps.reshape(maps.shape[0], -1).mean(axis=1)
    return [int(i) for i in np.argsort(-means, kind="stable")[: max(0, n)]]


def feature_grid(
    maps: np.ndarray, *, n_channels: int = 16, ncols: int = 4, gap_px: int = 1
) -> tuple[np.ndarray, list[int]]:
    """Tile the most active channels of ``maps`` into one picture.

    Parameters
    ----------
    maps : ndarray, shape (C, h, w), float
    n_channels : int
        Channels shown (the most active, :func:`top_channels`), at most C.
    ncols : int
        Tiles per row.
    gap_px : int
        NaN pixels between tiles (shown as background by ``imshow``).

    Returns
    -------
    grid : ndarray, shape (rows*h + (rows-1)*gap, cols*w + (cols-1)*gap), float32
        Each tile scaled to [0, 1] on its own.
    channels : list of int
        The channel of each tile, row by row.

    Examples
    --------
    >>> grid, ch = feature_grid(np.random.rand(8, 5, 7), n_channels=4, ncols=2)
    >>> grid.shape, len(ch)
    ((11, 15), 4)
    """
    channels = top_channels(maps, min(n_channels, maps.shape[0]))
    ncols = max(1, min(ncols, len(channels)))
    nrows = max(1, math.ceil(len(channels) / ncols))
    h, w = maps.shape[1:]
    grid = np.full((nrows * h + (nrows - 1) * gap_px, ncols * w + (ncols - 1) * gap_px), np.nan, np.float32)
    for i, c in enumerate(channels):
        tile = maps[c].astype(np.float32)
        lo, hi = float(tile.min()), float(tile.max())
        tile = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
        r, q = divmod(i, ncols)
        grid[r * (h + gap_px) : r * (h + gap_px) + h, q * (w + gap_px) : q * (w + gap_px) + w] = tile
    return grid, channels


def plot_feature_maps(
    maps: np.ndarray,
    *,
    layer: str,
    image: np.ndarray | None = None,
    n_channels: int = 16,
    ncols: int = 4,
    stretch: bool = True,
) -> Figure:
    """The most active channels of a layer's activations, each as its own panel.

    Parameters
    ----------
    maps : ndarray, shape (C, h, w)
        From :func:`feature_maps`.
    layer : str
        Named in the title.
    image : ndarray (H, W, 4) uint8, optional
        Shown first, for reference, at the same aspect ratio.
    n_channels, ncols : int
        Channels shown and panels per row.

    Returns
    -------
    Figure
        Each channel in viridis, scaled to its own range, titled with its index and
        mean activation.
    """
    channels = top_channels(maps, min(n_channels, maps.shape[0]))
    tiles = ([("input image", None)] if image is not None else []) + [
        (f"channel {c} (mean {maps[c].mean():.2g})", c) for c in channels
    ]
    ncols = max(1, min(ncols, len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    h, w = maps.shape[1:]
    tile_in = 2.4
    fig = new_figure(tile_in * ncols, tile_in * h / w * nrows + 0.7)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes[len(tiles) :]:
        ax.set_axis_off()
    for ax, (name, c) in zip(axes, tiles):
        if c is None:
            show_image(ax, display_rgb(image, stretch=stretch))
        else:
            show_image(ax, maps[c], cmap="viridis")
        ax.set_title(name, fontsize=8)
    fig.suptitle(
        f"Feature maps of {layer}: {maps.shape[0]} channels of {h} × {w}, the {len(channels)} most active", fontsize=10
    )
    return fig
