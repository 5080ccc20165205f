"""Transfer strategies: which blocks learn in which phase, at which learning rates (medbundle.training)."""

from __future__ import annotations

import pytest
import torch

from medbundle.networks import EfficientNetLite0, backbone_blocks, head_prefixes
from medbundle.training import STRATEGIES, transfer_param_groups, transfer_phases


@pytest.fixture(scope="module")
def lite0():
    return EfficientNetLite0(in_channels=1, num_classes=2, pretrained=False)


def test_blocks_run_from_stem_to_head(lite0):
    blocks = backbone_blocks(lite0)
    assert blocks[0] == ["_conv_stem", "_bn0"] and blocks[-1] == ["_conv_head", "_bn1"]
    assert [b[0] for b in blocks[1:-1]] == [f"_blocks.{i}" for i in range(7)]
    names = [n for n, _ in lite0.named_parameters()]
    covered = {n for n in names if any(n.startswith(p + ".") for b in blocks for p in b)}
    assert covered | {n for n in names if n.startswith("_fc.")} == set(names)  # blocks + head = every parameter


def test_differential_learning_rates(lite0):
    groups = transfer_param_groups(lite0, lr=1e-3, backbone_lr_factor=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr"] == pytest.approx(1e-3) and by_name["backbone"]["lr"] == pytest.approx(1e-4)
    head_ids = {id(p) for p in lite0._fc.parameters()}
    assert {id(p) for p in by_name["head"]["params"]} == head_ids
    with pytest.raises(ValueError, match="backbone_lr_factor"):
        transfer_param_groups(lite0, lr=1e-3, backbone_lr_factor=0)


def test_strategies(lite0):
    head = head_prefixes(lite0)
    assert transfer_phases(lite0, "fine_tune", patience=3) == [{"name": "fine_tune", "trainable": "all", "patience": 3}]
    (fe,) = transfer_phases(lite0, "feature_extraction", patience=2)
    assert fe["trainable"] == head
    (last,) = transfer_phases(lite0, "last_blocks", unfreeze_blocks=2)
    assert last["trainable"] == head + ["_blocks.6", "_conv_head", "_bn1"]
    prog = transfer_phases(lite0, "progressive", patience=4, unfreeze_blocks=2, phase_epochs=3)
    assert [p["name"] for p in prog] == ["head", "top_1_blocks", "top_2_blocks", "all"]
    assert [p.get("epochs") for p in prog] == [3, 3, 3, None] and prog[-1]["patience"] == 4
    assert set(prog[1]["trainable"]) < set(prog[2]["trainable"])  # one more block per phase
    # from scratch every strategy trains everything: frozen random blocks would learn nothing
    assert all(transfer_phases(lite0, s, pretrained=False)[0]["trainable"] == "all" for s in STRATEGIES)


def test_bad_strategy_values(lite0):
    with pytest.raises(ValueError, match="transfer 'progresive'.*progressive"):
        transfer_phases(lite0, "progresive")
    with pytest.raises(ValueError, match="unfreeze_blocks 99 must be between 1 and 9"):
        transfer_phases(lite0, "last_blocks", unfreeze_blocks=99)


def test_last_blocks_phase_freezes_the_rest_in_the_phase_schedule(lite0):
    from medbundle.handlers import PhaseSchedule
    from ignite.engine import Engine

    phases = transfer_phases(lite0, "last_blocks", unfreeze_blocks=1)
    opt = torch.optim.SGD(transfer_param_groups(lite0, lr=0.1, backbone_lr_factor=0.1), lr=0.1)
    schedule = PhaseSchedule(lite0, opt, phases)
    trainer = Engine(lambda e, b: None)
    schedule.attach(trainer)
    trainer.run([0], max_epochs=1)
    trainable = {n for n, p in lite0.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in lite0.named_parameters() if n.startswith(("_fc.", "_conv_head.", "_bn1."))}
