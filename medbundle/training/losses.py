"""Losses by name (the bundle key ``loss_name``): class-weighted cross-entropy or focal loss."""

from __future__ import annotations

import torch
from monai.losses import FocalLoss

from medbundle.training._keys import check_choice

__all__ = ["LOSSES", "make_loss"]

LOSSES = ("cross_entropy", "focal")


def make_loss(name: str, weight: torch.Tensor | None = None, gamma: float = 2.0,
              label_smoothing: float = 0.0) -> torch.nn.Module:
    """The loss ``name`` on logits ``(B, C)`` and one-hot labels ``(B, C)``.

    Args:
        name: ``cross_entropy`` (``torch.nn.CrossEntropyLoss``) or ``focal`` (MONAI's ``FocalLoss`` with softmax,
            down-weighting easy examples by ``(1 - p) ** gamma``).
        weight: per-class weights (``medbundle.data.class_weights``) or None.
        gamma: the focal loss's focusing parameter.
        label_smoothing: cross-entropy's label smoothing.

    Raises:
        ValueError: an unknown name (one line naming ``loss_name``).
    """
    name = check_choice(name, LOSSES, "loss_name")
    if name == "focal":
        return FocalLoss(gamma=gamma, weight=weight, use_softmax=True, to_onehot_y=False)
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
