"""hpaseg: weakly supervised single-cell classification of Human Protein Atlas images."""
from setuptools import find_packages, setup

setup(
    name="hpaseg",
    version="0.2.0",
    description="Weakly supervised single-cell classification of Human Protein Atlas microscopy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The detectron2 configs stay in the repository's detectron_configs/ folder and are
    # installed as the package hpaseg.detectron_configs, so they ship in wheels.
    packages=find_packages(include=["hpaseg", "hpaseg.*"]) + ["hpaseg.detectron_configs"],
    package_dir={"hpaseg.detectron_configs": "detectron_configs"},
    # The built-in segmenter's learned cell maps (a few kB of weights) ship with it.
    package_data={"hpaseg.detectron_configs": ["*.yaml"], "hpaseg.segmentation": ["cellmaps.npz"]},
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-image>=0.21",
        "scikit-learn>=1.3",
        "pillow>=10",
        "tifffile>=2023.1",
        "imagecodecs>=2023.1",
        "pycocotools>=2.0.7",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pandas>=2.0",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "torch>=2.1",
        "torchvision>=0.16",
        "timm>=0.9",
        "tensorboard>=2.12",
    ],
    extras_require={
        # Neither is on PyPI: these install them from their official repositories.
        "detectron2": ["detectron2 @ git+https://github.com/facebookresearch/detectron2.git"],
        "hpacellseg": ["hpacellseg @ git+https://github.com/CellProfiling/HPA-Cell-Segmentation.git"],
        "dev": ["pytest>=7", "nbclient>=0.8", "nbformat>=5.9", "ipykernel>=6", "hypothesis>=6", "ruff>=0.6"],
    },
    entry_points={"console_scripts": ["hpaseg=hpaseg.cli:main"]},
)
