"""Figures of explanation heat maps (saliency / CAM relevance maps).

Heat maps follow one convention throughout: float ``(H, W)`` in ``[0, 1]``, ``1`` = most relevant,
drawn with the top (hottest) colour of the colour map; nothing is ever inverted.

Like :mod:`medbundle.plots`, these figures use matplotlib's object-oriented API
(:class:`matplotlib.figure.Figure` with an explicit Agg canvas, never ``pyplot``) and every PNG is
written through :func:`medbundle.utils.atomic_write`, so a failed or interrupted save leaves the
previous file (or none), never a truncated one.

The anatomy masks that restrict or measure relevance are in :mod:`medbundle.explain.anatomy`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from medbundle.plots.figure import agg_figure, save_png, wrap_label
from medbundle.utils import to_numpy

__all__ = [
    "RELEVANCE_LABEL",
    "overlay",
    "save_triplet",
    "save_class_grid",
    "save_mean_maps",
]

_DPI = 130
RELEVANCE_LABEL = "relevance (1 = most relevant)"
_CONTOUR_COLOR = "lime"


# ----------------------------------------------------------------------------------------------
# array helpers
# ----------------------------------------------------------------------------------------------
def _as_2d(x: Any, name: str) -> np.ndarray:
    """A float64 ``(H, W)`` array; leading singleton axes (``(1, H, W)``, ``(1, 1, H, W)``) are dropped."""
    a = to_numpy(x)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W), got {a.shape}.")
    return a.astype(np.float64)


def _as_stack(x: Any, name: str) -> np.ndarray:
    """A float64 ``(N, H, W)`` array; a channel axis of size 1 (``(N, 1, H, W)``) is dropped."""
    a = to_numpy(x)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W), got {a.shape}.")
    return a.astype(np.float64)


def _scale01(img: np.ndarray) -> np.ndarray:
    """Min-max scale to ``[0, 1]`` for display (NaN -> minimum; a constant image -> zeros)."""
    img = np.asarray(img, np.float64)
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros(img.shape)
    lo, hi = img[finite].min(), img[finite].max()
    out = np.where(finite, img, lo) - lo
    return out / (hi - lo) if hi > lo else np.zeros(img.shape)


def _clean_heat(heatmap: np.ndarray) -> np.ndarray:
    """Heat map values clipped to ``[0, 1]``, NaN -> 0."""
    return np.clip(np.nan_to_num(heatmap, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}.")


# ----------------------------------------------------------------------------------------------
# overlay
# ----------------------------------------------------------------------------------------------
def overlay(image: Any, heatmap: Any, alpha: float = 0.45, cmap: str = "jet", mask: Any = None) -> np.ndarray:
    """Blend a grey image with a colour-mapped heat map.

    Each pixel is ``(1 - w) * grey + w * cmap(h)`` with ``w = alpha * h``: irrelevant pixels
    (``h = 0``) show the plain image and the most relevant ones (``h = 1``) the top colour of
    ``cmap`` at weight ``alpha``.

    Args:
        image: grey image ``(H, W)``, any range (min-max scaled for display).
        heatmap: relevance ``(H, W)`` in ``[0, 1]`` (values outside are clipped, NaN counts as 0).
        alpha: weight of the heat map colour at relevance 1, in ``[0, 1]``.
        cmap: matplotlib colour map name.
        mask: optional ``(H, W)`` mask; the heat map is zeroed outside it.

    Returns:
        RGB image ``(H, W, 3)``, float in ``[0, 1]``.
    """
    from matplotlib import colormaps

    img = _as_2d(image, "image")
    heat = _clean_heat(_as_2d(heatmap, "heatmap"))
    _check_same_shape(img, heat, "image and heatmap")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    if mask is not None:
        m = _as_2d(mask, "mask") > 0
        _check_same_shape(img, m, "image and mask")
        heat = heat * m
    grey = np.repeat(_scale01(img)[..., None], 3, axis=-1)
    colour = colormaps[cmap](heat)[..., :3]
    w = float(alpha) * heat[..., None]
    return np.clip((1.0 - w) * grey + w * colour, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def _bare(ax: Any) -> None:
    """Hide ticks and spines but keep the axis labels (row titles)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _contour(ax: Any, gt_mask: np.ndarray | None) -> None:
    """Outline ``gt_mask`` in lime with a thin dark halo (visible on grey and on jet colours)."""
    if gt_mask is None or not gt_mask.any():
        return
    from matplotlib import patheffects

    cs = ax.contour(gt_mask.astype(np.float64), levels=[0.5], colors=_CONTOUR_COLOR, linewidths=1.2)
    cs.set_path_effects([patheffects.withStroke(linewidth=2.4, foreground="black")])


