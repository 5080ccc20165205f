"""Feature extraction on cached features (medbundle.training.cached_features, FeatureHead)."""

from __future__ import annotations

import torch

from medbundle.networks import EfficientNetLite0
from medbundle.training import FeatureHead, cached_features


def test_cached_features_are_the_head_input_and_the_head_is_shared():
    torch.manual_seed(0)
    net = EfficientNetLite0(in_channels=1, num_classes=2, pretrained=False).eval()
    images = torch.rand(5, 1, 64, 64)
    data = [{"image": images[i], "label": torch.tensor([1.0, 0.0])} for i in range(5)]
    features = cached_features(net, data, transform=lambda d: d, batch_size=2)
    assert len(features) == 5 and features[0]["image"].shape == (1280,)
    head = FeatureHead(net, dropout=0.0).eval()
    stacked = torch.stack([features[i]["image"] for i in range(5)])
    with torch.no_grad():
        assert torch.allclose(head(stacked), net(images), atol=1e-4)  # the head on cached features = the network
    assert head.head is net._fc  # training the head trains the network's own head
    assert net.training is False
