"""The segmentation methods by name, and :func:`make_segmenter`, which builds one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import Segmenter
from .hpacellseg import HpaCellSegSegmenter
from .precomputed import PrecomputedSegmenter
from .watershed import WatershedParams, WatershedSegmenter

__all__ = ["METHODS", "make_segmenter"]

#: Segmentation methods; the first is the default.
METHODS: tuple[str, ...] = ("watershed", "hpacellseg", "precomputed")


def make_segmenter(method: str, **options: Any) -> Segmenter:
    """Build the segmenter of one method.

    Parameters
    ----------
    method : {"watershed", "hpacellseg", "precomputed"}
    **options
        ``watershed``: fields of :class:`~hpaseg.segmentation.watershed.WatershedParams`
        (e.g. ``working_size_px``); ``hpacellseg``: the arguments of
        :class:`~hpaseg.segmentation.hpacellseg.HpaCellSegSegmenter`; ``precomputed``: ``mask_dir``, ``nuclei_from``.

    Raises
    ------
    InputError
        Unknown method or option, or what the segmenter itself rejects.

    Examples
    --------
    >>> make_segmenter("watershed", working_size_px=256).params.working_size_px
    256
    >>> make_segmenter("otsu")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: method 'otsu': unknown segmentation method; expected one of watershed, hpacellseg, precomputed
    """
    builders: dict[str, tuple[Any, tuple[str, ...]]] = {
        "watershed": (
            lambda **kw: WatershedSegmenter(WatershedParams(**kw)),
            tuple(WatershedParams.__dataclass_fields__),
        ),
        "hpacellseg": (HpaCellSegSegmenter, ("nuclei_model", "cell_model", "device", "scale_factor", "padding")),
        "precomputed": (
            lambda mask_dir, nuclei_from="mask": PrecomputedSegmenter(Path(mask_dir), nuclei_from),
            ("mask_dir", "nuclei_from"),
        ),
    }
    if method not in builders:
        raise InputError(
            f"method {method!r}: unknown segmentation method; expected one of {', '.join(METHODS)}", param="method"
        )
    build, accepted = builders[method]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"method {method!r}: unknown option(s) {', '.join(unknown)}; it accepts {', '.join(accepted)}")
    try:
        return build(**options)
    except TypeError as exc:
        raise InputError(f"method {method!r}: {exc}") from exc
