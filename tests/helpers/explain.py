"""Tiny models, inputs and maps shared by the explanation tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medbundle.networks import CTNet


CLASSES = [0, 2, 1, 1]


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics, so that train-mode use would change the outputs."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return model


def tiny_ctnet(batch_norm: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _randomise_norms(CTNet(features=(4, 8, 8, 16, 16), dense=16, pooled_size=1, batch_norm=batch_norm)).eval()


def _inputs(n: int = 4, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def blob(h: int, w: int, r: float, c: float, sigma: float = 2.0) -> np.ndarray:
    rr, cc = np.mgrid[:h, :w]
    return np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * sigma**2))


def class_blob_explainer(calls: list | None = None):
    """A map that depends on the target class only (so it ignores any noise): a blob in that quadrant."""

    def explain(x: torch.Tensor, class_idx) -> torch.Tensor:
        if calls is not None:
            calls.append(len(x))
        h, w = x.shape[-2:]
        centres = [(h / 4, w / 4), (h / 4, 3 * w / 4), (3 * h / 4, w / 4), (3 * h / 4, 3 * w / 4)]
        maps = [blob(h, w, *centres[int(c) % 4], sigma=2.0) for c in torch.as_tensor(class_idx).reshape(-1)]
        return torch.as_tensor(np.stack(maps), dtype=torch.float32)[:, None]

    return explain
