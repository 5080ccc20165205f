"""Learning-rate schedules by name (the bundle key ``lr_schedule``): cosine, warmup_cosine, step, plateau or none.

The schedules step through MONAI's ``LrScheduleHandler``: once per epoch, but ``warmup_cosine`` once per
iteration (:func:`scheduler_epoch_level`); the plateau schedule steps on the validation score
(:func:`scheduler_step_value`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from medbundle.training._keys import check_choice

__all__ = ["SCHEDULERS", "make_scheduler", "scheduler_step_value", "scheduler_epoch_level"]

SCHEDULERS = ("cosine", "warmup_cosine", "step", "plateau", "none")


def make_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    step_size: int = 5,
    gamma: float = 0.1,
    patience: int = 2,
    min_lr: float = 0.0,
    steps_per_epoch: int = 1,
    warmup_epochs: float = 0.5,
) -> Any:
    """The learning-rate schedule ``name`` of ``optimizer``, stepped once per epoch.

    Args:
        name: ``cosine`` (to ``min_lr`` over ``epochs``), ``step`` (times ``gamma`` every ``step_size`` epochs),
            ``plateau`` (times ``gamma`` after ``patience`` validations without a better score; mode max) or
            ``none`` (constant); ``warmup_cosine``: per iteration, a linear warm-up from 0 over ``warmup_epochs``,
            then a cosine to 0 (MONAI's ``WarmupCosineSchedule``): a new head on pretrained features starts
            without the loss spikes of a full learning rate on its first steps.
        optimizer: the optimiser; each group keeps its own ratio to the others (differential learning rates).
        epochs: the planned epochs (the cosine period).
        step_size, gamma, patience, min_lr, warmup_epochs: as above.
        steps_per_epoch: iterations per epoch (``len(train_loader)``), for ``warmup_cosine``.

    Raises:
        ValueError: an unknown name (one line naming ``lr_schedule``).
    """
    name = check_choice(name, SCHEDULERS, "lr_schedule")
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(epochs)), eta_min=min_lr)
    if name == "warmup_cosine":
        from monai.optimizers import WarmupCosineSchedule

        total = max(1, int(epochs) * max(1, int(steps_per_epoch)))
        warmup = min(total - 1, max(0, round(float(warmup_epochs) * max(1, int(steps_per_epoch)))))
        return WarmupCosineSchedule(optimizer, warmup_steps=warmup, t_total=total)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, int(step_size)), gamma=gamma)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=gamma, patience=patience,
                                                          min_lr=min_lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def scheduler_step_value(name: str, evaluator: Any, metric_name: str = "val_accuracy") -> Callable[[Any], Any]:
    """``step_transform`` for MONAI's ``LrScheduleHandler``: the validation score for ``plateau``, nothing else.

    Args:
        name: the schedule's name.
        evaluator: the validation engine.
        metric_name: the score in ``evaluator.state.metrics``.
    """
    if check_choice(name, SCHEDULERS, "lr_schedule") != "plateau":
        return lambda engine: ()
    return lambda engine: evaluator.state.metrics.get(metric_name, 0.0)


def scheduler_epoch_level(name: str) -> bool:
    """Whether the schedule ``name`` steps once per epoch (False: once per iteration, ``warmup_cosine``)."""
    return check_choice(name, SCHEDULERS, "lr_schedule") != "warmup_cosine"
