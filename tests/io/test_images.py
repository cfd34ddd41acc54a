"""Tests of hpaseg.io: reading channels (8/16-bit, tif, tif.gz, jpg), CSV tables, masks, atomic writes."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from hpaseg import io
from hpaseg.errors import InputError


def _write_channels(folder, image_id, planes, ext=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, plane in zip(("red", "green", "blue", "yellow"), planes):
        path = folder / f"{image_id}_{name}{ext}"
        if ext == ".png" or ext == ".jpg":
            Image.fromarray(plane).save(path)
        elif ext == ".tif":
            tifffile.imwrite(path, plane)
        elif ext == ".tif.gz":
            tmp = folder / f"{image_id}_{name}.tmp.tif"
            tifffile.imwrite(tmp, plane)
            with open(tmp, "rb") as src, gzip.open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.unlink()


def _planes(h=40, w=56, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 65535
    return [rng.integers(0, top + 1, (h, w)).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("ext", [".png", ".tif", ".tif.gz"])
def test_read_rgby_8bit_non_square(tmp_path, ext):
    planes = _planes()
    _write_channels(tmp_path, "img", planes, ext)
    image = io.read_rgby(tmp_path, "img")
    assert image.shape == (40, 56, 4) and image.dtype == np.uint8
    for k in range(4):
        np.testing.assert_array_equal(image[..., k], planes[k])


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_read_rgby_16bit_is_scaled_by_fixed_rule(tmp_path, ext):
    planes = _planes(dtype=np.uint16)
    _write_channels(tmp_path, "img", planes, ext)
    image = io.read_rgby(tmp_path, "img")
    expected = np.rint(planes[1] / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(image[..., 1], expected)
    assert image[..., 1].max() > 200  # full 16-bit range maps to full 8-bit range


def test_16bit_scale_is_the_same_for_every_image(tmp_path):
    dim = np.full((8, 8), 1000, np.uint16)
    bright = np.full((8, 8), 30000, np.uint16)
    _write_channels(tmp_path, "dim", [dim] * 4)
    _write_channels(tmp_path, "bright", [bright] * 4)
    assert io.read_rgby(tmp_path, "dim")[0, 0, 0] == 4  # 1000/257, not stretched per image
    assert io.read_rgby(tmp_path, "bright")[0, 0, 0] == 117


def test_read_real_16bit_hpa_green(shared_data):
    path = shared_data / "hpa_1000_A12_2" / "1000_A12_2_green.png"
    plane = io.read_channel(path)
    raw = np.asarray(Image.open(path))
    assert raw.dtype == np.uint16 and plane.dtype == np.uint8 and plane.shape == (2048, 2048)
    np.testing.assert_array_equal(plane, np.rint(raw / 257.0).astype(np.uint8))


def test_rgb_jpg_channel_reduced_by_max(tmp_path):
    plane = np.zeros((16, 16, 3), np.uint8)
    plane[..., 1] = 200  # a green-tinted public-HPA style jpg
    assert io.to_uint8(plane).max() == 200


def test_iter_rgby_in_order_and_lazy(tmp_path):
    for i in range(6):
        _write_channels(tmp_path, f"img{i}", _planes(seed=i))
    ids = [f"img{i}" for i in range(6)]
    assert io.list_image_ids(tmp_path) == ids
    got = list(io.iter_rgby(tmp_path, ids, workers=3, prefetch=2))
    assert [g[0] for g in got] == ids
    for (_image_id, image), i in zip(got, range(6)):
        np.testing.assert_array_equal(image[..., 0], _planes(seed=i)[0])


def test_read_image_size_from_header(tmp_path):
    _write_channels(tmp_path, "img", _planes(h=33, w=71))
    assert io.read_image_size(tmp_path, "img") == (33, 71)
    _write_channels(tmp_path, "gz", _planes(h=5, w=2, dtype=np.uint16), ".tif.gz")
    assert io.read_image_size(tmp_path, "gz") == (5, 2)
    _write_channels(tmp_path, "tif", _planes(h=6, w=9), ".tif")
    assert io.read_image_size(tmp_path, "tif") == (6, 9)
    with pytest.raises(InputError, match="missing green channel"):
        io.read_image_size(tmp_path, "nope")


def test_missing_channel_names_the_file(tmp_path):
    _write_channels(tmp_path, "img", _planes())
    (tmp_path / "img_yellow.png").unlink()
    with pytest.raises(InputError, match=r"img_yellow\.png: missing yellow channel"):
        io.read_rgby(tmp_path, "img")


def test_channels_of_different_sizes(tmp_path):
    planes = _planes()
    planes[2] = planes[2][:30]
    _write_channels(tmp_path, "img", planes)
    with pytest.raises(InputError, match=r"img_blue\.png: channel is 30x56 px but img_red\.png is 40x56"):
        io.read_rgby(tmp_path, "img")


def test_truncated_png(tmp_path):
    _write_channels(tmp_path, "img", _planes())
    data = (tmp_path / "img_green.png").read_bytes()
    (tmp_path / "img_green.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"img_green\.png: cannot decode image"):
        io.read_rgby(tmp_path, "img")


def test_not_an_image(tmp_path):
    _write_channels(tmp_path, "img", _planes())
    (tmp_path / "img_red.png").write_text("hello")
    with pytest.raises(InputError, match="img_red.png: cannot decode"):
        io.read_rgby(tmp_path, "img")
