"""The results of the classifier study (``hpaseg ablation``) as tables: one row per
configuration (``results.csv``), per (configuration, class) AP (``per_class_ap.csv``) and
confusion counts (``confusion.csv``), built from each run's ``eval.json`` and read back,
checked, as typed pandas DataFrames."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..classes import NUM_CLASSES
from ..errors import InputError
from ..io import LINE

__all__ = [
    "RESULTS_COLUMNS",
    "PER_CLASS_AP_COLUMNS",
    "CONFUSION_COLUMNS",
    "ABLATION_METRICS",
    "result_tables",
    "ablation_results",
    "best_configuration",
    "per_class_ap_matrix",
    "confusion_by_config",
]

#: Columns of ``RESULTS/results.csv`` written by ``hpaseg ablation``.
RESULTS_COLUMNS: tuple[str, ...] = (
    "config",
    "level",
    "backbone",
    "loss",
    "augment",
    "channels",
    "image_size",
    "epochs",
    "macro_f1",
    "macro_f1_tuned",
    "macro_ap",
    "train_seconds",
)
#: Columns of ``RESULTS/per_class_ap.csv`` (``ap`` empty for a class without positives).
PER_CLASS_AP_COLUMNS: tuple[str, ...] = ("config", "class_id", "class_name", "ap")
#: Columns of ``RESULTS/confusion.csv``.
CONFUSION_COLUMNS: tuple[str, ...] = ("config", "class_id", "class_name", "tn", "fp", "fn", "tp")
#: Metrics of ``results.csv`` compared per configuration.
ABLATION_METRICS: tuple[str, ...] = ("macro_f1", "macro_f1_tuned", "macro_ap")
_INT_COLUMNS = ("image_size", "epochs")
_FLOAT_COLUMNS = ("macro_f1", "macro_f1_tuned", "macro_ap", "train_seconds")


def _fmt(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


def result_tables(results: Sequence[tuple[str, Mapping]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``results.csv``, ``per_class_ap.csv`` and ``confusion.csv`` as DataFrames, from the
    ``eval.json`` of each configuration (missing values as empty strings, as written).

    >>> from hpaseg.classes import CLASS_NAMES
    >>> ev = {"level": "image", "backbone": "resnet50", "loss": "bce", "augment": "standard", "channels": "green",
    ...       "input_size": 64, "epochs": 2, "macro_f1": 0.5, "macro_f1_tuned": 0.75, "macro_ap": None, "train_seconds": 3.25,
    ...       "per_class": [{"id": k, "name": CLASS_NAMES[k], "ap": None, "tn": 1, "fp": 0, "fn": 0, "tp": 0} for k in range(19)]}
    >>> rows, ap, conf = result_tables([("c", ev)])
    >>> rows.astype(str).iloc[0].tolist()
    ['c', 'image', 'resnet50', 'bce', 'standard', 'green', '64', '2', '0.5', '0.75', '', '3.25']
    >>> ap.astype(str).iloc[0].tolist(), conf.astype(str).iloc[0].tolist()
    (['c', '0', 'Nucleoplasm', ''], ['c', '0', 'Nucleoplasm', '1', '0', '0', '0'])
    """
    rows, ap_rows, confusion_rows = [], [], []
    for name, ev in results:
        rows.append(
            [
                name,
                ev["level"],
                ev["backbone"],
                ev["loss"],
                ev["augment"],
                ev["channels"],
                ev["input_size"],
                ev["epochs"],
                _fmt(ev["macro_f1"]),
                _fmt(ev["macro_f1_tuned"]),
                _fmt(ev["macro_ap"]),
                _fmt(ev["train_seconds"]),
            ]
        )
        for c in ev["per_class"]:
            ap_rows.append([name, c["id"], c["name"], _fmt(c["ap"])])
            confusion_rows.append([name, c["id"], c["name"], c["tn"], c["fp"], c["fn"], c["tp"]])
    return (
        pd.DataFrame(rows, columns=list(RESULTS_COLUMNS)),
        pd.DataFrame(ap_rows, columns=list(PER_CLASS_AP_COLUMNS)),
        pd.DataFrame(confusion_rows, columns=list(CONFUSION_COLUMNS)),
    )


