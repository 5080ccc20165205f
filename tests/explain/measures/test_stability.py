"""medbundle.explain.measures.stability (and the correlation of constant maps shared with randomisation)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.explain import class_blob_explainer
from torch import nn

from medbundle.explain.measures import cascading_randomisation, stability, summarise


class QuadrantNet(nn.Module):
    """Class = the brightest quadrant (4 classes): robust to small noise."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        q = [x[..., :h, :w], x[..., :h, w:], x[..., h:, :w], x[..., h:, w:]]
        return self.scale * torch.stack([t.mean((1, 2, 3)) for t in q], dim=1)


class ThresholdNet(nn.Module):
    """Class 1 iff the image mean exceeds 0.5: tiny noise flips images whose mean sits at the threshold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 1e4 * (x.mean((1, 2, 3)) - 0.5)
        return torch.stack([-z, z], dim=1)


def quadrant_images(size: int = 16) -> torch.Tensor:
    x = torch.full((4, 1, size, size), 0.2)
    h = size // 2
    for i, (r, c) in enumerate([(0, 0), (0, h), (h, 0), (h, h)]):
        x[i, :, r : r + h, c : c + h] = 0.8
    return x


def test_stability_of_a_noise_blind_explainer():
    model = QuadrantNet().train()
    out = stability(class_blob_explainer(), model, quadrant_images(), noise_levels=(0.01, 0.1), n_copies=3)
    assert model.training  # flag restored
    assert out["ssim_data_range"] == 1.0 and out["ssim_win_size"] == 7 and out["noise_levels"] == [0.01, 0.1]
    assert len(out["levels"]) == 2 and len(out["per_image"]) == 8
    for lev in out["levels"]:
        assert lev["n_kept"] == 12 and lev["n_skipped"] == 0
        for k in ("ssim", "pearson", "spearman"):
            assert lev[k] == pytest.approx(1.0, abs=1e-5)
    base = out["pair_baseline"]
    assert base["n_pairs"] == 6
    for k in ("ssim", "pearson", "spearman"):
        assert base[k] < 0.5, k
    json.dumps(out)
    assert summarise(out["per_image"])["ssim"]["n"] == 8


def test_stability_skips_flipped_copies():
    x = torch.full((3, 1, 16, 16), 0.2)
    x[0] += 0.3 + 1e-5  # at the threshold: noise flips about half of its copies
    x[1] += 0.6  # far above
    calls: list[int] = []
    out = stability(class_blob_explainer(calls), ThresholdNet(), x, noise_levels=(0.05,), n_copies=8, seed=1)
    lev, per = out["levels"][0], out["per_image"]
    assert lev["n_kept"] + lev["n_skipped"] == 24 and lev["n_skipped"] > 0
    assert per[0]["n_skipped"] == lev["n_skipped"] and per[1]["n_skipped"] == per[2]["n_skipped"] == 0
    assert sum(calls) == 3 + lev["n_kept"]  # clean images + kept copies only
    assert lev["pearson"] == pytest.approx(1.0)


def test_constant_maps_correlate_zero_not_nan():
    """A map turned blank counts as dissimilar (0), two blank maps as identical (1): curves never turn NaN."""
    model = QuadrantNet()
    x = quadrant_images()
    blank = stability(lambda im, c: torch.zeros(len(im), 1, 16, 16), model, x, noise_levels=(0.01,), n_copies=1)
    assert blank["levels"][0]["pearson"] == 1.0 and blank["pair_baseline"]["spearman"] == 1.0
    calls = iter(range(100))

    def factory(m: nn.Module):
        first = next(calls) == 0  # the original maps are structured, every randomised step blank
        return class_blob_explainer() if first else (lambda im, c: torch.zeros(len(im), 1, 16, 16))

    out = cascading_randomisation(factory, model, x, layers=[""])
    assert out["layers"] == [""] and out["pearson"] == [0.0] and out["spearman"] == [0.0]
