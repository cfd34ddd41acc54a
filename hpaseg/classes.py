"""The 19 HPA single-cell classes, the four RGBY channels and the reference field of view.

Class ids are those of the Kaggle "HPA Single-Cell Image Classification" (2021)
competition; in COCO files the category id is ``class_id + 1``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "NEGATIVE",
    "Channel",
    "CHANNEL_NAMES",
    "REFERENCE_SIZE_PX",
    "class_name",
    "image_labels_of_cells",
    "labels_negative_unknown",
    "negative_known",
]

CLASS_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Intermediate filaments",
    "Actin filaments",
    "Microtubules",
    "Mitotic spindle",
    "Centrosome",
    "Plasma membrane",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Vesicles and punctate cytosolic patterns",
    "Negative",
)
NUM_CLASSES: int = len(CLASS_NAMES)
#: Class id of "Negative": a cell in which the protein is not detected.
NEGATIVE: int = 18


class Channel(IntEnum):
    """Position of each stain in an ``(H, W, 4)`` RGBY image."""

    RED = 0  # microtubules
    GREEN = 1  # protein of interest
    BLUE = 2  # nucleus
    YELLOW = 3  # endoplasmic reticulum


#: Pixels across an HPA field of view at the resolution every ``*_px_at_2048`` size refers
#: to. An image of ``max(H, W)`` px is taken to show the same field of view (the
#: competition's 1728-3072 px images do), so sizes scale with ``max(H, W) / 2048``.
REFERENCE_SIZE_PX: int = 2048

#: File-name suffixes of the channels, in RGBY order (``{ID}_{name}.png``).
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in Channel)


def class_name(class_id: int) -> str:
    """Return the name of class ``class_id``.

    >>> class_name(0)
    'Nucleoplasm'
    >>> class_name(18)
    'Negative'
    """
    if not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class id {class_id} is outside 0-{NUM_CLASSES - 1}")
    return CLASS_NAMES[class_id]


def image_labels_of_cells(cell_labels: Iterable[Iterable[int]]) -> tuple[int, ...]:
    """An image's label as the Kaggle ``train.csv`` writes it, from its cells' labels.

    The classes 0-17 of its cells; Negative (18) only when no cell shows any of them (in
    the real ``train.csv``, 18 labels whole images and never stands beside another
    label, although negative cells occur in positive images).

    >>> image_labels_of_cells([(0,), (0, 16), (18,)]), image_labels_of_cells([(18,), (18,)]), image_labels_of_cells([])
    ((0, 16), (18,), ())
    """
    union = {int(k) for labels in cell_labels for k in labels}
    positive = union - {NEGATIVE}
    return tuple(sorted(positive)) if positive else tuple(sorted(union))


def labels_negative_unknown(image_labels: Iterable[int]) -> bool:
    """Whether an image's labels leave open if some of its cells are Negative: they
    name a class other than Negative (Kaggle convention, :func:`image_labels_of_cells`).

    >>> labels_negative_unknown((0, 16)), labels_negative_unknown((18,))
    (True, False)
    """
    return any(int(k) != NEGATIVE for k in image_labels)


def negative_known(cell_labels: Iterable[Iterable[int]]) -> bool:
    """Whether the dataset labels of an image's cells say which cells are Negative: yes
    when the image is labelled Negative alone or some cell is labelled Negative (cells
    labelled one by one); no when every cell carries its positive image's labels
    (propagated: the image's labels do not say which cells are Negative).

    >>> negative_known([(0,), (0,)]), negative_known([(18,), (18,)]), negative_known([(0,), (18,)])
    (False, True, True)
    """
    cells = [tuple(int(k) for k in labels) for labels in cell_labels]
    if any(NEGATIVE in labels for labels in cells):
        return True
    return not labels_negative_unknown(image_labels_of_cells(cells))
