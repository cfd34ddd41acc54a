"""The RoI heads of hpaseg's torchvision Mask R-CNN: class-agnostic cell detection and
masks (torchvision's own heads, one foreground class) plus a multi-label head that gives
each cell a probability for every one of the 19 classes.

The label head reads two inputs (``label_inputs``):

* ``"features"``: its own two-layer MLP (:class:`LabelHead`) on the RoI-pooled features
  the box head reads (7x7 per FPN channel), so what it learns does not compete with the
  class-agnostic box features;
* ``"pixels+features"`` (the default): those logits plus a small CNN's
  (:class:`PixelHead`) on the RoI's own pixels, the four normalised channels of the
  working image cropped to the box (:func:`pixel_crops`, 32x32 by RoIAlign). The
  localisation patterns the label head has to tell apart (nucleoli, speckles, vesicles,
  a rim at the membrane) are a few pixels wide; the backbone's stride-4 to stride-32
  features, learned from scratch mostly for finding cells, keep little of them in a few
  hundred iterations. The design experiment, apart from Mask R-CNN (the pixel head
  alone on the 3,068 training cells of ``bench learn``'s seed-0 set, the teacher's
  probabilities as targets, 15 epochs; scored on that set's true test cells): per-cell
  macro AP after the score rule 0.826 with the teacher's probabilities as targets, 0.805
  with the hard refined labels, the descriptors teacher's own 0.816. The distillation
  weight ``d`` was chosen on a validation split of seed 1's *training* images (150 to
  train, 50 to score against their per-cell truth): 0.766 at ``d`` 0, 0.771 at 0.5,
  0.766 at 1. Figures of the whole model: benchmarks/RESULTS.md, on seeds used for
  neither.

Training: RoIs are the image's ground-truth cell boxes plus up to
``label_samples_per_image`` foreground proposals (box IoU >= the box head's foreground
threshold with a cell, which they take the targets of), each with its cell's multi-hot
target (``targets[i]["multilabels"]``, shape (cells, 19)) and, when a teacher scored the
cells, its probabilities (``targets[i]["label_probs"]``, NaN rows for cells it did not
score); loss ``loss_labels`` (:func:`multilabel_loss`) = binary cross-entropy against
``(1 - d) * hard + d * soft`` with ``d`` = ``distill_weight`` (rows without a teacher:
the hard target). Inference: the head runs on the final detections' boxes; each
detection gets ``label_probs`` (19 sigmoid probabilities).

The pixel head needs the batch of working images: :func:`hand_images_to_heads` registers
a forward hook on the model's transform that gives the RoI heads its output.

Image head (``image_head``, with the pixel head): the cell classifier's image head
(:class:`hpaseg.weak.ImageHead`, one owner) on the pixel head's features of an image's
cells (:meth:`PixelHead.embed`), trained on the training images' labels with bag mixing
once the pixel head is fitted and frozen (:func:`hpaseg.detection.trainer`), then frozen
too. In eval mode each output carries ``label_features`` (detections, F), and the
predictor pools the kept cells' into the image's probabilities
(:func:`hpaseg.detection.predictor.cells_from_output`), which the score rule mixes with
those pooled from the cells (:func:`hpaseg.weak.image_estimate`), as for the cell
classifier. Why: on ``bench learn`` Mask R-CNN's oracle-image diagnostic (its cells and
within-image ranking, image recognition perfect) was 0.85 against its mAP of 0.67: image
recognition was most of what it lost.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import box_iou, roi_align

from ..classes import image_labels_of_cells
from ..errors import InputError
from ..weak import ImageHead, fit_image_head

__all__ = [
    "LABEL_SAMPLES_PER_IMAGE",
    "LABEL_REPRESENTATION",
    "LABEL_INPUTS",
    "DEFAULT_LABEL_INPUTS",
    "PIXEL_ROI_SIZE",
    "DEFAULT_DISTILL_WEIGHT",
    "LabelHead",
    "PixelHead",
    "pixel_crops",
    "distill_targets",
    "hand_images_to_heads",
    "LABEL_EPOCHS",
    "fit_pixel_head",
    "MultiLabelRoIHeads",
    "multilabel_loss",
    "IMAGE_EPOCHS",
    "IMAGE_HEAD_FIT",
    "fit_image_head_on_cells",
    "wants_image_head",
    "FittedLabelParts",
]

log = logging.getLogger(__name__)

#: Foreground proposals per image the label head trains on, besides the ground-truth boxes.
LABEL_SAMPLES_PER_IMAGE = 64
#: Width of the label head's hidden layers.
LABEL_REPRESENTATION = 512
#: What the label head reads: the pooled FPN features alone, or those and the RoI's pixels.
LABEL_INPUTS: tuple[str, ...] = ("features", "pixels+features")
DEFAULT_LABEL_INPUTS = "pixels+features"
#: Side in px of the pixel head's RoI crops (about a cell's size at 256 px working size).
PIXEL_ROI_SIZE = 32
#: Width of the pixel head's first convolutions (then 2x and 4x).
PIXEL_WIDTH = 32
#: ``d`` of the distillation target ``(1 - d) * hard + d * soft`` when a teacher is given.
DEFAULT_DISTILL_WEIGHT = 0.5
#: Epochs of the pixel head over the training cells' crops before the detector trains
#: (:func:`fit_pixel_head`); 0 = trained with the rest of the model only.
LABEL_EPOCHS = 15
#: Epochs of the image head on the pixel features of the training images' cells (0 = none).
IMAGE_EPOCHS = 200
#: The image head's bag mixing and optimiser: the cell classifier's CPU preset
#: (:data:`hpaseg.classification.CELL_PRESETS`), chosen there by cross-validation.
IMAGE_HEAD_FIT: dict = {"mix": 0.75, "lr": 1e-3, "weight_decay": 1e-4}
#: Crops per step and AdamW's learning rate (peak of a one-cycle schedule) of :func:`fit_pixel_head`.
_FIT_BATCH, _FIT_LR, _FIT_WEIGHT_DECAY = 64, 3e-3, 1e-4


def check_label_inputs(label_inputs: str) -> str:
    """``label_inputs`` if it is one of :data:`LABEL_INPUTS`, else an InputError."""
    if label_inputs not in LABEL_INPUTS:
        raise InputError(
            f"label_inputs {label_inputs!r}: expected one of {', '.join(LABEL_INPUTS)}", param="label_inputs"
        )
    return label_inputs


class LabelHead(nn.Sequential):
    """Two hidden layers (ReLU) and one logit per class, on flattened RoI features.

    Parameters
    ----------
    in_features : int
        Channels x height x width of a pooled RoI.
    num_labels : int
    representation : int
        Width of the hidden layers.
    """

    def __init__(self, in_features: int, num_labels: int, representation: int = LABEL_REPRESENTATION) -> None:
        super().__init__(
            nn.Flatten(start_dim=1),
            nn.Linear(in_features, representation),
            nn.ReLU(inplace=True),
            nn.Linear(representation, representation),
            nn.ReLU(inplace=True),
            nn.Linear(representation, num_labels),
        )
        self.num_labels = num_labels


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PixelHead(nn.Module):
    """A small CNN giving one logit per class from a RoI's pixel crop.

    Five 3x3 convolutions (``width``, ``width``, pool, ``2 width``, ``2 width``, pool,
    ``4 width``) with BatchNorm and ReLU; the last map's mean and maximum over space, then
    a linear layer. Mean and maximum: a pattern spread over the cell and one in a few
    bright spots both show.

    Parameters
    ----------
    num_labels : int
    in_channels : int
    width : int
    """

    def __init__(self, num_labels: int, in_channels: int = 4, width: int = PIXEL_WIDTH) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(in_channels, width),
            _conv(width, width),
            nn.MaxPool2d(2),
            _conv(width, 2 * width),
            _conv(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv(2 * width, 4 * width),
        )
        self.classifier = nn.Linear(8 * width, num_labels)
        self.num_labels = num_labels

    @property
    def num_features(self) -> int:
        """Width of :meth:`embed`."""
        return int(self.classifier.in_features)

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """Features (R, F) of crops (R, C, s, s): the last map's mean and maximum over space."""
        f = self.features(crops)
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Logits (R, num_labels) of crops (R, C, s, s)."""
        return self.classifier(self.embed(crops))


def pixel_crops(images: torch.Tensor, boxes: list[torch.Tensor], size: int = PIXEL_ROI_SIZE) -> torch.Tensor:
    """Crops ``(R, C, size, size)`` of the batched images ``(B, C, H, W)`` at the boxes
    (one ``(R_i, 4)`` xyxy tensor per image, in the images' pixels), by RoIAlign.

    >>> im = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> pixel_crops(im, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], size=2).flatten().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """
    return roi_align(
        images, [b.to(images.dtype) for b in boxes], size, spatial_scale=1.0, sampling_ratio=2, aligned=True
    )


def distill_targets(hard: torch.Tensor, soft: torch.Tensor | None, distill_weight: float) -> torch.Tensor:
    """Targets ``(1 - d) * hard + d * soft`` per row; rows of ``soft`` holding NaN (no
    teacher) keep ``hard``. Binary cross-entropy is linear in its target, so this is the
    ``(1 - d)``/``d`` mix of the losses against each.

    >>> distill_targets(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.5, 0.5], [float("nan")] * 2]), 0.5).tolist()
    [[0.75, 0.25], [1.0, 0.0]]
    """
    if soft is None or distill_weight == 0.0:
        return hard
    known = torch.isfinite(soft).all(dim=1, keepdim=True)
    mixed = (1.0 - distill_weight) * hard + distill_weight * torch.nan_to_num(soft.to(hard.dtype))
    return torch.where(known, mixed, hard)


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of per-RoI label logits against targets in [0, 1].

    Parameters
    ----------
    logits : Tensor, shape (R, C)
    targets : Tensor, shape (R, C), float in [0, 1] (multi-hot, or mixed with a teacher's
        probabilities by :func:`distill_targets`)

    Returns
    -------
    Tensor, scalar; 0 (with a gradient path) when there is no RoI.

    >>> float(multilabel_loss(torch.zeros(2, 3), torch.ones(2, 3))) == float(torch.log(torch.tensor(2.0)))
    True
    """
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


