"""Figures and tables of the classifier study: metrics per configuration, per-class AP
heatmap, the results as Markdown (from the DataFrames of :mod:`hpaseg.evaluation.study`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..classes import NUM_CLASSES
from ..evaluation.study import ABLATION_METRICS, RESULTS_COLUMNS
from .colors import CLASS_COLORS, CLASS_SHORT_NAMES
from .figures import new_figure

__all__ = ["results_markdown", "plot_ablation_metrics", "plot_ap_heatmap"]

_METRIC_NAMES = {
    "macro_f1": "macro-F1 (threshold 0.5)",
    "macro_f1_tuned": "macro-F1 (tuned thresholds)",
    "macro_ap": "macro AP",
}
_METRIC_SHADES = ("#4477AA", "#66CCEE", "#228833")  # Tol bright: not class colours, so no class is implied


def _best_first(results: pd.DataFrame, metric: str = "macro_ap") -> pd.DataFrame:
    """Rows sorted by ``metric``, best first, NaN last, ties in file order."""
    return (
        results.assign(_key=-results[metric].fillna(-math.inf)).sort_values("_key", kind="stable").drop(columns="_key")
    )


def results_markdown(
    results: pd.DataFrame, columns: Sequence[str] = RESULTS_COLUMNS, *, sort_by: str | None = "macro_ap"
) -> str:
    """The results as a Markdown table (best ``sort_by`` first; metrics to 3 decimals).

    >>> print(results_markdown(pd.DataFrame({"config": ["a", "b"], "macro_ap": [0.5, 0.75]}), ["config", "macro_ap"]))
    | config | macro_ap |
    |---|---|
    | b | 0.750 |
    | a | 0.500 |
    """
    rows = _best_first(results, sort_by) if sort_by is not None else results

    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if math.isnan(value) else (f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}")
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows.to_dict("records")]
    return "\n".join(lines)


def plot_ablation_metrics(
    results: pd.DataFrame, metrics: Sequence[str] = ABLATION_METRICS, *, title: str | None = None
) -> Figure:
    """Grouped horizontal bars: each metric for each configuration (best macro AP on top).

    Returns
    -------
    Figure
        One group per configuration, one bar per metric, values written at the bar ends;
        missing values (NaN) are written as "n/a".
    """
    if results.empty:
        raise ValueError("no results to plot")
    unknown = [m for m in metrics if m not in _METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(_METRIC_NAMES)}")
    order = _best_first(results)
    n, m = len(order), len(metrics)
    fig = new_figure(9.0, 0.2 * n * m + 0.2 * n + 1.4)
    ax = fig.add_subplot()
    height = 0.8 / m
    for j, metric in enumerate(metrics):
        ys = np.arange(n) + (j - (m - 1) / 2) * height
        values = order[metric].to_numpy(dtype=float)
        ax.barh(
            ys,
            np.nan_to_num(values),
            height=height * 0.92,
            color=_METRIC_SHADES[j % len(_METRIC_SHADES)],
            label=_METRIC_NAMES[metric],
        )
        for y, v in zip(ys, values):
            ax.text(
                (0 if math.isnan(v) else v) + 0.01, y, "n/a" if math.isnan(v) else f"{v:.3f}", va="center", fontsize=7
            )
    ax.set_yticks(np.arange(n), order["config"].tolist(), fontsize=9)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("score")
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="outside lower center", ncols=m, fontsize=9, frameon=False)
    ax.set_title(title or "Classifier study: metrics per configuration (best macro AP on top)", fontsize=11)
    return fig


def plot_ap_heatmap(configs: Sequence[str], ap: np.ndarray, *, title: str | None = None) -> Figure:
    """Heatmap of per-class AP: one row per configuration, one column per class.

    Cells hold the AP to two decimals; classes without positives (NaN) are hatched
    and marked "–". Colours: viridis (colour-blind safe, light = high).
    """

    ap = np.asarray(ap, float)
    if ap.shape != (len(configs), NUM_CLASSES):
        raise ValueError(f"ap has shape {ap.shape}; expected ({len(configs)}, {NUM_CLASSES})")
    fig = new_figure(1.0 + 0.55 * NUM_CLASSES, 0.45 * len(configs) + 3.2)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(ap), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(ap.shape[0]):
        for k in range(NUM_CLASSES):
            v = ap[i, k]
            if math.isnan(v):
                ax.add_patch(
                    Rectangle((k - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.75", linewidth=0)
                )
                ax.text(k, i, "–", ha="center", va="center", fontsize=7, color="0.4")
            else:
                ax.text(k, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > 0.55 else "white")
    ax.set_xticks(
        np.arange(NUM_CLASSES),
        [f"{CLASS_SHORT_NAMES[k]}" for k in range(NUM_CLASSES)],
        rotation=50,
        ha="right",
        rotation_mode="anchor",
        fontsize=8,
    )
    for k, label in enumerate(ax.get_xticklabels()):
        label.set_bbox({"facecolor": CLASS_COLORS[k], "edgecolor": "none", "pad": 1.0, "alpha": 0.35})
    ax.set_yticks(np.arange(len(configs)), list(configs), fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="AP")
    ax.set_title(title or "Per-class AP by configuration (– : no positive sample)", fontsize=11)
    return fig
