"""Stability of saliency maps under input noise, against a random-pair baseline.

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medbundle.explain.measures._common import (
    Explainer,
    _device,
    _eval,
    _explain,
    _nanmean,
    _pair_baseline,
    _predict,
    _similarity,
    _ssim_win,
)

__all__ = ["stability"]


def stability(
    explain: Explainer,
    model: nn.Module,
    images: torch.Tensor,
    noise_levels: Sequence[float] = (0.01, 0.02, 0.05, 0.1),
    n_copies: int = 4,
    seed: int = 0,
    data_range: float = 1.0,
    win_size: int = 7,
    batch_size: int = 16,
    max_pairs: int = 200,
) -> dict[str, Any]:
    """Similarity of each image's map with the maps of noisy copies of the image, against a random-pair baseline.

    For each level ``l`` and copy ``k``: ``x' = x + eps``, ``eps ~ N(0, (l * data_range)^2)`` (not clipped);
    copies whose predicted class differs from the clean prediction are skipped and counted; the kept copies
    are explained for the clean prediction's class and compared with the clean map ``S``:
    ``SSIM(S, S')`` (``monai.metrics.SSIMMetric``, data range 1.0 since maps are in [0, 1], Gaussian window
    ``win_size``), Pearson ``r = cov(S, S') / (sd(S) sd(S'))`` and Spearman ``rho`` = Pearson of the ranks
    (for a constant map: 0 against a structured map, 1 against another constant map).
    ``pair_baseline`` holds the same measures between the clean maps of different images (all pairs, or
    ``max_pairs`` random ones): a stable explainer should sit well above it.

    Args:
        explain: the explainer, called on ``model``'s inputs (it is expected to use ``model``).
        model: the classifier (put in eval mode for the call, flags restored afterwards).
        images: ``(N,C,H,W)``.
        noise_levels: noise standard deviations as fractions of ``data_range``.
        n_copies: noisy copies per image and level.
        seed: seed of the noise (a CPU torch generator) and of the pair sampling.
        data_range: intensity range of ``images`` (the noise scale).
        win_size: SSIM window (reduced to the largest odd size that fits the map).
        batch_size: images per model/explainer call.
        max_pairs: most image pairs in the baseline.

    Returns:
        ``{"noise_levels", "n_copies", "data_range", "ssim_data_range": 1.0, "ssim_win_size",
        "levels": [{"noise_level", "noise_std", "n_kept", "n_skipped", "ssim", "pearson", "spearman"}]`` (means
        over kept copies), ``"per_image": [{"index", "noise_level", "n_kept", "n_skipped", "ssim", "pearson",
        "spearman"}]`` (means over the image's kept copies, NaN if none), ``"pair_baseline": {"ssim", "pearson",
        "spearman", "n_pairs"}}``.
    """
    images = torch.as_tensor(images).float()
    n, win = len(images), _ssim_win(images.shape[-2:], win_size)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {
        "noise_levels": [float(v) for v in noise_levels], "n_copies": n_copies, "data_range": float(data_range),
        "ssim_data_range": 1.0, "ssim_win_size": win, "levels": [], "per_image": [],
    }
    with _eval(model):
        pred = _predict(model, images, batch_size).argmax(1)
        clean = _explain(explain, images, pred, batch_size, _device(model))
        for level in noise_levels:
            std = float(level) * data_range
            noisy = images.unsqueeze(0) + std * torch.randn((n_copies, *images.shape), generator=gen).to(images)
            noisy, src = noisy.flatten(0, 1), torch.arange(n).repeat(n_copies)  # copy k of image i at k * n + i
            keep = (_predict(model, noisy, batch_size).argmax(1) == pred[src]).numpy()
            kept_src = src.numpy()[keep]
            maps = _explain(explain, noisy[torch.as_tensor(keep)], pred[kept_src], batch_size, _device(model))
            sim = _similarity(clean[kept_src], maps, win)
            out["levels"].append({
                "noise_level": float(level), "noise_std": std, "n_kept": int(keep.sum()),
                "n_skipped": int((~keep).sum()), **{k: _nanmean(v) for k, v in sim.items()},
            })
            for i in range(n):
                sel = kept_src == i
                out["per_image"].append({
                    "index": i, "noise_level": float(level), "n_kept": int(sel.sum()),
                    "n_skipped": n_copies - int(sel.sum()), **{k: _nanmean(v[sel]) for k, v in sim.items()},
                })
    out["pair_baseline"] = _pair_baseline(clean, win, seed, max_pairs)
    return out
