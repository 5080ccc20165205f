"""The 5-block CNN (``FiveBlockCNN``, formerly ``CTNet``): the ct_infection seed's classifier, used by both bundles."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medbundle.networks.registry import register_network
from medbundle.options import as_bool

__all__ = ["FiveBlockCNN", "CTNet"]

GRADCAM_MIN_SIZE = 16  # the Grad-CAM map should keep at least this many positions a side


def _gradcam_layer(model: nn.Module | type, spatial_size: tuple[int, int]) -> str:
    """The ReLU (``features.<k>.2``) of the deepest block whose output is still at least 16 x 16 at ``spatial_size``.

    Block ``k`` sees the input halved ``k`` times (each block ends with a 2x max-pool after its ReLU), so its ReLU
    map is ``floor(size / 2**k)`` a side: ``features.2.2`` (16x16) at 64 px, ``features.3.2`` (16x16) at 128 px and
    ``features.3.2`` (28x28; the next, ``features.4.2``, would be 14x14) at 224 px. Below 32 px the first block's.
    The automatic choice of the explainers (the last convolution with spatial extent, ``features.4.0``) is only
    4x4 at 64 px, too coarse for the demo's lesions.
    """
    n_blocks = len(model.features) if isinstance(model, nn.Module) else 5
    side = min(spatial_size)
    k = 0
    while k + 1 < n_blocks and side // 2 ** (k + 1) >= GRADCAM_MIN_SIZE:
        k += 1
    return f"features.{k}.2"


@register_network(
    gradcam_layer=_gradcam_layer,
    head=("classifier",),
    backbone=("features",),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=32,
)
class FiveBlockCNN(nn.Module):
    """The brain-CT infection classifier of the ct_infection seed, for any input size (also exported as ``CTNet``).

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
        batch_norm = as_bool(batch_norm, "FiveBlockCNN's batch_norm (bundle key network_def#batch_norm)")
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


CTNet = FiveBlockCNN
"""The former name of :class:`FiveBlockCNN`, which the bundle configs use (``medbundle.networks.CTNet``)."""
