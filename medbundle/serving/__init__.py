"""Serving a bundle's trained model: one predictor (:class:`BundlePredictor`) for the MONAI Label app and the web demo."""

from medbundle.serving.model_card import RESEARCH_ONLY, model_card
from medbundle.serving.predictor import EXPLAIN_METHODS, BundlePredictor, Prediction, PredictorError, resolve_bundle

__all__ = ["BundlePredictor", "Prediction", "PredictorError", "resolve_bundle", "EXPLAIN_METHODS", "model_card",
           "RESEARCH_ONLY"]
