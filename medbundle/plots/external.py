"""Forest plot of the internal test split and the external sets: accuracy and each class's sensitivity with intervals."""

from __future__ import annotations

import os
from typing import Any, Mapping

from medbundle.plots.figure import _DPI, _colors, agg_figure, save_png

__all__ = ["plot_external"]


def plot_external(comparison: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Draw :func:`medbundle.external.compare_sets`'s comparison: one row per figure, one colour per set.

    Args:
        comparison: ``{"internal", "external", "class_names"}`` as returned by
            :func:`medbundle.external.compare_sets` (figures ``{"value", "lo", "hi"}`` or None).
        path: the PNG written (atomically).
    """
    names = list(comparison["class_names"])
    rows = ["accuracy"] + [f"sensitivity {c}" for c in names]
    sets = ([comparison["internal"]] if comparison.get("internal") else []) + list(comparison["external"])
    colors = _colors(max(len(sets), 1))
    step = len(sets) + 1
    with agg_figure(figsize=(7.0, 0.8 + 0.32 * len(rows) * step), layout="constrained") as fig:
        ax = fig.add_subplot()
        for j, s in enumerate(sets):
            values = [s["accuracy"]] + [s["sensitivity"].get(c) for c in names]
            for i, v in enumerate(values):
                if not v or v.get("value") is None:
                    continue
                lo, hi = v.get("lo", v["value"]), v.get("hi", v["value"])
                ax.errorbar(v["value"], -(i * step + j), xerr=[[v["value"] - lo], [hi - v["value"]]], fmt="o",
                            capsize=3, color=colors[j], label=f"{s['name']} (n={s['n']})" if i == 0 else None)
        ax.set_yticks([-(i * step + (len(sets) - 1) / 2) for i in range(len(rows))], rows)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("value with 95 % interval (Wilson)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title("internal test split and external sets")
        save_png(fig, path, dpi=_DPI)
