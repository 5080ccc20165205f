"""The random-number state of a training run, saved with its checkpoints so that a resumed run draws what the
uninterrupted run would have drawn."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from ignite.base import Serializable
from monai.transforms import Randomizable, Transform

__all__ = ["RandomState"]

logger = logging.getLogger("medbundle.handlers")


class RandomState(Serializable):
    """Every random-number generator a training run draws from, as a checkpointable object.

    Put it in the training checkpoint's ``save_dict`` (and the ``load_dict`` of
    :class:`~medbundle.handlers.Resume`): :meth:`state_dict` captures, when the checkpoint is taken,

    * Python's ``random``, NumPy's global generator, torch's CPU generator and (when CUDA is available) every
      CUDA device's generator (the DataLoader's shuffling and worker seeds draw from torch's, unless it has a
      generator of its own);
    * the ``R`` generator of every :class:`monai.transforms.Randomizable` in ``transforms``, nested ones
      included (``RandAffined`` holds a ``RandAffine`` that holds a ``RandAffineGrid``, each with its own ``R``),
      in a fixed order: the random augmentation of a ``num_workers=0`` loader;
    * the ``torch.Generator`` of ``data_loader``, of its sampler and of its batch sampler's sampler, if any
      (a class-balanced sampler with its own seed);

    and :meth:`load_state_dict` puts them back, so that a run resumed from a checkpoint of epoch ``k`` draws
    the same shuffles and augmentations as the uninterrupted run from epoch ``k+1`` on. States are tensors
    and numbers (``torch.load(weights_only=True)`` reads them). Not covered: the generators inside the worker
    processes of a loader with ``persistent_workers`` (a warning says so; without persistent workers each
    epoch's workers are seeded from torch's generator, which is covered). Under ``torchrun`` the checkpoint
    holds rank 0's state, which every rank restores.

    Args:
        transforms: the training transforms (a ``Compose``, a transform or a list of them); None: none.
        data_loader: the training ``DataLoader``; None: no loader generators.
        cuda: also the CUDA generators (when CUDA is available).
    """

    def __init__(self, transforms: Any = None, data_loader: Any = None, cuda: bool = True) -> None:
        self.transforms = transforms
        self.data_loader = data_loader
        self.cuda = cuda
        if getattr(data_loader, "persistent_workers", False):
            logger.warning("RandomState: the data loader keeps persistent workers; the random state of the "
                           "augmentation inside them is not saved, so a resumed run's augmentation differs")

    def _randomizables(self) -> list[Randomizable]:
        return list(_find_randomizable(self.transforms, set()))

    def _generators(self) -> list[torch.Generator]:
        loader = self.data_loader
        candidates = [getattr(loader, "generator", None), getattr(getattr(loader, "sampler", None), "generator", None),
                      getattr(getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None)]
        found: list[torch.Generator] = []
        for g in candidates:
            if isinstance(g, torch.Generator) and all(g is not f for f in found):
                found.append(g)
        return found

    def state_dict(self) -> dict:
        version, internal, gauss = random.getstate()
        state = {
            "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                       "gauss": gauss},
            "numpy": _numpy_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "transforms": [_numpy_state(t.R.get_state()) for t in self._randomizables()],
            "generators": [g.get_state() for g in self._generators()],
        }
        if self.cuda and torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        py = state_dict["python"]
        random.setstate((int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
        np.random.set_state(_numpy_tuple(state_dict["numpy"]))
        torch.set_rng_state(state_dict["torch"].cpu())
        if "cuda" in state_dict and self.cuda and torch.cuda.is_available():
            cuda_states = [s.cpu() for s in state_dict["cuda"]]
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_states)
            else:
                logger.warning(f"resume: {len(cuda_states)} CUDA generator state(s) saved, "
                               f"{torch.cuda.device_count()} device(s) here: the CUDA random state is not restored")
        _restore_each("transform", self._randomizables(), state_dict.get("transforms", []),
                      lambda t, s: t.R.set_state(_numpy_tuple(s)))
        _restore_each("data loader generator", self._generators(), state_dict.get("generators", []),
                      lambda g, s: g.set_state(s.cpu()))


def _restore_each(what: str, targets: list, states: list, restore: Any) -> None:
    if len(targets) != len(states):
        logger.warning(f"resume: the checkpoint holds the random state of {len(states)} {what}(s), this run has "
                       f"{len(targets)}: their random state is not restored (the run goes on, but differs from "
                       "an uninterrupted one)")
        return
    for target, state in zip(targets, states):
        restore(target, state)


def _numpy_state(state: tuple) -> dict:
    """NumPy's ``RandomState.get_state()`` tuple as tensors and numbers."""
    _, keys, pos, has_gauss, gauss = state
    return {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _numpy_tuple(state: dict) -> tuple:
    keys = state["keys"].cpu().numpy().astype(np.uint32)
    return ("MT19937", keys, int(state["pos"]), int(state["has_gauss"]), float(state["gauss"]))


def _find_randomizable(obj: Any, seen: set[int]) -> Iterator[Randomizable]:
    """Every ``Randomizable`` reachable from ``obj`` through lists, tuples, dicts and transforms' attributes."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _find_randomizable(item, seen)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _find_randomizable(item, seen)
    elif isinstance(obj, (Randomizable, Transform)):
        if isinstance(obj, Randomizable) and isinstance(getattr(obj, "R", None), np.random.RandomState):
            yield obj
        for key, value in vars(obj).items():
            if not key.startswith("__"):
                yield from _find_randomizable(value, seen)
