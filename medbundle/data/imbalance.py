"""Class imbalance: loss weights and a weighted sampler computed from a datalist."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch.utils.data import WeightedRandomSampler

__all__ = ["class_counts", "class_weights", "balanced_sampler"]


def class_counts(items: Sequence[dict], num_classes: int) -> list[int]:
    """Number of items of each class (``item["label"]``)."""
    counts = Counter(int(item["label"]) for item in items)
    return [counts.get(c, 0) for c in range(num_classes)]


def class_weights(items: Sequence[dict], num_classes: int, power: float = 1.0) -> torch.Tensor:
    """Loss weights ``w_c = (N / (K * n_c)) ** power`` (scikit-learn's "balanced" for ``power=1``).

    A class without items gets weight 0 (it cannot be seen in training anyway).

    Args:
        items: the training datalist.
        num_classes: K.
        power: 1 balances fully, 0.5 half-way (on a log scale), 0 gives ones.

    Returns:
        float32 tensor ``(K,)`` for ``CrossEntropyLoss(weight=...)``.
    """
    counts = torch.tensor(class_counts(items, num_classes), dtype=torch.float64)
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return (weights**power * (counts > 0)).float()


def balanced_sampler(items: Sequence[dict], num_classes: int, num_samples: int | None = None,
                     seed: int = 0) -> WeightedRandomSampler:
    """A sampler that draws every class equally often on average (with replacement).

    Args:
        items: the training datalist, in the dataset's order.
        num_classes: number of classes.
        num_samples: draws per epoch (default: ``len(items)``).
        seed: seed of the sampler's own generator (runs are reproducible).
    """
    weights = class_weights(items, num_classes)
    per_item = torch.stack([weights[int(item["label"])] for item in items]).double()
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(per_item, num_samples or len(items), replacement=True, generator=generator)
