"""Attention statistics of saliency maps: centre of mass and spread per image, mean map and agreement per class,
similarity of the class-mean maps across classes.

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
import torch

from medbundle.explain.measures._common import _corr, _nanmean, _stack_maps

__all__ = ["attention_statistics"]


def attention_statistics(maps: Any, labels: Any) -> dict[str, Any]:
    """Where the maps look: centre of mass and spread per image, mean map and agreement per class.

    With weights ``w = max(S, 0)`` and pixel-centre coordinates in image fractions ``u = r / (H-1)``,
    ``v = c / (W-1)`` (0 = first row/column, 1 = last): centre of mass ``(E_w[u], E_w[v])``, spread
    ``sqrt(Var_w[u] + Var_w[v])`` (RMS distance from the centre of mass; ``spread_row`` / ``spread_col`` are the
    per-axis ``sqrt(Var_w)``). Per class: mean map ``mean_i S_i`` and agreement = mean Pearson correlation over
    all pairs of the class's maps (NaN for fewer than 2 maps; a constant map correlates 0 with a structured one
    and 1 with another constant one). Across classes: the Pearson correlation of the mean maps of every pair of
    classes (near 1: the model looks at the same place whatever the class; a constant mean map correlates 0).

    Args:
        maps: ``(N,H,W)`` or ``(N,1,H,W)``.
        labels: class of each map ``(N,)`` (the true or the predicted class, as the caller intends).

    Returns:
        ``{"per_image": [{"index", "label", "com_row", "com_col", "spread", "spread_row", "spread_col"}]`` (NaN for
        an all-zero map), ``"per_class": {label: {"n", "agreement", "com_row", "com_col", "spread"}}`` (means of
        the per-image values), ``"between_classes": [{"classes": [a, b], "correlation"}]`` (every pair of classes,
        in label order), ``"mean_maps": {label: np.ndarray (H,W)}}``; everything is JSON-ready except ``mean_maps``
        (drop it or ``.tolist()`` it before dumping).
    """
    s = np.clip(_stack_maps(maps), 0, None)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1).tolist()
    if len(labels) != len(s):
        raise ValueError(f"got {len(s)} maps but {len(labels)} labels.")
    h, w = s.shape[-2:]
    u = np.arange(h)[:, None] / max(h - 1, 1)
    v = np.arange(w)[None, :] / max(w - 1, 1)
    per_image = []
    for i, m in enumerate(s):
        tot = m.sum()
        if tot > 0:
            cu, cv = (m * u).sum() / tot, (m * v).sum() / tot
            vu, vv = (m * (u - cu) ** 2).sum() / tot, (m * (v - cv) ** 2).sum() / tot
            vals = [cu, cv, math.sqrt(vu + vv), math.sqrt(vu), math.sqrt(vv)]
        else:
            vals = [float("nan")] * 5
        keys = ("com_row", "com_col", "spread", "spread_row", "spread_col")
        per_image.append({"index": i, "label": labels[i], **{k: float(x) for k, x in zip(keys, vals)}})
    per_class, mean_maps = {}, {}
    for lab in sorted(set(labels), key=str):
        idx = [i for i, x in enumerate(labels) if x == lab]
        corr = [_corr(s[i], s[j], "pearson") for i, j in combinations(idx, 2)]
        per_class[lab] = {
            "n": len(idx), "agreement": _nanmean(corr) if corr else float("nan"),
            **{k: _nanmean([per_image[i][k] for i in idx]) for k in ("com_row", "com_col", "spread")},
        }
        mean_maps[lab] = s[idx].mean(axis=0)
    between = [
        {"classes": [a, b], "correlation": _corr(mean_maps[a], mean_maps[b], "pearson")}
        for a, b in combinations(mean_maps, 2)
    ]
    return {"per_image": per_image, "per_class": per_class, "between_classes": between, "mean_maps": mean_maps}
