"""Helpers shared by the saliency-quality measures: array conversion, model evaluation, map similarity."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import combinations
from typing import Any

import numpy as np
import torch
from monai.metrics import SSIMMetric
from scipy import stats
from torch import nn

Explainer = Callable[[torch.Tensor, Any], torch.Tensor]
SIMILARITY_KEYS = ("ssim", "pearson", "spearman")


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """``x`` (tensor or array-like) as a numpy array of ``dtype``; NaN/inf read as 0 for float output."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x)
    if dtype is bool:
        return a.astype(bool)
    return np.nan_to_num(a.astype(dtype), nan=0.0, posinf=0.0, neginf=0.0)


def _map_mask(saliency: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """One map and one mask as 2D float / bool arrays of the same shape (a leading 1 is squeezed)."""
    s, m = _np(saliency), _np(mask, bool)
    s = s.reshape(s.shape[-2:]) if s.ndim > 2 and math.prod(s.shape[:-2]) == 1 else s
    m = m.reshape(m.shape[-2:]) if m.ndim > 2 and math.prod(m.shape[:-2]) == 1 else m
    if s.ndim != 2 or s.shape != m.shape:
        raise ValueError(f"expected one (H,W) map and an (H,W) mask of the same shape, got {s.shape} and {m.shape}.")
    return s, m


def _stack_maps(maps: Any) -> np.ndarray:
    """``(N,H,W)`` or ``(N,1,H,W)`` maps as a float ``(N,H,W)`` array."""
    a = _np(maps)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"expected maps of shape (N,H,W) or (N,1,H,W), got {a.shape}.")
    return a


@contextmanager
def _eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in eval mode and restore each one's own flag afterwards (no ``no_grad``)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.train(flag)


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probabilities ``(N,K)`` (float32, CPU) of ``model`` on ``images``, in chunks of ``batch_size``."""
    dev, out = _device(model), []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(torch.softmax(model(images[i : i + batch_size].to(dev)).float(), dim=1).cpu())
    return torch.cat(out)


def _explain(
    explain: Explainer, images: torch.Tensor, class_idx: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """Maps ``(N,H,W)`` of ``explain`` on ``images`` for ``class_idx`` ``(N,)``, in chunks, on ``device``."""
    images, class_idx = images.to(device), torch.as_tensor(class_idx).to(device)
    out = [
        _stack_maps(explain(images[i : i + batch_size], class_idx[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, *images.shape[-2:]))


def _corr(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    """Pearson or Spearman correlation of two maps, with the convention for constant (blank) maps.

    Undefined correlations are set so that similarity curves never turn NaN: 1.0 for identical maps or two constant
    maps (same, empty ranking), 0.0 when exactly one map is constant (no shared structure).
    """
    a, b = a.ravel(), b.ravel()
    const_a, const_b = np.ptp(a) == 0, np.ptp(b) == 0
    if np.array_equal(a, b) or (const_a and const_b):
        return 1.0
    if const_a or const_b:
        return 0.0
    r = stats.pearsonr(a, b) if kind == "pearson" else stats.spearmanr(a, b)
    return float(r.statistic)


def _ssim_win(shape: Sequence[int], win_size: int) -> int:
    """``win_size`` reduced to the largest odd size fitting in ``shape``."""
    w = min(int(win_size), *shape)
    return w if w % 2 else w - 1


def _similarity(a: np.ndarray, b: np.ndarray, win_size: int) -> dict[str, np.ndarray]:
    """Per-pair SSIM (data range 1), Pearson and Spearman of maps ``a`` and ``b`` ``(N,H,W)``."""
    n = len(a)
    if n == 0:
        return {k: np.zeros(0) for k in SIMILARITY_KEYS}
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=win_size)
    ssim = metric(torch.as_tensor(a, dtype=torch.float32)[:, None], torch.as_tensor(b, dtype=torch.float32)[:, None])
    return {
        "ssim": ssim.reshape(n).double().numpy(),
        "pearson": np.array([_corr(a[i], b[i], "pearson") for i in range(n)]),
        "spearman": np.array([_corr(a[i], b[i], "spearman") for i in range(n)]),
    }


def _nanmean(x: Any) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _pair_baseline(maps: np.ndarray, win_size: int, seed: int, max_pairs: int) -> dict[str, Any]:
    """Mean similarity between maps of different images: all pairs ``i < j``, or ``max_pairs`` random ones."""
    pairs = list(combinations(range(len(maps)), 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in rng.choice(len(pairs), size=max_pairs, replace=False)]
    if not pairs:
        return {**{k: float("nan") for k in SIMILARITY_KEYS}, "n_pairs": 0}
    i, j = (np.array(p) for p in zip(*pairs))
    sim = _similarity(maps[i], maps[j], win_size)
    return {**{k: _nanmean(v) for k, v in sim.items()}, "n_pairs": len(pairs)}
