"""Tests of hpaseg.detection.models: the four-channel Mask R-CNNs."""

from __future__ import annotations

import pytest
import torch

from hpaseg.runtime.stems import (
    adapt_first_conv,
    adapt_state_dict_stem,
    rgb_to_rgby_weight,
)


def test_adapt_first_conv_keeps_rgb_and_sets_yellow():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=True)
    new = adapt_first_conv(conv)
    assert new.in_channels == 4 and new.out_channels == 8
    torch.testing.assert_close(new.weight[:, :3], conv.weight)
    torch.testing.assert_close(new.weight[:, 3], (conv.weight[:, 0] + conv.weight[:, 1]) / 2)
    torch.testing.assert_close(new.bias, conv.bias)
    # On an image whose yellow is 0 the adapted conv gives exactly the RGB response.
    x = torch.rand(1, 3, 9, 9)
    torch.testing.assert_close(new(torch.cat([x, torch.zeros(1, 1, 9, 9)], 1)), conv(x))


def test_adapt_state_dict_stem_in_place():
    sd = {"conv1.weight": torch.randn(4, 3, 7, 7)}
    adapt_state_dict_stem(sd, "conv1.weight")
    assert sd["conv1.weight"].shape == (4, 4, 7, 7)
    with pytest.raises(KeyError):
        adapt_state_dict_stem(sd, "stem.weight")
    with pytest.raises(ValueError):
        rgb_to_rgby_weight(torch.zeros(2, 4, 1, 1))
