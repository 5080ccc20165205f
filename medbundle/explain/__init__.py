"""Explanations of the classifiers' decisions.

One module per saliency method (:mod:`~medbundle.explain.gradcam`, :mod:`~medbundle.explain.occlusion`,
:mod:`~medbundle.explain.integrated_gradients`) on the common base :mod:`~medbundle.explain.base`, the methods by
name in :mod:`~medbundle.explain.registry`; their quality checks in :mod:`medbundle.explain.measures`, the
figures in :mod:`~medbundle.explain.plots` and the anatomy masks in :mod:`~medbundle.explain.anatomy` (the lung
fields of chest X-rays in :mod:`~medbundle.explain.lungs`).
"""

from __future__ import annotations

from medbundle.explain.base import Explainer, Explanation, find_target_layer, model_guard, normalize_maps
from medbundle.explain.gradcam import GradCAM, GradCAMpp
from medbundle.explain.integrated_gradients import IntegratedGradients
from medbundle.explain.occlusion import OcclusionSensitivity
from medbundle.explain.registry import METHODS, get_explainer

__all__ = [
    "METHODS",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMpp",
    "IntegratedGradients",
    "OcclusionSensitivity",
    "find_target_layer",
    "get_explainer",
    "model_guard",
    "normalize_maps",
]