def _numbers(table: pd.DataFrame, column: str, source: str, *, integer: bool) -> pd.Series:
    """A text column as numbers (empty -> NaN for floats), or an error naming the first bad line."""
    text = table[column].astype(str).str.strip()
    values = pd.to_numeric(text.where(text != "", None if integer else "nan"), errors="coerce")
    bad = values.isna() & (text != "") if not integer else values.isna() | (values % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        line = table[LINE].iloc[i] if LINE in table else "?"
        kind = "an integer" if integer else "a number (or empty)"
        raise InputError(f"{source}, line {line}: {column} {text.iloc[i]!r}; expected {kind}")
    return values.astype("int64") if integer else values.astype("float64")


def ablation_results(table: pd.DataFrame, *, source: str = "results.csv") -> pd.DataFrame:
    """``results.csv`` checked and typed: numbers as numbers (NaN where empty).

    Parameters
    ----------
    table : pandas.DataFrame
        As :func:`hpaseg.io.read_table` returns it, with :data:`RESULTS_COLUMNS`.
    source : str
        Named in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per configuration, in file order, with :data:`RESULTS_COLUMNS`.

    Raises
    ------
    InputError
        A non-numeric metric, or a configuration listed twice.
    """
    if table.empty:
        raise InputError(f"{source}: no rows after the header; expected one row per configuration")
    out = table.copy()
    out["config"] = out["config"].astype(str).str.strip()
    for c in _INT_COLUMNS:
        out[c] = _numbers(table, c, source, integer=True)
    for c in _FLOAT_COLUMNS:
        out[c] = _numbers(table, c, source, integer=False)
    duplicated = out["config"].duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = int(np.flatnonzero((out["config"] == out["config"].iloc[i]).to_numpy())[0])
        lines = table[LINE] if LINE in table else pd.Series(["?"] * len(table))
        raise InputError(
            f"{source}, line {lines.iloc[i]}: configuration {out['config'].iloc[i]!r} already on line {lines.iloc[first]}; each configuration must appear once"
        )
    return out[list(RESULTS_COLUMNS)].reset_index(drop=True)


def best_configuration(results: pd.DataFrame, metric: str = "macro_ap") -> str:
    """The configuration with the highest ``metric`` (NaN counts as lowest; ties: first).

    >>> best_configuration(pd.DataFrame({"config": ["a", "b", "c"], "macro_ap": [0.2, float("nan"), 0.4]}))
    'c'
    """
    if results.empty:
        raise InputError("no configurations in the results")
    return str(results["config"].iloc[int(np.argmax(results[metric].fillna(-math.inf).to_numpy()))])


def per_class_ap_matrix(table: pd.DataFrame, *, source: str = "per_class_ap.csv") -> tuple[list[str], np.ndarray]:
    """Configurations × classes matrix of AP from ``per_class_ap.csv``.

    Returns
    -------
    configs : list of str
        In order of first appearance.
    ap : ndarray, shape (len(configs), 19), float64
        NaN where the file has no value (a class without positives, or no row).
    """
    if table.empty:
        raise InputError(f"{source}: no rows after the header; expected one row per (configuration, class)")
    k = _check_class_ids(table, source)
    ap_values = _numbers(table, "ap", source, integer=False)
    configs = list(dict.fromkeys(table["config"].astype(str).str.strip()))
    ap = np.full((len(configs), NUM_CLASSES), np.nan)
    for config, cls, value in zip(table["config"].astype(str).str.strip(), k, ap_values):
        ap[configs.index(config), cls] = value
    return configs, ap


def _check_class_ids(table: pd.DataFrame, source: str) -> pd.Series:
    k = _numbers(table, "class_id", source, integer=True)
    outside = (k < 0) | (k >= NUM_CLASSES)
    if outside.any():
        i = int(np.flatnonzero(outside.to_numpy())[0])
        raise InputError(
            f"{source}, line {table[LINE].iloc[i] if LINE in table else '?'}: class_id {k.iloc[i]} is outside 0-{NUM_CLASSES - 1}"
        )
    return k


def confusion_by_config(
    table: pd.DataFrame, *, source: str = "confusion.csv"
) -> dict[str, tuple[list[int], np.ndarray]]:
    """Per-class 2×2 confusion matrices of each configuration from ``confusion.csv``.

    Returns
    -------
    dict
        ``{config: (class ids in file order, ndarray (C, 2, 2) [[TN, FP], [FN, TP]])}``,
        configurations in order of first appearance.
    """
    if table.empty:
        raise InputError(f"{source}: no rows after the header; expected one row per (configuration, class)")
    k = _check_class_ids(table, source)
    counts = pd.DataFrame({c: _numbers(table, c, source, integer=True) for c in ("tn", "fp", "fn", "tp")})
    negative = (counts < 0).any(axis=1)
    if negative.any():
        i = int(np.flatnonzero(negative.to_numpy())[0])
        raise InputError(
            f"{source}, line {table[LINE].iloc[i] if LINE in table else '?'}: negative count in tn,fp,fn,tp {counts.iloc[i].tolist()}; expected counts >= 0"
        )
    configs = table["config"].astype(str).str.strip()
    duplicated = pd.DataFrame({"config": configs, "k": k}).duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(
            f"{source}, line {table[LINE].iloc[i] if LINE in table else '?'}: class {k.iloc[i]} of configuration {configs.iloc[i]!r} appears twice"
        )
    out = {}
    for config in dict.fromkeys(configs):
        mine = (configs == config).to_numpy()
        c = counts[mine].to_numpy()
        out[config] = (k[mine].tolist(), np.stack([c[:, [0, 1]], c[:, [2, 3]]], axis=1).astype(np.int64))
    return out