def fit_pixel_head(
    head: PixelHead,
    crops: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int = LABEL_EPOCHS,
    seed: int = 0,
    progress=None,
) -> list[float]:
    """Train ``head`` alone on cell crops: AdamW with a one-cycle schedule, random flips and
    quarter turns, mean binary cross-entropy against ``targets``.

    The label head sees each training cell a few times in a few hundred detector
    iterations, too few to learn 19 classes from scratch; on the crops of every training
    cell (the dataset's cell boxes in the working images, the teacher's probabilities mixed
    into the targets) it learns them in seconds. Measured apart (a validation split of
    one synthetic set's training images, per-cell macro AP): 3 epochs reach 0.47 with
    AdamW, 0.29 with the detector's SGD (lr 0.02); 15 epochs of AdamW 0.70.

    Parameters
    ----------
    head : PixelHead
    crops : Tensor, shape (N, C, s, s)
        Normalised crops (:func:`pixel_crops` of the normalised working images).
    targets : Tensor, shape (N, num_labels), float in [0, 1]
    epochs : int
    seed : int
        Seeds the order of the crops and the augmentation (global generators untouched).
    progress : callable, optional
        Called with each epoch's mean loss.

    Returns
    -------
    list of float
        The mean loss of each epoch.
    """
    n = len(crops)
    if n == 0 or epochs <= 0:
        return []
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, -(-n // _FIT_BATCH))
    optimizer = torch.optim.AdamW(head.parameters(), lr=_FIT_LR, weight_decay=_FIT_WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, _FIT_LR, total_steps=epochs * steps_per_epoch)
    was_training = head.training
    head.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            pick = order[step * _FIT_BATCH : (step + 1) * _FIT_BATCH]
            x = crops[pick]
            if bool(torch.rand(1, generator=generator) < 0.5):
                x = x.flip(3)
            x = torch.rot90(x, int(torch.randint(4, (1,), generator=generator)), (2, 3))
            loss = multilabel_loss(head(x), targets[pick])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(pick)
        losses.append(total / n)
        if progress is not None:
            progress(losses[-1])
    _precise_batchnorm(head, crops)
    head.train(was_training)
    return losses


def wants_image_head(image_epochs: int, label_epochs: int, label_inputs: str) -> bool:
    """Whether a model has an image head: ``image_epochs`` > 0 on a pixel head fitted first
    (``label_inputs`` pixels+features, ``label_epochs`` > 0); both engines' rule.

    >>> wants_image_head(200, 15, "pixels+features"), wants_image_head(200, 0, "pixels+features")
    (True, False)
    """
    return image_epochs > 0 and label_epochs > 0 and label_inputs == "pixels+features"


def fit_image_head_on_cells(
    pixel_head: PixelHead,
    crops_by_image: list[torch.Tensor],
    multilabels_by_image: list[torch.Tensor],
    *,
    epochs: int = IMAGE_EPOCHS,
    seed: int = 0,
) -> ImageHead:
    """An image head fitted on the (fitted, frozen) pixel head's features of each training
    image's cells (:meth:`PixelHead.embed`), trained on the images' labels (the union of
    their cells' labels, as train.csv writes them) with bag mixing
    (:func:`hpaseg.weak.fit_image_head`, :data:`IMAGE_HEAD_FIT`): both engines' trainers.

    Parameters
    ----------
    pixel_head : PixelHead
    crops_by_image : list of Tensor, each (cells, 4, PIXEL_ROI_SIZE, PIXEL_ROI_SIZE)
        Every training image's cell crops, normalised as the model normalises its input.
    multilabels_by_image : list of Tensor, each (cells, 19)
        Each image's cells' multi-hot (hard) labels.
    epochs, seed : int

    Returns
    -------
    ImageHead
    """
    started = time.perf_counter()
    device = next(pixel_head.parameters()).device
    with torch.no_grad():
        features = [pixel_head.embed(crops.to(device)).float().cpu().numpy() for crops in crops_by_image]
    labels = [
        image_labels_of_cells(tuple(int(k) for k in torch.nonzero(row).flatten()) for row in cells)
        for cells in multilabels_by_image
    ]
    head = fit_image_head(features, labels, epochs=epochs, seed=seed, **IMAGE_HEAD_FIT)
    log.info(
        "image head: fitted on the pixel features of %d training images, %d epochs, %.1f s",
        len(features), epochs, time.perf_counter() - started,
    )  # fmt: skip
    return head


@torch.no_grad()
def _precise_batchnorm(module: nn.Module, inputs: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to the exact mean and variance over
    ``inputs`` (a cumulative average over one pass), as detectron2's PreciseBN does: the
    moving averages of a short fit lag the weights they normalise for."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    module.train()
    for start in range(0, len(inputs), _FIT_BATCH):
        module(inputs[start : start + _FIT_BATCH])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def hand_images_to_heads(model: nn.Module) -> None:
    """Register a forward hook on ``model.transform`` that sets ``model.roi_heads.images``
    to the batch of normalised working images (what :func:`pixel_crops` reads)."""
    heads = model.roi_heads

    def hook(module: nn.Module, args: tuple, output: tuple) -> None:
        heads.images = output[0].tensors

    model.transform.register_forward_hook(hook)


class FittedLabelParts:
    """What both engines' RoI heads share about the parts fitted apart from the detector:
    the pixel head (fitted on the training cells first, then frozen) and the image head
    (fitted on its features, never trained by the detector). Mixed in before the engine's
    RoI heads class; ``pixel_head``, ``image_head`` and ``images`` are set by its ``__init__``
    (:meth:`_add_image_head`)."""

    pixel_head: PixelHead | None
    image_head: ImageHead | None
    images: torch.Tensor | None
    pixel_head_frozen: bool = False

    def _add_image_head(self, image_head: bool, label_inputs: str) -> None:
        """Hold an (untrained, frozen) image head on the pixel head's features, or none."""
        if image_head and self.pixel_head is None:
            raise InputError(
                f"image_head with label_inputs {label_inputs!r}: the image head reads the pixel head's features; "
                "use label_inputs pixels+features or no image head",
                param="image_epochs",
            )
        self.image_head = ImageHead(self.pixel_head.num_features) if image_head else None
        if self.image_head is not None:
            self.image_head.requires_grad_(False)  # fitted apart (set_image_head), never by the detector

    def freeze_pixel_head(self) -> None:
        """Keep the pixel head as it is (no gradients, BatchNorm statistics fixed): after
        :func:`fit_pixel_head`, the detector trains the rest and the feature head learns
        what the pixels leave."""
        if self.pixel_head is not None:
            self.pixel_head.requires_grad_(False)
            self.pixel_head.eval()
            self.pixel_head_frozen = True

    def set_image_head(self, head: ImageHead) -> None:
        """Take the weights of a fitted image head (:func:`fit_image_head_on_cells`) and keep them."""
        if self.image_head is None:
            raise RuntimeError("these heads hold no image head: build the model with an image head")
        self.image_head.load_state_dict(head.state_dict())
        self.image_head.eval()

    def train(self, mode: bool = True):  # noqa: D102 (nn.Module.train)
        super().train(mode)
        if self.pixel_head_frozen:
            self.pixel_head.eval()
        if self.image_head is not None:
            self.image_head.eval()
        return self

    def cell_features(self, boxes: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The image head's inputs for the boxes of each image (the pixel head's features of
        their crops), or None without an image head or boxes."""
        counts = [len(b) for b in boxes]
        if self.image_head is None or not sum(counts):
            return None
        return list(self.pixel_head.embed(pixel_crops(self.images, boxes)).split(counts))


class MultiLabelRoIHeads(FittedLabelParts, RoIHeads):
    """torchvision's RoI heads (cell vs background boxes and masks) plus a multi-label head.

    Built from the heads torchvision's ``MaskRCNN`` made, keeping their modules and settings.

    Parameters
    ----------
    heads : RoIHeads
        Box and mask heads with two classes (background, cell).
    num_labels : int
        Classes of the label head (19).
    label_samples_per_image : int
        Foreground proposals per image the label head trains on, besides the ground truth.
    label_loss_weight : float
        Factor of ``loss_labels``.
    label_inputs : str
        One of :data:`LABEL_INPUTS` (module docstring).
    distill_weight : float
        ``d`` of :func:`distill_targets` for cells with a teacher's probabilities.
    image_head : bool
        Hold an image head on the pixel head's features (module docstring; needs the pixel head).
    """

    def __init__(
        self,
        heads: RoIHeads,
        num_labels: int,
        *,
        label_samples_per_image: int = LABEL_SAMPLES_PER_IMAGE,
        label_loss_weight: float = 1.0,
        label_inputs: str = DEFAULT_LABEL_INPUTS,
        distill_weight: float = DEFAULT_DISTILL_WEIGHT,
        image_head: bool = False,
    ) -> None:
        super().__init__(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
            mask_roi_pool=heads.mask_roi_pool,
            mask_head=heads.mask_head,
            mask_predictor=heads.mask_predictor,
        )
        channels = heads.box_head.fc6.in_features  # FPN channels x pooled height x width
        self.label_head = LabelHead(channels, num_labels)
        self.label_inputs = check_label_inputs(label_inputs)
        self.pixel_head = PixelHead(num_labels) if label_inputs == "pixels+features" else None
        self.label_samples_per_image = int(label_samples_per_image)
        self.label_loss_weight = float(label_loss_weight)
        self.distill_weight = float(distill_weight)
        self.images: torch.Tensor | None = None  # set by the hook of hand_images_to_heads
        self.pixel_head_frozen = False
        self._add_image_head(image_head, label_inputs)

    def label_logits(
        self, features: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Label logits (sum of boxes, num_labels) of RoIs ``boxes`` (one (R_i, 4) tensor per image)."""
        if sum(len(b) for b in boxes) == 0:
            return next(self.label_head.parameters()).new_zeros((0, self.label_head.num_labels))
        logits = self.label_head(self.box_roi_pool(features, boxes, image_shapes))
        if self.pixel_head is not None:
            if self.images is None:
                raise RuntimeError("the pixel label head has no images: build the model with build_maskrcnn")
            logits = logits + self.pixel_head(pixel_crops(self.images, boxes))
        return logits

    def label_training_rois(
        self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per image: the ground-truth boxes and up to ``label_samples_per_image`` foreground
        proposals matched to them; and the targets of all (:func:`distill_targets`), concatenated."""
        rois, labels = [], []
        for props, target in zip(proposals, targets):
            gt_boxes = target["boxes"]
            multi = distill_targets(target["multilabels"], target.get("label_probs"), self.distill_weight)
            if len(gt_boxes) == 0:
                rois.append(gt_boxes)
                continue
            iou = box_iou(props.detach(), gt_boxes)  # (P, G)
            best, matched = iou.max(dim=1)
            foreground = torch.nonzero(best >= self.proposal_matcher.high_threshold).flatten()
            if len(foreground) > self.label_samples_per_image:
                pick = torch.randperm(len(foreground), device=foreground.device)[: self.label_samples_per_image]
                foreground = foreground[pick]
            rois.append(torch.cat([gt_boxes, props[foreground].detach()]))
            labels.append(torch.cat([multi, multi[matched[foreground]]]))
        width = self.label_head.num_labels
        return rois, torch.cat(labels) if labels else proposals[0].new_zeros((0, width))

    def forward(self, features, proposals, image_shapes, targets=None):  # noqa: D102 (RoIHeads.forward)
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training:
            rois, label_targets = self.label_training_rois(proposals, targets)
            loss = multilabel_loss(self.label_logits(features, rois, image_shapes), label_targets)
            losses["loss_labels"] = self.label_loss_weight * loss
        else:
            boxes = [r["boxes"] for r in result]
            counts = [len(b) for b in boxes]
            probs = torch.sigmoid(self.label_logits(features, boxes, image_shapes))
            for r, p in zip(result, probs.split(counts)):
                r["label_probs"] = p
            for r, f in zip(result, self.cell_features(boxes) or []):
                r["label_features"] = f
        return result, losses
