"""medbundle.networks.block_cnn: the five-block CNN (CTNet) -- shapes, options, the seed's parameter count, batch
norm."""

from __future__ import annotations

import pytest
import torch
from helpers.networks import TINY, tiny_net
from torch import nn

from medbundle.networks import CTNet


@pytest.mark.parametrize("size", [64, 96, 224])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_ctnet_output_shape(size, in_channels):
    net = CTNet(in_channels=in_channels, num_classes=3, features=TINY, dense=16, pooled_size=7).eval()
    with torch.no_grad():
        out = net(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_ctnet_non_square_and_other_options():
    net = CTNet(in_channels=1, num_classes=5, features=TINY, dense=16, pooled_size=(2, 3)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 64, 96)).shape == (1, 5)
    assert net.classifier[1].in_features == 8 * 2 * 3


def test_ctnet_pooling_is_identity_at_224():
    """At 224 px the last feature map is already 7 x 7: the adaptive pooling changes nothing (the seed's network)."""
    net = CTNet(features=TINY, dense=16, pooled_size=7).eval()
    seen = {}
    net.pool.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        net(torch.randn(1, 1, 224, 224))
    assert seen["inp"].shape == (1, 8, 7, 7)
    torch.testing.assert_close(seen["out"], seen["inp"])


def test_ctnet_seed_parameter_count():
    """The seed: five 3x3 conv blocks with biases, Dense(512) on 7*7*1024 features, Dense(3)."""
    net = CTNet()
    chans = [1, 64, 128, 256, 512, 1024]
    expected = sum(3 * 3 * cin * cout + cout for cin, cout in zip(chans[:-1], chans[1:]))
    expected += 7 * 7 * 1024 * 512 + 512 + 512 * 3 + 3
    assert expected == 31_961_603  # hand-computed
    assert sum(p.numel() for p in net.parameters()) == expected
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == chans[1:]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(7 * 7 * 1024, 512), (512, 3)]


def test_ctnet_batch_norm():
    plain, bn = tiny_net(), tiny_net(batch_norm=True)
    convs = [m for m in bn.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 5 and all(c.bias is None for c in convs)
    assert [b.num_features for b in bns] == list(TINY)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_bn = sum(p.numel() for p in bn.parameters())
    assert n_bn == n_plain - sum(TINY) + 2 * sum(TINY)  # conv biases out, BN weight and bias in
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    with torch.no_grad():
        assert bn.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 3)
