"""The network registry: specs of classes, instances and wrapped instances, Grad-CAM layers, head prefixes."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from monai.networks.nets import ResNet
from torch import nn

import medbundle.networks as networks
from medbundle.networks import (
    BaselineCNN,
    CTNet,
    FiveBlockCNN,
    NetworkSpec,
    gradcam_layer,
    head_prefixes,
    matching_prefix,
    named_param_groups,
    network_spec,
    register_network,
    resnet50,
)
from medbundle.networks import registry

BUNDLE_CNN = {"features": (32, 64, 128, 256, 512), "pooled_size": 1, "batch_norm": True}  # both bundles' CTNet


SMALL_NETWORKS = {  # a builder of a small instance of each registered network, and an input side it runs at
    "five_block": (lambda: FiveBlockCNN(features=(4, 8, 8, 8, 8), pooled_size=1), 64),
    "five_block_bn": (lambda: FiveBlockCNN(features=(4, 8, 8, 8, 8), pooled_size=1, batch_norm=True), 64),
    "baseline": (lambda: BaselineCNN(spatial_size=(32, 32), dense=8), 32),
    "resnet50": (lambda: resnet50(num_classes=4), 64),
    "attention_cnn": (lambda: networks.AttentionCNN(), 64),
    "densenet121": (lambda: networks.densenet121(), 64),
    "efficientnet_b0": (lambda: networks.efficientnet_b0(), 64),
    "efficientnet_lite0": (lambda: networks.EfficientNetLite0(pretrained=False), 64),
    "simple_cnn": (lambda: networks.SimpleCNN(), 64),
}


def test_public_names_and_alias():
    assert CTNet is FiveBlockCNN and networks.CTNet is FiveBlockCNN
    for name in networks.__all__:
        assert hasattr(networks, name), name
    for name in ("CTNet", "FiveBlockCNN", "BaselineCNN", "resnet50", "load_torchvision_resnet", "weight_decay_groups",
                 "matching_prefix", "named_param_groups", "register_network", "network_spec", "gradcam_layer",
                 "head_prefixes", "NetworkSpec"):
        assert name in networks.__all__, name


@pytest.mark.parametrize("cls, head", [(FiveBlockCNN, ("classifier",)), (BaselineCNN, ("classifier",)),
                                       (ResNet, ("fc",))])
def test_spec_of_class_and_instance(cls, head):
    spec = network_spec(cls)
    assert isinstance(spec, NetworkSpec) and spec.head == head and spec.in_channels == 1
    assert spec.min_size is not None and spec.spatial_size is not None
    assert network_spec(CTNet) is network_spec(FiveBlockCNN)


def test_spec_of_monai_resnet_from_resnet50():
    net = resnet50(num_classes=4)
    assert isinstance(net, ResNet)
    assert network_spec(net) is network_spec(ResNet)
    assert gradcam_layer(net, 224) == "layer4" and head_prefixes(net) == ["fc"]


def test_spec_of_wrapped_instances():
    net = FiveBlockCNN(features=(4, 8, 8, 8, 8), pooled_size=1)
    for wrapped in (nn.DataParallel(net), torch.compile(net), nn.DataParallel(torch.compile(net))):
        assert network_spec(wrapped) is network_spec(FiveBlockCNN)
        assert gradcam_layer(wrapped, 64) == "features.2.2"  # relative to the network: explainers unwrap first
        names = [n for n, _ in wrapped.named_parameters()]
        prefixes = head_prefixes(wrapped)
        assert prefixes[0].endswith(".classifier") and any(matching_prefix(n, prefixes) for n in names)
        groups = named_param_groups(wrapped, {"head": prefixes})
        assert [g["name"] for g in groups] == ["head", "backbone"]
        assert len(groups[0]["params"]) == len(list(net.classifier.parameters()))


def test_spec_of_distributed_data_parallel(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(resnet50(num_classes=2))
        assert network_spec(ddp) is network_spec(ResNet)
        assert gradcam_layer(ddp) == "layer4" and head_prefixes(ddp) == ["module.fc"]
        groups = named_param_groups(ddp, {"head": head_prefixes(ddp)})
        assert sum(p.numel() for p in groups[0]["params"]) == 2048 * 2 + 2
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("size, layer", [(64, "features.2.2"), (128, "features.3.2")])
def test_gradcam_layer_of_the_bundles(size, layer):
    """ct_infection trains at 64 px and names features.2.2, alzheimer_mri at 128 px and names features.3.2."""
    net = FiveBlockCNN(in_channels=1, num_classes=3, **BUNDLE_CNN)
    assert gradcam_layer(net, (size, size)) == layer == gradcam_layer(net, size) == gradcam_layer(FiveBlockCNN, size)
    seen = {}
    module = dict(net.named_modules())[layer]
    assert isinstance(module, nn.ReLU)
    handle = module.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, size, size))
    handle.remove()
    assert seen["shape"][2:] == (16, 16)


def test_gradcam_layer_five_block_other_sizes():
    # 224 px (the seed's full size): block 3's ReLU, 28x28 (block 4's would be 14x14)
    assert gradcam_layer(FiveBlockCNN, 224) == "features.3.2"
    assert gradcam_layer(FiveBlockCNN) == "features.3.2"  # None: the spec's typical size, 224
    assert gradcam_layer(FiveBlockCNN, 256) == "features.4.2"  # 16x16 in the last block
    assert gradcam_layer(FiveBlockCNN, 512) == "features.4.2"  # never past the last block
    assert gradcam_layer(FiveBlockCNN, 32) == "features.1.2"
    assert gradcam_layer(FiveBlockCNN, 16) == "features.0.2"
    assert gradcam_layer(FiveBlockCNN, (128, 64)) == "features.2.2"  # the shorter side decides
    assert gradcam_layer(FiveBlockCNN(features=(4, 8, 8), pooled_size=1), 224) == "features.2.2"


def test_gradcam_layer_fixed_choices():
    assert gradcam_layer(BaselineCNN(), 128) == "features.4"
    assert isinstance(BaselineCNN().features[4], nn.Conv2d)
    assert gradcam_layer(ResNet, 64) == "layer4"


@pytest.mark.parametrize("name", list(SMALL_NETWORKS))
def test_registered_layers_and_prefixes_exist(name):
    build, size = SMALL_NETWORKS[name]
    net = build()
    spec = network_spec(net)
    layer = gradcam_layer(net, size)
    modules = dict(net.named_modules())
    assert layer in modules, layer
    seen = {}
    handle = modules[layer].register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    with torch.no_grad():
        net.eval()(torch.zeros(1, spec.in_channels, size, size))
    handle.remove()
    assert min(seen["shape"][2:]) > 1  # a map with spatial extent
    names = [n for n, _ in net.named_parameters()]
    for prefix in (*spec.head, *spec.backbone):
        assert any(matching_prefix(n, [prefix]) for n in names), prefix
    # head and backbone split the parameters: every one in exactly one of them
    for n in names:
        assert (matching_prefix(n, spec.head) is None) != (matching_prefix(n, spec.backbone) is None), n
    assert head_prefixes(net) == list(spec.head)
    groups = named_param_groups(net, {"head": head_prefixes(net)})
    assert [g["name"] for g in groups] == ["head", "backbone"]


@pytest.mark.parametrize("name", list(SMALL_NETWORKS))
def test_runs_at_min_size(name):
    net = SMALL_NETWORKS[name][0]()
    spec = network_spec(net)
    if isinstance(net, BaselineCNN):
        net = BaselineCNN(spatial_size=(spec.min_size, spec.min_size), dense=8)
    with torch.no_grad():
        out = net.eval()(torch.zeros(1, spec.in_channels, spec.min_size, spec.min_size))
    assert out.shape[0] == 1


def test_unknown_network():
    class Mystery(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

    with pytest.raises(LookupError, match=r"Mystery is not a registered medbundle network.*register_network"):
        network_spec(Mystery())
    with pytest.raises(LookupError, match="Mystery"):
        network_spec(Mystery)
    with pytest.raises(LookupError, match="Mystery"):
        head_prefixes(nn.DataParallel(Mystery()))
    assert gradcam_layer(Mystery(), 64) is None  # the explainers then choose automatically
    assert gradcam_layer(nn.DataParallel(Mystery())) is None


def test_register_network_forms(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_network(gradcam_layer="body.0", head=("out",), backbone=("body",), in_channels=3, spatial_size=(32, 48))
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.out = nn.Linear(4, 2)

    class SubNet(Net):
        pass

    class Foreign(nn.Module):
        pass

    assert network_spec(Net).spatial_size == (32, 48) and network_spec(Net).in_channels == 3
    assert network_spec(SubNet()) is network_spec(Net)  # subclasses inherit
    assert register_network(Foreign, head=("x",)) is Foreign
    assert network_spec(Foreign()).head == ("x",) and gradcam_layer(Foreign()) is None
    with pytest.raises(TypeError):
        register_network(object)
