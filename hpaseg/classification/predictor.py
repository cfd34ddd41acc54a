"""Classifier inference: a trained run of ``hpaseg classify`` loaded for prediction, and the
cell-classifier route of ``hpaseg predict`` (segment first, then classify each cell).

The route (:class:`CellClassifierPredictor`):

1. The cells are given (the segmentation masks of the test images at their original
   resolution, or Mask R-CNN's cells in the hybrid route); they are the submitted masks
   as they are.
2. Each cell is classified by the cell-level run: per-class probabilities ``p_cell``.
   A descriptors run describes each cell (:func:`hpaseg.descriptors.describe_cells`);
   a CNN run crops it as in training (:func:`hpaseg.classification.data.crop_cell`).
3. The image's probabilities ``p_image`` (:func:`hpaseg.weak.image_estimate`): pooled
   from its cells', mixed half and half (``image_model_weight``) with an image-level
   model's: an image-level run's when given, else the image head of a run of the
   weak-supervision trainer (on the descriptors, or on the CNN's pooled cell features;
   a run trained with image_epochs 0, on propagated labels by the study's trainer or by
   an earlier hpaseg has none: pooled alone).
4. Scores by the score rule (:class:`hpaseg.weak.ScoreRule`: by default
   ``0.2 * p_cell + 0.8 * p_image``, Negative from the other classes), then labels by the label rule
   (:func:`hpaseg.labels.cell_labels`; every class by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from ..classes import NUM_CLASSES
from ..descriptors import describe_cells, descriptor_names
from ..errors import InputError
from ..labels import LabelRule, border_cells, cell_labels
from ..runtime.checkpoint import Checkpointer
from ..transforms import square_image, to_tensor
from ..weak import ScoreRule, fuse_scores
from .cell_trainer import CROP_NET, image_head_of
from .config import CHECKPOINT_KIND, FINAL
from .data import channel_count, crop_cells, select_channels
from .models import DESCRIPTORS, CropNet, DescriptorNet, build_classifier

__all__ = [
    "LoadedClassifier",
    "load_classifier",
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
    # (19,) tuned on the validation split for this model; None when the model trained on the
    # validation images too (a descriptors run refit on train + val), as no data is left to tune on
    thresholds: np.ndarray | None
    device: torch.device
    path: Path
    image_model: torch.nn.Module | None = None  # runs of the weak-supervision trainer: the image head

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

    @torch.no_grad()
    def cell_probabilities(self, image: np.ndarray, label_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class probabilities of every cell of one image (a cell-level run).

        Parameters
        ----------
        image : ndarray, shape (H, W, 4), uint8
            RGBY at original resolution.
        label_image : ndarray, shape (H, W), int
            Its cells (0 = background).

        Returns
        -------
        probabilities : ndarray, shape (N, 19), float64
        ids : ndarray, shape (N,)
            The cell labels, one per row.
        """
        p, _, ids = self.cell_and_image_probabilities(image, label_image)
        return p, ids

    @torch.no_grad()
    def cell_and_image_probabilities(
        self, image: np.ndarray, label_image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """:meth:`cell_probabilities`, with the image head's probabilities ``(19,)`` of the
        image in between (None without an image head, or without cells)."""
        if self.backbone == DESCRIPTORS:
            x, ids = describe_cells(image, label_image)
            if not len(ids):
                return np.zeros((0, NUM_CLASSES)), None, ids
            x = torch.from_numpy(x).to(self.device)
            p = torch.sigmoid(self.model(x).float()).cpu().numpy().astype(np.float64)
            q = None
            if self.image_model is not None:
                q = torch.sigmoid(self.image_model(x).float()).cpu().numpy().astype(np.float64)
            return p, q, ids
        crops, ids = crop_cells(image, label_image, self.input_size)
        if not len(ids):
            return np.zeros((0, NUM_CLASSES)), None, ids
        if not isinstance(self.model, CropNet):
            return self.probabilities(crops), None, ids
        return (*self._crop_net_probabilities(crops), ids)

    def _crop_net_probabilities(self, crops: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """A :class:`CropNet` run's cell probabilities ``(N, 19)`` of uint8 crops, and its
        image head's ``(19,)`` from their pooled features (None without a head)."""
        p, features = [], []
        for start in range(0, len(crops), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size])).to(self.device)
            f = self.model.features(x)
            features.append(f.float())
            p.append(torch.sigmoid(self.model.logits(f).float()).cpu().numpy())
        q = None
        if self.image_model is not None:
            q = torch.sigmoid(self.image_model(torch.cat(features)).float()).cpu().numpy().astype(np.float64)
        return np.concatenate(p).astype(np.float64), q

    def image_probabilities(self, image: np.ndarray) -> np.ndarray:
        """Per-class probabilities ``(19,)`` of a whole ``(H, W, 4)`` uint8 image (an image-level run)."""
        return self.probabilities(square_image(image, self.input_size)[None])[0]


