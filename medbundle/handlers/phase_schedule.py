"""Training in phases (transfer learning): which parameters learn, at which learning rates, until when.

Each phase ends at its epoch limit or on a plateau of the validation score, judged by one
:class:`ignite.handlers.EarlyStopping` per phase; the last phase's plateau is the run's early stopping.
"""

from __future__ import annotations

import logging
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.base import Serializable
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping

from medbundle.handlers._norm import frozen_norm_in_eval_mode, norm_layers
from medbundle.networks import matching_prefix

__all__ = ["PhaseSchedule"]

logger = logging.getLogger("medbundle.handlers")


class _PhaseEnd(Engine):
    """The ``trainer`` of every phase's :class:`ignite.handlers.EarlyStopping`: its ``terminate()`` ends the phase.

    Ignite's early stopping terminates the engine it is given (and accepts only an ``Engine``); a plateau ends
    the current phase only, and the schedule decides whether that stops training (the last phase) or not.

    Args:
        schedule: the schedule whose current phase a plateau ends.
    """

    def __init__(self, schedule: PhaseSchedule) -> None:
        super().__init__(lambda engine, batch: None)
        self.schedule = schedule

    def terminate(self) -> None:
        self.schedule._plateau()


class PhaseSchedule(Serializable):
    """Train in phases that change which parameters learn and at which learning rates (transfer learning).

    Each phase is a dict:

    * ``name``: shown in the log and TensorBoard;
    * ``trainable``: parameter-name prefixes that learn in this phase (``["fc"]``: the head only); every other
      parameter is frozen (``requires_grad=False``, so the optimiser skips it, and the normalisation layers whose
      parameters are all frozen run in eval mode, so their running statistics stay fixed too). ``None`` or
      ``"all"``: everything learns;
    * ``lr``: a learning rate for every parameter group, or ``{group name: lr}`` for groups made by
      :func:`medbundle.networks.named_param_groups`; absent or None: the learning rates are left alone (to the
      optimiser and any LR scheduler);
    * ``epochs``: the most epochs of the phase (None: no limit);
    * ``patience``: validations without improvement of the score after which the phase ends (0: never).

    A phase ends at its epoch limit or on a plateau; the next starts at the next epoch, and the end of the last
    phase stops training (the last phase's patience is early stopping). Plateaus are judged as by
    :class:`ignite.handlers.EarlyStopping` (one per phase, with ``min_delta`` and ``cumulative_delta``): a
    validation improves when its score beats the best of the phase by more than ``min_delta``. A single phase
    ``{"name": "train", "trainable": "all", "patience": N}`` is plain early stopping that leaves the learning
    rates to the optimiser and its scheduler. With ``restore_best``, each phase hands its best weights (by the
    score) to the next one (Keras' ``restore_best_weights``). Every epoch the phase index and the learning rate
    of each group go to TensorBoard (``phase``, ``lr/<group>``). The schedule's position is saved with the
    checkpoints (:meth:`state_dict`: ``phase``, ``epochs_in_phase`` and the phase's early-stopping state ``bad``
    (validations without improvement) and ``best`` (best score)), so a resumed run continues in its phase.

    Args:
        network: the trained network.
        optimizer: its optimiser (groups may carry a ``"name"``).
        phases: the phases, in order.
        evaluator: the validation engine whose ``metric_name`` is watched (needed for ``patience``).
        metric_name: the score in ``evaluator.state.metrics``.
        mode: ``"max"`` or ``"min"``: which way the score improves.
        restore_best: start each phase from the best weights (by the score) of the phase before.
        summary_writer: TensorBoard writer, or None.
        min_delta: the least change of the score that counts as an improvement.
        cumulative_delta: measure ``min_delta`` from the best score of the phase, not from the previous
            validation's (ignite's ``cumulative``).

    Example (the Alzheimer seed: head for up to 10 epochs at 1e-4, then everything at 1e-5, patience 5 each)::

        PhaseSchedule(net, opt, [{"name": "head", "trainable": ["fc"], "lr": 1e-4, "epochs": 10, "patience": 5},
                                 {"name": "fine_tune", "trainable": "all", "lr": 1e-5, "patience": 5}], evaluator)
    """

    _state_dict_all_req_keys = ("phase", "epochs_in_phase", "bad", "best")

    def __init__(
        self,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        phases: Sequence[dict],
        evaluator: Engine | None = None,
        metric_name: str = "val_accuracy",
        mode: str = "max",
        restore_best: bool = True,
        summary_writer: Any = None,
        min_delta: float = 0.0,
        cumulative_delta: bool = False,
    ) -> None:
        if not phases:
            raise ValueError("PhaseSchedule needs at least one phase")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        known = {"name", "trainable", "lr", "epochs", "patience"}
        group_names = {g.get("name") for g in optimizer.param_groups}
        for i, phase in enumerate(phases):
            if set(phase) - known:
                raise ValueError(f"phase {i}: unknown keys {sorted(set(phase) - known)}; allowed: {sorted(known)}")
            if isinstance(phase.get("lr"), Mapping) and set(phase["lr"]) - group_names:
                raise ValueError(
                    f"phase {i}: learning rates for groups {sorted(set(phase['lr']) - group_names)}, but the "
                    f"optimiser's groups are {sorted(map(str, group_names))} (name them with named_param_groups)"
                )
            if phase.get("patience") and evaluator is None:
                raise ValueError(f"phase {i} has a patience but no evaluator to watch was given")
        names = [n for n, _ in network.named_parameters()]
        for i, phase in enumerate(phases):
            for prefix in self._prefixes(phase) or []:
                if not any(matching_prefix(n, [prefix]) for n in names):
                    raise ValueError(f"phase {i}: trainable prefix {prefix!r} matches no parameter of the network")
        self.network, self.optimizer, self.phases = network, optimizer, [dict(p) for p in phases]
        self.evaluator, self.metric_name, self.mode = evaluator, metric_name, mode
        self.restore_best, self.summary_writer = restore_best, summary_writer
        self.phase, self.epochs_in_phase = 0, 0
        # one ignite early stopping per phase; patience 0 never stops. Scores enter negated in "min" mode
        # (ignite's own mode argument needs ignite >= 0.5.4), and min_delta / cumulative_delta go in by
        # position (ignite 0.5.5 renamed them threshold / cumulative)
        phase_end = _PhaseEnd(self)
        self._stoppers = [
            EarlyStopping(int(p.get("patience") or sys.maxsize), self._score, phase_end, min_delta, cumulative_delta)
            for p in self.phases
        ]
        for stopper in self._stoppers:
            stopper.logger = logger
        self._trainer: Engine | None = None
        self._best_state: dict | None = None
        self._advance = False
        self._hooks: list = []

    @staticmethod
    def _prefixes(phase: dict) -> list[str] | None:
        trainable = phase.get("trainable")
        return None if trainable in (None, "all") else [trainable] if isinstance(trainable, str) else list(trainable)

    @property
    def bad(self) -> int:
        """Validations without improvement in the current phase."""
        return int(self._stoppers[self.phase].counter)

    @property
    def best(self) -> float | None:
        """The best score of the current phase (None before its first validation)."""
        best = self._stoppers[self.phase].best_score
        return None if best is None else best if self.mode == "max" else -best

    def attach(self, engine: Engine) -> None:
        self._trainer = engine
        engine.add_event_handler(Events.STARTED, self._apply)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED, lambda _: self._release())
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.COMPLETED, self._validated)

    def state_dict(self) -> OrderedDict:
        return OrderedDict(
            [("phase", self.phase), ("epochs_in_phase", self.epochs_in_phase), ("bad", self.bad), ("best", self.best)]
        )

    def load_state_dict(self, state_dict: Mapping) -> None:
        super().load_state_dict(state_dict)  # checks the keys
        phase = int(state_dict["phase"])
        if not 0 <= phase < len(self.phases):
            raise ValueError(f"saved phase {phase} is not one of the {len(self.phases)} phases of this schedule")
        self.phase, self.epochs_in_phase = phase, int(state_dict["epochs_in_phase"])
        stopper, best = self._stoppers[phase], state_dict["best"]
        stopper.counter = int(state_dict["bad"])
        stopper.best_score = None if best is None else float(best) if self.mode == "max" else -float(best)

    def _score(self, evaluator: Engine) -> float:
        """The watched score of the evaluator, negated in "min" mode (ignite's early stopping maximises)."""
        score = evaluator.state.metrics.get(self.metric_name)
        if score is None:
            raise KeyError(f"PhaseSchedule: the evaluator has no metric {self.metric_name!r} "
                           f"(it has {sorted(evaluator.state.metrics)}); set metric_name")
        return float(score) if self.mode == "max" else -float(score)

    def _apply(self, engine: Engine | None = None) -> None:
        """Freeze / unfreeze and set the learning rates of the current phase."""
        phase = self.phases[self.phase]
        prefixes = self._prefixes(phase)
        for n, p in self.network.named_parameters():
            p.requires_grad_(prefixes is None or matching_prefix(n, prefixes) is not None)
        self._release()
        for module in norm_layers(self.network, frozen=True):
            self._hooks.append(module.register_forward_pre_hook(frozen_norm_in_eval_mode))
        lr = phase.get("lr")
        for group in self.optimizer.param_groups:
            value = lr.get(group.get("name"), group["lr"]) if isinstance(lr, Mapping) else lr
            if value is not None:
                group["lr"] = float(value)
                group["initial_lr"] = float(value)
        n_train = sum(p.numel() for p in self.network.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.network.parameters())
        lrs = ", ".join(f"{g.get('name', i)} {g['lr']:.2e}" for i, g in enumerate(self.optimizer.param_groups))
        logger.info(f"phase {self.phase + 1}/{len(self.phases)} '{phase.get('name', self.phase)}': "
                    f"{n_train:,} of {n_all:,} parameters train; lr {lrs}")

    def _release(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _epoch_started(self, engine: Engine) -> None:
        if not self._advance:
            return
        self._advance = False
        if self.restore_best and self._best_state is not None:
            self.network.load_state_dict(self._best_state)
            logger.info(f"phase '{self.phases[self.phase].get('name', self.phase)}' ended: its best weights "
                        f"({self.metric_name} {self.best:.4f}) go on to the next phase")
        self.phase += 1
        self.epochs_in_phase, self._best_state = 0, None
        self._stoppers[self.phase].counter, self._stoppers[self.phase].best_score = 0, None
        self._apply(engine)

    def _end_phase(self, engine: Engine, why: str) -> None:
        name = self.phases[self.phase].get("name", self.phase)
        if self.phase + 1 < len(self.phases):
            logger.info(f"phase '{name}' ends after epoch {engine.state.epoch}: {why}")
            self._advance = True
        else:
            logger.info(f"last phase '{name}' ends after epoch {engine.state.epoch}: {why}; training stops")
            engine.terminate()

    def _epoch_completed(self, engine: Engine) -> None:
        self.epochs_in_phase += 1
        if self.summary_writer is not None:
            self.summary_writer.add_scalar("phase", self.phase + 1, engine.state.epoch)
            for i, g in enumerate(self.optimizer.param_groups):
                self.summary_writer.add_scalar(f"lr/{g.get('name', i)}", g["lr"], engine.state.epoch)
        limit = self.phases[self.phase].get("epochs")
        if limit is not None and self.epochs_in_phase >= limit and not self._advance:
            self._end_phase(engine, f"{limit} epoch(s) done")

    def _validated(self, evaluator: Engine) -> None:
        """Judge a validation with the phase's early stopping, and keep the best weights."""
        stopper = self._stoppers[self.phase]
        stopper(evaluator)  # on a plateau its trainer, a _PhaseEnd, calls _plateau
        handed_on = self.restore_best and self.phase + 1 < len(self.phases)  # the last phase hands nothing on
        if stopper.counter == 0 and handed_on:  # the first score of the phase, or a better one
            self._best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}

    def _plateau(self) -> None:
        """End the current phase: ``patience`` validations in a row brought no improvement."""
        if not self._advance and self._trainer is not None:
            self._end_phase(self._trainer, f"no better {self.metric_name} for {self.bad} validation(s)")
