"""Integrated gradients (:class:`IntegratedGradients`) of the target-class logit, attributions at the input."""

from __future__ import annotations

import torch
from torch import nn

from medbundle.explain.base import Explainer, _resolve_class_idx

__all__ = ["IntegratedGradients"]


class IntegratedGradients(Explainer):
    """Integrated gradients (Sundararajan et al. 2017) of the target-class logit, trapezoid rule.

    ``attr = (x - x') * sum_k w_k d y_c / d x (x' + a_k (x - x'))`` with ``a_k = k / (steps - 1)``,
    ``k = 0..steps-1``, and trapezoid weights ``w = 1 / (steps - 1)`` (halved at both ends) that sum to 1,
    so ``sum(attr) -> y_c(x) - y_c(x')`` (completeness) as ``steps`` grows. Captum's ``"riemann_trapezoid"``
    uses the same points with weights ``1 / steps`` (halved at the ends), which sum to ``1 - 1 / steps``:
    its attributions are these times ``(steps - 1) / steps``. Path points are evaluated ``internal_batch_size``
    at a time, one sample at a time; only input gradients are computed (parameters frozen).

    The map (:meth:`__call__`) is the positive part of the attributions summed over channels (evidence *for*
    the class); :meth:`attribute` returns the raw ``(B, C, *spatial)`` attributions.

    Args:
        model: the classifier.
        steps: number of points on the path (>= 2), both ends included.
        baseline: the reference input ``x'``: a number or a tensor broadcastable to the input.
        internal_batch_size: path points per forward/backward pass.
        channels_last: see :class:`Explainer`.
    """

    def __init__(
        self,
        model: nn.Module,
        steps: int = 32,
        baseline: float | torch.Tensor = 0.0,
        internal_batch_size: int = 32,
        channels_last: bool = False,
    ) -> None:
        super().__init__(model, channels_last)
        if steps < 2 or internal_batch_size < 1:
            raise ValueError(f"steps must be >= 2 and internal_batch_size >= 1, got {steps}, {internal_batch_size}")
        self.steps, self.baseline, self.internal_batch_size = steps, baseline, internal_batch_size

    def _compute(self, x: torch.Tensor, class_idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits = self._forward(x)
        idx = _resolve_class_idx(class_idx, logits)
        base = torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device).expand_as(x)
        alphas = torch.linspace(0, 1, self.steps, device=x.device, dtype=x.dtype)
        weights = torch.full_like(alphas, 1 / (self.steps - 1))
        weights[[0, -1]] /= 2
        view = (-1,) + (1,) * (x.ndim - 1)
        attr = torch.zeros_like(x)
        with torch.enable_grad():
            for b in range(x.shape[0]):
                delta = x[b] - base[b]
                for start in range(0, self.steps, self.internal_batch_size):
                    a = alphas[start : start + self.internal_batch_size]
                    w = weights[start : start + self.internal_batch_size]
                    points = (base[b] + a.view(view) * delta).requires_grad_(True)
                    if self.channels_last and points.ndim == 4:
                        points = points.contiguous(memory_format=torch.channels_last)
                    (grads,) = torch.autograd.grad(self._forward(points)[:, idx[b]].sum(), points)
                    attr[b] += (w.view(view) * grads).sum(0)
                attr[b] *= delta
        return attr, idx, logits

    def _to_map(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.clamp(min=0).sum(1, keepdim=True)
