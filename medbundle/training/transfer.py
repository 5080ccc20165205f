"""Transfer strategies by name (the bundle key ``transfer``): which parts of a pretrained network learn, in which
phases, at which learning rates.

The strategies are phases of :class:`medbundle.handlers.PhaseSchedule`, over the blocks the network declares
(:func:`medbundle.networks.backbone_blocks`), with the head and the backbone as two optimiser groups so that the
backbone can learn more slowly (differential learning rates, ``backbone_lr_factor``):

- ``fine_tune``: everything learns from the first epoch;
- ``last_blocks``: the head and the last ``unfreeze_blocks`` blocks learn, the rest stays as pretrained;
- ``progressive``: the head alone for ``phase_epochs``, then one more block from the top in each phase
  (``unfreeze_blocks`` phases), then everything until the end;
- ``feature_extraction``: the head alone; with ``medbundle.training.cached_features`` the frozen backbone's
  features are computed once and the head trains on them in seconds (``feature_extraction.json``).
"""

from __future__ import annotations

from torch import nn

from medbundle.networks import backbone_blocks, head_prefixes, named_param_groups
from medbundle.training._keys import check_choice

__all__ = ["STRATEGIES", "transfer_param_groups", "transfer_phases"]

STRATEGIES = ("fine_tune", "last_blocks", "progressive", "feature_extraction")


def transfer_param_groups(network: nn.Module, lr: float, backbone_lr_factor: float = 1.0,
                          weight_decay: float = 0.0) -> list[dict]:
    """Two optimiser groups, ``head`` at ``lr`` and ``backbone`` at ``lr * backbone_lr_factor``.

    Args:
        network: a registered network (its head prefixes name the head), possibly wrapped (DDP).
        lr: the head's learning rate.
        backbone_lr_factor: the backbone's learning rate relative to the head's (e.g. 0.1); 1: one rate.
        weight_decay: decay of both groups.

    Raises:
        ValueError: a factor that is not positive.
    """
    if not float(backbone_lr_factor) > 0:
        raise ValueError(f"backbone_lr_factor must be > 0, got {backbone_lr_factor!r}. Set --backbone_lr_factor "
                         "to e.g. 0.1 (backbone 10x slower than the head) or 1.")
    groups = named_param_groups(network, {"head": head_prefixes(network)}, weight_decay=weight_decay)
    for group in groups:
        group["lr"] = float(lr) * (1.0 if group["name"] == "head" else float(backbone_lr_factor))
    return groups


def transfer_phases(
    network: nn.Module,
    strategy: str,
    patience: int = 0,
    unfreeze_blocks: int = 2,
    phase_epochs: int = 1,
    pretrained: bool = True,
) -> list[dict]:
    """The :class:`medbundle.handlers.PhaseSchedule` phases of a transfer strategy.

    Learning rates are left to the optimiser groups and the schedule (no phase sets one). The last phase's
    ``patience`` is early stopping; earlier progressive phases end after ``phase_epochs``.

    Args:
        network: a registered network, possibly wrapped.
        strategy: one of :data:`STRATEGIES` (see the module docstring).
        patience: validations without a better score that end the last phase (0: never).
        unfreeze_blocks: blocks (from the top) that ``last_blocks`` trains, and the number of block phases of
            ``progressive``.
        phase_epochs: epochs of each ``progressive`` phase before the last.
        pretrained: whether the network starts from pretrained weights; without them every strategy but
            ``fine_tune`` would leave random blocks frozen, so training from scratch is always ``fine_tune``.

    Raises:
        ValueError: an unknown strategy, or ``unfreeze_blocks`` outside 1 .. number of blocks.
    """
    strategy = check_choice(strategy, STRATEGIES, "transfer")
    if not pretrained or strategy == "fine_tune":
        return [{"name": "fine_tune" if pretrained else "scratch", "trainable": "all", "patience": patience}]
    head = head_prefixes(network)
    if strategy == "feature_extraction":
        return [{"name": "head", "trainable": head, "patience": patience}]
    blocks = backbone_blocks(network)
    n = int(unfreeze_blocks)
    if not 1 <= n <= len(blocks):
        raise ValueError(f"unfreeze_blocks {unfreeze_blocks!r} must be between 1 and {len(blocks)} (the blocks of "
                         f"{type(network).__name__}). Set --unfreeze_blocks.")
    top = [prefix for block in blocks[-n:] for prefix in block]
    if strategy == "last_blocks":
        return [{"name": f"last_{n}_blocks", "trainable": head + top, "patience": patience}]
    phases = [{"name": "head", "trainable": head, "epochs": int(phase_epochs), "patience": 0}]
    for k in range(1, n + 1):
        trainable = head + [prefix for block in blocks[-k:] for prefix in block]
        phases.append({"name": f"top_{k}_blocks", "trainable": trainable, "epochs": int(phase_epochs), "patience": 0})
    phases.append({"name": "all", "trainable": "all", "patience": patience})
    return phases
