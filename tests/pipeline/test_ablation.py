"""Tests of hpaseg.pipeline.ablation: the grid."""

from __future__ import annotations

from hpaseg.classification import ClassifyConfig
from hpaseg.pipeline import ablation


def test_grid_and_tables():
    base = ClassifyConfig(level="cell", masks="m", epochs=3)
    configs = ablation.grid(base, ["resnet50", "efficientnet_b0"], ["bce", "focal"], ["standard", "cutmix"], "R")
    assert (
        len(configs) == 8
        and configs[0][0] == "cell-resnet50-bce-standard"
        and configs[-1][0] == "cell-efficientnet_b0-focal-cutmix"
    )
    assert {c.epochs for _, c in configs} == {3} and {c.seed for _, c in configs} == {0}  # one shared budget and seed
    assert configs[1][1].out.endswith("cell-resnet50-bce-cutmix")
