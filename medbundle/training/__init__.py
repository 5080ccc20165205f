"""Training recipes chosen by a key of a bundle config: optimisers, learning-rate schedules, losses and transfer
strategies (which blocks of a pretrained network learn, in which phases, at which learning rates).

- :mod:`~medbundle.training.optimizers`: ``make_optimizer`` (``adam``, ``adamw``, ``sgd`` with momentum, ``rmsprop``).
- :mod:`~medbundle.training.schedulers`: ``make_scheduler`` (``cosine``, ``warmup_cosine``, ``step``, ``plateau``, ``none``) and
  ``scheduler_step_value`` (what the plateau schedule watches).
- :mod:`~medbundle.training.losses`: ``make_loss`` (class-weighted cross-entropy, focal).
- :mod:`~medbundle.training.transfer`: ``transfer_param_groups`` and ``transfer_phases`` (feature extraction,
  fine-tuning the last N blocks, progressive unfreezing, full fine-tuning; differential learning rates).
- :mod:`~medbundle.training.features`: ``FeatureHead`` and ``cached_features`` (feature extraction on features
  computed once).
"""

from __future__ import annotations

from medbundle.training.losses import LOSSES, make_loss
from medbundle.training.optimizers import OPTIMIZERS, make_optimizer
from medbundle.training.schedulers import SCHEDULERS, make_scheduler, scheduler_epoch_level, scheduler_step_value
from medbundle.training.transfer import STRATEGIES, transfer_param_groups, transfer_phases
from medbundle.training.features import FeatureHead, cached_features

__all__ = [
    "make_optimizer",
    "OPTIMIZERS",
    "make_scheduler",
    "scheduler_step_value",
    "scheduler_epoch_level",
    "SCHEDULERS",
    "make_loss",
    "LOSSES",
    "transfer_param_groups",
    "transfer_phases",
    "STRATEGIES",
    "FeatureHead",
    "cached_features",
]