def _relevance_mappable(cmap: str, vmax: float = 1.0) -> Any:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return ScalarMappable(norm=Normalize(vmin=0.0, vmax=vmax), cmap=cmap)


def save_triplet(
    path: str | os.PathLike,
    image: Any,
    heatmap: Any,
    title: str = "",
    mask: Any = None,
    gt_mask: Any = None,
    cmap: str = "jet",
) -> None:
    """Save one PNG with three panels: the image, the heat map (with colour bar) and their overlay.

    Args:
        path: output PNG path (written atomically; parent folders are created).
        image: grey image ``(H, W)``.
        heatmap: relevance ``(H, W)`` in ``[0, 1]``, 1 = most relevant.
        title: figure title (for example the case id, true and predicted class).
        mask: optional anatomy mask ``(H, W)``; the heat map is zeroed outside it in both the heat
            map and the overlay panels.
        gt_mask: optional ground-truth lesion mask ``(H, W)``, outlined in lime on the image and
            overlay panels.
        cmap: matplotlib colour map name.
    """
    img = _as_2d(image, "image")
    heat = _clean_heat(_as_2d(heatmap, "heatmap"))
    _check_same_shape(img, heat, "image and heatmap")
    if mask is not None:
        m = _as_2d(mask, "mask") > 0
        _check_same_shape(img, m, "image and mask")
        heat = heat * m
    gt = None
    if gt_mask is not None:
        gt = _as_2d(gt_mask, "gt_mask") > 0
        _check_same_shape(img, gt, "image and gt_mask")
    ov = overlay(img, heat, cmap=cmap)
    outlined = " (lime: lesion outline)" if gt is not None and gt.any() else ""

    with agg_figure(figsize=(11.5, 4.2), layout="constrained") as fig:
        axes = fig.subplots(1, 3)
        axes[0].imshow(_scale01(img), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes[0].set_title("image" + outlined, fontsize=10)
        _contour(axes[0], gt)
        im = axes[1].imshow(heat, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        axes[1].set_title("heat map", fontsize=10)
        cbar = fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.03)
        cbar.set_label(RELEVANCE_LABEL, fontsize=9)
        axes[2].imshow(ov, interpolation="nearest")
        axes[2].set_title("overlay" + outlined, fontsize=10)
        _contour(axes[2], gt)
        for ax in axes:
            ax.set_axis_off()
        if title:
            fig.suptitle(wrap_label(title, 110), fontsize=11)
        save_png(fig, path, _DPI)


def save_class_grid(
    path: str | os.PathLike,
    images: Any,
    maps: Any,
    labels: Any,
    preds: Any,
    class_names: Sequence[str],
    max_per_class: int = 6,
    cmap: str = "jet",
) -> None:
    """Save one PNG of heat-map overlays, one row per true class.

    Each row shows the first ``max_per_class`` images of that true class in input order (sort the
    inputs beforehand to choose, e.g. the misclassified first), each titled with its predicted class
    and ``correct`` (green) or ``wrong`` (red). A row of a class without images says
    ``"no images"``. One colour bar is shared by all panels.

    Args:
        path: output PNG path (written atomically).
        images: grey images ``(N, H, W)`` (or ``(N, 1, H, W)``).
        maps: relevance maps ``(N, H, W)`` in ``[0, 1]``.
        labels: true class indices ``(N,)``.
        preds: predicted class indices ``(N,)``.
        class_names: ``C`` class names (one row each).
        max_per_class: most panels per row.
        cmap: matplotlib colour map name.
    """
    imgs = _as_stack(images, "images")
    heats = _as_stack(maps, "maps")
    _check_same_shape(imgs, heats, "images and maps")
    y = to_numpy(labels).reshape(-1).astype(np.int64)
    p = to_numpy(preds).reshape(-1).astype(np.int64)
    n, c = imgs.shape[0], len(class_names)
    if len(y) != n or len(p) != n:
        raise ValueError(f"{n} images but {len(y)} labels and {len(p)} predictions.")
    if c == 0:
        raise ValueError("class_names is empty.")
    if n and (min(y.min(), p.min()) < 0 or max(y.max(), p.max()) >= c):
        raise ValueError(f"labels and predictions must be class indices in [0, {c - 1}].")
    if int(max_per_class) < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}.")
    rows = [np.flatnonzero(y == k) for k in range(c)]
    ncols = max(1, min(int(max_per_class), max(len(r) for r in rows)))
    names = [str(s) for s in class_names]

    with agg_figure(figsize=(1.9 * ncols + 1.6, 2.25 * c + 0.4), layout="constrained") as fig:
        axes = np.asarray(fig.subplots(c, ncols, squeeze=False))
        for k, idx in enumerate(rows):
            for j in range(ncols):
                ax = axes[k, j]
                _bare(ax)
                if j < len(idx):
                    i = idx[j]
                    ax.imshow(overlay(imgs[i], heats[i], cmap=cmap), interpolation="nearest")
                    ok = p[i] == y[i]
                    ax.set_title(
                        f"pred: {wrap_label(names[p[i]], 16)}\n{'correct' if ok else 'wrong'}",
                        fontsize=8,
                        color="tab:green" if ok else "tab:red",
                    )
                elif j == 0:
                    ax.text(0.5, 0.5, "no images", ha="center", va="center", fontsize=9, color="0.4")
                    ax.set_box_aspect(1.0)
                else:
                    ax.set_visible(False)
            shown = f", {min(len(idx), ncols)} shown" if len(idx) > ncols else ""
            axes[k, 0].set_ylabel(f"true: {wrap_label(names[k], 16)}\n(n={len(idx)}{shown})", fontsize=9)
        cbar = fig.colorbar(_relevance_mappable(cmap), ax=axes.ravel().tolist(), shrink=min(0.9, 0.35 + 0.2 * c))
        cbar.set_label(RELEVANCE_LABEL, fontsize=9)
        fig.suptitle("Heat maps by true class", fontsize=11)
        save_png(fig, path, _DPI)


