"""MONAI's 2D ResNet50, torchvision stem (``resnet50``), and torchvision weights into it (``load_torchvision_resnet``).

MONAI's ``ResNet`` class is registered here (Grad-CAM layer ``layer4``, head ``fc``), so the registry knows the
networks :func:`resnet50` returns.
"""

from __future__ import annotations

import logging
import os

from monai.networks.nets import ResNet
from monai.networks.nets import resnet50 as monai_resnet50
from torch import nn

from medbundle.networks.pretrained import load_backbone, read_state_dict
from medbundle.networks.registry import register_network

__all__ = ["resnet50", "load_torchvision_resnet"]

logger = logging.getLogger("medbundle.networks")

register_network(
    ResNet,
    gradcam_layer="layer4",
    head=("fc",),
    backbone=("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=32,
    blocks=[("conv1", "bn1"), "layer1", "layer2", "layer3", "layer4"],
)


def resnet50(
    in_channels: int = 1,
    num_classes: int = 4,
    dropout: float = 0.5,
    pretrained: str | os.PathLike | None = None,
    conv1_t_stride: int = 2,
) -> ResNet:
    """MONAI's 2D ResNet50 with the torchvision stem (7x7 stride-2 conv) and a new head; optionally pretrained.

    ``monai.networks.nets.resnet50`` defaults to a stride-1 first convolution, 4x the compute of torchvision's
    ResNet50 and not the stem its ImageNet weights were trained with, so ``conv1_t_stride=2``. The head ``fc`` is
    ``Dropout(dropout) -> Linear(2048, num_classes)`` after MONAI's global average pooling (the seed's GAP,
    dropout 0.5, dense 4). ``pretrained`` is a local torchvision-format state dict, loaded by
    :func:`load_torchvision_resnet`; nothing is ever downloaded.

    Args:
        in_channels: input channels (1 for MRI; RGB ``conv1`` weights are summed to it).
        num_classes: outputs.
        dropout: dropout before the output layer.
        pretrained: path of a torchvision ResNet50 state dict (``resnet50-*.pth``), or None to start from scratch.
        conv1_t_stride: stride of the first convolution.
    """
    model = monai_resnet50(spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes,
                           conv1_t_stride=conv1_t_stride)
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    if pretrained:
        load_torchvision_resnet(model, pretrained)
    else:
        logger.info("ResNet50: no pretrained weights given (pretrained=None): random initial weights (a trained model, if any, is loaded next)")
    return model


def load_torchvision_resnet(model: ResNet, path: str | os.PathLike) -> ResNet:
    """Load a torchvision-format ResNet state dict (``conv1.weight``, ``layer1.0...``, ``fc.weight``) into a MONAI ResNet.

    The key names of the two implementations are the same for the stem and the residual layers. ``conv1``
    weights with a different number of input channels are adapted: summed over the RGB channels for a
    one-channel model (the response to a grey image is then the response to that grey image in RGB), or
    repeated and rescaled otherwise. The classifier (``fc.*``) is never loaded: the head is new. Every other
    weight must be present with the right shape.

    Args:
        model: a MONAI ``ResNet`` (for example from :func:`resnet50`).
        path: the state dict file (a plain state dict, or a checkpoint with ``state_dict`` or ``model``).

    Returns:
        ``model``, loaded in place.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: keys missing, unexpected or of the wrong shape (the message lists the first ones).
    """
    hint = "Give a ResNet50 state dict saved from torchvision"
    state = read_state_dict(path, hint)
    load_backbone(model, state, path, is_head=lambda k: k.startswith("fc."), stem="conv1.weight",
                  what="a torchvision ResNet", hint=hint)
    logger.info("ResNet: loaded pretrained weights from %s (conv1 adapted to %d channel(s), new head)", path,
                model.conv1.weight.shape[1])
    return model
