"""medbundle.data.imbalance: class weights and the balanced sampler."""

from __future__ import annotations

import torch

from medbundle.data import balanced_sampler, class_weights


def test_class_weights_and_balanced_sampler():
    items = [{"label": 0}] * 60 + [{"label": 1}] * 30 + [{"label": 2}] * 10
    w = class_weights(items, 4)
    torch.testing.assert_close(w, torch.tensor([100 / 240, 100 / 120, 100 / 40, 0.0]))
    torch.testing.assert_close(class_weights(items, 4, power=0.5), w.sqrt())
    drawn = torch.tensor([items[i]["label"] for i in balanced_sampler(items, 4, num_samples=6000, seed=1)])
    counts = torch.bincount(drawn, minlength=3).float() / 6000
    assert (counts[:3] - 1 / 3).abs().max() < 0.03
    assert list(balanced_sampler(items, 4, seed=5)) == list(balanced_sampler(items, 4, seed=5))
