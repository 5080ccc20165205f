"""medbundle.handlers.random_state: every generator of a training run saved in its checkpoint and restored, so a
resumed run draws what the uninterrupted run would have."""

from __future__ import annotations

import io
import logging
import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Lambdad, RandAffined, RandFlipd, RandGaussianNoised

from medbundle.handlers import CheckpointSaver, RandomState, Resume


def _augmentation() -> Compose:
    return Compose([
        RandFlipd(keys="image", prob=0.5, spatial_axis=1),
        RandAffined(keys="image", prob=0.9, rotate_range=0.3, translate_range=(2, 2), padding_mode="zeros"),
        Lambdad(keys="image", func=lambda x: x),
        RandGaussianNoised(keys="image", prob=0.5, std=0.1),
    ])


def _loader(transforms: Compose, generator: torch.Generator | None = None) -> DataLoader:
    data = [{"image": torch.arange(64.0).reshape(1, 8, 8) + i} for i in range(12)]
    return DataLoader(Dataset(data, transforms), batch_size=4, shuffle=True, num_workers=0, generator=generator)


def _draw(transforms: Compose, loader: DataLoader) -> list:
    """One value from every source RandomState covers, and one epoch of the loader."""
    return [random.random(), float(np.random.rand()), float(torch.rand(1)),
            [b["image"].sum().item() for b in loader]]


def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # tensors and numbers only


@pytest.mark.parametrize("own_generator", [False, True])
def test_random_state_round_trip(own_generator):
    transforms = _augmentation()
    loader = _loader(transforms, torch.Generator().manual_seed(3) if own_generator else None)
    rng = RandomState(transforms, loader)
    _draw(transforms, loader)  # move every generator on from its seed
    state = _round_trip(rng.state_dict())
    # every Randomizable, nested ones included: RandFlipd, RandAffined -> RandAffine -> RandAffineGrid, the noise
    assert len(state["transforms"]) >= 5
    assert len(state["generators"]) == (1 if own_generator else 0)
    first = _draw(transforms, loader)
    rng.load_state_dict(state)
    assert _draw(transforms, loader) == first
    # a second, fresh pipeline (a new process) restored from the state draws the same too
    transforms2 = _augmentation()
    loader2 = _loader(transforms2, torch.Generator().manual_seed(99) if own_generator else None)
    RandomState(transforms2, loader2).load_state_dict(state)
    assert _draw(transforms2, loader2) == first


def test_random_state_mismatched_transforms_warn(caplog):
    state = RandomState(_augmentation()).state_dict()
    fewer = Compose([RandFlipd(keys="image", prob=0.5)])
    before = fewer.transforms[0].R.get_state()[1].copy()
    with caplog.at_level(logging.WARNING, logger="medbundle.handlers"):
        RandomState(fewer).load_state_dict(state)
    assert "not restored" in caplog.text
    assert np.array_equal(fewer.transforms[0].R.get_state()[1], before)


def _run(ckpt, max_epochs: int, stop_after: int | None = None, resume: bool = False) -> list[float]:
    """Train on a shuffled, augmented loader, saving the random state every epoch; the losses of the run."""
    torch.manual_seed(0)
    np.random.seed(0)
    transforms = _augmentation()
    transforms.set_random_state(seed=0)
    loader = _loader(transforms)
    model = torch.nn.Linear(64, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step(engine, batch):
        opt.zero_grad()
        loss = model(batch["image"].flatten(1)).pow(2).mean() + 0.01 * torch.randn(())
        loss.backward()
        opt.step()
        return loss.item()

    trainer = Engine(step)
    objects = {"model": model, "optimizer": opt, "rng": RandomState(transforms, loader)}
    if resume:
        Resume(str(ckpt), objects, engine_key="trainer").attach(trainer)
    CheckpointSaver(str(ckpt), objects, engine_key="trainer", save_interval=1, n_saved=2).attach(trainer)
    if stop_after is not None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output))
    trainer.run(loader, max_epochs=max_epochs)
    return losses


def test_resumed_run_draws_like_the_uninterrupted_one(tmp_path):
    whole = _run(tmp_path / "whole", max_epochs=4)
    cut = _run(tmp_path / "cut", max_epochs=4, stop_after=2)
    cut += _run(tmp_path / "cut", max_epochs=4, resume=True)
    assert cut == whole
    # control: without the random state the resumed epochs differ
    plain = _run(tmp_path / "plain", max_epochs=4, stop_after=2)
    state = torch.load(tmp_path / "plain" / "checkpoint_epoch=2.pt", weights_only=True)
    del state["rng"]
    torch.save(state, tmp_path / "plain" / "checkpoint_epoch=2.pt")
    plain += _run(tmp_path / "plain", max_epochs=4, resume=True)
    assert plain[:6] == whole[:6] and plain != whole
