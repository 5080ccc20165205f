"""Optimisers by name (the bundle key ``optimizer_name``): the seed's Adam, SGD with momentum and RMSprop."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from medbundle.training._keys import check_choice

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def make_optimizer(
    name: str, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params`` (parameters, or groups that may carry their own ``lr``).

    Args:
        name: ``adam``, ``adamw``, ``sgd`` (Nesterov-free, with ``momentum``) or ``rmsprop`` (with ``momentum``).
        params: what ``torch.optim`` optimisers accept; groups keep their ``name`` and ``lr``.
        lr: the learning rate of groups without one.
        momentum: momentum of SGD and RMSprop.
        weight_decay: L2 penalty (decoupled for AdamW) of groups without their own.

    Raises:
        ValueError: an unknown name (one line naming ``optimizer_name``).
    """
    name = check_choice(name, OPTIMIZERS, "optimizer_name")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
