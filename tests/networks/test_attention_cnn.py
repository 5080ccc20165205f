"""medbundle.networks.attention_cnn: the pneumonia seed's 4-block CNN with a spatial attention gate: size, shapes,
the attention map, gradients, inputs of any size from 32 px."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medbundle.networks import AttentionCNN, SpatialAttention, backbone_blocks, gradcam_layer, network_spec


def test_parameter_count():
    n = sum(p.numel() for p in AttentionCNN(in_channels=1, num_classes=2).parameters())
    assert 400_000 <= n <= 600_000 and n == 471_203
    assert sum(p.numel() for p in AttentionCNN(hidden=0).parameters()) == 471_203 - 256 * 257  # no Linear(256, 256)


def test_layout():
    net = AttentionCNN()
    assert len(net.features) == 4
    for block, out in zip(net.features, (32, 64, 128, 256)):
        assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
        assert block[0].out_channels == out and block[0].kernel_size == (3, 3)
    assert isinstance(net.attention, SpatialAttention) and isinstance(net.attention.gate, nn.Sigmoid)
    assert [type(m) for m in net.classifier] == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    spec = network_spec(net)
    assert spec.head == ("classifier",) and spec.in_channels == 1 and spec.spatial_size == (224, 224)
    assert gradcam_layer(net, 224) == "attention" and spec.min_size == 32
    assert backbone_blocks(net)[-1] == ["features.3", "attention"]


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 64), (224, 224), (250, 200)])
def test_output_and_attention_map_shapes(size):
    torch.manual_seed(0)
    net = AttentionCNN(num_classes=3).eval()
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        logits, gate = net.forward_with_attention(x)
        torch.testing.assert_close(net(x), logits)
        torch.testing.assert_close(net.attention_map(x), gate)
    assert logits.shape == (2, 3)
    assert gate.shape == (2, 1, size[0] // 16, size[1] // 16)
    assert gate.min() > 0 and gate.max() < 1 and gate.std() > 0  # a sigmoid map that varies over the image


def test_attention_gates_the_pooled_features():
    """The logits are the head applied to the pooled product of features and map: scaling the map changes them,
    and the gate's sigmoid module sees the same map through a forward hook."""
    torch.manual_seed(0)
    net = AttentionCNN().eval()
    x = torch.rand(2, 1, 64, 64)
    seen = {}
    handle = net.attention.gate.register_forward_hook(lambda m, i, o: seen.update(map=o.detach()))
    with torch.no_grad():
        feats = net.features(x)
        gate = net.attention_map(x)
        torch.testing.assert_close(seen["map"], gate)
        expected = net.classifier((feats * gate).mean((2, 3)))
        torch.testing.assert_close(net(x), expected)
        assert not torch.allclose(net.classifier(feats.mean((2, 3))), expected)  # the gate matters
    handle.remove()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = AttentionCNN().train()
    x = torch.rand(4, 1, 48, 48, requires_grad=True)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_in_channels_and_too_small_input():
    assert AttentionCNN(in_channels=3, num_classes=4)(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(RuntimeError):  # below 16 px the fourth pooling has nothing left
        AttentionCNN().eval()(torch.rand(1, 1, 8, 8))
