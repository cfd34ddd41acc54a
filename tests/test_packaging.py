"""Packaging: a non-editable build ships the detectron2 configs and the segmenter's cell-map
weights as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_built_wheel_lists_the_detectron2_configs(tmp_path):
    # No build isolation: the environment's setuptools builds it, nothing is downloaded.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=600,
    )
    wheel = next(tmp_path.glob("hpaseg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (REPO / "detectron_configs").glob("*.yaml"))
    assert shipped and all(f"hpaseg/detectron_configs/{name}" in names for name in shipped), names
    assert "hpaseg/detection/detectron2/config.py" in names
    assert "hpaseg/segmentation/cellmaps.npz" in names  # the built-in segmenter's default needs it


def test_configs_are_found_through_the_package():
    from hpaseg.detection.detectron2.config import config_dir, config_names, resolve_config

    assert config_dir().resolve() == (REPO / "detectron_configs").resolve()  # editable install: the repository's folder
    assert {"Base-HPA-MaskRCNN.yaml", "mask_rcnn_R_101_FPN_hpa.yaml", "mask_rcnn_X_101_32x8d_FPN_hpa.yaml"} <= set(
        config_names()
    )
    assert resolve_config("mask_rcnn_R_101_FPN_hpa.yaml").is_file()
