"""Transfer learning: torchvision weights into MONAI's ResNet50, the baseline CNN, parameter groups, PhaseSchedule."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.networks.nets import resnet50 as monai_resnet50
from torch import nn

from medbundle.handlers import PhaseSchedule
from medbundle.networks import (
    BaselineCNN,
    load_torchvision_resnet,
    named_param_groups,
    resnet50,
)


def torchvision_style_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under torchvision's ResNet50 key names and shapes (RGB conv1, 1000-class fc).

    torchvision cannot be imported on the CPU machines, so the state dict is made from MONAI's own 3-channel
    ResNet50 with the torchvision stem, whose parameter names are torchvision's (``conv1``, ``bn1``,
    ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), plus a 1000-way ``fc``.
    """
    torch.manual_seed(seed)
    net = monai_resnet50(spatial_dims=2, n_input_channels=3, num_classes=1000, conv1_t_stride=2)
    state = {  # random values of ImageNet-like scale: positive variances, small weights
        k: (0.5 + torch.rand_like(v)) if k.endswith("running_var") else 0.05 * torch.randn_like(v)
        if v.is_floating_point() else v for k, v in net.state_dict().items()
    }
    assert state["fc.weight"].shape == (1000, 2048) and state["conv1.weight"].shape == (64, 3, 7, 7)
    assert "layer4.2.conv3.weight" in state and "layer1.0.downsample.1.running_var" in state
    return state


def test_torchvision_state_dict_loads_into_one_channel_resnet50(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state = torchvision_style_state_dict()
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(state, path)
    model = resnet50(in_channels=1, num_classes=4, pretrained=str(path))
    own = model.state_dict()
    torch.testing.assert_close(own["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    for key in ("bn1.running_mean", "layer1.0.conv1.weight", "layer3.5.bn2.weight", "layer4.2.conv3.weight",
                "layer2.0.downsample.0.weight"):
        torch.testing.assert_close(own[key], state[key])
    assert own["fc.1.weight"].shape == (4, 2048) and isinstance(model.fc[0], nn.Dropout) and model.fc[0].p == 0.5
    assert model.conv1.stride == (2, 2)  # torchvision's stem, not MONAI's stride-1 default
    assert "loaded pretrained weights" in caplog.text
    # a grey image through the summed conv1 == the same grey image in RGB through the original weights
    x = torch.rand(1, 1, 32, 32)
    rgb = nn.functional.conv2d(x.repeat(1, 3, 1, 1), state["conv1.weight"], stride=2, padding=3)
    torch.testing.assert_close(model.conv1(x), rgb, rtol=1e-4, atol=1e-4)
    # wrapped checkpoints and DDP prefixes load too
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pt")
    load_torchvision_resnet(resnet50(), tmp_path / "wrapped.pt")


def test_pretrained_loader_errors(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(FileNotFoundError, match="no pretrained weights there.*never downloads"):
        resnet50(pretrained=str(tmp_path / "absent.pth"))
    state = torchvision_style_state_dict()
    del state["layer2.1.conv2.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing \['layer2.1.conv2.weight'\], unexpected \['extra.weight'\]"):
        resnet50(pretrained=str(tmp_path / "bad.pth"))
    caplog.clear()
    resnet50()
    assert "no pretrained weights given" in caplog.text and "from scratch" in caplog.text


def test_baseline_cnn_is_the_seed_architecture():
    net = BaselineCNN(in_channels=1, num_classes=4, spatial_size=(128, 128))
    kinds = [type(m).__name__ for m in net.features]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "BatchNorm2d", "Conv2d", "ReLU", "MaxPool2d"]
    assert net.features[0].out_channels == 32 and net.features[4].out_channels == 64
    assert net.classifier[1].in_features == 64 * 30 * 30 and net.classifier[1].out_features == 128
    assert net(torch.zeros(2, 1, 128, 128)).shape == (2, 4)
    assert BaselineCNN(spatial_size=(208, 176))(torch.zeros(1, 1, 208, 176)).shape == (1, 4)
    with pytest.raises(ValueError, match="too small"):
        BaselineCNN(spatial_size=(8, 8))


def test_named_param_groups():
    net = BaselineCNN(spatial_size=(16, 16))
    groups = named_param_groups(net, {"head": ["classifier"]})
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError, match=r"prefixes \['clasifier'\] match no parameter.*classifier"):
        named_param_groups(net, {"head": ["clasifier"]})


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.backbone(x))


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
