"""Pictures of duplicate pairs: pages of side-by-side thumbnails (``duplicate_pairs_<page>.png``): every relation
(across sources, across splits, within a split) and kind of pair in turn, in that order, so each shows up."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from medbundle.plots.figure import agg_figure, save_png

__all__ = ["pick_pairs", "write_pair_pages"]

_RELATIONS = ("across_sources", "across_splits", "within_split")
_KINDS = ("near_crop", "near", "exact_pixels", "exact_file")


def pick_pairs(pairs: pd.DataFrame, count: int) -> pd.DataFrame:
    """At most ``count`` rows of ``pairs`` (with ``relation`` and ``kind``) to show: one of each relation and kind in
    turn (relations in the order of :data:`_RELATIONS`), the most distant pairs of each first."""
    queues = [list(pairs[(pairs["relation"] == relation) & (pairs["kind"] == kind)]
                   .sort_values("distance", ascending=False, kind="stable").index)
              for relation in _RELATIONS for kind in _KINDS]
    chosen = []
    while any(queues) and len(chosen) < count:
        for q in queues:
            if q and len(chosen) < count:
                chosen.append(q.pop(0))
    return pairs.loc[chosen]


def _thumbnail(path: str, size: int = 256) -> np.ndarray:
    """The image as grey, its long side ``size`` px (aspect kept); a grey square when it cannot be read."""
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_4 if data.size > 4 * 2**20 else cv2.IMREAD_GRAYSCALE)
    if image is None:
        return np.full((size, size), 128, np.uint8)
    scale = size / max(image.shape)
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)


def _label(row: pd.Series, side: str) -> str:
    where = "/".join(str(row[f"{k}_{side}"]) for k in ("source", "split", "class") if str(row[f"{k}_{side}"]))
    name = Path(str(row[side])).name
    return f"{where}\n{name if len(name) <= 40 else name[:37] + '...'}"


def write_pair_pages(pairs: pd.DataFrame, output_dir: str | os.PathLike, pages: int = 4,
                     per_page: int = 6) -> list[str]:
    """Write up to ``pages`` PNG pages of ``per_page`` duplicate pairs each; the file names written.

    Args:
        pairs: rows of ``duplicates.csv`` (paths ``a`` and ``b``, ``kind``, ``distance``, ``relation``,
            ``source_*``, ``split_*``, ``class_*``).
        output_dir: folder to write ``duplicate_pairs_<page>.png`` into.
        pages: most pages.
        per_page: pairs per page.
    """
    shown = pick_pairs(pairs, pages * per_page)
    names = []
    for page, start in enumerate(range(0, len(shown), per_page), 1):
        rows = shown.iloc[start:start + per_page]
        with agg_figure(figsize=(7.0, 3.3 * len(rows)), layout="constrained") as fig:
            axes = fig.subplots(len(rows), 2, squeeze=False)
            for (left, right), (_, row) in zip(axes, rows.iterrows()):
                for ax, side in ((left, "a"), (right, "b")):
                    ax.imshow(_thumbnail(str(row[side])), cmap="gray", vmin=0, vmax=255)
                    ax.set_title(_label(row, side), fontsize=7)
                    ax.set_xticks([])
                    ax.set_yticks([])
                detail = f", detail {row['detail_correlation']:.2f}" if pd.notna(row["detail_correlation"]) else ""
                left.set_ylabel(f"{row['kind']}\n{row['relation'].replace('_', ' ')}\n{row['distance']} bits{detail}",
                                fontsize=7)
            fig.suptitle(f"Duplicate pairs, page {page} (perceptual-hash distance in bits of 256)", fontsize=9)
            name = f"duplicate_pairs_{page}.png"
            save_png(fig, Path(output_dir) / name, dpi=90)
            names.append(name)
    return names
