"""Localisation of saliency maps against ground-truth masks: pointing game, relevance mass / rank, AUPRC.

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score

from medbundle.explain.measures._common import _map_mask, _nanmean, _np, _stack_maps
from medbundle.explain.measures.summary import summarise

__all__ = [
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "saliency_auprc",
    "localisation_scores",
    "random_baseline_localisation",
]

LOCALISATION_KEYS = ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "auprc")


def pointing_game(saliency: Any, mask: Any, tolerance: float = 0) -> float:
    """Pointing game (Zhang et al. 2018): does the map's maximum fall on the object?

    ``hit = 1[ exists p in argmax(S) : dist(p, M) <= tolerance ]``, i.e. a hit if ANY of the (tied) maximal
    pixels lies in the mask dilated by a Euclidean disk of radius ``tolerance`` pixels.

    Args:
        saliency: map ``(H,W)`` (higher = more relevant).
        mask: ground-truth mask ``(H,W)``.
        tolerance: dilation radius of the mask in pixels (0 = the mask itself).

    Returns:
        1.0 for a hit, 0.0 for a miss; a constant map (all-zero included) points nowhere and is a miss (0.0);
        NaN for an empty mask.
    """
    s, m = _map_mask(saliency, mask)
    if not m.any():
        return float("nan")
    if np.ptp(s) == 0:
        return 0.0
    if tolerance > 0:
        m = ndimage.distance_transform_edt(~m) <= tolerance
    return float(m[s == s.max()].any())


def relevance_mass_accuracy(saliency: Any, mask: Any) -> float:
    """Relevance mass accuracy (Arras et al. 2022): the share of the total relevance that falls in the mask.

    ``RMA = sum_{p in M} R_p / sum_p R_p`` with ``R = max(S, 0)`` (negative relevance is clipped).

    Args:
        saliency: map ``(H,W)``.
        mask: ground-truth mask ``(H,W)``.

    Returns:
        RMA in [0, 1]; 0.0 for an all-zero map; NaN for an empty mask.
    """
    s, m = _map_mask(saliency, mask)
    if not m.any():
        return float("nan")
    r = np.clip(s, 0, None)
    total = r.sum()
    return float(r[m].sum() / total) if total > 0 else 0.0


def relevance_rank_accuracy(saliency: Any, mask: Any) -> float:
    """Relevance rank accuracy (Arras et al. 2022): the share of the ``K = |M|`` top-ranked pixels inside the mask.

    ``RRA = |P_top-K ∩ M| / K``. Ties at the K-th value are resolved by their expectation under random
    tie-breaking: ``RRA = (|{S > t} ∩ M| + (K - |{S > t}|) * |{S = t} ∩ M| / |{S = t}|) / K`` with ``t`` the
    K-th largest value, so a constant (or all-zero) map scores the chance level ``K / (H W)``.

    Args:
        saliency: map ``(H,W)``.
        mask: ground-truth mask ``(H,W)``.

    Returns:
        RRA in [0, 1]; NaN for an empty mask.
    """
    s, m = _map_mask(saliency, mask)
    s, m = s.ravel(), m.ravel()
    k = int(m.sum())
    if k == 0:
        return float("nan")
    t = np.partition(s, s.size - k)[s.size - k]
    above, tied = s > t, s == t
    hits = (above & m).sum() + (k - above.sum()) * (tied & m).sum() / tied.sum()
    return float(hits / k)


def saliency_auprc(saliency: Any, mask: Any) -> float:
    """Area under the precision-recall curve of the map used as a pixel-wise detector of the mask.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the thresholds of the map (``sklearn.metrics.average_precision_score``);
    a random map scores about the mask fraction ``|M| / (H W)``, as does a constant map.

    Args:
        saliency: map ``(H,W)``.
        mask: ground-truth mask ``(H,W)``.

    Returns:
        AP in [0, 1]; NaN for an empty mask and for a full mask (where every map scores 1 trivially).
    """
    s, m = _map_mask(saliency, mask)
    if not m.any() or m.all():
        return float("nan")
    return float(average_precision_score(m.ravel(), s.ravel()))


def localisation_scores(maps: Any, masks: Any, tolerance: float = 0) -> list[dict[str, float]]:
    """All localisation measures per image.

    Args:
        maps: maps ``(N,H,W)`` or ``(N,1,H,W)``.
        masks: masks ``(N,H,W)`` (or ``(N,1,H,W)``) of the same spatial size.
        tolerance: pointing-game tolerance in pixels.

    Returns:
        one dict per image: ``index``, ``mask_fraction`` (``|M| / (H W)``, the chance level of RMA/RRA/AUPRC),
        ``pointing_game``, ``relevance_mass_accuracy``, ``relevance_rank_accuracy``, ``auprc``.
    """
    s, m = _stack_maps(maps), _stack_maps(_np(masks, bool)).astype(bool)
    if len(s) != len(m):
        raise ValueError(f"got {len(s)} maps but {len(m)} masks.")
    return [
        {
            "index": i,
            "mask_fraction": float(m[i].mean()),
            "pointing_game": pointing_game(s[i], m[i], tolerance),
            "relevance_mass_accuracy": relevance_mass_accuracy(s[i], m[i]),
            "relevance_rank_accuracy": relevance_rank_accuracy(s[i], m[i]),
            "auprc": saliency_auprc(s[i], m[i]),
        }
        for i in range(len(s))
    ]


def random_baseline_localisation(
    masks: Any, n_maps: int = 20, seed: int = 0, sigma: float | None = None, tolerance: float = 0
) -> dict[str, Any]:
    """The localisation measures of random maps: the level that "far better than random" is judged against.

    Each random map is ``normalise(G_sigma * U)``: uniform noise ``U ~ U(0,1)^(H W)`` smoothed with a Gaussian of
    standard deviation ``sigma`` (default ``min(H,W) / 16`` pixels, the cell size of a CAM from a stride-16
    feature map, i.e. blobs at a spatial scale comparable to the explainers') and min-max rescaled to [0, 1].

    Args:
        masks: masks ``(N,H,W)``.
        n_maps: random maps drawn per mask.
        seed: seed of the numpy generator.
        sigma: Gaussian smoothing in pixels (None: ``min(H,W) / 16``; 0: white noise).
        tolerance: pointing-game tolerance in pixels.

    Returns:
        ``{"records": per-image dicts as :func:`localisation_scores` (each measure averaged over the n_maps
        maps), "summary": summarise(records), "n_maps": int, "sigma": float, "seed": int}``.
    """
    m = _stack_maps(_np(masks, bool)).astype(bool)
    h, w = m.shape[-2:]
    sigma = float(min(h, w) / 16 if sigma is None else sigma)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(len(m)):
        noise = rng.random((n_maps, h, w))
        if sigma > 0:
            noise = ndimage.gaussian_filter(noise, sigma=(0, sigma, sigma), mode="reflect")
        lo, hi = noise.min(axis=(1, 2), keepdims=True), noise.max(axis=(1, 2), keepdims=True)
        noise = (noise - lo) / np.where(hi > lo, hi - lo, 1.0)
        recs = localisation_scores(noise, np.broadcast_to(m[i], noise.shape), tolerance)
        records.append({"index": i, "mask_fraction": float(m[i].mean())})
        records[-1].update({k: _nanmean([r[k] for r in recs]) for k in LOCALISATION_KEYS})
    return {"records": records, "summary": summarise(records), "n_maps": n_maps, "sigma": sigma, "seed": seed}
