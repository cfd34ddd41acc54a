"""Four-channel (RGBY) stems from RGB-pretrained weights.

The yellow channel of HPA images is a stain of its own (the endoplasmic reticulum,
shown in yellow), not a mix of the red (microtubules) and green (the protein) ones, and
it has no ImageNet counterpart. Its kernel is initialised as the mean of the red and
green kernels: a choice (a start of the same scale as the other channels' that training
then adapts), not physics. The RGB kernels are kept as they are.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import torch
from torch import nn

__all__ = ["rgb_to_rgby_weight", "adapt_first_conv", "adapt_state_dict_stem"]

#: Input channels of an RGBY image.
RGBY_CHANNELS = 4


def rgb_to_rgby_weight(weight: torch.Tensor) -> torch.Tensor:
    """Extend a convolution kernel from 3 to 4 input channels.

    Parameters
    ----------
    weight : Tensor, shape (out, 3, kh, kw)

    Returns
    -------
    Tensor, shape (out, 4, kh, kw)
        Channels R, G, B copied; Y = (R + G) / 2 (a choice: yellow has no ImageNet counterpart).

    Examples
    --------
    >>> w = torch.arange(6.0).reshape(1, 3, 1, 2)
    >>> rgb_to_rgby_weight(w)[0, :, 0].tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [1.0, 2.0]]
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected an RGB kernel of shape (out, 3, kh, kw), got {tuple(weight.shape)}")
    yellow = weight[:, :2].mean(dim=1, keepdim=True)
    return torch.cat([weight, yellow], dim=1)


def adapt_first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of an RGB ``Conv2d`` taking four channels (see :func:`rgb_to_rgby_weight`)."""
    if conv.in_channels == RGBY_CHANNELS:
        return conv
    if conv.in_channels != 3:
        raise ValueError(f"expected a 3-channel stem convolution, got {conv.in_channels} input channels")
    new = nn.Conv2d(
        RGBY_CHANNELS,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(rgb_to_rgby_weight(conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def adapt_state_dict_stem(state_dict: MutableMapping[str, torch.Tensor], key: str) -> MutableMapping[str, torch.Tensor]:
    """Adapt the stem kernel ``state_dict[key]`` of an RGB checkpoint to RGBY, in place.

    A kernel that already has four input channels is left as it is.
    """
    if key not in state_dict:
        raise KeyError(f"checkpoint has no stem weight {key!r}; keys start with {sorted(state_dict)[:5]}")
    weight = torch.as_tensor(state_dict[key])
    if weight.shape[1] == 3:
        state_dict[key] = rgb_to_rgby_weight(weight)
    return state_dict
