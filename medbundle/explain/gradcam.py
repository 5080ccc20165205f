"""Grad-CAM and Grad-CAM++ (:class:`GradCAM`, :class:`GradCAMpp`), with per-sample maps for any batch size.

* **Per-sample maps.** ``monai.visualize.GradCAM`` back-propagates ``logits[:, class_idx].sum()``; with a
  per-sample ``class_idx`` (or ``None``, the predicted classes) that is a ``B x B`` block, so every map is
  computed from the sum of *all* the batch's class scores, and ``GradCAMpp`` multiplies the gradients by
  ``exp(score)`` with that ``B x B`` score broadcast against the spatial dimensions (it raises for any batch
  of more than one sample unless the feature map happens to be ``B x B``). Here the score is
  ``sum_i logits[i, class_idx[i]]``: in eval mode, without cross-batch operations, each logit depends on its
  own sample only, so each map depends only on its sample and its target class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medbundle.explain.base import Explainer, _capture, _resolve_class_idx, find_target_layer

__all__ = ["GradCAM", "GradCAMpp"]

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


class GradCAM(Explainer):
    """Grad-CAM (Selvaraju et al. 2017): ``ReLU(sum_k alpha_k A_k)``, ``alpha_k`` = spatial mean of ``d y_c / d A_k``.

    ``A`` is the target layer's output, ``y_c`` each sample's target-class logit. Only ``d y / d A`` is
    computed (``torch.autograd.grad``, parameters frozen, nothing before the target layer records a graph),
    so an explanation costs little more than a forward pass. The map is upsampled to the input size with
    (bi/tri)linear interpolation, ``align_corners=False`` (as MONAI's ``default_upsampler`` and captum's
    ``LayerAttribution.interpolate``).

    Args:
        model: the classifier.
        target_layer: dotted module name; ``None``: :func:`find_target_layer` at the input's size (cached per shape).
        channels_last: see :class:`Explainer`.
    """

    def __init__(self, model: nn.Module, target_layer: str | None = None, channels_last: bool = False) -> None:
        super().__init__(model, channels_last)
        self.target_layer = target_layer
        self._found: dict[tuple[int, ...], str] = {}

    def layer_name(self, x: torch.Tensor) -> str:
        """The target layer used for inputs shaped like ``x``."""
        if self.target_layer is not None:
            return self.target_layer
        key = tuple(x.shape[1:])
        if key not in self._found:
            self._found[key] = find_target_layer(self.model, (1, *key))
        return self._found[key]

    def _weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(tuple(range(2, grads.ndim)), keepdim=True)

    def _compute(self, x: torch.Tensor, class_idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        name = self.layer_name(x)
        try:
            layer = self.model.get_submodule(name)
        except AttributeError as e:
            raise ValueError(f"target_layer {name!r} is not a submodule of the model") from e
        with torch.enable_grad():
            with _capture(layer) as acts:
                logits = self._forward(x)
            if len(acts) != 1:
                raise ValueError(f"target_layer {name!r} ran {len(acts)} times in the forward pass, expected once")
            idx = _resolve_class_idx(class_idx, logits)
            if not logits.requires_grad:
                raise ValueError(f"the model's output does not depend on target_layer {name!r}")
            score = logits.gather(1, idx[:, None]).sum()  # each logit depends on its own sample only
            (grads,) = torch.autograd.grad(score, acts[0])
        cam = F.relu((self._weights(acts[0], grads) * acts[0]).sum(1, keepdim=True))
        cam = F.interpolate(cam.detach(), size=x.shape[2:], mode=_LINEAR_MODES[x.ndim - 2], align_corners=False)
        return cam, idx, logits


class GradCAMpp(GradCAM):
    """Grad-CAM++ (Chattopadhay et al. 2018), per sample and for any batch size.

    With ``g = d y_c / d A`` and the paper's exponential assumption ``Y = exp(y_c)``, the closed form
    (their eq. 19, as in pytorch-grad-cam) is ``a_ij = g_ij^2 / (2 g_ij^2 + sum_ab A_ab g_ij^3)`` (0 where
    the denominator is 0) and ``w_k = sum_ij a_ij ReLU(g_ij)``; the map is ``ReLU(sum_k w_k A_k)``. The
    common factor ``exp(y_c)`` of the weights is a positive per-sample constant that the per-sample
    normalisation removes, so it is left out (it overflows for large logits).

    Args:
        model: the classifier.
        target_layer: see :class:`GradCAM`.
        channels_last: see :class:`Explainer`.
    """

    def _weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, grads.ndim))
        g2 = grads.pow(2)
        denom = 2 * g2 + acts.sum(dims, keepdim=True) * g2 * grads
        nonzero = denom != 0
        alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(g2))
        return (alpha * F.relu(grads)).sum(dims, keepdim=True)
