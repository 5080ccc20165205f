"""MONAI's 2D ResNet50, torchvision stem (``resnet50``), and torchvision weights into it (``load_torchvision_resnet``).

MONAI's ``ResNet`` class is registered here (Grad-CAM layer ``layer4``, head ``fc``), so the registry knows the
networks :func:`resnet50` returns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
from monai.networks.nets import ResNet
from monai.networks.nets import resnet50 as monai_resnet50
from torch import nn

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
        logger.info("ResNet50: no pretrained weights given (pretrained=None): training from scratch")
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
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no pretrained weights there. Give the path of a local torchvision ResNet state dict "
            "(--pretrained), or null to train from scratch; medbundle never downloads weights."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = model.state_dict()
    if "conv1.weight" in state:
        w, want = state["conv1.weight"], own["conv1.weight"].shape[1]
        if w.ndim == 4 and w.shape[1] != want:
            state["conv1.weight"] = w.sum(1, keepdim=True) if want == 1 else w.mean(1, keepdim=True).repeat(1, want, 1, 1)
    wanted = {k for k in own if not k.startswith("fc.")}
    missing, unexpected = sorted(wanted - state.keys()), sorted(state.keys() - wanted)
    wrong = sorted(k for k in wanted & state.keys() if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: not a torchvision state dict of this ResNet (missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wrong[:3]]}; "
            f"{len(missing)}/{len(unexpected)}/{len(wrong)} in all). Give a ResNet50 state dict saved from torchvision."
        )
    model.load_state_dict(state, strict=False)
    logger.info("ResNet: loaded pretrained weights from %s (conv1 adapted to %d channel(s), new head)", path,
                own["conv1.weight"].shape[1])
    return model
