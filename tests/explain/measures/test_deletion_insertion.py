"""medbundle.explain.measures.deletion_insertion: deletion and insertion curves."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from medbundle.explain.measures import deletion_insertion


class RegionNet(nn.Module):
    """Logit of class 1 = 0.5 * sum of the pixels in rows/cols 0..3; class 0 fixed at 4."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 0.5 * x[..., :4, :4].sum((1, 2, 3))
        return torch.stack([torch.full_like(z, 4.0), z], dim=1)


def test_deletion_insertion():
    images = torch.ones(2, 1, 16, 16)
    region = torch.zeros(16, 16)
    region[:4, :4] = 1.0
    elsewhere = torch.zeros(16, 16)
    elsewhere[8:, 8:] = 1.0
    maps = torch.stack([region, elsewhere])[:, None]
    out = deletion_insertion(RegionNet(), images, maps, class_idx=[1, 1], steps=16, baseline=0.0)
    good, bad = out["per_image"]
    assert len(out["fractions"]) == 17 and len(good["deletion_curve"]) == 17
    p_full = torch.softmax(torch.tensor([4.0, 8.0]), 0)[1].item()
    assert good["deletion_curve"][0] == pytest.approx(p_full) and good["insertion_curve"][-1] == pytest.approx(p_full)
    assert good["deletion_curve"][-1] == pytest.approx(torch.softmax(torch.tensor([4.0, 0.0]), 0)[1].item())
    assert good["deletion_auc"] < bad["deletion_auc"] - 0.3
    assert good["insertion_auc"] > bad["insertion_auc"] + 0.3
    assert out["deletion_auc"] == pytest.approx((good["deletion_auc"] + bad["deletion_auc"]) / 2)
    assert out["baseline"] == 0.0 and out["blur_sigma"] is None
    json.dumps(out)
    # default: blurred baseline, class from the prediction, maps resized to the image
    x = torch.zeros(1, 1, 16, 16)
    x[..., :4, :4] = 2.0
    blur = deletion_insertion(RegionNet(), x, region[None, None, ::2, ::2], steps=8)
    assert blur["baseline"] == "blur" and blur["blur_sigma"] == 1.0 and blur["per_image"][0]["class_idx"] == 1
    assert blur["deletion_auc"] < blur["insertion_auc"]
