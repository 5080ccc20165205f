"""medbundle.explain.measures.randomisation: cascading model-parameter randomisation."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers.explain import class_blob_explainer
from torch import nn

from medbundle.explain.measures import cascading_randomisation


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3),
    )


def input_gradient_factory(model: nn.Module):
    """Plain input-gradient saliency ``|d logit_c / d x|`` (max over channels), scaled to [0, 1] per image."""

    def explain(x: torch.Tensor, class_idx) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        logits = model(x)
        idx = torch.as_tensor(class_idx).reshape(-1, 1)
        (grad,) = torch.autograd.grad(logits.gather(1, idx).sum(), x)
        g = grad.abs().amax(1, keepdim=True)
        return g / g.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]

    return explain


def test_cascading_randomisation():
    model = tiny_cnn().eval()
    before = copy.deepcopy(model.state_dict())
    images = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    rng_state = torch.get_rng_state()
    out = cascading_randomisation(input_gradient_factory, model, images, seed=0)
    assert out["layers"] == ["10", "6", "3", "1", "0"]  # output backwards
    assert len(out["spearman"]) == len(out["ssim"]) == len(out["pearson"]) == 5
    assert len(out["per_image"]) == 20
    assert out["spearman"][-1] < out["spearman"][0] - 0.2
    assert out["spearman"][-1] < 0.5
    assert out["pair_baseline"]["n_pairs"] == 6
    # the original model is untouched, and so is the global RNG state
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.training for m in model.modules())
    assert torch.equal(rng_state, torch.get_rng_state())
    json.dumps(out)
    # deterministic, and a model-blind explainer keeps similarity 1 at every step
    again = cascading_randomisation(input_gradient_factory, model, images, seed=0)
    assert again["spearman"] == out["spearman"]
    blind = cascading_randomisation(lambda m: class_blob_explainer(), model, images, layers=["10", "6"])
    assert blind["layers"] == ["10", "6"] and blind["spearman"] == [1.0, 1.0]
    with pytest.raises(ValueError):
        cascading_randomisation(input_gradient_factory, model, images, layers=["nope"])
