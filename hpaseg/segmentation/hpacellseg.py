"""The ``hpacellseg`` method: HPA-Cell-Segmentation's U-Nets and its ``label_cell``.

Needs the ``hpacellseg`` package (``pip install 'hpaseg[hpacellseg]'``), imported only
here, and the two published weight files.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage import transform

from ..classes import Channel
from ..errors import InputError
from .base import check_rgby, relabel_pair

__all__ = ["HpaCellSegSegmenter", "HPA_INSTALL_HINT", "HPA_WEIGHTS_HINT"]

#: Input normalisation the HPA-Cell-Segmentation models were trained with
#: (``hpacellseg.cellsegmentator.NORMALIZE``): per-channel mean and one std, on 0-1 values.
_HPA_NORMALIZE_MEAN: tuple[float, float, float] = (124 / 255, 117 / 255, 104 / 255)


_HPA_NORMALIZE_STD: float = 1 / (0.0167 * 255)


#: ``padding=True`` pads the scaled image by reflection to a multiple of this size (as the package does).
_HPA_PAD_MULTIPLE_PX = 32


HPA_INSTALL_HINT = (
    "pip install 'hpaseg[hpacellseg]' (or pip install git+https://github.com/CellProfiling/HPA-Cell-Segmentation.git)"
)


#: Zenodo addresses of the published weights, as named in ``hpacellseg.constants``.
HPA_WEIGHTS_HINT = (
    "the published weights are dpn_unet_nuclei_v1.pth and dpn_unet_cell_3ch_v1.pth at https://zenodo.org/record/4665863"
)


def _import_label_cell() -> Any:
    try:
        from hpacellseg.utils import label_cell
    except ImportError as exc:
        raise InputError(
            "method 'hpacellseg' needs the hpacellseg package (HPA-Cell-Segmentation), "
            f"which cannot be imported ({exc}); install it with {HPA_INSTALL_HINT}"
        ) from exc
    return label_cell


def _load_model(model: Any, param: str, device: str) -> Any:
    """A torch module as given, or loaded from a file holding a whole pickled model."""

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"{param} {path}: no such weight file; {HPA_WEIGHTS_HINT}", param=param)
        try:
            # The published files are whole pickled modules, not state dicts: only load trusted files.
            model = torch.load(path, map_location=torch.device(device), weights_only=False)
        except ModuleNotFoundError as exc:
            raise InputError(
                f"{param} {path}: unpickling the model needs module {exc.name!r}; the HPA models need pytorch_zoo "
                "(pip install https://github.com/haoxusci/pytorch_zoo/archive/master.zip)",
                param=param,
            ) from exc
        except Exception as exc:  # torch raises many types for a bad file
            raise InputError(
                f"{param} {path}: cannot load a torch model ({type(exc).__name__}: {exc})", param=param
            ) from exc
    if isinstance(model, torch.nn.DataParallel):
        model = model.module
    if not isinstance(model, torch.nn.Module):
        raise InputError(
            f"{param}: expected a whole torch model (an nn.Module, "
            f"as HPA-Cell-Segmentation publishes), got {type(model).__name__}",
            param=param,
        )
    return model.to(device).eval()


class HpaCellSegSegmenter:
    """The ``hpacellseg`` method: HPA-Cell-Segmentation's U-Nets and its ``label_cell``.

    The networks are run here, following ``CellSegmentator.pred_nuclei`` /
    ``pred_cells`` (scale by ``scale_factor`` with anti-aliasing, normalise with the
    package's constants, softmax, background channel zeroed, resize back to the
    original size, uint8), because the package's own runner calls
    ``skimage.transform.rescale(multichannel=True)``, removed from scikit-image, and
    needs OpenCV. Its deterministic post-processing, ``hpacellseg.utils.label_cell``
    (which works at the original resolution), is used as it is; its output is
    renumbered so that cell k holds nucleus k (cells left without a nucleus dropped).

    Parameters
    ----------
    nuclei_model, cell_model : path or torch.nn.Module
        The nucleus model (input: blue three times) and the 3-channel cell model
        (input: red, yellow, blue), as files holding whole pickled models (the
        published ``.pth`` files) or as loaded modules.
    device : str
        ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
    scale_factor : float
        Images are scaled by this before the networks (0.25 for HPA images).
    padding : bool
        Pad the scaled image by reflection to a multiple of 32 px first (needed for
        sizes the networks cannot take, e.g. 1728 px at scale 0.25).

    Raises
    ------
    InputError
        Package not installed, weight file missing or unreadable, bad device.
    """

    needs_pixels = True

    def __init__(
        self,
        nuclei_model: Any,
        cell_model: Any,
        *,
        device: str = "cpu",
        scale_factor: float = 0.25,
        padding: bool = False,
    ) -> None:

        self._label_cell = _import_label_cell()
        if not (device == "cpu" or device.startswith("cuda")):
            raise InputError(f"device: expected 'cpu' or 'cuda[:N]', got {device!r}", param="device")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device}: no CUDA device is available here; use cpu", param="device")
        if not 0.0 < scale_factor <= 1.0:
            raise InputError(f"scale_factor: expected a value in (0, 1], got {scale_factor}", param="scale_factor")
        self.device = device
        self.scale_factor = float(scale_factor)
        self.padding = bool(padding)
        self.nuclei_model = _load_model(nuclei_model, "nuclei_model", device)
        self.cell_model = _load_model(cell_model, "cell_model", device)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_label_cell"]  # re-imported in worker processes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._label_cell = _import_label_cell()

    def predict(self, model: Any, rgb: np.ndarray) -> np.ndarray:
        """Run one network on an ``(H, W, 3)`` uint8 image.

        Returns
        -------
        ndarray, shape (H, W, 3), uint8
            Class probabilities x 255 (background, border, interior), background zeroed,
            at the input's size: what ``CellSegmentator.pred_*`` return.
        """

        height, width = rgb.shape[:2]
        scaled = transform.rescale(rgb, self.scale_factor, channel_axis=-1)  # float64 in [0, 1]
        rows, cols = scaled.shape[:2]
        top = left = 0
        if self.padding:
            top = left = _HPA_PAD_MULTIPLE_PX
            pad = (
                (top, _HPA_PAD_MULTIPLE_PX - rows % _HPA_PAD_MULTIPLE_PX),
                (left, _HPA_PAD_MULTIPLE_PX - cols % _HPA_PAD_MULTIPLE_PX),
                (0, 0),
            )
            scaled = np.pad(scaled, pad, mode="symmetric")
        x = torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32))[None].to(self.device)
        mean = torch.tensor(_HPA_NORMALIZE_MEAN, dtype=torch.float32, device=self.device)[:, None, None]
        x = (x - mean) / _HPA_NORMALIZE_STD
        with torch.no_grad():
            prob = torch.softmax(model(x), dim=1)[0].cpu().numpy()
        prob = prob[:, top : top + rows, left : left + cols].transpose(1, 2, 0).copy()
        prob[..., 0] = 0.0
        prob = transform.resize(
            prob, (height, width), order=0, anti_aliasing=False
        )  # nearest, as cv2 INTER_AREA enlarging
        return np.rint(np.clip(prob, 0.0, 1.0) * 255).astype(np.uint8)

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Segmenter`."""

        image = check_rgby(image, image_id)
        blue = image[..., Channel.BLUE]
        nuclei_pred = self.predict(self.nuclei_model, np.dstack([blue, blue, blue]))
        cell_pred = self.predict(
            self.cell_model, np.dstack([image[..., Channel.RED], image[..., Channel.YELLOW], blue])
        )
        with warnings.catch_warnings():  # label_cell uses skimage arguments deprecated since 0.26
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            nuclei_label, cell_label = self._label_cell(nuclei_pred, cell_pred)
        return relabel_pair(np.asarray(cell_label), np.asarray(nuclei_label), drop_cells_without_nucleus=True)
