"""Figures over repeats (seeds, folds): mean, standard deviation, and the paired difference
to a baseline, with a verdict that calls a difference real only when it is larger than
its spread.

A route beats a baseline when the mean of its paired differences (same seed or fold:
same data, same cells) exceeds **twice** their standard deviation; one repeat has no
spread and proves nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["ABOVE", "BELOW", "NOISE", "ONE_REPEAT", "BASELINE", "verdict", "paired_summary"]

ABOVE = "above (mean diff > 2 sd)"
BELOW = "below (mean diff < -2 sd)"
NOISE = "within noise"
ONE_REPEAT = "one repeat: no spread"
BASELINE = "baseline"


def verdict(diffs: np.ndarray) -> str:
    """Whether paired differences show a gain, a loss, or nothing beyond their spread.

    >>> verdict(np.array([0.05, 0.06, 0.04])), verdict(np.array([0.05, -0.02, 0.01])), verdict(np.array([0.1]))
    ('above (mean diff > 2 sd)', 'within noise', 'one repeat: no spread')
    >>> verdict(np.array([-0.05, -0.06, -0.04]))
    'below (mean diff < -2 sd)'
    """
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2:
        return ONE_REPEAT
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if mean > 2 * sd:
        return ABOVE
    if mean < -2 * sd:
        return BELOW
    return NOISE


def paired_summary(
    records: pd.DataFrame, *, key: str, unit: str, values: list[str], baseline: str, compare: str = "mAP"
) -> pd.DataFrame:
    """Mean and standard deviation (``ddof=1``) of each ``values`` column per ``key``, and
    the paired difference of ``compare`` to the ``baseline`` key over the units both have.

    Parameters
    ----------
    records : DataFrame
        One row per (``key``, ``unit``): e.g. route and seed, or rule and fold.
    key, unit : str
        Column names.
    values : list of str
        Columns to summarise (NaN where a route lacks a figure is skipped).
    baseline : str
        The ``key`` value the differences are taken against.
    compare : str
        The column differenced.

    Returns
    -------
    DataFrame
        In the order keys first appear: ``key``, ``n`` (repeats), ``<v>`` and ``<v>_sd``
        for each value, ``diff`` and ``diff_sd`` (``compare`` minus the baseline's) and
        ``verdict`` (:func:`verdict`; :data:`BASELINE` for the baseline itself).

    Examples
    --------
    >>> r = pd.DataFrame({"route": ["w", "w", "m", "m"], "seed": [0, 1, 0, 1], "mAP": [0.5, 0.6, 0.6, 0.7]})
    >>> t = paired_summary(r, key="route", unit="seed", values=["mAP"], baseline="w")
    >>> t[["route", "n", "diff", "verdict"]].round(3).values.tolist()
    [['w', 2, 0.0, 'baseline'], ['m', 2, 0.1, 'above (mean diff > 2 sd)']]
    """
    missing = [c for c in (key, unit, compare, *values) if c not in records.columns]
    if missing:
        raise InputError(f"records: no column {missing[0]!r}; expected columns {key}, {unit}, {', '.join(values)}")
    if baseline not in set(records[key]):
        raise InputError(f"baseline {baseline!r}: not among the {key} values", param="baseline")
    base = records.loc[records[key] == baseline].set_index(unit)[compare]
    rows = []
    for name, group in records.groupby(key, sort=False):
        row: dict = {key: name, "n": int(group[unit].nunique())}
        for v in values:
            x = pd.to_numeric(group[v], errors="coerce").dropna().to_numpy(dtype=np.float64)
            row[v] = float(x.mean()) if len(x) else np.nan
            row[f"{v}_sd"] = float(x.std(ddof=1)) if len(x) > 1 else np.nan
        paired = group.set_index(unit)[compare]
        shared = paired.index.intersection(base.index)
        d = (paired.loc[shared] - base.loc[shared]).to_numpy(dtype=np.float64)
        row["diff"] = float(d.mean()) if len(d) else np.nan
        row["diff_sd"] = float(d.std(ddof=1)) if len(d) > 1 else np.nan
        row["verdict"] = BASELINE if name == baseline else verdict(d)
        rows.append(row)
    return pd.DataFrame(rows)
