"""Classifier inference: a trained run of ``hpaseg classify`` loaded for prediction, and the
cell-classifier route of ``hpaseg predict`` (segment first, then classify each cell).

The route (:class:`CellClassifierPredictor`):

1. The cells are given (the segmentation masks of the test images at their original
   resolution); they are the submitted masks as they are.
2. Each cell is cropped as in training (:func:`hpaseg.classification.data.crop_cell`:
   square around the cell, background zeroed, resized to the run's crop size) and
   classified by the cell-level run: per-class probabilities ``p_cell``.
3. Optional fusion with an image-level run: the whole image gets probabilities
   ``p_image`` and, for every class k = 0..18 including Negative,
   ``p_k = w * p_cell_k + (1 - w) * p_image_k`` with ``w = fusion_weight`` (0.5 by
   default; 1 = the cell classifier alone, 0 = every cell gets its image's scores).
4. Labels by the label rule (:func:`hpaseg.labels.cell_labels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from ..classes import NUM_CLASSES
from ..errors import InputError
from ..labels import LabelRule, cell_labels
from ..runtime.checkpoint import Checkpointer
from ..transforms import square_image, to_tensor
from .config import CHECKPOINT_KIND, FINAL
from .data import channel_count, crop_cells, select_channels
from .models import build_classifier

__all__ = [
    "LoadedClassifier",
    "load_classifier",
    "fuse_probabilities",
    "classifier_cell_scores",
    "CellClassifierPredictor",
]

#: Per-cell (class, confidence) pairs of one image.
CellScores = dict[int, list[tuple[int, float]]]


@dataclass
class LoadedClassifier:
    """A trained classifier ready for inference, with the settings its inputs need."""

    model: torch.nn.Module
    backbone: str
    level: str
    channels: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    thresholds: np.ndarray  # (19,) tuned on the validation split
    device: torch.device
    path: Path

    @torch.no_grad()
    def probabilities(self, inputs: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Per-class probabilities of inputs already at the input size.

        Parameters
        ----------
        inputs : ndarray, shape (N, S, S, 4), uint8
            RGBY crops or squared images (``S`` = ``input_size``).

        Returns
        -------
        ndarray, shape (N, 19), float64
        """
        normalize = v2.Normalize(list(self.mean), list(self.std))
        out = np.zeros((len(inputs), NUM_CLASSES))
        for start in range(0, len(inputs), batch_size):
            x = torch.stack(
                [normalize(to_tensor(select_channels(a, self.channels))) for a in inputs[start : start + batch_size]]
            ).to(self.device)
            out[start : start + len(x)] = torch.sigmoid(self.model(x).float()).cpu().numpy()
        return out


def load_classifier(
    path: str | Path, *, level: str | None = None, device: str | torch.device = "cpu", param: str = "classifier"
) -> LoadedClassifier:
    """Load ``RUN/model_final.pth`` of ``hpaseg classify`` (``path`` is the run folder or the file).

    Raises
    ------
    InputError
        No such file, not a classifier checkpoint, or a level other than asked.
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{FINAL}.pth"
    if not path.is_file():
        raise InputError(
            f"{param} {path}: no such file; give a run folder of 'hpaseg classify' (with {FINAL}.pth)", param=param
        )
    state = Checkpointer.load(path)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise InputError(f"{param} {path}: not a classifier checkpoint of 'hpaseg classify'", param=param)
    if level is not None and state["level"] != level:
        raise InputError(
            f"{param} {path}: trained at the {state['level']} level, not the {level} level; give a run of 'hpaseg classify --level {level}'",
            param=param,
        )
    if state.get("thresholds") is None:
        raise InputError(
            f"{param} {path}: an unfinished run (no tuned thresholds); finish it with 'hpaseg classify --resume'",
            param=param,
        )
    model = build_classifier(state["backbone"], in_chans=channel_count(state["channels"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(
            f"{param} {path}: weights do not fit backbone {state['backbone']!r} ({str(exc).splitlines()[0]})",
            param=param,
        ) from exc
    device = torch.device(device)
    return LoadedClassifier(
        model.to(device).eval(),
        state["backbone"],
        state["level"],
        state["channels"],
        int(state["input_size"]),
        tuple(state["mean"]),
        tuple(state["std"]),
        np.asarray(state["thresholds"]),
        device,
        path,
    )


def fuse_probabilities(p_cell: np.ndarray, p_image: np.ndarray, weight: float) -> np.ndarray:
    """Fuse cell and image probabilities: ``weight * p_cell + (1 - weight) * p_image``.

    Parameters
    ----------
    p_cell : ndarray, shape (N, 19), float
        One row per cell.
    p_image : ndarray, shape (19,), float
        The image's probabilities, shared by its cells.
    weight : float
        In [0, 1]; 1 keeps the cell probabilities.

    Returns
    -------
    ndarray, shape (N, 19), float64

    Examples
    --------
    >>> fuse_probabilities(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0.5, 1.0]), 0.5).tolist()
    [[0.75, 0.5], [0.5, 0.75]]
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"fusion_weight {weight}: expected a number in [0, 1]", param="fusion_weight")
    return (
        weight * np.asarray(p_cell, dtype=np.float64) + (1.0 - weight) * np.asarray(p_image, dtype=np.float64)[None, :]
    )


