"""medbundle.explain.integrated_gradients: against captum, completeness."""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as CaptumIG
from helpers.explain import CLASSES, _inputs, tiny_ctnet

from medbundle.explain import IntegratedGradients, normalize_maps


def test_integrated_gradients_matches_captum_and_is_complete():
    model, x = tiny_ctnet(), _inputs(3, 32)
    steps = 16
    ours = IntegratedGradients(model, steps=steps, internal_batch_size=5).attribute(x, CLASSES[:3])
    ref = CaptumIG(model).attribute(x, baselines=0.0, target=CLASSES[:3], n_steps=steps, method="riemann_trapezoid")
    # captum's trapezoid weights are 1/n (halved at the ends): they sum to 1 - 1/n instead of 1
    torch.testing.assert_close(ours, ref * steps / (steps - 1), rtol=1e-4, atol=1e-8)
    maps = IntegratedGradients(model, steps=steps)(x, CLASSES[:3])  # the scale does not matter after normalisation
    torch.testing.assert_close(maps, normalize_maps(ref.clamp(min=0).sum(1, keepdim=True)), rtol=0, atol=1e-5)
    ig = IntegratedGradients(model, steps=128, baseline=0.0)
    attr = ig.attribute(x, CLASSES[:3])
    with torch.no_grad():
        expected = (model(x) - model(torch.zeros_like(x)))[range(3), CLASSES[:3]]
    rel = (attr.sum((1, 2, 3)) - expected).abs() / expected.abs()
    assert (rel < 0.02).all(), (attr.sum((1, 2, 3)), expected)
