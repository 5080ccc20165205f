"""``AttentionCNN``: the pneumonia seed's custom CNN, four conv blocks and a spatial attention gate (~470K parameters).

Seed 003 (pneumonia vs normal chest X-rays) trains a small CNN next to its pretrained networks: four blocks of
3x3 convolution, batch norm, ReLU and 2x2 max pooling, an attention mechanism over the last feature map, global
average pooling, dropout and a dense head. The attention here is a spatial gate (:class:`SpatialAttention`): a
1x1 bottleneck predicts one weight in (0, 1) per position, and the features are multiplied by it before pooling,
so the map says where the network pools its evidence from; :meth:`AttentionCNN.attention_map` returns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medbundle.networks.registry import register_network

__all__ = ["AttentionCNN", "SpatialAttention"]


class SpatialAttention(nn.Module):
    """A spatial attention gate: ``x * sigmoid(conv1x1(relu(bn(conv1x1(x)))))``, one weight per position.

    The gate's sigmoid is the submodule ``gate``: a forward hook on it sees the ``(N, 1, H, W)`` map.

    Args:
        channels: channels of the gated feature map.
        hidden: channels of the 1x1 bottleneck.
    """

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1),
        )
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 1, H, W)`` gate of ``x``, values in (0, 1)."""
        return self.gate(self.score(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


@register_network(
    gradcam_layer="attention",
    head=("classifier",),
    backbone=("features", "attention"),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=32,
    blocks=["features.0", "features.1", "features.2", ("features.3", "attention")],
)
class AttentionCNN(nn.Module):
    """Four conv blocks (conv 3x3, batch norm, ReLU, max pool 2x2), a spatial attention gate, global average
    pooling, dropout and a dense head: 471K parameters with the defaults, one input channel and two classes.

    The attention map (and the Grad-CAM layer ``attention``, the gated features) is 1/16 of the input a side:
    14x14 at 224 px. Any input of at least 32 px a side runs (2x2 maps).

    Args:
        in_channels: input channels.
        num_classes: outputs.
        features: output channels of the four blocks.
        attention_channels: channels of the attention gate's 1x1 bottleneck.
        hidden: units of the dense layer between pooling and the output (0: the output layer follows the pooling).
        dropout: dropout before each dense layer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        features: Sequence[int] = (32, 64, 128, 256),
        attention_channels: int = 64,
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        blocks, channels = [], int(in_channels)
        for out in features:
            blocks.append(nn.Sequential(
                nn.Conv2d(channels, int(out), 3, padding=1, bias=False),
                nn.BatchNorm2d(int(out)),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ))
            channels = int(out)
        self.features = nn.Sequential(*blocks)
        self.attention = SpatialAttention(channels, attention_channels)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            head += [nn.Linear(channels, int(hidden)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            channels = int(hidden)
        self.classifier = nn.Sequential(*head, nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.attention(self.features(x))))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and the ``(N, 1, H / 16, W / 16)`` attention map they were pooled under, in one pass."""
        feats = self.features(x)
        gate = self.attention.attention(feats)
        return self.classifier(self.pool(feats * gate)), gate

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 1, H / 16, W / 16)`` attention map of ``x``, values in (0, 1) (upsample it to overlay)."""
        return self.attention.attention(self.features(x))
