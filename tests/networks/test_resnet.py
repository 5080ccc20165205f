"""medbundle.networks.resnet: torchvision ResNet50 weights into MONAI's one-channel ResNet50, and the loader's
errors."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers.networks import torchvision_style_state_dict
from torch import nn

from medbundle.networks import load_torchvision_resnet, resnet50


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
    assert "no pretrained weights given" in caplog.text and "random initial weights" in caplog.text
