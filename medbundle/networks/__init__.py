"""Networks of the medbundle project, their registry and helpers to build their optimiser parameter groups.

- :mod:`~medbundle.networks.block_cnn`: ``FiveBlockCNN`` (alias ``CTNet``), the 5-block CNN of both bundles.
- :mod:`~medbundle.networks.baseline_cnn`: ``BaselineCNN``, the Alzheimer seed's small baseline.
- :mod:`~medbundle.networks.resnet`: ``resnet50`` (MONAI's, torchvision stem) and ``load_torchvision_resnet``.
- :mod:`~medbundle.networks.param_groups`: ``weight_decay_groups``, ``matching_prefix``, ``named_param_groups``.
- :mod:`~medbundle.networks.registry`: ``register_network`` and what each network declares (``NetworkSpec``):
  its Grad-CAM layer (``gradcam_layer``), head prefixes (``head_prefixes``), expected input.
"""

from __future__ import annotations

from medbundle.networks.registry import NetworkSpec, gradcam_layer, head_prefixes, network_spec, register_network
from medbundle.networks.param_groups import matching_prefix, named_param_groups, weight_decay_groups
from medbundle.networks.block_cnn import CTNet, FiveBlockCNN
from medbundle.networks.baseline_cnn import BaselineCNN
from medbundle.networks.resnet import load_torchvision_resnet, resnet50

__all__ = [
    "CTNet",
    "FiveBlockCNN",
    "BaselineCNN",
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
]
