"""MONAI's 2D EfficientNet-B0 in torchvision's form (``efficientnet_b0``), and torchvision weights into it
(``load_torchvision_efficientnet``).

MONAI's ``EfficientNetBN`` follows the TensorFlow release: "same" padding computed for a 224 px input (one pixel
right/bottom, none left/top, at stride 2) and batch norm with eps 1e-3. torchvision's ``efficientnet_b0``, whose
weights are the ones a user has as a local file, pads symmetrically (``k // 2``) and keeps eps 1e-5 (momentum 0.1).
:func:`efficientnet_b0` builds MONAI's network with torchvision's padding and batch norm, whether or not weights
are loaded (a checkpoint trained from them must meet the same network at inference), so torchvision's weights give
torchvision's outputs; the padding is then the same at every input size. The graph is otherwise the same: stem,
16 MBConv blocks with squeeze-and-excitation (swish), a 1280-channel head convolution, dropout and the linear head;
stochastic depth rises linearly to ``drop_connect_rate`` over the blocks in both. The key names differ everywhere:
:func:`torchvision_efficientnet_keys` maps them module by module.
"""

from __future__ import annotations

import logging
import os

from monai.networks.nets import EfficientNetBN
from torch import nn

from medbundle.networks.efficientnet_lite import _gradcam_layer
from medbundle.networks.pretrained import load_backbone, read_state_dict
from medbundle.networks.registry import register_network

__all__ = ["efficientnet_b0", "load_torchvision_efficientnet", "torchvision_efficientnet_keys"]

logger = logging.getLogger("medbundle.networks")

_HINT = "Give an EfficientNet-B0 state dict saved from torchvision (efficientnet_b0_*.pth)"
_BLOCK_PARTS = ("_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_se_reduce", "_se_expand", "_project_conv", "_bn2")

register_network(
    EfficientNetBN,
    gradcam_layer=_gradcam_layer,  # the stride-16 stage's last block (_blocks.4), as for EfficientNet-Lite0
    head=("_fc",),
    backbone=("_conv_stem", "_bn0", "_blocks", "_conv_head", "_bn1"),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=32,
    blocks=[("_conv_stem", "_bn0"), *(f"_blocks.{i}" for i in range(7)), ("_conv_head", "_bn1")],
)


def efficientnet_b0(
    in_channels: int = 1,
    num_classes: int = 2,
    dropout: float = 0.2,
    pretrained: str | os.PathLike | None = None,
) -> EfficientNetBN:
    """MONAI's 2D EfficientNet-B0 (4.0 M parameters with a 2-class head), torchvision's padding and batch norm.

    Args:
        in_channels: input channels (1 for X-rays; the RGB stem filters are summed to it).
        num_classes: outputs of the new head.
        dropout: dropout before the head (0.2 in the release).
        pretrained: path of a torchvision EfficientNet-B0 state dict (``efficientnet_b0_*.pth``), loaded by
            :func:`load_torchvision_efficientnet`, or None (or a command-line ``"null"``/``"none"``/``""``) to
            start from scratch. Nothing is ever downloaded.
    """
    model = EfficientNetBN("efficientnet-b0", pretrained=False, progress=False, spatial_dims=2,
                           in_channels=in_channels, num_classes=num_classes,
                           norm=("batch", {"eps": 1e-5, "momentum": 0.1}))
    for module in list(model.modules()):  # TensorFlow's "same" padding -> torchvision's symmetric k // 2
        for name, conv in list(module.named_children()):
            if isinstance(conv, nn.Conv2d) and hasattr(module, f"{name}_padding"):
                setattr(module, f"{name}_padding", nn.Identity())
                conv.padding = tuple((k - 1) // 2 * d for k, d in zip(conv.kernel_size, conv.dilation))
    model._dropout = nn.Dropout(dropout)
    model._fc.reset_parameters()  # PyTorch's Linear initialisation, not MONAI's +-1/sqrt(num_classes) (see efficientnet_lite)
    if pretrained and str(pretrained).strip().lower() not in ("none", "null", "false"):
        load_torchvision_efficientnet(model, pretrained)
    else:
        logger.info("EfficientNet-B0: no pretrained weights given (pretrained=%s): random initial weights (a trained model, if any, is loaded next)", pretrained)
    return model


def torchvision_efficientnet_keys(model: EfficientNetBN) -> dict[str, str]:
    """torchvision module prefix -> MONAI module prefix, for every module of ``model`` that holds weights.

    torchvision: ``features.0`` the stem (``.0`` conv, ``.1`` norm), ``features.<stage + 1>.<i>.block.<j>`` the
    MBConv parts in order (expand, when the stage expands; depthwise; squeeze-excitation ``fc1``/``fc2``;
    project), ``features.8`` the head convolution, ``classifier.1`` the linear head. MONAI:
    ``_blocks.<stage>.<global block index>._expand_conv`` etc.
    """
    names = {"features.0.0": "_conv_stem", "features.0.1": "_bn0", "features.8.0": "_conv_head",
             "features.8.1": "_bn1", "classifier.1": "_fc"}
    for s, stage in enumerate(model._blocks):
        for i, (g, block) in enumerate(stage.named_children()):
            j = 0  # torchvision's index of the part in ``block``: a conv/norm pair, or the SE module's fc1/fc2
            for part in (p for p in _BLOCK_PARTS if isinstance(getattr(block, p, None), (nn.Conv2d, nn.BatchNorm2d))):
                leaf = {"_se_reduce": "fc1", "_se_expand": "fc2"}.get(part, "1" if "_bn" in part else "0")
                names[f"features.{s + 1}.{i}.block.{j}.{leaf}"] = f"_blocks.{s}.{g}.{part}"
                j += leaf in ("1", "fc2")
    return names


def load_torchvision_efficientnet(model: EfficientNetBN, path: str | os.PathLike) -> EfficientNetBN:
    """Load a torchvision-format EfficientNet-B0 state dict (``features.0.0.weight``, ..., ``classifier.1.*``) into
    a MONAI ``EfficientNetBN`` (best one from :func:`efficientnet_b0`, which has torchvision's padding and eps).

    Keys are renamed by :func:`torchvision_efficientnet_keys` (keys already in MONAI's names are taken as they
    are); the stem is adapted to the model's input channels (summed over RGB for one channel); the classifier
    is never loaded; every other weight must be present with its shape.

    Args:
        model: the network, filled in place.
        path: the state dict file (a plain state dict, or a checkpoint with ``state_dict`` or ``model``).

    Returns:
        ``model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a state dict, or keys missing, unexpected or of the wrong shape (one line, the first ones).
    """
    names = torchvision_efficientnet_keys(model)
    state = {}
    for key, value in read_state_dict(path, _HINT).items():
        prefix, _, leaf = key.rpartition(".")
        state[f"{names[prefix]}.{leaf}" if prefix in names else key] = value
    load_backbone(model, state, path, is_head=lambda k: k.startswith(("_fc.", "classifier.")),
                  stem="_conv_stem.weight", what="a torchvision EfficientNet-B0", hint=_HINT)
    logger.info("EfficientNet-B0: loaded pretrained weights from %s (stem adapted to %d channel(s), new head)", path,
                model._conv_stem.in_channels)
    return model
