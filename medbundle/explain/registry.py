"""The explanation methods by name: :data:`METHODS` and :func:`get_explainer` (the ``explain_methods`` of a bundle)."""

from __future__ import annotations

from torch import nn

from medbundle.explain.base import Explainer
from medbundle.explain.gradcam import GradCAM, GradCAMpp
from medbundle.explain.integrated_gradients import IntegratedGradients
from medbundle.explain.occlusion import OcclusionSensitivity

__all__ = ["METHODS", "get_explainer"]

METHODS: dict[str, type[Explainer]] = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMpp,
    "occlusion": OcclusionSensitivity,
    "integrated_gradients": IntegratedGradients,
}


def get_explainer(name: str, model: nn.Module, **kwargs) -> Explainer:
    """Build the explainer ``name`` (a key of :data:`METHODS`) for ``model``.

    Args:
        name: ``"gradcam"``, ``"gradcampp"``, ``"occlusion"`` or ``"integrated_gradients"``.
        model: the classifier.
        kwargs: passed to the explainer's constructor (e.g. ``target_layer="features.4.0"``).

    Returns:
        the explainer.
    """
    if name not in METHODS:
        raise ValueError(f"unknown explanation method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name](model, **kwargs)
