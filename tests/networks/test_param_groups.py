"""medbundle.networks.param_groups: weight-decay groups and named parameter groups."""

from __future__ import annotations

import pytest
import torch
from helpers.networks import tiny_net
from torch import nn

from medbundle.networks import BaselineCNN, named_param_groups, weight_decay_groups


@pytest.mark.parametrize("batch_norm", [False, True])
def test_weight_decay_groups(batch_norm):
    net = tiny_net(batch_norm=batch_norm)
    groups = weight_decay_groups(net, 1e-3)
    assert len(groups) == 2
    decay, no_decay = groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    ids_decay = [id(p) for p in decay["params"]]
    ids_no = [id(p) for p in no_decay["params"]]
    all_ids = [id(p) for p in net.parameters()]
    assert sorted(ids_decay + ids_no) == sorted(all_ids)  # every parameter exactly once
    assert len(set(ids_decay + ids_no)) == len(all_ids)
    weights = {id(m.weight) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert set(ids_decay) == weights
    others = {id(m.bias) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None}
    others |= {id(p) for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert set(ids_no) == others
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])


def test_weight_decay_groups_adam_step():
    net = tiny_net()
    bias = net.classifier[-1].bias
    weight = net.classifier[-1].weight
    with torch.no_grad():
        bias.fill_(0.5)
    b0, w0 = bias.detach().clone(), weight.detach().clone()
    opt = torch.optim.Adam(weight_decay_groups(net, 0.1), lr=1e-2)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(bias.detach(), b0, rtol=0, atol=0)  # no decay on biases
    nonzero = w0 != 0
    assert nonzero.any()
    assert (weight.detach().abs()[nonzero] < w0.abs()[nonzero]).all()  # weights shrink towards 0


def test_weight_decay_groups_skip_frozen():
    net = tiny_net()
    net.features[0][0].weight.requires_grad_(False)
    decay, no_decay = weight_decay_groups(net, 0.1)
    ids = {id(p) for p in decay["params"] + no_decay["params"]}
    assert id(net.features[0][0].weight) not in ids


def test_named_param_groups():
    net = BaselineCNN(spatial_size=(16, 16))
    groups = named_param_groups(net, {"head": ["classifier"]})
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError, match=r"prefixes \['clasifier'\] match no parameter.*classifier"):
        named_param_groups(net, {"head": ["clasifier"]})
