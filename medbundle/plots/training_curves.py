"""The per-epoch CSV training log: reading it robustly and plotting losses, validation metrics and learning rate."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from medbundle.plots.figure import _DPI, _colors, agg_figure, save_png

__all__ = ["read_training_log", "plot_training_curves"]

logger = logging.getLogger("medbundle.plots")


def read_training_log(log_csv: str | os.PathLike | None) -> Any:
    """Read the per-epoch CSV training log into a clean :class:`pandas.DataFrame`.

    Malformed lines (for example a last line cut by a kill) are skipped, values are coerced to
    numbers (unparsable ones become NaN), and when a resumed run repeated epochs the *last* row of
    each epoch is kept. Rows are sorted by epoch. Without an ``epoch`` column rows are numbered
    from 1.

    Args:
        log_csv: path of the CSV log (columns ``epoch``, ``train_loss``, ``lr``, ``val_<metric>``...).

    Returns:
        the DataFrame, or ``None`` when the file is missing, empty or has no data rows.
    """
    import pandas as pd

    if log_csv is None:
        return None
    path = Path(log_csv)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        df = pd.read_csv(path, on_bad_lines="skip", skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        logger.warning("could not read training log %s: %s", path, e)
        return None
    df.columns = [str(col).strip() for col in df.columns]
    df = df.apply(pd.to_numeric, errors="coerce")
    if "epoch" in df.columns:
        df = df[df["epoch"].notna()]
        df = df.drop_duplicates(subset="epoch", keep="last").sort_values("epoch", kind="stable")
    else:
        df = df.assign(epoch=np.arange(1, len(df) + 1))
    df = df.dropna(axis=1, how="all") if len(df) else df
    if len(df) == 0 or "epoch" not in df.columns:
        return None
    return df.reset_index(drop=True)


def plot_training_curves(log_csv: str | os.PathLike | None, path: str | os.PathLike) -> bool:
    """Plot the training log: losses (left), validation metrics (middle), learning rate (right).

    Columns ending in ``loss`` (``train_loss``, ``val_loss``...) go to the left panel, the other
    ``val_<metric>`` columns to the middle one and ``lr`` (log scale) to the right one. Missing
    values are skipped per series (points are marked, so isolated values stay visible) and
    repeated epochs of a resumed run keep their last row (see :func:`read_training_log`).

    Args:
        log_csv: path of the per-epoch CSV log written during training.
        path: output PNG path.

    Returns:
        ``True`` when the figure was written, ``False`` (and nothing written) when the log is
        missing, empty or has no data rows.
    """
    from matplotlib.ticker import MaxNLocator

    df = read_training_log(log_csv)
    if df is None:
        return False
    x = df["epoch"].to_numpy()
    loss_cols = [col for col in df.columns if col.lower().endswith("loss")]
    val_cols = [col for col in df.columns if col.startswith("val_") and col not in loss_cols]
    lr_cols = [col for col in df.columns if col == "lr" or col.startswith("lr_")]
    panels = [("Loss", loss_cols, False), ("Validation metrics", val_cols, False), ("Learning rate", lr_cols, True)]
    marker = "o" if len(df) <= 60 else None

    with agg_figure(figsize=(15.0, 4.4), layout="constrained") as fig:
        axes = fig.subplots(1, 3)
        for ax, (title, cols, log_scale) in zip(axes, panels):
            plotted = False
            colors = _colors(max(len(cols), 1))
            for color, col in zip(colors, cols):
                s = df[col].to_numpy(dtype=np.float64)
                ok = np.isfinite(s)
                if log_scale:
                    ok &= s > 0
                if not ok.any():
                    continue
                label = col[4:] if col.startswith("val_") and title.startswith("Validation") else col
                ax.plot(x[ok], s[ok], marker=marker, markersize=3.5, linewidth=1.6, color=color, label=label)
                if not title.startswith("Learning"):
                    best = int(np.nanargmin(np.where(ok, s, np.nan)) if "loss" in col.lower()
                               else np.nanargmax(np.where(ok, s, np.nan)))
                    ax.plot([x[best]], [s[best]], marker="*", markersize=11, color=color, linestyle="none")
                plotted = True
            if plotted and log_scale:
                ax.set_yscale("log")
            if not plotted:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
            elif len(cols) > 1 or not log_scale:
                ax.legend(fontsize=8, framealpha=0.9)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3, which="both" if log_scale else "major")
        fig.suptitle(f"Training curves ({len(df)} epochs; \u2605 = best)")
        save_png(fig, path, _DPI)
    return True
