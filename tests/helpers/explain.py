"""Tiny models, inputs and maps shared by the explanation tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
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


def chest_xray_phantom(size: int = 128, seed: int = 0, consolidation: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A frontal chest X-ray drawing: dark air, arms beside a soft-tissue thorax, two dark lungs crossed by bright
    ribs, a bright spine and heart, noise; ``consolidation`` fills the lower two thirds of the image-left lung with a
    bright opacity. Returns ``(image float32 in [0, 1], true lung mask)``; position and size vary with ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy, s = 0.5 + rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), rng.uniform(0.95, 1.05)
    x, y = (xx - cx) / s, (yy - 0.5 - cy) / s + 0.5
    img = np.full((size, size), 0.04)
    img[((x / 0.4) ** 2 + ((y - 0.62) / 0.62) ** 2) < 1] = 0.62  # thorax and abdomen
    for side in (-1, 1):
        img[(np.abs(x - side * 0.45) < 0.04) & (y > 0.15)] = 0.55  # arms, a dark gap from the chest wall
    lungs = np.zeros((size, size), bool)
    for side in (-1, 1):
        lungs |= (((x - side * 0.19) / 0.13) ** 2 + ((y - 0.45) / 0.3) ** 2 < 1) & (y < 0.7)
    img[lungs] = 0.22
    ribs = (np.sin(2 * np.pi * (y + 0.4 * x**2) * 9) > 0.6) & lungs
    img[ribs] += 0.12
    img[np.abs(x) < 0.045] = 0.85  # spine and mediastinum
    heart = (((x - 0.05) / 0.13) ** 2 + ((y - 0.62) / 0.1) ** 2) < 1
    img[heart] = np.maximum(img[heart], 0.7)
    if consolidation:
        img[lungs & (x < 0) & (y > 0.3)] = 0.6
    img = ndimage.gaussian_filter(img, size / 128) + rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1).astype(np.float32), lungs & ~heart
