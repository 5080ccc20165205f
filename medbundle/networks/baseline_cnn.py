"""The Alzheimer seed's small baseline CNN (``BaselineCNN``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medbundle.networks.registry import register_network

__all__ = ["BaselineCNN"]


@register_network(
    gradcam_layer="features.4",
    head=("classifier",),
    backbone=("features",),
    in_channels=1,
    spatial_size=(128, 128),
    min_size=10,
)
class BaselineCNN(nn.Module):
    """The Alzheimer seed's small baseline: conv 32, pool, batch-norm, conv 64, pool, dense 128, ``num_classes`` outputs.

    ``Conv(3x3, 32) -> ReLU -> MaxPool(2) -> BatchNorm -> Conv(3x3, 64) -> ReLU -> MaxPool(2) -> Flatten ->
    Linear(128) -> ReLU -> Dropout -> Linear(num_classes)``. The convolutions are unpadded (Keras ``valid``), as in
    the seed, so the flattened size depends on ``spatial_size``. Its second convolution is ``features.4`` (the
    Grad-CAM layer the bundle names).

    Args:
        in_channels: input channels.
        num_classes: outputs.
        spatial_size: input (height, width), to size the dense layer.
        dense: units of the hidden dense layer.
        dropout: dropout before the output layer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        spatial_size: Sequence[int] = (128, 128),
        dense: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.BatchNorm2d(32),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        h, w = [((int(s) - 2) // 2 - 2) // 2 for s in spatial_size]
        if h < 1 or w < 1:
            raise ValueError(f"spatial_size {tuple(spatial_size)} is too small for BaselineCNN (at least 10 x 10)")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * h * w, dense), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
