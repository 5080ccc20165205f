"""Optimisers, schedules and losses chosen by name (medbundle.training)."""

from __future__ import annotations

import pytest
import torch

from medbundle.training import make_loss, make_optimizer, make_scheduler, scheduler_step_value


def _params():
    return [torch.nn.Parameter(torch.ones(3))]


@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("AdamW", torch.optim.AdamW),
                                      ("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_by_name(name, cls):
    opt = make_optimizer(name, _params(), lr=0.01, momentum=0.8, weight_decay=0.001)
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.01
    if name in ("sgd", "rmsprop"):
        assert opt.param_groups[0]["momentum"] == 0.8


def test_optimizer_keeps_group_learning_rates():
    groups = [{"name": "head", "params": _params(), "lr": 0.1}, {"name": "backbone", "params": _params()}]
    opt = make_optimizer("sgd", groups, lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]


def test_unknown_names_are_one_line_errors_naming_the_key():
    with pytest.raises(ValueError, match=r"optimizer_name 'adm'.*did you mean 'adam'"):
        make_optimizer("adm", _params(), lr=0.1)
    opt = make_optimizer("adam", _params(), lr=0.1)
    with pytest.raises(ValueError, match=r"lr_schedule 'cosin'.*did you mean 'cosine'"):
        make_scheduler("cosin", opt, epochs=3)
    with pytest.raises(ValueError, match=r"loss_name 'focl'"):
        make_loss("focl")


def test_cosine_reaches_min_lr_and_keeps_group_ratio():
    groups = [{"params": _params(), "lr": 1.0}, {"params": _params(), "lr": 0.1}]
    opt = make_optimizer("sgd", groups, lr=1.0)
    sched = make_scheduler("cosine", opt, epochs=4)
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    assert lrs[-1] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert lrs[1][0] == pytest.approx(10 * lrs[1][1])


def test_step_and_plateau_schedules():
    opt = make_optimizer("sgd", _params(), lr=1.0)
    sched = make_scheduler("step", opt, epochs=10, step_size=2, gamma=0.5)
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    opt = make_optimizer("sgd", _params(), lr=1.0)
    sched = make_scheduler("plateau", opt, epochs=10, gamma=0.1, patience=1)

    class Evaluator:
        state = type("S", (), {"metrics": {"val_accuracy": 0.5}})()

    step = scheduler_step_value("plateau", Evaluator())
    for _ in range(3):  # the score never improves after the first validation
        sched.step(step(None))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert scheduler_step_value("cosine", Evaluator())(None) == ()


def test_losses_by_name_on_one_hot_labels():
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ce = make_loss("cross_entropy")(logits, target)
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(logits, target.argmax(1)))
    weighted = make_loss("cross_entropy", weight=torch.tensor([1.0, 3.0]))(logits, target)
    assert weighted != pytest.approx(ce)
    focal = make_loss("focal", gamma=2.0)(logits, target)
    assert 0 < focal < ce  # easy examples are down-weighted


def test_warmup_cosine_steps_per_iteration_from_zero_and_keeps_group_ratio():
    from medbundle.training import scheduler_epoch_level

    groups = [{"params": _params(), "lr": 1.0}, {"params": _params(), "lr": 0.1}]
    opt = make_optimizer("adam", groups, lr=1.0)
    sched = make_scheduler("warmup_cosine", opt, epochs=2, steps_per_epoch=10, warmup_epochs=0.5)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(1.0)  # linear warm-up over half an epoch
    assert all(a < b for a, b in zip(lrs[:5], lrs[1:6])) and all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-6)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.1 * opt.param_groups[0]["lr"])
    assert not scheduler_epoch_level("warmup_cosine") and scheduler_epoch_level("cosine")
