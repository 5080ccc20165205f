"""medbundle.networks.efficientnet: MONAI's EfficientNet-B0 in torchvision's form, torchvision-format weights into it
(the real key names, committed in tests/networks/torchvision_keys/), and the loader's one-line errors."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers.networks import torchvision_format_file, torchvision_format_state_dict, torchvision_keys
from monai.networks.nets import EfficientNetBN
from torch import nn

from medbundle.networks import (
    efficientnet_b0,
    gradcam_layer,
    load_torchvision_efficientnet,
    network_spec,
    torchvision_efficientnet_keys,
)

# torchvision name (as in tests/networks/torchvision_keys/efficientnet_b0.txt) -> MONAI name; blocks are numbered per
# stage in torchvision (features.<stage + 1>.<i>) and globally in MONAI (_blocks.<stage>.<0..15>)
SAMPLE = {
    "features.0.0.weight": None,  # the stem: summed over RGB, checked apart
    "features.0.1.running_var": "_bn0.running_var",
    "features.1.0.block.0.0.weight": "_blocks.0.0._depthwise_conv.weight",  # stage 1 does not expand
    "features.1.0.block.1.fc1.weight": "_blocks.0.0._se_reduce.weight",
    "features.1.0.block.2.1.bias": "_blocks.0.0._bn2.bias",
    "features.2.0.block.0.0.weight": "_blocks.1.1._expand_conv.weight",
    "features.2.1.block.2.fc2.bias": "_blocks.1.2._se_expand.bias",
    "features.3.1.block.0.1.running_var": "_blocks.2.4._bn0.running_var",  # expand's norm, then depthwise's:
    "features.3.1.block.1.1.weight": "_blocks.2.4._bn1.weight",  # the same shape, told apart by their order
    "features.4.2.block.1.0.weight": "_blocks.3.7._depthwise_conv.weight",
    "features.6.3.block.3.1.running_mean": "_blocks.5.14._bn2.running_mean",
    "features.7.0.block.3.0.weight": "_blocks.6.15._project_conv.weight",
    "features.8.0.weight": "_conv_head.weight",
    "features.8.1.weight": "_bn1.weight",
}


def _rename(model: EfficientNetBN, key: str) -> str:
    prefix, _, leaf = key.rpartition(".")
    return f"{torchvision_efficientnet_keys(model)[prefix]}.{leaf}"


@pytest.fixture(scope="module")
def tv_file(tmp_path_factory):
    return torchvision_format_file("efficientnet_b0", tmp_path_factory.mktemp("effnet"))


def test_key_map_covers_torchvisions_keys_one_to_one():
    listed = torchvision_keys("efficientnet_b0")
    assert len(listed) == 360
    assert listed["features.0.0.weight"] == "32x3x3x3" and listed["classifier.1.weight"] == "1000x1280"
    assert listed["features.6.3.block.2.fc1.weight"] == "48x1152x1x1"
    assert listed["features.8.0.weight"] == "1280x320x1x1"
    model = efficientnet_b0(in_channels=3, num_classes=1000)
    renamed = {_rename(model, k): k for k in listed}
    assert len(renamed) == len(listed) and set(renamed) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert ("x".join(map(str, value.shape)) or "-") == listed[renamed[key]], key
    assert all(_rename(model, tv) == ours for tv, ours in SAMPLE.items() if ours)


def test_torchvision_form():
    """torchvision's symmetric k // 2 padding and batch norm (eps 1e-5, momentum 0.1), not TensorFlow's "same".

    With them, weights loaded from a torchvision file give torchvision's logits: checked once against torchvision
    0.28.0 itself (not importable here), on 224 and 97 px inputs, max difference 0 (3 channels) and 5e-7 (1 channel,
    against the RGB-repeated image)."""
    model = efficientnet_b0()
    assert isinstance(model, EfficientNetBN)
    assert not any(isinstance(m, nn.modules.padding._ConstantPadNd) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 81 and all(c.padding == tuple(k // 2 for k in c.kernel_size) for c in convs)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 49 and all(n.eps == 1e-5 and n.momentum == 0.1 for n in norms)
    # the stem as torchvision computes it (TF "same" at 64 px would pad only right/bottom: shifted by one pixel)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model._conv_stem(model._conv_stem_padding(x)),
                                   nn.functional.conv2d(x, model._conv_stem.weight, stride=2, padding=1))


def test_torchvision_weights_load_into_one_channel_b0(tv_file, caplog):
    caplog.set_level(logging.INFO)
    state, path = tv_file
    model = efficientnet_b0(in_channels=1, num_classes=2, dropout=0.3, pretrained=str(path))
    own = model.state_dict()
    torch.testing.assert_close(own["_conv_stem.weight"], state["features.0.0.weight"].sum(1, keepdim=True))
    for tv_key, monai_key in SAMPLE.items():
        if monai_key:
            torch.testing.assert_close(own[monai_key], state[tv_key])
    for key, value in state.items():
        if not key.startswith(("classifier.", "features.0.0.")):
            torch.testing.assert_close(own[_rename(model, key)], value, rtol=0, atol=0)
    assert own["_fc.weight"].shape == (2, 1280)
    assert not torch.allclose(own["_fc.weight"], state["classifier.1.weight"][:2])  # the new head
    assert model._dropout.p == 0.3 and "loaded pretrained weights" in caplog.text
    x = torch.rand(1, 1, 32, 32)
    rgb = nn.functional.conv2d(x.repeat(1, 3, 1, 1), state["features.0.0.weight"], stride=2, padding=1)
    torch.testing.assert_close(model._conv_stem(x), rgb, rtol=1e-4, atol=1e-4)


def test_registry_and_shapes():
    model = efficientnet_b0(num_classes=3)
    spec = network_spec(model)
    assert spec.head == ("_fc",) and spec.in_channels == 1
    assert gradcam_layer(model, 224) == "_blocks.4" and gradcam_layer(model, 96) == "_blocks.3"
    with torch.no_grad():
        for size in ((32, 32), (224, 224), (97, 130)):
            assert model.eval()(torch.zeros(2, 1, *size)).shape == (2, 3)


def test_loader_errors(tv_file, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state, _ = tv_file
    with pytest.raises(FileNotFoundError, match="no pretrained weights there.*never downloads") as err:
        efficientnet_b0(pretrained=str(tmp_path / "absent.pth"))
    assert "\n" not in str(err.value)
    bad = {k: v for k, v in state.items() if not k.startswith("features.5.1.block.2.")}  # one SE module gone
    bad["features.8.1.weight"] = torch.ones(320)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing \['_blocks.4.9._se_expand.bias', .*wrong shape \[\('_bn1.weight', "
                                         r"\(320,\), \(1280,\)\)\]; 4/0/1 in all\)") as err:
        efficientnet_b0(pretrained=str(tmp_path / "bad.pth"))
    assert "\n" not in str(err.value) and "torchvision" in str(err.value)
    torch.save(torchvision_format_state_dict("densenet121"), tmp_path / "densenet.pth")
    with pytest.raises(ValueError, match="not a torchvision EfficientNet-B0 state dict") as err:
        load_torchvision_efficientnet(efficientnet_b0(), tmp_path / "densenet.pth")
    assert "\n" not in str(err.value)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list, not a state dict") as err:
        efficientnet_b0(pretrained=str(tmp_path / "list.pth"))
    caplog.clear()
    for text in (None, "null", "false"):
        efficientnet_b0(pretrained=text)
    assert caplog.text.count("random initial weights") == 3
