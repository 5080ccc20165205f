"""medbundle.networks.simple_cnn: the seed's three-layer CNN: layout, parameter count, shapes at the bundles' sizes,
its registry entry (Grad-CAM layer, head, backbone, blocks for the transfer strategies)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import medbundle.networks as networks
from medbundle.explain import GradCAM, find_target_layer
from medbundle.networks import (
    SimpleCNN,
    backbone_blocks,
    gradcam_layer,
    head_prefixes,
    matching_prefix,
    named_param_groups,
    network_spec,
)
from medbundle.training.transfer import transfer_phases


def test_layout_and_parameter_count():
    net = SimpleCNN()
    assert len(net.features) == 3
    for block, out in zip(net.features, (32, 64, 128)):
        assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d]
        assert block[0].out_channels == out and block[0].kernel_size == (3, 3) and block[0].padding == (1, 1)
    assert [type(m) for m in net.classifier] == [nn.Dropout, nn.Linear]
    assert net.classifier[0].p == 0.4 and net.classifier[1].in_features == 128
    # (1*9+1)*32 + (32*9+1)*64 + (64*9+1)*128 + (128+1)*2
    assert sum(p.numel() for p in net.parameters()) == 320 + 18_496 + 73_856 + 258 == 92_930
    assert sum(p.numel() for p in SimpleCNN(in_channels=3, num_classes=4).parameters()) == 92_930 + 2 * 9 * 32 + 2 * 129
    assert sum(p.numel() for p in SimpleCNN(features=(4, 8, 16)).parameters()) == 40 + 296 + 1168 + 34
    assert SimpleCNN(dropout=0.1).classifier[0].p == 0.1


@pytest.mark.parametrize("size", [(128, 128), (224, 224), (96, 160), (8, 8)])
def test_output_shape_at_any_size(size):
    torch.manual_seed(0)
    net = SimpleCNN(num_classes=3).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, *size))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_registry_entry():
    net = SimpleCNN()
    spec = network_spec(net)
    assert spec is network_spec(SimpleCNN) and "SimpleCNN" in networks.__all__
    assert spec.head == ("classifier",) and spec.backbone == ("features",)
    assert spec.in_channels == 1 and spec.spatial_size == (224, 224) and spec.min_size == 8
    names = [n for n, _ in net.named_parameters()]
    for n in names:  # head and backbone split the parameters: every one in exactly one of them
        assert (matching_prefix(n, spec.head) is None) != (matching_prefix(n, spec.backbone) is None), n
    assert head_prefixes(nn.DataParallel(net)) == ["module.classifier"]
    groups = named_param_groups(net, {"head": head_prefixes(net)})
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert sum(p.numel() for p in groups[0]["params"]) == 129 * 2


def test_blocks_for_the_transfer_strategies():
    net = SimpleCNN()
    assert backbone_blocks(net) == [["features.0"], ["features.1"], ["features.2"]]
    for block in backbone_blocks(net):
        assert any(matching_prefix(n, block) for n, _ in net.named_parameters())
    (phase,) = transfer_phases(net, "last_blocks", unfreeze_blocks=2)
    assert phase["trainable"] == ["classifier", "features.1", "features.2"]
    with pytest.raises(ValueError, match="between 1 and 3"):
        transfer_phases(net, "last_blocks", unfreeze_blocks=4)


@pytest.mark.parametrize("size, side", [(128, 32), (224, 56), (8, 2)])
def test_gradcam_layer_is_the_last_conv(size, side):
    net = SimpleCNN().eval()
    layer = gradcam_layer(net, size)
    assert layer == "features.2.0" == find_target_layer(net, (1, 1, size, size))  # the explainers' own choice
    module = net.get_submodule(layer)
    assert module is net.features[2][0] and isinstance(module, nn.Conv2d)
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    with torch.no_grad():
        net(torch.zeros(1, 1, size, size))
    handle.remove()
    assert seen["shape"] == (1, 128, side, side)


def test_gradcam_maps_through_the_registered_layer():
    torch.manual_seed(0)
    net = SimpleCNN(num_classes=2).train()
    x = torch.rand(2, 1, 64, 64)
    maps = GradCAM(net, target_layer=gradcam_layer(net, 64))(x)
    assert maps.shape == (2, 1, 64, 64) and float(maps.max()) == pytest.approx(1.0) and float(maps.min()) >= 0
    assert net.training  # the explainer left the mode as found


def test_dropout_before_the_classifier_and_gradients():
    torch.manual_seed(0)
    net = SimpleCNN(num_classes=2)
    x = torch.rand(4, 1, 32, 32, requires_grad=True)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))  # eval: deterministic
        torch.testing.assert_close(net(x), net.classifier[1](net.pool(net.features(x))))
    net.train()
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"features": (32, 64)}, r"features must be three positive ints.*\(32, 64\).*network_def#features"),
    ({"features": (32, 0, 128)}, r"features must be three positive ints"),
    ({"features": (32.5, 64, 128)}, r"features must be three positive ints"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1\.0.*network_def#dropout"),
])
def test_bad_settings_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        SimpleCNN(**kwargs)
    assert "\n" not in str(info.value)
