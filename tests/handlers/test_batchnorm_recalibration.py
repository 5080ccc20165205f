"""medbundle.handlers.batchnorm_recalibration: fresh BatchNorm statistics, frozen layers kept, once per validation."""

from __future__ import annotations

import torch
from helpers.engines import _Net, _Wrapper
from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import ValidationHandler
from torch import nn

from medbundle.handlers import BatchNormRecalibration


def test_batchnorm_recalibration_replaces_stale_statistics():
    from medbundle.handlers import BatchNormRecalibration

    net = _Net()
    net.head.requires_grad_(True)
    data = [{"image": 3 + 2 * torch.randn(8, 1, 8, 8), "label": torch.zeros(8, dtype=torch.long)} for _ in range(4)]
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=net,
                                optimizer=torch.optim.SGD(net.parameters(), lr=0.0), loss_function=nn.CrossEntropyLoss())
    bn = net.backbone[1]
    bn.running_mean.fill_(100.0)  # stale
    net.eval()
    handler = BatchNormRecalibration(net, data, num_batches=3)
    handler(trainer)
    # the plain average of the batch means of the conv output over the first 3 batches
    with torch.no_grad():
        means = [net.backbone[0](b["image"]).mean((0, 2, 3)) for b in data[:3]]
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-5)
    assert bn.momentum == 0.1 and not net.training and not bn.training  # settings and modes restored
    bn.weight.requires_grad_(False)
    bn.bias.requires_grad_(False)
    frozen = bn.running_mean.clone()
    handler(trainer)  # a frozen layer (PhaseSchedule's head phase) keeps its statistics
    assert torch.equal(bn.running_mean, frozen)


# ---------------------------------------------------------------------------------------------------------------
# epoch overhead: the re-estimation only before a validation
# ---------------------------------------------------------------------------------------------------------------


class _CountingLoader:
    """A list of batches that counts how often it is iterated (each re-estimation iterates it once)."""

    def __init__(self, batches: list[dict]):
        self.batches, self.iterations = batches, 0

    def __iter__(self):
        self.iterations += 1
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def _bn_run(epochs: int, val_interval: int, with_validator: bool) -> tuple[list[tuple[str, int]], int]:
    """Train with a ValidationHandler every ``val_interval`` epochs; the re-estimations and validations, in order."""
    torch.manual_seed(0)
    net = _Net()
    batches = [{"image": 3 + 2 * torch.randn(4, 1, 8, 8), "label": torch.randint(0, 2, (4,))} for _ in range(3)]
    loader = _CountingLoader(batches)
    order: list[tuple[str, int]] = []
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=batches[:1], network=net)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=epochs, train_data_loader=batches, network=net,
                                optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
                                loss_function=nn.CrossEntropyLoss())

    class _Recording(BatchNormRecalibration):
        def __call__(self, engine):
            order.append(("bn", engine.state.epoch))
            assert engine is trainer  # the trainer's prepare_batch and inferer, also when the evaluator starts it
            super().__call__(engine)

    bn_layer = net.backbone[1]

    def _validation_started(engine):
        order.append(("validation", trainer.state.epoch))
        # the statistics the validation sees: the plain average over the first 2 batches (lr 0: fixed weights)
        with torch.no_grad():
            means = [net.backbone[0](b["image"]).mean((0, 2, 3)) for b in batches[:2]]
        torch.testing.assert_close(bn_layer.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-5)

    evaluator.add_event_handler(Events.EPOCH_STARTED, _validation_started)
    # the bundles' order (the re-estimation, then the validation), the network inside a DDP-like wrapper
    _Recording(_Wrapper(net), loader, num_batches=2, validator=evaluator if with_validator else None).attach(trainer)
    ValidationHandler(validator=evaluator, interval=val_interval, epoch_level=True).attach(trainer)
    trainer.run()
    return order, loader.iterations


def test_batchnorm_recalibration_runs_once_per_validation_only():
    order, iterations = _bn_run(epochs=5, val_interval=2, with_validator=True)
    # exactly once per validation, right before it; not on the epochs without validation (1, 3, 5)
    assert order == [("bn", 2), ("validation", 2), ("bn", 4), ("validation", 4)]
    assert iterations == 2
    order, iterations = _bn_run(epochs=3, val_interval=1, with_validator=True)
    assert order == [(kind, e) for e in (1, 2, 3) for kind in ("bn", "validation")] and iterations == 3


def test_batchnorm_recalibration_without_validator_every_epoch():
    order, iterations = _bn_run(epochs=3, val_interval=2, with_validator=False)
    assert order == [("bn", 1), ("bn", 2), ("validation", 2), ("bn", 3)] and iterations == 3


def test_batchnorm_recalibration_disabled_attaches_nothing():
    net = _Net()
    evaluator = Engine(lambda e, b: None)
    trainer = Engine(lambda e, b: None)
    BatchNormRecalibration(net, [], num_batches=0, validator=evaluator).attach(trainer)
    assert len(evaluator._event_handlers[Events.STARTED]) == 0
    assert len(trainer._event_handlers[Events.EPOCH_COMPLETED]) == 0
