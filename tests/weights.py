"""What the tests of pretrained weights share: the check that an RGB checkpoint arrived in
a four-channel (RGBY) model exactly, its stem adapted as :mod:`hpaseg.runtime.stems` says."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["assert_rgb_weights_round_trip"]


def assert_rgb_weights_round_trip(
    rgb: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor], stem_key: str, head_prefixes: tuple[str, ...]
) -> None:
    """Every tensor of ``loaded`` equals the RGB checkpoint's exactly, but the stem, whose
    R, G, B kernels are the checkpoint's and whose yellow kernel is the mean of its red and
    green ones; the checkpoint's classifier (keys starting with ``head_prefixes``) is the
    only part left out, and ``loaded`` has nothing the checkpoint lacks."""
    assert set(loaded) == {k for k in rgb if not k.startswith(head_prefixes)}
    for key, tensor in loaded.items():
        if key == stem_key:
            assert tensor.shape[1] == 4 and tensor.shape[1:] != rgb[key].shape[1:]
            assert torch.equal(tensor[:, :3], rgb[key])
            torch.testing.assert_close(tensor[:, 3], (rgb[key][:, 0] + rgb[key][:, 1]) / 2, rtol=0, atol=1e-7)
        else:
            assert torch.equal(tensor, rgb[key]), f"{key} differs from the checkpoint's"
