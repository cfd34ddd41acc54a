"""A synthetic HPA-like dataset, with the truth the real one lacks: cell masks and
per-cell labels.

``hpaseg synth OUT --n-train N --n-test M --size S --seed K [--bit-depth 8|16] [--style real-like|compact]``
writes the Kaggle layout plus the truth::

    OUT/train.csv                  ID,Label  image labels = union of the image's cell labels
    OUT/train/{ID}_{red,green,blue,yellow}.png
    OUT/test/{ID}_{red,green,blue,yellow}.png
    OUT/sample_submission.csv      ID,ImageWidth,ImageHeight,PredictionString (empty), one row per test image
    OUT/truth.csv                  the test images in submission format: every (cell, label) at confidence 1
    OUT/masks/{ID}_cellmask.png    true cell masks of all images (16-bit; nucleus k inside cell k)
    OUT/masks/{ID}_nucleimask.png
    OUT/cell_labels.csv            ID,split,cell,Label  true labels of every cell of every image
    OUT/synth.json                 the options; "complete": true once everything is written

Image IDs are ``synth_train_0000``, ``synth_test_0000``, ... Image ``i`` of a split is drawn
from its own random stream, ``SeedSequence(seed, spawn_key=(split, i))``, so the same
seed gives byte-identical files and the test images do not depend on ``--n-train``.

What an image looks like
------------------------
Sizes are set at HPA's 2048 px and scaled by ``size / 2048``. Two styles:

``real-like`` (default), modelled on the real HPA fields of ``shared/data/hpa_kaggle_fields``
(:mod:`hpaseg.synth.compare` measures both): large cells (median area about 100,000-115,000 px
at 2048, some 360 px across; 90 px at 512), placed until a drawn 25-90% of the field is
covered, as colonies of touching cells and, the sparser the field, as more lone cells (about
60-75% of cells touch another, half are cut by the border); elongated irregular outlines
with ruffled edges and 0-3 long tapering protrusions; nuclei about half the cell's diameter.
Microtubules form a fine meshwork, run along elongated cells and into their protrusions.
Each cell's stain varies per channel, the protein channel's gain is set per image to its
stain (as HPA does), cells thin out towards their edges, an out-of-focus haze surrounds
them, the illumination varies smoothly with dimmer corners, and the camera adds shot and
read noise above a black level that is clipped away, so the background is mostly exactly 0,
as in HPA's 8-bit fields.

``compact``: the earlier look, kept byte for byte: cells 220-500 px across at 2048,
10-25 of them in loose clusters, rounder, on a flat grey background with uniform noise.

In both, every cell holds one nucleus, an irregular ellipse, with the same id in both
masks. Mitotic cells are round with a condensed chromosome plate for a nucleus.

* blue: nuclei, textured, darker nucleoli, uneven brightness (some nuclei dim);
* red: microtubules, fibres from the nucleus over the cytoplasm (a spindle in mitotic cells);
* yellow: endoplasmic reticulum, a reticular mesh weighted towards the nucleus;
* green: the protein, drawn per cell from that cell's own labels:

  ==  ==========================  ==================================================
  0   Nucleoplasm                 fills the nucleus, spares the nucleoli
  1   Nuclear membrane            a thin ring on the nucleus edge
  2   Nucleoli                    1-4 round blobs inside the nucleus
  3   Nucleoli fibrillar center   tiny dots inside the nucleoli
  4   Nuclear speckles            many small irregular speckles in the nucleus
  5   Nuclear bodies              1-6 distinct bright dots in the nucleus
  6   Endoplasmic reticulum       the yellow channel's perinuclear mesh
  7   Golgi apparatus             a compact perinuclear crescent on one side
  8   Intermediate filaments      long, gently curving fibres across the cell
  9   Actin filaments             straight parallel stress fibres and a cortical rim
  10  Microtubules                the red channel's fibres
  11  Mitotic spindle             a bipolar spindle in a round mitotic cell
  12  Centrosome                  one or two bright dots next to the nucleus
  13  Plasma membrane             a ring along the cell outline
  14  Mitochondria                short tubules, a network denser near the nucleus
  15  Aggresome                   one large bright blob next to the nucleus
  16  Cytosol                     diffuse fill of the cytoplasm
  17  Vesicles                    many punctate dots in the cytoplasm
  18  Negative                    nothing but dim background and noise
  ==  ==========================  ==================================================

Weak supervision: each image draws 1-3 labels with HPA-like imbalance
(:data:`CLASS_FREQUENCIES`); in about 40% of images one label is missing from some
cells, and a cell left with no label is Negative (18). Mitotic spindle is carried by
the one or two mitotic cells only. The image label is written as the Kaggle train.csv
writes it: the classes 0-17 of its cells, Negative (18) only for an image in which no
cell shows any (:func:`hpaseg.classes.image_labels_of_cells`), so an image labelled 0
may hold Negative cells.

Modules: :mod:`~hpaseg.synth.labels` (image and cell labels), :mod:`~hpaseg.synth.layout`
(cell geometry), :mod:`~hpaseg.synth.scene` (shared per-pixel fields and structures),
:mod:`~hpaseg.synth.patterns` (green classes), :mod:`~hpaseg.synth.render` (channels,
staining, noise), :mod:`~hpaseg.synth.image` (:func:`synth_image`: one field and its truth),
:mod:`~hpaseg.synth.dataset` (:func:`generate_dataset`, the writer; ``hpaseg synth``),
:mod:`~hpaseg.synth.compare` (statistics against real fields; ``python -m hpaseg.bench synth``),
:mod:`~hpaseg.synth.field` (a simple field with known masks for segmentation tests),
:mod:`~hpaseg.synth.arrays` (drawing helpers).
"""

from .dataset import SynthSummary, generate_dataset
from .field import FieldTruth, synthetic_field
from .image import DEFAULT_STYLE, MIN_SIZE_PX, STYLES, SynthImage, image_id, image_rng, synth_image
from .labels import CLASS_FREQUENCIES, draw_image_labels

__all__ = [
    "MIN_SIZE_PX",
    "CLASS_FREQUENCIES",
    "STYLES",
    "DEFAULT_STYLE",
    "SynthImage",
    "SynthSummary",
    "FieldTruth",
    "draw_image_labels",
    "synth_image",
    "synthetic_field",
    "image_id",
    "image_rng",
    "generate_dataset",
]
