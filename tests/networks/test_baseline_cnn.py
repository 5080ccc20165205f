"""medbundle.networks.baseline_cnn: the seed's baseline CNN architecture."""

from __future__ import annotations

import pytest
import torch

from medbundle.networks import BaselineCNN


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
