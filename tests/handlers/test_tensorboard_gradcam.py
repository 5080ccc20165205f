"""medbundle.handlers.tensorboard_gradcam: Grad-CAM grids written to TensorBoard after each validation (or every
``interval`` epochs), explained through the module inside a DDP wrapper."""

from __future__ import annotations

import numpy as np
import torch
from helpers.engines import _RecordingWriter, _Wrapper
from helpers.networks import tiny_net
from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import ValidationHandler
from torch import nn

from medbundle.explain.plots import overlay
from medbundle.explain.registry import get_explainer
from medbundle.handlers import TensorBoardGradCAM

SIZE = 32  # the tiny CTNet's smallest input
N_IMAGES = 3


def _dataset(n: int = 5) -> list[dict]:
    """Items as the validation dataset yields them: ``{"image": 1 x H x W, "label": class}``."""
    g = torch.Generator().manual_seed(3)
    return [{"image": torch.rand(1, SIZE, SIZE, generator=g), "label": torch.tensor(i % 2)} for i in range(n)]


def _batches(items: list[dict], batch_size: int = 4) -> list[dict]:
    return [{"image": torch.stack([d["image"] for d in items[i:i + batch_size]]),
             "label": torch.stack([d["label"] for d in items[i:i + batch_size]])}
            for i in range(0, len(items), batch_size)]


class _OrderedWriter(_RecordingWriter):
    """Also logs each grid in ``events``, next to the validations."""

    def __init__(self, events: list[tuple[str, int]]):
        super().__init__()
        self.events = events

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        self.events.append(("grid", global_step))
        super().add_images(tag, img_tensor, global_step, walltime, dataformats)


def _train(with_validator: bool, interval: int = 1, epochs: int = 4):
    """A SupervisedTrainer validated every 2 epochs, with the handler; the writer and the validations and grids in
    order."""
    net = tiny_net(num_classes=2)
    data = _dataset()
    batches = _batches(data)
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=batches[:1], network=net)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=epochs, train_data_loader=batches,
                                network=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01),
                                loss_function=nn.CrossEntropyLoss())
    events: list[tuple[str, int]] = []
    evaluator.add_event_handler(Events.STARTED, lambda _: events.append(("validation started", trainer.state.epoch)))
    evaluator.add_event_handler(Events.COMPLETED, lambda _: events.append(("validation done", trainer.state.epoch)))
    writer = _OrderedWriter(events)
    TensorBoardGradCAM(data, writer, n_images=N_IMAGES, interval=interval,
                       validator=evaluator if with_validator else None).attach(trainer)
    ValidationHandler(validator=evaluator, interval=2, epoch_level=True).attach(trainer)
    trainer.run()
    return writer, events


def _check_grid(grid: torch.Tensor) -> None:
    """n_images RGB overlays, channels first, float in [0, 1] (as ``overlay`` makes them)."""
    assert tuple(grid.shape) == (N_IMAGES, 3, SIZE, SIZE)
    assert grid.dtype.is_floating_point
    assert float(grid.min()) >= 0.0 and float(grid.max()) <= 1.0
    assert float(grid.std()) > 0  # a picture, not a blank canvas


def test_tensorboard_gradcam_once_per_validation():
    writer, events = _train(with_validator=True)
    # exactly one grid per validation, once it has completed (epochs 2 and 4), none on the other epochs
    assert events == [("validation started", 2), ("validation done", 2), ("grid", 2),
                      ("validation started", 4), ("validation done", 4), ("grid", 4)]
    # global step: the trainer's epoch
    assert [(tag, step) for tag, _, step, _ in writer.images] == [("gradcam/validation", 2),
                                                                   ("gradcam/validation", 4)]
    for _, grid, _, dataformats in writer.images:
        assert dataformats == "NCHW"
        _check_grid(grid)
    assert writer.flushed == 2


def test_tensorboard_gradcam_every_interval_without_validator():
    writer, events = _train(with_validator=False, interval=1)
    assert [step for _, _, step, _ in writer.images] == [1, 2, 3, 4]
    # one per epoch, at its end (the handler is attached before the ValidationHandler); validations add none
    assert events == [("grid", 1), ("grid", 2), ("validation started", 2), ("validation done", 2), ("grid", 3),
                      ("grid", 4), ("validation started", 4), ("validation done", 4)]
    for _, grid, _, _ in writer.images:
        _check_grid(grid)


def test_tensorboard_gradcam_explains_the_module_inside_a_wrapper():
    """A DDP-wrapped network is explained through ``.module``: the wrapper's own forward is never called."""
    net = tiny_net(num_classes=2).eval()
    data = _dataset()
    engine = Engine(lambda e, b: None)
    engine.network = _Wrapper(net)  # its forward raises
    writer = _RecordingWriter()
    TensorBoardGradCAM(data, writer, n_images=N_IMAGES, interval=1).attach(engine)
    engine.run([0], max_epochs=2)
    assert [step for _, _, step, _ in writer.images] == [1, 2]
    # the grid is the module's Grad-CAM of the first n_images items, for their predicted classes, in order
    x = torch.stack([d["image"] for d in data[:N_IMAGES]])
    maps = get_explainer("gradcam", net)(x)
    expected = np.stack([overlay(img[0].numpy(), m[0].numpy()) for img, m in zip(x, maps)]).transpose(0, 3, 1, 2)
    for _, grid, _, _ in writer.images:
        _check_grid(grid)
        np.testing.assert_allclose(np.asarray(grid), expected, rtol=1e-5, atol=1e-6)
