"""Explanations of the classifiers' decisions: saliency methods (and, later, their quality checks and plots)."""

from __future__ import annotations

from medbundle.explain.methods import (
    METHODS,
    Explainer,
    Explanation,
    GradCAM,
    GradCAMpp,
    IntegratedGradients,
    OcclusionSensitivity,
    find_target_layer,
    get_explainer,
    model_guard,
    normalize_maps,
)

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