def _build_model(state: dict) -> torch.nn.Module:
    if state["backbone"] == DESCRIPTORS:
        if state.get("descriptor_names") != descriptor_names():
            raise InputError(
                "classifier: its descriptors differ from this hpaseg version's; retrain it with 'hpaseg classify'",
                param="classifier",
            )
        return DescriptorNet(int(state["n_inputs"]), **state["net"])
    classifier = build_classifier(state["backbone"], in_chans=channel_count(state["channels"]))
    if state.get("net_kind") == CROP_NET:
        return CropNet(classifier, state["mean"], state["std"])
    return classifier


def load_classifier(
    path: str | Path, *, level: str | None = None, device: str | torch.device = "cpu", param: str = "classifier"
) -> LoadedClassifier:
    """Load ``RUN/model_final.pth`` of ``hpaseg classify`` (``path`` is the run folder or the file).

    Raises
    ------
    InputError
        No such file, not a classifier checkpoint, a level other than asked, or not the
        final checkpoint of a finished run.
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
    # The final checkpoint says "finished"; those of an earlier hpaseg say so by their thresholds.
    if not state.get("finished", state.get("thresholds") is not None):
        raise InputError(
            f"{param} {path}: not the final checkpoint of a finished run; finish it with 'hpaseg classify --resume'",
            param=param,
        )
    model = _build_model(state)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(
            f"{param} {path}: weights do not fit backbone {state['backbone']!r} ({str(exc).splitlines()[0]})",
            param=param,
        ) from exc
    device = torch.device(device)
    image_model = image_head_of(state)
    return LoadedClassifier(
        model.to(device).eval(),
        state["backbone"],
        state["level"],
        state["channels"],
        int(state["input_size"]),
        tuple(state["mean"]),
        tuple(state["std"]),
        None if state.get("thresholds") is None else np.asarray(state["thresholds"]),
        device,
        path,
        None if image_model is None else image_model.to(device),
    )


def classifier_cell_scores(
    image: np.ndarray,
    label_image: np.ndarray,
    cell_classifier: LoadedClassifier,
    image_classifier: LoadedClassifier | None = None,
    *,
    score_rule: ScoreRule = ScoreRule(),
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
        A cell-level run, and optionally an image-level run (its probabilities are the
        image model's; else the cell run's image head, if it has one).
    score_rule : ScoreRule
        Fusion of cell and image probabilities, and Negative.
    rule : LabelRule

    Returns
    -------
    dict of int to list of (int, float)
        Cell label -> :func:`hpaseg.labels.cell_labels` of its scores.
    """
    p, p_image, ids = cell_classifier.cell_and_image_probabilities(image, label_image)
    if not len(ids):
        return {}
    if image_classifier is not None:
        p_image = image_classifier.image_probabilities(image)
    s = fuse_scores(p, p_image, score_rule, on_border=np.isin(ids, list(border_cells(label_image))))
    return {int(cell): cell_labels({k: float(s[i, k]) for k in range(NUM_CLASSES)}, rule) for i, cell in enumerate(ids)}


class CellClassifierPredictor:
    """The cell-classifier route: given cells, each classified (its probabilities fused with
    its image's), with the interface of the Mask R-CNN predictors.

    Parameters
    ----------
    cell_classifier : LoadedClassifier
        A cell-level run.
    image_classifier : LoadedClassifier, optional
        An image-level run giving the image model's probabilities (default: the cell run's
        image head, if any), mixed with those pooled from the cells.
    score_rule : ScoreRule
    rule : LabelRule
    """

    #: The route labels given cells: every image needs its cell mask.
    needs_cells = True

    def __init__(
        self,
        cell_classifier: LoadedClassifier,
        image_classifier: LoadedClassifier | None = None,
        *,
        score_rule: ScoreRule = ScoreRule(),
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
        self.cell_classifier = cell_classifier
        self.image_classifier = image_classifier
        self.score_rule = score_rule
        self.rule = rule

    @classmethod
    def from_runs(
        cls,
        classifier: str | Path,
        image_classifier: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        score_rule: ScoreRule = ScoreRule(),
        rule: LabelRule = LabelRule(),
    ) -> CellClassifierPredictor:
        """Load the runs of ``hpaseg classify`` (run folders or their ``model_final.pth``)."""
        cell = load_classifier(classifier, level="cell", device=device, param="classifier")
        image = (
            None
            if image_classifier is None
            else load_classifier(image_classifier, level="image", device=device, param="image_classifier")
        )
        return cls(cell, image, score_rule=score_rule, rule=rule)

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
                    score_rule=self.score_rule,
                    rule=self.rule,
                ),
            )
            for image, label_image in zip(images, cells)
        ]
