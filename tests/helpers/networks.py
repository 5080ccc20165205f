"""Small networks and weights shared by the network, inferer and bundle tests."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import resnet50 as monai_resnet50

from medbundle.networks import CTNet


TINY = (4, 8, 8, 8, 8)


def tiny_net(**kwargs) -> CTNet:
    torch.manual_seed(0)
    return CTNet(features=TINY, dense=16, **kwargs)


def torchvision_style_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under torchvision's ResNet50 key names and shapes (RGB conv1, 1000-class fc).

    torchvision cannot be imported on the CPU machines, so the state dict is made from MONAI's own 3-channel
    ResNet50 with the torchvision stem, whose parameter names are torchvision's (``conv1``, ``bn1``,
    ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), plus a 1000-way ``fc``.
    """
    torch.manual_seed(seed)
    net = monai_resnet50(spatial_dims=2, n_input_channels=3, num_classes=1000, conv1_t_stride=2)
    state = {  # random values of ImageNet-like scale: positive variances, small weights
        k: (0.5 + torch.rand_like(v)) if k.endswith("running_var") else 0.05 * torch.randn_like(v)
        if v.is_floating_point() else v for k, v in net.state_dict().items()
    }
    assert state["fc.weight"].shape == (1000, 2048) and state["conv1.weight"].shape == (64, 3, 7, 7)
    assert "layer4.2.conv3.weight" in state and "layer1.0.downsample.1.running_var" in state
    return state


TORCHVISION_KEYS = Path(__file__).resolve().parents[1] / "networks" / "torchvision_keys"


def torchvision_keys(name: str) -> dict[str, str]:
    """key -> shape (``"64x3x7x7"``, ``"-"`` for a 0-d tensor) of torchvision 0.28.0's ``models.<name>().state_dict()``
    (``densenet121``, ``efficientnet_b0``), as committed in ``tests/networks/torchvision_keys/<name>.txt``: written
    from torchvision itself (it cannot be imported on the CPU machines)."""
    lines = (TORCHVISION_KEYS / f"{name}.txt").read_text().splitlines()
    assert lines[0].startswith("# torchvision 0.28.0:")
    return dict(line.split() for line in lines[1:] if line)


def torchvision_format_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the real torchvision key names and shapes of ``name`` (:func:`torchvision_keys`): RGB
    stem, 1000-class classifier, ImageNet-like scale: positive variances, small weights."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_keys(name).items():
        size = () if shape == "-" else tuple(int(s) for s in shape.split("x"))
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(size, generator=gen) + 0.5
        else:
            state[key] = 0.05 * torch.randn(size, generator=gen)
    return state


def torchvision_format_file(name: str, folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """:func:`torchvision_format_state_dict` and the file it is saved to in ``folder``."""
    state = torchvision_format_state_dict(name)
    path = folder / f"{name}-imagenet.pth"
    torch.save(state, path)
    return state, path
