"""medbundle.handlers.phase_schedule: two-phase transfer learning, early stopping on plateau, state round trips."""

from __future__ import annotations

import pytest
import torch
from helpers.engines import _Net
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from torch import nn

from medbundle.handlers import PhaseSchedule
from medbundle.networks import named_param_groups


def _trainer(net, opt, epochs, handlers):
    torch.manual_seed(0)
    data = [{"image": torch.randn(4, 1, 8, 8), "label": torch.randint(0, 2, (4,))} for _ in range(3)]
    return SupervisedTrainer(device=torch.device("cpu"), max_epochs=epochs, train_data_loader=data, network=net,
                             optimizer=opt, loss_function=nn.CrossEntropyLoss(), train_handlers=handlers)


class _Scores:
    """A stand-in evaluator: run after every epoch, it reports the next of a list of scores."""

    def __init__(self, scores):
        self.engine, self.scores = Engine(lambda e, b: None), list(scores)

        @self.engine.on(Events.COMPLETED)
        def _score(engine):
            engine.state.metrics = {"val_accuracy": self.scores.pop(0)}

    def attach(self, trainer):
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: self.engine.run([0], max_epochs=1))


def test_two_phase_training_freezes_then_fine_tunes():
    net = _Net()
    opt = torch.optim.Adam(named_param_groups(net, {"head": ["head"]}), lr=1.0)
    phases = [{"name": "head", "trainable": ["head"], "lr": 1e-2, "epochs": 2},
              {"name": "fine_tune", "trainable": "all", "lr": {"head": 1e-3, "backbone": 1e-4}, "epochs": 2}]
    schedule = PhaseSchedule(net, opt, phases)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    seen = []

    def snapshot(engine):
        seen.append(({k: v.clone() for k, v in net.state_dict().items()}, [g["lr"] for g in opt.param_groups],
                     schedule.phase))

    trainer = _trainer(net, opt, 4, [schedule])
    trainer.add_event_handler(Events.EPOCH_COMPLETED, snapshot)
    trainer.run()
    after_phase1, lrs1, phase1 = seen[1]
    assert phase1 == 0 and lrs1 == [1e-2, 1e-2]
    for k, v in before.items():  # the backbone, including BatchNorm running statistics, is untouched in phase 1
        if k.startswith("backbone."):
            assert torch.equal(after_phase1[k], v), k
    assert not torch.equal(after_phase1["head.weight"], before["head.weight"])
    after_phase2, lrs2, phase2 = seen[3]
    assert phase2 == 1 and lrs2 == [1e-3, 1e-4]
    for k in ("backbone.0.weight", "backbone.1.weight", "backbone.1.running_mean"):
        assert not torch.equal(after_phase2[k], after_phase1[k]), k
    assert all(p.requires_grad for p in net.parameters())
    assert trainer.state.epoch == 4


def test_phase_ends_on_plateau_restores_best_and_last_phase_stops_training():
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    scores = _Scores([0.5, 0.7, 0.6, 0.6, 0.8, 0.8, 0.7, 0.9])
    phases = [{"name": "head", "trainable": ["head"], "patience": 2}, {"name": "all", "patience": 2}]
    schedule = PhaseSchedule(net, opt, phases, evaluator=scores.engine, metric_name="val_accuracy")
    best_head = {}

    @scores.engine.on(Events.COMPLETED)
    def remember(engine):
        if engine.state.metrics["val_accuracy"] == 0.7 and not best_head:
            best_head.update({k: v.clone() for k, v in net.state_dict().items()})

    starts = []
    trainer = _trainer(net, opt, 20, [scores, schedule])
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: starts.append((e.state.epoch, schedule.phase)))
    trainer.add_event_handler(Events.EPOCH_STARTED,
                              lambda e: e.state.epoch == 5 and snapshot.update(
                                  {k: v.clone() for k, v in net.state_dict().items()}))
    snapshot: dict = {}
    trainer.run()
    # epochs 1-4 in phase 1 (best 0.7 at epoch 2, no better for 2 validations), then phase 2 from the best weights
    assert starts[:5] == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1)]
    torch.testing.assert_close(snapshot["head.weight"], best_head["head.weight"])
    # phase 2: 0.8 at epoch 5, 0.8 and 0.7 are no better -> stop after epoch 7 (early stopping)
    assert trainer.state.epoch == 7 and schedule.phase == 1
    state = schedule.state_dict()
    assert state == {"phase": 1, "epochs_in_phase": 3, "bad": 2, "best": 0.8}
    other = PhaseSchedule(_Net(), torch.optim.Adam(_Net().parameters()), phases, evaluator=scores.engine)
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_phase_schedule_rejects_bad_phases():
    net = _Net()
    opt = torch.optim.Adam(named_param_groups(net, {"head": ["head"]}))
    with pytest.raises(ValueError, match="unknown keys"):
        PhaseSchedule(net, opt, [{"name": "x", "lr_": 1}])
    with pytest.raises(ValueError, match=r"groups \['neck'\].*named_param_groups"):
        PhaseSchedule(net, opt, [{"lr": {"neck": 1e-3}}])
    with pytest.raises(ValueError, match="trainable prefix 'fc' matches no parameter"):
        PhaseSchedule(net, opt, [{"trainable": ["fc"]}])
    with pytest.raises(ValueError, match="no evaluator"):
        PhaseSchedule(net, opt, [{"patience": 3}])