def save_mean_maps(
    path: str | os.PathLike, mean_maps: Mapping[str, Any], cmap: str = "jet", shared_scale: bool = True
) -> None:
    """Save one PNG with one panel per class of its mean relevance map, each with a colour bar.

    Args:
        path: output PNG path (written atomically).
        mean_maps: ``{class name: (H, W) mean heat map}``, in panel order.
        cmap: matplotlib colour map name.
        shared_scale: all panels use one colour scale ``[0, max over all maps]``, so classes are
            comparable; ``False`` scales every panel to ``[0, its own max]``.
    """
    if not mean_maps:
        raise ValueError("mean_maps is empty.")
    maps = {str(k): np.nan_to_num(_as_2d(v, f"mean map {k!r}"), nan=0.0) for k, v in mean_maps.items()}
    top = max(float(m.max()) for m in maps.values())
    k = len(maps)
    ncols = min(k, 4)
    nrows = -(-k // ncols)
    with agg_figure(figsize=(3.3 * ncols + 0.4, 3.1 * nrows + 0.4), layout="constrained") as fig:
        axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax, (name, m) in zip(axes, maps.items()):
            vmax = top if shared_scale else float(m.max())
            im = ax.imshow(m, cmap=cmap, vmin=0.0, vmax=vmax if vmax > 0 else 1.0, interpolation="nearest")
            ax.set_title(wrap_label(name, 24), fontsize=10)
            ax.set_axis_off()
            cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            cbar.set_label("mean relevance", fontsize=8)
            cbar.ax.tick_params(labelsize=7)
        for ax in axes[k:]:
            ax.set_visible(False)
        fig.suptitle("Mean heat map per class", fontsize=11)
        save_png(fig, path, _DPI)
