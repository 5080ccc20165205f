"""medbundle.uncertainty: test-time augmentation views and MC dropout passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medbundle.errors import OptionError
from medbundle.uncertainty import check_uncertainty, mc_dropout, predictive_passes, tta_view


class _DropNet(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(p)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.drop(self.features(x)))


def test_tta_views():
    x = torch.arange(2 * 1 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32)
    assert torch.equal(tta_view(x, 0), x) and torch.equal(tta_view(x, 10), x)
    assert torch.equal(tta_view(x, 5), torch.flip(x, dims=(-1,)))
    right = tta_view(x, 1)  # one step (1 px at 32 px) to the right, zero-filled
    assert torch.equal(right[..., 1:], x[..., :-1]) and (right[..., 0] == 0).all()
    down = tta_view(x, 3)
    assert torch.equal(down[..., 1:, :], x[..., :-1, :]) and (down[..., 0, :] == 0).all()
    assert len({tuple(tta_view(x, i).flatten().tolist()) for i in range(10)}) == 10


def test_passes_shapes_and_tta_is_deterministic():
    torch.manual_seed(0)
    net = _DropNet()
    x = torch.rand(5, 1, 16, 16)
    a = predictive_passes(net, x, "tta", 6)
    assert a.shape == (6, 5, 3) and torch.allclose(a.sum(-1), torch.ones(6, 5))
    assert torch.equal(a, predictive_passes(net, x, "tta", 6))
    assert torch.allclose(a[0], torch.softmax(net.eval()(x), 1))
    assert predictive_passes(net, x, "none", 6).shape == (1, 5, 3)
    calls = []
    predictive_passes(net, x, "tta", 3, inferer=lambda inputs, network: calls.append(1) or network(inputs))
    assert len(calls) == 3


def test_mc_dropout_samples_dropout_only_and_restores_modes():
    torch.manual_seed(0)
    net = _DropNet()
    net.train()
    bn = net.features[1]
    stats = bn.running_mean.clone()
    x = torch.rand(4, 1, 16, 16)
    out = predictive_passes(net, x, "mc_dropout", 5)
    assert not torch.allclose(out[0], out[1])  # dropout sampled
    assert torch.equal(bn.running_mean, stats)  # batch norm stayed in evaluation mode
    assert all(m.training for m in net.modules())  # modes restored
    with mc_dropout(net):
        assert net.drop.training and not bn.training
    with pytest.raises(OptionError, match="mc_dropout"):
        predictive_passes(_DropNet(p=0.0), x, "mc_dropout", 3)


def test_check_uncertainty():
    assert check_uncertainty("TTA", 8) == ("tta", 8)
    with pytest.raises(OptionError, match="uncertainty"):
        check_uncertainty("ensemble", 8)
    for bad in (0, 2.5, "x"):
        with pytest.raises(OptionError, match="uncertainty_passes"):
            check_uncertainty("tta", bad)
