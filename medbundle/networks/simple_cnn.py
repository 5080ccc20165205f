"""``SimpleCNN``: the seed's small three-layer CNN (conv 32, 64, 128 with ReLU and max pooling), for any input size."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import nn

from medbundle.networks.registry import register_network

__all__ = ["SimpleCNN"]


@register_network(
    gradcam_layer="features.2.0",
    head=("classifier",),
    backbone=("features",),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=8,
    blocks=["features.0", "features.1", "features.2"],
)
class SimpleCNN(nn.Module):
    """Three blocks of ``Conv2d(3x3, same padding) -> ReLU -> MaxPool2d(2)``, then global average pooling,
    ``Dropout`` and ``Linear(num_classes)``: 92,930 parameters with the defaults (one input channel, two classes).

    The seed's network with its 32 / 64 / 128 filters and its dropout of 0.4 before the classifier; global average
    pooling (instead of flattening) makes it run at any input of at least 8 px a side with the same weights. The
    Grad-CAM layer is the last convolution, ``features.2.0`` (the explainers' automatic choice too): 1/4 of the
    input a side, 56 x 56 at 224 px, 32 x 32 at 128 px. Weights start as Keras' ``glorot_uniform``, as in the seed.

    Args:
        in_channels: input channels.
        num_classes: outputs.
        features: filters of the three convolutions.
        dropout: dropout before the classifier.

    Raises:
        ValueError: ``features`` is not three positive ints, or ``dropout`` is outside [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        features: Sequence[int] = (32, 64, 128),
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        widths = tuple(features)
        if len(widths) != 3 or not all(isinstance(f, Integral) and f > 0 for f in widths):
            raise ValueError(f"SimpleCNN: features must be three positive ints (filters of its three convolutions), "
                             f"got {features!r}. Use e.g. (32, 64, 128) (bundle key network_def#features).")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"SimpleCNN: dropout must be in [0, 1), got {dropout!r}. Use e.g. 0.4 (bundle key "
                             "network_def#dropout).")
        blocks, channels = [], int(in_channels)
        for out in widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(channels, int(out), kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ))
            channels = int(out)
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Keras' glorot_uniform, as in the seed
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))
