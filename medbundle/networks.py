"""Networks of the medbundle project and helpers to build their optimiser parameter groups."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CTNet", "weight_decay_groups"]


class CTNet(nn.Module):
    """The brain-CT infection classifier of the ct_infection seed, for any input size.

    Five blocks of ``Conv2d(3x3, same padding) -> ReLU -> MaxPool2d(2) -> Dropout``, then
    ``AdaptiveAvgPool2d(pooled_size) -> Flatten -> Linear(dense) -> ReLU -> Dropout -> Linear(num_classes)``.
    With a 224x224 input and ``pooled_size=7`` the pooling is the identity and the network is the
    seed's exactly (7 x 7 x 1024 features flattened into a 512-unit dense layer); smaller
    ``pooled_size`` values keep the dense layer small when training at smaller sizes on a CPU.

    Args:
        in_channels: number of input channels (1 for CT).
        num_classes: number of output logits.
        features: filters of the five convolution blocks (the seed: 64, 128, 256, 512, 1024).
        dense: units of the hidden dense layer.
        dropout: dropout after every convolution block.
        head_dropout: dropout after the hidden dense layer.
        pooled_size: spatial size the last feature map is pooled to before flattening.
        batch_norm: add ``BatchNorm2d`` after every convolution (not in the seed; it makes the
            network train in a few epochs from scratch, which the short CPU demo needs).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        features: Sequence[int] = (64, 128, 256, 512, 1024),
        dense: int = 512,
        dropout: float = 0.1,
        head_dropout: float = 0.3,
        pooled_size: int | Sequence[int] = 7,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        blocks = []
        chns = in_channels
        for f in features:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(chns, f, kernel_size=3, padding=1, bias=not batch_norm),
                    nn.BatchNorm2d(f) if batch_norm else nn.Identity(),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                    nn.Dropout(dropout),
                )
            )
            chns = f
        self.features = nn.Sequential(*blocks)
        pooled = (pooled_size, pooled_size) if isinstance(pooled_size, int) else tuple(pooled_size)
        self.pool = nn.AdaptiveAvgPool2d(pooled)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(chns * pooled[0] * pooled[1], dense),
            nn.ReLU(inplace=True),
            nn.Dropout(head_dropout),
            nn.Linear(dense, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Keras' glorot_uniform, as in the seed
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split a model's parameters so that weight decay (an L2 penalty) applies to weights only.

    Convolution and dense weights (parameters with two or more dimensions) get ``weight_decay``;
    biases and normalisation parameters get none. For Adam, ``weight_decay=2 * l2`` reproduces a
    Keras ``kernel_regularizer=l2(l2)`` penalty, whose gradient is ``2 * l2 * w``.

    Args:
        model: the network.
        weight_decay: decay for the weights.

    Returns:
        two parameter groups for a ``torch.optim`` optimiser.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
