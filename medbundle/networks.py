"""Networks of the medbundle project and helpers to build their optimiser parameter groups."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import torch
from monai.networks.nets import ResNet
from monai.networks.nets import resnet50 as monai_resnet50
from torch import nn

__all__ = ["CTNet", "BaselineCNN", "resnet50", "load_torchvision_resnet", "weight_decay_groups", "named_param_groups",
           "matching_prefix"]

logger = logging.getLogger("medbundle.networks")


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


def matching_prefix(name: str, prefixes: Sequence[str]) -> str | None:
    """The first of ``prefixes`` that names the module holding parameter ``name`` (``"fc"`` for ``"fc.1.weight"``).

    A prefix matches the whole name or a leading run of its dotted parts, never part of a part (``"fc"`` does not
    match ``"fc2.weight"``).
    """
    return next((pre for pre in prefixes if name == pre or name.startswith(pre + ".")), None)


def named_param_groups(
    model: nn.Module, groups: Mapping[str, Sequence[str]], rest: str = "backbone", weight_decay: float = 0.0
) -> list[dict]:
    """Parameter groups named by module prefix, for per-group learning rates (see ``medbundle.handlers.PhaseSchedule``).

    Args:
        model: the network.
        groups: group name -> parameter name prefixes (``{"head": ["fc"]}``); the first matching group wins.
        rest: name of the group of all other parameters (left out when empty).
        weight_decay: decay of every group.

    Returns:
        ``[{"name": ..., "params": [...], "weight_decay": ...}, ...]`` in the order of ``groups``, ``rest`` last.

    Raises:
        ValueError: when a prefix matches no parameter (a typo would otherwise leave a group silently empty).
    """
    out = {name: [] for name in [*groups, rest]}
    used = set()
    for pname, p in model.named_parameters():
        for gname, prefixes in groups.items():
            hit = matching_prefix(pname, prefixes)
            if hit is not None:
                out[gname].append(p)
                used.add(hit)
                break
        else:
            out[rest].append(p)
    unused = [pre for prefixes in groups.values() for pre in prefixes if pre not in used]
    if unused:
        names = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise ValueError(f"parameter prefixes {unused} match no parameter of {type(model).__name__} (top-level: {names})")
    return [{"name": n, "params": ps, "weight_decay": weight_decay} for n, ps in out.items() if ps]


class BaselineCNN(nn.Module):
    """The Alzheimer seed's small baseline: conv 32, pool, batch-norm, conv 64, pool, dense 128, ``num_classes`` outputs.

    ``Conv(3x3, 32) -> ReLU -> MaxPool(2) -> BatchNorm -> Conv(3x3, 64) -> ReLU -> MaxPool(2) -> Flatten ->
    Linear(128) -> ReLU -> Dropout -> Linear(num_classes)``. The convolutions are unpadded (Keras ``valid``), as in
    the seed, so the flattened size depends on ``spatial_size``. Its second convolution is ``features.4`` (the
    Grad-CAM layer the bundle names).

    Args:
        in_channels: input channels.
        num_classes: outputs.
        spatial_size: input (height, width), to size the dense layer.
        dense: units of the hidden dense layer.
        dropout: dropout before the output layer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        spatial_size: Sequence[int] = (128, 128),
        dense: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.BatchNorm2d(32),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        h, w = [((int(s) - 2) // 2 - 2) // 2 for s in spatial_size]
        if h < 1 or w < 1:
            raise ValueError(f"spatial_size {tuple(spatial_size)} is too small for BaselineCNN (at least 10 x 10)")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * h * w, dense), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


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
