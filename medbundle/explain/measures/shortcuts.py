"""Shortcut checks with anatomy masks: can the model classify with the anatomy removed, and where do its maps look?

A model that still classifies well when everything inside the anatomy (the lungs of a chest X-ray) is blanked reads
its answer elsewhere: text markers, devices, the patient's size or age, the source hospital. :func:`blank_outside`
and :func:`blank_inside` make the two variants, :func:`anatomy_shortcut_scores` scores a model on them against
chance, and :func:`mass_inside` measures the share of a saliency map's relevance inside the anatomy against the
share a random map would put there.

Why the blanked region is filled with the mean of the kept region by default, not with 0: after intensity scaling
(to ``[0, 1]`` or to zero mean) 0 is the darkest value or the data set's mean, so a zero-filled region is a sharp
silhouette of a brightness the image never has, a cue of its own the network may read (the lungs' outline, the
patient's size). The kept region's mean removes that intensity step; the outline itself stays (flat against
textured), for either fill, so a flagged result says "the model reads something outside the anatomy", which may
include the anatomy's shape.

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from medbundle.explain.measures._common import _np, _stack_maps
from medbundle.explain.measures.localisation import relevance_mass_accuracy
from medbundle.explain.measures.summary import summarise
from medbundle.metrics.intervals import proportion_with_ci

__all__ = ["VARIANTS", "check_fill", "blank_outside", "blank_inside", "anatomy_shortcut_scores", "mass_inside"]

VARIANTS = ("original", "inside_only", "outside_only")  # inside_only: outside blanked; outside_only: inside blanked


def check_fill(fill: Any) -> str | float:
    """``fill`` as ``"mean"`` or a float; a ValueError naming the fix otherwise.

    Args:
        fill: ``"mean"`` (per-image mean of the kept region) or a constant.
    """
    if isinstance(fill, str):
        if fill.strip().lower() == "mean":
            return "mean"
        try:
            return float(fill)
        except ValueError:
            pass
    elif isinstance(fill, (int, float, np.integer, np.floating)) and not isinstance(fill, bool):
        if np.isfinite(fill):
            return float(fill)
    raise ValueError(f"fill={fill!r} is not a fill value: pass 'mean' (the kept region's mean per image) or a number")


def _images_masks(images: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    """Images as float64 ``(N, C, H, W)`` (``(N, H, W)`` gets C = 1) and masks as bool ``(N, 1, H, W)``."""
    x = _np(images)
    x = x[:, None] if x.ndim == 3 else x
    m = _stack_maps(_np(masks, bool)).astype(bool)[:, None]
    if x.ndim != 4 or m.shape[0] != x.shape[0] or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"expected images (N,C,H,W) or (N,H,W) and masks (N,H,W) of the same N, H and W, got "
                         f"{x.shape} and {m.shape[:1] + m.shape[2:]}.")
    return x, m


def _blank(images: Any, masks: Any, fill: Any, keep_inside: bool) -> Any:
    """Replace the pixels outside (``keep_inside``) or inside the masks by ``fill``; the kind of ``images`` back."""
    fill = check_fill(fill)
    x, m = _images_masks(images, masks)
    keep = m if keep_inside else ~m
    if fill == "mean":
        count = keep.sum(axis=(2, 3), keepdims=True)
        value = np.where(count > 0, (x * keep).sum(axis=(2, 3), keepdims=True) / np.maximum(count, 1),
                         x.mean(axis=(2, 3), keepdims=True))  # nothing kept: the whole image's mean
    else:
        value = np.float64(fill)
    out = np.where(keep, x, value).reshape(np.shape(images))
    if isinstance(images, torch.Tensor):
        dtype = images.dtype if images.is_floating_point() else torch.float32
        return torch.as_tensor(out, device=images.device).to(dtype)
    dtype = np.asarray(images).dtype
    return out.astype(dtype if np.issubdtype(dtype, np.floating) else np.float32)


def blank_outside(images: Any, masks: Any, fill: Any = "mean") -> Any:
    """Keep the anatomy, blank everything outside it: the "inside_only" variant.

    Pixels inside the mask are returned exactly as given; every other pixel takes ``fill``: the mean of the image's
    pixels inside the mask, per image and channel (``"mean"``; the whole image's mean where the mask is empty),
    or a constant. See the module's docstring for why the default is not 0.

    Args:
        images: ``(N, C, H, W)`` or ``(N, H, W)``, numpy array or torch tensor.
        masks: anatomy masks ``(N, H, W)`` or ``(N, 1, H, W)`` (nonzero = anatomy).
        fill: ``"mean"`` or a number.

    Returns:
        the blanked images, of the shape and kind (array or tensor, float dtype, device) of ``images``.
    """
    return _blank(images, masks, fill, keep_inside=True)


def blank_inside(images: Any, masks: Any, fill: Any = "mean") -> Any:
    """Blank the anatomy, keep everything outside it: the "outside_only" variant (the lungs removed).

    Pixels outside the mask are returned exactly as given; the mask's pixels take ``fill``: the mean of the pixels
    outside the mask (``"mean"``, per image and channel; the whole image's mean where the mask covers it all) or a
    constant.

    Args:
        images: ``(N, C, H, W)`` or ``(N, H, W)``, numpy array or torch tensor.
        masks: anatomy masks ``(N, H, W)`` or ``(N, 1, H, W)`` (nonzero = anatomy).
        fill: ``"mean"`` or a number.

    Returns:
        the blanked images, of the shape and kind of ``images``.
    """
    return _blank(images, masks, fill, keep_inside=False)


def _probabilities(scores: Any, n: int, n_classes: int) -> np.ndarray:
    """``scores`` ``(n, K)`` as probabilities: rows that are not all probabilities summing to 1 go through softmax."""
    p = _np(scores)
    if p.shape != (n, n_classes):
        raise ValueError(f"predict_fn returned scores of shape {p.shape} for {n} images of {n_classes} classes: "
                         f"it must return ({n}, {n_classes}) class probabilities or logits.")
    if p.min() < 0 or p.max() > 1 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        p = softmax(p, axis=1)
    return p


def _labels(labels: Any, n: int, n_classes: int) -> np.ndarray:
    """Class indices ``(n,)`` from indices or one-hot ``(n, K)`` labels."""
    y = _np(labels)
    y = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    if y.size != n or np.any(y != np.round(y)) or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"expected {n} labels in 0..{n_classes - 1} (indices or one-hot), got {np.shape(labels)} "
                         f"with values {np.unique(y)[:5].tolist()}.")
    return y.astype(np.int64)


def _macro_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC (binary: of class 1; else macro one-vs-rest) where every class is present; None otherwise."""
    k = p.shape[1]
    if len(np.unique(y)) < k:
        return None
    if k == 2:
        return float(roc_auc_score(y, p[:, 1]))
    return float(roc_auc_score(y, p / p.sum(axis=1, keepdims=True), multi_class="ovr", average="macro",
                               labels=list(range(k))))


def anatomy_shortcut_scores(
    predict_fn: Callable[[Any], Any],
    images: Any,
    anatomy_masks: Any,
    labels: Any,
    n_classes: int,
    fill: Any = "mean",
    batch_size: int = 32,
    level: float = 0.95,
) -> dict[str, Any]:
    """Accuracy and AUC on the images, on the anatomy alone and on everything but the anatomy, against chance.

    Three variants of every image are scored: ``original``; ``inside_only`` (:func:`blank_outside`: what the
    anatomy alone tells); ``outside_only`` (:func:`blank_inside`: the anatomy removed). Accuracy is the share of
    ``argmax`` predictions equal to the label, with its Wilson interval
    (:func:`medbundle.metrics.intervals.proportion_with_ci`); the AUC is scikit-learn's ``roc_auc_score`` (binary:
    of class 1; else the macro one-vs-rest mean), None unless every class is present. Chance is the majority-class
    rate (what a constant answer scores) and ``1 / K``. ``flag`` is raised when the outside-only accuracy's lower
    bound is above the majority rate: the model classifies better than any constant answer with the anatomy
    removed, so it reads something outside it.

    Args:
        predict_fn: ``predict_fn(images (B, C, H, W) of the kind given) -> (B, K)`` class probabilities or logits
            (rows that are not probabilities are turned into them with a softmax).
        images: ``(N, C, H, W)`` or ``(N, H, W)``, numpy array or torch tensor.
        anatomy_masks: ``(N, H, W)`` or ``(N, 1, H, W)`` (nonzero = anatomy).
        labels: class indices ``(N,)`` or one-hot ``(N, K)``.
        n_classes: ``K``.
        fill: ``"mean"`` or a number, see :func:`blank_outside`.
        batch_size: images per ``predict_fn`` call (the variants are made batch by batch).
        level: confidence level of the intervals.

    Returns:
        ``{"n", "n_classes", "fill", "level", "chance": {"majority", "majority_class", "uniform"},
        "anatomy_fraction" (mean share of the image inside the mask), "n_empty_masks", "original" / "inside_only" /
        "outside_only": {"accuracy": {"value", "lo", "hi", "k", "n", "method"}, "auc"}, "flag"}``, JSON-ready.
    """
    fill = check_fill(fill)
    n = len(images)
    if n == 0:
        raise ValueError("no images to check: anatomy_shortcut_scores needs at least one image with its mask.")
    y = _labels(labels, n, n_classes)
    masks = _stack_maps(_np(anatomy_masks, bool)).astype(bool)
    if len(masks) != n:
        raise ValueError(f"got {n} images but {len(masks)} anatomy masks.")
    _images_masks(images[:1], masks[:1])  # shapes checked before any prediction
    make = {"original": lambda x, m: x, "inside_only": lambda x, m: blank_outside(x, m, fill),
            "outside_only": lambda x, m: blank_inside(x, m, fill)}
    probs: dict[str, list[np.ndarray]] = {v: [] for v in VARIANTS}
    for start in range(0, n, int(batch_size)):
        x, m = images[start : start + int(batch_size)], masks[start : start + int(batch_size)]
        for variant in VARIANTS:
            probs[variant].append(_probabilities(predict_fn(make[variant](x, m)), len(m), n_classes))
    counts = np.bincount(y, minlength=n_classes)
    out: dict[str, Any] = {
        "n": n, "n_classes": int(n_classes), "fill": fill, "level": float(level),
        "chance": {"majority": float(counts.max() / n), "majority_class": int(counts.argmax()),
                   "uniform": 1.0 / n_classes},
        "anatomy_fraction": float(masks.mean()), "n_empty_masks": int((~masks.any(axis=(1, 2))).sum()),
    }
    for variant in VARIANTS:
        p = np.concatenate(probs[variant])
        out[variant] = {"accuracy": proportion_with_ci(int((p.argmax(axis=1) == y).sum()), n, level),
                        "auc": _macro_auc(y, p)}
    lo = out["outside_only"]["accuracy"]["lo"]
    out["flag"] = bool(lo is not None and lo > out["chance"]["majority"])
    return out


def mass_inside(maps: Any, anatomy_masks: Any) -> dict[str, Any]:
    """Share of each map's relevance inside the anatomy, against the share a random map puts there.

    ``mass = sum_{p in A} R_p / sum_p R_p`` with ``R = max(S, 0)`` (the relevance mass accuracy of
    :func:`~medbundle.explain.measures.relevance_mass_accuracy`, ``1 - spillover``). A uniform map, and in
    expectation a random one, puts the anatomy's area fraction ``|A| / (H W)`` there: that is the baseline, and
    ``ratio = mass / area_fraction`` (1 = chance, ``1 / area_fraction`` = all relevance inside).

    Args:
        maps: ``(N, H, W)`` or ``(N, 1, H, W)``.
        anatomy_masks: ``(N, H, W)`` or ``(N, 1, H, W)`` of the same size.

    Returns:
        ``{"per_image": [{"index", "mass_inside", "area_fraction", "ratio"}], "summary": summarise(per_image),
        "mass_inside": mean mass, "random_baseline": mean area fraction over the same images, "ratio": their
        quotient}``; ``mass_inside`` and ``ratio`` NaN for an all-zero map (no relevance to place) and an empty mask.
    """
    s, a = _stack_maps(maps), _stack_maps(_np(anatomy_masks, bool)).astype(bool)
    if s.shape != a.shape:
        raise ValueError(f"got maps of shape {s.shape} but anatomy masks of shape {a.shape}.")
    records = []
    for i in range(len(s)):
        area = float(a[i].mean())
        mass = relevance_mass_accuracy(s[i], a[i]) if (s[i] > 0).any() else float("nan")
        ratio = mass / area if area > 0 and np.isfinite(mass) else float("nan")
        records.append({"index": i, "mass_inside": mass, "area_fraction": area, "ratio": ratio})
    defined = [r for r in records if np.isfinite(r["mass_inside"])]
    mass = float(np.mean([r["mass_inside"] for r in defined])) if defined else float("nan")
    base = float(np.mean([r["area_fraction"] for r in defined])) if defined else float("nan")
    return {"per_image": records, "summary": summarise(records), "mass_inside": mass, "random_baseline": base,
            "ratio": mass / base if base > 0 else float("nan")}