def classifier_cell_scores(
    image: np.ndarray,
    label_image: np.ndarray,
    cell_classifier: LoadedClassifier,
    image_classifier: LoadedClassifier | None = None,
    *,
    fusion_weight: float = 0.5,
    rule: LabelRule = LabelRule(),
) -> CellScores:
    """Per-cell (class, confidence) pairs of one image by the cell-classifier route (module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
        RGBY at original resolution.
    label_image : ndarray, shape (H, W), int
        Its cells (0 = background).
    cell_classifier, image_classifier : LoadedClassifier
        A cell-level run, and optionally an image-level run to fuse with.
    fusion_weight : float
        ``w`` of :func:`fuse_probabilities`.
    rule : LabelRule

    Returns
    -------
    dict of int to list of (int, float)
        Cell label -> :func:`hpaseg.labels.cell_labels` of its (fused) probabilities.
    """
    crops, ids = crop_cells(image, label_image, cell_classifier.input_size)
    if not len(ids):
        return {}
    p = cell_classifier.probabilities(crops)
    if image_classifier is not None:
        p_image = image_classifier.probabilities(square_image(image, image_classifier.input_size)[None])[0]
        p = fuse_probabilities(p, p_image, fusion_weight)
    return {int(cell): cell_labels({k: float(p[i, k]) for k in range(NUM_CLASSES)}, rule) for i, cell in enumerate(ids)}


class CellClassifierPredictor:
    """The cell-classifier route: given cells, each classified (and optionally fused with an
    image-level classifier), with the interface of the Mask R-CNN predictors.

    Parameters
    ----------
    cell_classifier : LoadedClassifier
        A cell-level run.
    image_classifier : LoadedClassifier, optional
        An image-level run to fuse with.
    fusion_weight : float
    rule : LabelRule
    """

    #: The route labels given cells: every image needs its cell mask.
    needs_cells = True

    def __init__(
        self,
        cell_classifier: LoadedClassifier,
        image_classifier: LoadedClassifier | None = None,
        *,
        fusion_weight: float = 0.5,
        rule: LabelRule = LabelRule(),
    ) -> None:
        if cell_classifier.level != "cell":
            raise InputError(
                f"classifier {cell_classifier.path}: trained at the {cell_classifier.level} level, not the cell level; give a run of 'hpaseg classify --level cell'",
                param="classifier",
            )
        if image_classifier is not None and image_classifier.level != "image":
            raise InputError(
                f"image_classifier {image_classifier.path}: trained at the {image_classifier.level} level, not the image level",
                param="image_classifier",
            )
        fuse_probabilities(np.zeros((0, NUM_CLASSES)), np.zeros(NUM_CLASSES), fusion_weight)  # checks the weight
        self.cell_classifier = cell_classifier
        self.image_classifier = image_classifier
        self.fusion_weight = fusion_weight
        self.rule = rule

    @classmethod
    def from_runs(
        cls,
        classifier: str | Path,
        image_classifier: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        fusion_weight: float = 0.5,
        rule: LabelRule = LabelRule(),
    ) -> CellClassifierPredictor:
        """Load the runs of ``hpaseg classify`` (run folders or their ``model_final.pth``)."""
        cell = load_classifier(classifier, level="cell", device=device, param="classifier")
        image = (
            None
            if image_classifier is None
            else load_classifier(image_classifier, level="image", device=device, param="image_classifier")
        )
        return cls(cell, image, fusion_weight=fusion_weight, rule=rule)

    def __call__(
        self, images: Sequence[np.ndarray], cells: Sequence[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, CellScores]]:
        """Labels of the given cells of a batch of ``(H, W, 4)`` uint8 RGBY images; returns the cell masks as given."""
        if cells is None or any(c is None for c in cells):
            raise InputError("the cell-classifier route needs the cell mask of every image (masks)", param="masks")
        return [
            (
                label_image,
                classifier_cell_scores(
                    image,
                    label_image,
                    self.cell_classifier,
                    self.image_classifier,
                    fusion_weight=self.fusion_weight,
                    rule=self.rule,
                ),
            )
            for image, label_image in zip(images, cells)
        ]
