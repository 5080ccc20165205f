"""MONAI's 2D DenseNet121 with a dropout head (``densenet121``), and torchvision weights into it
(``load_torchvision_densenet``).

MONAI's ``DenseNet`` class is registered here, so the registry knows the networks :func:`densenet121` returns. The
two implementations build the same graph (BN eps 1e-5, the same stem, dense layers and transitions); their key
names differ only inside the dense layers: torchvision's ``features.denseblock1.denselayer1.norm1.weight`` is
MONAI's ``features.denseblock1.denselayer1.layers.norm1.weight`` (and the files torchvision published in 2017 say
``...denselayer1.norm.1.weight``: MONAI's own ``_load_state_dict`` and torchvision's rename them with the same
pattern as :data:`DENSE_LAYER_KEY`). The head (torchvision ``classifier``, MONAI ``class_layers.out``) is new.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict

from monai.networks.nets import DenseNet, DenseNet121
from torch import nn

from medbundle.networks.pretrained import load_backbone, read_state_dict
from medbundle.networks.registry import register_network

__all__ = ["densenet121", "load_torchvision_densenet", "DENSE_LAYER_KEY"]

logger = logging.getLogger("medbundle.networks")

# a dense layer's parameter in torchvision's names (norm1), its 2017 files' (norm.1) or MONAI's (layers.norm1)
DENSE_LAYER_KEY = re.compile(
    r"^(.*denselayer\d+)\.(?:layers\.)?(norm|relu|conv)\.?([12])\."
    r"(weight|bias|running_mean|running_var|num_batches_tracked)$"
)
_HINT = "Give a DenseNet121 state dict saved from torchvision (densenet121-*.pth)"


def _gradcam_layer(model: nn.Module | type, spatial_size: tuple[int, int]) -> str:
    """The stride-16 dense block (``features.denseblock3``, 14x14 at 224 px) while it keeps at least 7 positions a
    side, else the stride-8 one (``features.denseblock2``); the last block (stride 32, 7x7 at 224 px) is too coarse
    to tell a lobe from its neighbour (the choice of :class:`medbundle.networks.EfficientNetLite0`)."""
    return "features.denseblock3" if min(spatial_size) // 16 >= 7 else "features.denseblock2"


register_network(
    DenseNet,
    gradcam_layer=_gradcam_layer,
    head=("class_layers",),
    backbone=("features",),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=32,
    blocks=[("features.conv0", "features.norm0"), ("features.denseblock1", "features.transition1"),
            ("features.denseblock2", "features.transition2"), ("features.denseblock3", "features.transition3"),
            ("features.denseblock4", "features.norm5")],
)


def densenet121(
    in_channels: int = 1,
    num_classes: int = 2,
    dropout: float = 0.5,
    pretrained: str | os.PathLike | None = None,
) -> DenseNet121:
    """MONAI's 2D DenseNet121 (7.0 M parameters) with ``Dropout(dropout)`` before its new output layer.

    The head ``class_layers`` is ReLU, global average pooling, flatten, ``Dropout(dropout)`` and
    ``out = Linear(1024, num_classes)``. ``pretrained`` is a local torchvision-format state dict, loaded by
    :func:`load_torchvision_densenet`; nothing is ever downloaded.

    Args:
        in_channels: input channels (1 for X-rays; the RGB stem filters are summed to it).
        num_classes: outputs.
        dropout: dropout before the output layer.
        pretrained: path of a torchvision DenseNet121 state dict (``densenet121-*.pth``), or None (or a
            command-line ``"null"``/``"none"``/``""``) to start from scratch.
    """
    model = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, pretrained=False)
    layers = OrderedDict(model.class_layers.named_children())
    out = layers.pop("out")
    model.class_layers = nn.Sequential(OrderedDict([*layers.items(), ("dropout", nn.Dropout(dropout)), ("out", out)]))
    if pretrained and str(pretrained).strip().lower() not in ("none", "null", "false"):
        load_torchvision_densenet(model, pretrained)
    else:
        logger.info("DenseNet121: no pretrained weights given (pretrained=%s): random initial weights (a trained model, if any, is loaded next)", pretrained)
    return model


def load_torchvision_densenet(model: DenseNet, path: str | os.PathLike) -> DenseNet:
    """Load a torchvision-format DenseNet state dict (``features.denseblock1.denselayer1.norm1.weight``, ...,
    ``classifier.weight``) into a MONAI ``DenseNet`` of the same depth.

    Dense-layer keys are renamed by :data:`DENSE_LAYER_KEY`; the stem ``features.conv0`` is adapted to the
    model's input channels (summed over RGB for one channel); the classifier is never loaded; every other weight
    must be present with its shape (``num_batches_tracked`` may be absent, as in torchvision's published file).

    Args:
        model: a MONAI ``DenseNet`` (for example from :func:`densenet121`).
        path: the state dict file (a plain state dict, or a checkpoint with ``state_dict`` or ``model``).

    Returns:
        ``model``, loaded in place.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a state dict, or keys missing, unexpected or of the wrong shape (one line, the first ones).
    """
    state = {}
    for key, value in read_state_dict(path, _HINT).items():
        match = DENSE_LAYER_KEY.match(key)
        state[f"{match[1]}.layers.{match[2]}{match[3]}.{match[4]}" if match else key] = value
    load_backbone(model, state, path, is_head=lambda k: k.startswith(("classifier.", "class_layers.")),
                  stem="features.conv0.weight", what="a torchvision DenseNet121", hint=_HINT)
    logger.info("DenseNet: loaded pretrained weights from %s (conv0 adapted to %d channel(s), new head)", path,
                model.features.conv0.in_channels)
    return model