def test_phase_schedule_single_phase_without_lr_leaves_the_scheduler_alone():
    """One phase without ``lr`` is plain early stopping: the LR scheduler's learning rates are untouched."""
    from monai.handlers import LrScheduleHandler

    def lrs(with_schedule: bool) -> list[float]:
        net = _Net()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
        scores = _Scores([0.5, 0.6, 0.7, 0.8, 0.9])
        handlers = [scores, LrScheduleHandler(sched, print_lr=False)]
        if with_schedule:
            handlers.append(PhaseSchedule(net, opt, [{"name": "train", "trainable": "all", "patience": 2}],
                                          evaluator=scores.engine))
        seen = []
        trainer = _trainer(net, opt, 5, handlers)
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(opt.param_groups[0]["lr"]))
        trainer.run()
        assert trainer.state.epoch == 5
        return seen

    expected = lrs(with_schedule=False)
    assert expected[0] == 0.1 and expected[-1] < expected[1] < 0.1  # the cosine schedule did run
    assert lrs(with_schedule=True) == expected


def test_phase_schedule_patience_zero_never_stops():
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    scores = _Scores([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    schedule = PhaseSchedule(net, opt, [{"name": "train", "patience": 0}], evaluator=scores.engine)
    trainer = _trainer(net, opt, 6, [scores, schedule])
    trainer.run()
    assert trainer.state.epoch == 6
    assert schedule.state_dict() == {"phase": 0, "epochs_in_phase": 6, "bad": 5, "best": 0.9}


def test_phase_schedule_stops_after_patience_bad_validations():
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    # best 0.6 at epoch 2; 0.6 (no better), 0.5, 0.55 are 3 bad validations: stop after epoch 5
    scores = _Scores([0.5, 0.6, 0.6, 0.5, 0.55, 0.9, 0.9])
    schedule = PhaseSchedule(net, opt, [{"name": "train", "trainable": "all", "patience": 3}],
                             evaluator=scores.engine)
    trainer = _trainer(net, opt, 10, [scores, schedule])
    trainer.run()
    assert trainer.state.epoch == 5
    assert schedule.state_dict() == {"phase": 0, "epochs_in_phase": 5, "bad": 3, "best": 0.6}


def test_phase_schedule_min_mode_and_min_delta():
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    # "min" mode: 0.5 -> 0.45 improves by more than 0.01, 0.445 and 0.44 do not (min_delta): stop after epoch 4
    scores = _Scores([0.5, 0.45, 0.445, 0.44, 0.1])
    schedule = PhaseSchedule(net, opt, [{"patience": 2}], evaluator=scores.engine, mode="min", min_delta=0.01)
    trainer = _trainer(net, opt, 10, [scores, schedule])
    trainer.run()
    assert trainer.state.epoch == 4
    state = schedule.state_dict()
    assert state["bad"] == 2 and state["best"] == pytest.approx(0.44)  # ignite: the best moves without counting


def test_phase_schedule_state_dict_round_trip_mid_phase(tmp_path):
    """A schedule saved mid-phase and loaded into a new one continues its phase and its patience count."""
    phases = [{"name": "head", "trainable": ["head"], "lr": 1e-2, "epochs": 10, "patience": 3},
              {"name": "all", "lr": 1e-3, "patience": 2}]
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1.0)
    scores = _Scores([0.5, 0.7, 0.6])
    schedule = PhaseSchedule(net, opt, phases, evaluator=scores.engine)
    _trainer(net, opt, 3, [scores, schedule]).run()
    state = schedule.state_dict()
    assert state == {"phase": 0, "epochs_in_phase": 3, "bad": 1, "best": 0.7}
    torch.save({"phases": state}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)["phases"]

    net2 = _Net()
    opt2 = torch.optim.Adam(net2.parameters(), lr=1.0)
    scores2 = _Scores([0.65, 0.6, 0.8, 0.7, 0.7])  # 2 more bad validations end phase 1 after epoch 5
    resumed = PhaseSchedule(net2, opt2, phases, evaluator=scores2.engine)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    trainer = _trainer(net2, opt2, 20, [scores2, resumed])
    trainer.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", 3))  # as Resume does
    starts = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: starts.append((e.state.epoch, resumed.phase)))
    trainer.run()
    assert starts[:3] == [(4, 0), (5, 0), (6, 1)]
    assert trainer.state.epoch == 8  # phase 2: 0.8, then 0.7 and 0.7 are 2 bad validations
    assert resumed.state_dict() == {"phase": 1, "epochs_in_phase": 3, "bad": 2, "best": 0.8}
    with pytest.raises(ValueError, match="Required state attribute 'bad'"):
        resumed.load_state_dict({"phase": 0, "epochs_in_phase": 0, "best": None})
