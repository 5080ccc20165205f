"""Per-image predictive entropy of an evaluator's images from N test-time-augmented or MC-dropout passes."""

from __future__ import annotations

import logging

import numpy as np
import torch
from ignite.engine import Engine, Events

from medbundle.metrics.referral import predictive_entropy
from medbundle.uncertainty import check_uncertainty, predictive_passes

__all__ = ["PredictiveUncertainty"]

logger = logging.getLogger("medbundle.handlers")


class PredictiveUncertainty:
    """Run ``passes`` extra forward passes on every batch an evaluator scores and keep each image's entropy.

    The images are read from the evaluator's decollated output (``image`` of each item, on the device) and passed
    through the evaluator's own network and inferer (see :func:`medbundle.uncertainty.predictive_passes`). The
    entropy of the passes' mean probabilities (nats) is collected in :attr:`entropy`, one value per item in the
    order scored; :class:`~medbundle.handlers.ClassificationReport` (``uncertainty=``) and
    :class:`~medbundle.handlers.PredictionsWriter` read it from there.

    Args:
        method: ``"tta"``, ``"mc_dropout"`` or ``"none"`` (nothing collected).
        passes: forward passes per image.
        image_key: the key of the images in the evaluator's output items.
    """

    def __init__(self, method: str = "tta", passes: int = 8, image_key: str = "image") -> None:
        self.method, self.passes = check_uncertainty(method, passes)
        self.image_key = image_key
        self.entropy: list[float] = []

    @property
    def enabled(self) -> bool:
        return self.method != "none"

    def describe(self) -> dict:
        """``{"method", "passes"}`` for the report."""
        return {"method": self.method, "passes": self.passes}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        if self.enabled:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        self.entropy = []

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        images = [item[self.image_key] for item in items]
        batch = torch.stack(images) if images[0].ndim == 3 else torch.cat(images)
        probs = predictive_passes(engine.network, batch, self.method, self.passes, inferer=engine.inferer)
        mean = probs.mean(dim=0).double().cpu().numpy()
        self.entropy.extend(float(v) for v in predictive_entropy(mean / mean.sum(axis=1, keepdims=True)))

    def values(self, n: int) -> np.ndarray | None:
        """The collected entropies when there is one per item of ``n`` scored items; None (with a warning) else."""
        if not self.enabled:
            return None
        if len(self.entropy) != n:
            logger.warning("uncertainty: %d entropies for %d predictions; leaving them out", len(self.entropy), n)
            return None
        return np.asarray(self.entropy)
