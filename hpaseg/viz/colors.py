"""One colour per class, the same in every figure, and short class names for cell labels.

18 colours from Okabe & Ito's and Paul Tol's colour-blind-safe palettes, all light
enough to show on a dark fluorescence image, and grey for Negative. No 19 colours stay
apart for every viewer, so figures also *write* class names: legends use the full names
(:data:`~hpaseg.classes.CLASS_NAMES`), cell labels the short ones (:data:`CLASS_SHORT_NAMES`).
"""

from __future__ import annotations

from ..classes import NUM_CLASSES

__all__ = ["CLASS_COLORS", "UNLABELLED_COLOR", "CLASS_SHORT_NAMES", "class_rgb"]

#: Colour of each class (index = class id), hex. Okabe-Ito for the most frequent classes,
#: Paul Tol's bright / muted / light / vibrant schemes for the rest, grey for Negative.
CLASS_COLORS: tuple[str, ...] = (
    "#56B4E9",  # 0  Nucleoplasm                 Okabe-Ito sky blue
    "#44BB99",  # 1  Nuclear membrane            Tol light mint
    "#F0E442",  # 2  Nucleoli                    Okabe-Ito yellow
    "#009988",  # 3  Nucleoli fibrillar center   Tol vibrant teal
    "#99DDFF",  # 4  Nuclear speckles            Tol light cyan
    "#0077BB",  # 5  Nuclear bodies              Tol vibrant blue
    "#DDCC77",  # 6  Endoplasmic reticulum       Tol muted sand
    "#EE6677",  # 7  Golgi apparatus             Tol bright red
    "#228833",  # 8  Intermediate filaments      Tol bright green
    "#999933",  # 9  Actin filaments             Tol muted olive
    "#CC3311",  # 10 Microtubules                Tol vibrant red
    "#AA4499",  # 11 Mitotic spindle             Tol muted purple
    "#CC79A7",  # 12 Centrosome                  Okabe-Ito reddish purple
    "#EE3377",  # 13 Plasma membrane             Tol vibrant magenta
    "#D55E00",  # 14 Mitochondria                Okabe-Ito vermillion
    "#EE8866",  # 15 Aggresome                   Tol light orange
    "#E69F00",  # 16 Cytosol                     Okabe-Ito orange
    "#009E73",  # 17 Vesicles                    Okabe-Ito bluish green
    "#BBBBBB",  # 18 Negative                    Tol grey
)


#: Outline colour of a cell that has no label.
UNLABELLED_COLOR = "#FFFFFF"


#: Names short enough to write inside a cell (index = class id).
CLASS_SHORT_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuc. membrane",
    "Nucleoli",
    "Nucleoli FC",
    "Nuc. speckles",
    "Nuc. bodies",
    "ER",
    "Golgi",
    "Int. filaments",
    "Actin fil.",
    "Microtubules",
    "Mit. spindle",
    "Centrosome",
    "Plasma memb.",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Vesicles",
    "Negative",
)


def class_rgb(class_id: int) -> tuple[int, int, int]:
    """Colour of a class as 0-255 ``(r, g, b)``.

    >>> class_rgb(0), class_rgb(18)
    ((86, 180, 233), (187, 187, 187))
    """
    if not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class id {class_id} is outside 0-{NUM_CLASSES - 1}")
    h = CLASS_COLORS[class_id]
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)
