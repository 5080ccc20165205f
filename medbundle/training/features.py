"""Feature extraction on cached features: the frozen backbone runs once over the data, the head trains on what it
computed (seconds per epoch instead of minutes).

:func:`cached_features` runs the network once per image (eval mode, no augmentation) and keeps the input of its
head; :class:`FeatureHead` is the network's own head module, trained on those features, so the trained head is
already inside the full network that the checkpoints save and every later step (evaluate, inference, explain) loads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import DataLoader, Dataset
from torch import nn

from medbundle.networks import head_prefixes

__all__ = ["FeatureHead", "cached_features"]

logger = logging.getLogger("medbundle.training")


def _head_module(network: nn.Module) -> nn.Module:
    prefixes = head_prefixes(network)
    if len(prefixes) != 1:
        raise ValueError(f"{type(network).__name__}: feature extraction needs a head that is one module, not "
                         f"{prefixes}. Use --transfer last_blocks instead.")
    return network.get_submodule(prefixes[0])


class FeatureHead(nn.Module):
    """The head of ``network`` (the module its head prefix names, parameters shared), on feature vectors.

    Args:
        network: a registered network.
        dropout: dropout on the features before the head (the network's own dropout before its head module is
            not part of the head module for every network: EfficientNet's is not, ResNet50's is).
    """

    def __init__(self, network: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(float(dropout))
        self.head = _head_module(network)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))


@torch.no_grad()
def cached_features(
    network: nn.Module,
    data: Sequence[dict],
    transform: Callable,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    inferer: Callable | None = None,
    progress: bool = False,
) -> Dataset:
    """A dataset of ``{"image": features, "label": label}`` for ``data``: the input of the network's head for each
    preprocessed image, computed once with the network in eval mode.

    Args:
        network: the (pretrained, frozen) network.
        data: datalist items.
        transform: the deterministic preprocessing (the validation pipeline: no augmentation).
        batch_size: images per forward pass.
        device: where the network runs.
        inferer: ``inferer(inputs, network)``, e.g. the bundle's ``AutocastInferer``; None: ``network(inputs)``.
        progress: show a progress bar.
    """
    head = _head_module(network)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach().float().cpu()))
    loader = DataLoader(Dataset(list(data), transform), batch_size=batch_size, shuffle=False, num_workers=0)
    labels: list[Any] = []
    was_training = network.training
    network.eval()
    try:
        batches = loader
        if progress:
            from tqdm import tqdm

            batches = tqdm(loader, desc="features", leave=False)
        for batch in batches:
            images = batch["image"].to(device)
            (inferer(images, network) if inferer is not None else network(images))
            labels.extend(batch["label"].cpu())
    finally:
        hook.remove()
        network.train(was_training)
    features = torch.cat(captured) if captured else torch.zeros(0)
    logger.info("feature extraction: %d images -> %s features cached", len(labels), tuple(features.shape[1:]))
    return Dataset([{"image": f, "label": y} for f, y in zip(features, labels)])
