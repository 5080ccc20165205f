"""Faithfulness of saliency maps: deletion and insertion curves (Petsiuk et al. 2018).

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from medbundle.explain.measures._common import _device, _eval, _nanmean, _stack_maps

__all__ = ["deletion_insertion"]


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: Any,
    class_idx: Any = None,
    steps: int = 20,
    baseline: str | float = "blur",
    blur_sigma: float | None = None,
) -> dict[str, Any]:
    """Deletion and insertion curves (Petsiuk et al. 2018): does removing the relevant pixels first hurt most?

    Pixels are ranked by decreasing relevance (stable sort: ties in raster order). With ``f_j = j / steps`` and
    ``n_j = round(f_j H W)``: deletion image ``j`` replaces the ``n_j`` top pixels of ``x`` by the baseline ``b``,
    insertion image ``j`` starts from ``b`` and puts back the ``n_j`` top pixels of ``x`` (all channels). The curve
    is the target-class softmax probability ``p_c`` over ``f``; ``AUC = trapezoid(p_c, f)`` over [0, 1].
    Low deletion AUC and high insertion AUC = faithful. All ``2 (steps + 1)`` images of one input are evaluated
    in a single batch.

    Args:
        model: the classifier (eval mode during the call, flags restored).
        images: ``(N,C,H,W)``.
        maps: ``(N,1,H,W)`` or ``(N,H,W)``; resized bilinearly to the image size if needed.
        class_idx: target classes ``(N,)``; None = the model's predictions on ``images``.
        steps: number of equal fractions (curves have ``steps + 1`` points).
        baseline: ``"blur"`` (default: a Gaussian-blurred copy of the image, sigma ``blur_sigma``; removes
            the fine structure without creating the out-of-distribution edges of a constant) or a constant value.
        blur_sigma: blur in pixels; None = ``max(1, 0.05 * max(H, W))``.

    Returns:
        ``{"fractions": [...], "baseline": "blur" | float, "blur_sigma": float | None, "deletion_auc",
        "insertion_auc"`` (means), ``"deletion_curve", "insertion_curve"`` (mean curves),
        ``"per_image": [{"index", "class_idx", "deletion_auc", "insertion_auc", "deletion_curve",
        "insertion_curve"}]}``.
    """
    images = torch.as_tensor(images).float()
    n, c, h, w = images.shape
    sal = torch.as_tensor(_stack_maps(maps), dtype=torch.float32)
    if sal.shape[-2:] != (h, w):
        sal = nn.functional.interpolate(sal[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    if len(sal) != n:
        raise ValueError(f"got {n} images but {len(sal)} maps.")
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be 'blur' or a number, got {baseline!r}.")
        blur_sigma = float(max(1.0, 0.05 * max(h, w)) if blur_sigma is None else blur_sigma)
        base = torch.as_tensor(ndimage.gaussian_filter(images.numpy(), (0, 0, blur_sigma, blur_sigma)))
    else:
        blur_sigma, base = None, torch.full_like(images, float(baseline))
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = torch.as_tensor(np.round(fractions * h * w).astype(np.int64))
    dev, records = _device(model), []
    with _eval(model), torch.no_grad():
        if class_idx is None:
            class_idx = model(images.to(dev)).argmax(1).cpu()
        class_idx = torch.as_tensor(class_idx).reshape(-1)
        for i in range(n):
            rank = torch.empty(h * w, dtype=torch.long)
            rank[torch.argsort(-sal[i].flatten(), stable=True)] = torch.arange(h * w)
            removed = (rank[None] < counts[:, None]).reshape(-1, 1, h, w)  # (steps+1, 1, H, W)
            batch = torch.cat([torch.where(removed, base[i], images[i]), torch.where(removed, images[i], base[i])])
            p = torch.softmax(model(batch.to(dev)).float(), dim=1)[:, int(class_idx[i])].cpu().double().numpy()
            dele, ins = p[: steps + 1], p[steps + 1 :]
            records.append({
                "index": i, "class_idx": int(class_idx[i]),
                "deletion_auc": float(np.trapezoid(dele, fractions)),
                "insertion_auc": float(np.trapezoid(ins, fractions)),
                "deletion_curve": dele.tolist(), "insertion_curve": ins.tolist(),
            })
    return {
        "fractions": fractions.tolist(), "baseline": baseline if isinstance(baseline, str) else float(baseline),
        "blur_sigma": blur_sigma,
        "deletion_auc": _nanmean([r["deletion_auc"] for r in records]),
        "insertion_auc": _nanmean([r["insertion_auc"] for r in records]),
        "deletion_curve": np.mean([r["deletion_curve"] for r in records], axis=0).tolist() if records else [],
        "insertion_curve": np.mean([r["insertion_curve"] for r in records], axis=0).tolist() if records else [],
        "per_image": records,
    }
