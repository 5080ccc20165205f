"""medbundle.explain.base (and registry): what every method guarantees -- exactness, per-sample independence,
model hygiene, normalisation, target layers."""

from __future__ import annotations

import pytest
import torch
from helpers.explain import CLASSES, _inputs, tiny_ctnet
from monai.networks.nets import DenseNet121, EfficientNetBN, resnet50
from torch import nn

from medbundle.explain import (
    METHODS,
    GradCAM,
    GradCAMpp,
    IntegratedGradients,
    OcclusionSensitivity,
    find_target_layer,
    get_explainer,
    normalize_maps,
)
from medbundle.networks import CTNet


def test_exact_on_a_linear_model():
    """IG of a linear model is (x - x') * w; occlusion of a model that reads one square points inside it."""
    w = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 2, bias=False))
    model[1].weight.data = w.flatten(1)
    x, base = _inputs(2, 16), 0.5
    attr = IntegratedGradients(model, steps=4, baseline=base).attribute(x, [0, 1])
    torch.testing.assert_close(attr, (x - base) * w, rtol=1e-5, atol=1e-6)
    model[1].weight.data.zero_()
    model[1].weight.data[1].view(16, 16)[10:14, 2:6] = 1.0  # class 1 = bright square at rows 10-13, cols 2-5
    x = torch.zeros(1, 1, 16, 16)
    x[..., 10:14, 2:6] = 0.2  # logit 3.2: the softmax is not saturated
    maps = OcclusionSensitivity(model, mask_size=4, stride=2, baseline=0.0, smooth=False)(x, 1)
    assert maps.max() == 1 and maps[0, 0, 10:14, 2:6].min() > 0.5 and maps[0, 0, :8].max() == 0
    r, c = divmod(OcclusionSensitivity(model, baseline=0.0)(x, 1).flatten().argmax().item(), 16)
    assert 10 <= r < 14 and 2 <= c < 6


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batch_independence(method):
    """Each sample's map equals the map of that image explained alone, with mixed target classes."""
    model, x = tiny_ctnet(), _inputs(4, 32)
    kwargs = {"occlusion": {"mask_size": 8, "stride": 4}, "integrated_gradients": {"steps": 8}}.get(method, {})
    explainer = get_explainer(method, model, **kwargs)
    assert len(set(CLASSES)) > 1  # the explicit targets mix classes (the predictions on these inputs are all 1)
    for target in (CLASSES, None):
        batch = explainer.explain(x, target)
        expected = CLASSES if target is not None else model(x).argmax(1).tolist()
        assert batch.class_idx.tolist() == expected, f"explained classes {batch.class_idx.tolist()} != {expected}"
        alone = torch.cat([explainer(x[i : i + 1], batch.class_idx[i].item()) for i in range(len(x))])
        torch.testing.assert_close(batch.maps, alone, rtol=0, atol=1e-5)
        assert batch.maps.shape == (4, 1, 32, 32) and batch.maps.dtype == torch.float32


def _state(model: nn.Module) -> list:
    """Everything an explainer must leave as found: hooks, inplace flags, modes, requires_grad and grads."""
    hook_dicts = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                  "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
    state = []
    for name, m in model.named_modules():
        hooks = {d: dict(getattr(m, d, {})) for d in hook_dicts}
        state.append((name, m.training, getattr(m, "inplace", None), getattr(m, "_is_full_backward_hook", None), hooks))
    for name, p in model.named_parameters():
        state.append((name, p.requires_grad, None if p.grad is None else (id(p.grad), p.grad.clone())))
    return state


def _same_state(a: list, b: list) -> bool:
    def eq(u, v):
        if isinstance(u, torch.Tensor):
            return torch.equal(u, v)
        if isinstance(u, (tuple, list)):
            return len(u) == len(v) and all(eq(i, j) for i, j in zip(u, v))
        return u == v

    return eq(a, b)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_model_left_as_found(method):
    model = tiny_ctnet(batch_norm=False)  # ReLU(inplace=True) right after every conv
    model.train()
    model.features[1].eval()  # mixed modes must be restored module by module
    model.features[0][0].weight.requires_grad_(False)
    model.classifier[1].weight.grad = torch.ones_like(model.classifier[1].weight)  # an existing grad stays as it is
    user_hook = model.features[4][0].register_forward_hook(lambda *a: None)
    before = _state(model)
    kwargs = {"occlusion": {"mask_size": 8, "stride": 8}, "integrated_gradients": {"steps": 4}}.get(method, {})
    explainer = get_explainer(method, model, **kwargs)
    x = _inputs(3, 32)
    maps = explainer(x, [0, 1, 2])
    assert _same_state(before, _state(model))
    assert torch.isfinite(maps).all() and not x.requires_grad and x.grad is None
    for bad, match in ((3, "0..2"), (-1, "0..2"), ([0, 1], "one index per sample"), ([[0, 1, 2]], "one index"),
                       (1.0, "integers"), (torch.tensor([0.0, 1.0, 2.0]), "integers")):
        with pytest.raises(ValueError, match=match):
            explainer(x, bad)
        assert _same_state(before, _state(model))
    with pytest.raises(RuntimeError):  # the model itself fails (wrong channel count)
        explainer(torch.zeros(1, 2, 32, 32))
    assert _same_state(before, _state(model))
    user_hook.remove()


def test_normalisation():
    maps = torch.stack([torch.zeros(1, 8, 8), torch.full((1, 8, 8), 5.0), torch.randn(1, 8, 8) * 1e-3 - 2,
                        torch.full((1, 8, 8), 7.0) + torch.finfo(torch.float32).eps * torch.randn(1, 8, 8)])
    out = normalize_maps(maps)
    assert torch.isfinite(out).all()
    assert (out[0] == 0).all() and (out[1] == 0).all() and (out[3] == 0).all()
    assert out[2].max() == 1 and out[2].min() == 0 and out[2].flatten().argmax() == maps[2].flatten().argmax()
    model, x = tiny_ctnet(), _inputs(2, 32)
    nn.init.zeros_(model.features[4][0].weight)  # the target layer outputs zeros: an all-zero CAM
    for explainer in (GradCAM(model), GradCAMpp(model), OcclusionSensitivity(model, mask_size=8)):
        out = explainer(x)
        assert torch.isfinite(out).all() and (out == 0).all()


@pytest.fixture(scope="module")
def big_nets() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "ctnet": CTNet(features=(32, 64, 128, 256, 512), pooled_size=1, batch_norm=True),
        "densenet121": DenseNet121(spatial_dims=2, in_channels=1, out_channels=3),
        "resnet50": resnet50(spatial_dims=2, n_input_channels=1, num_classes=3, conv1_t_stride=2),
        "efficientnet_b0": EfficientNetBN("efficientnet-b0", spatial_dims=2, in_channels=1, num_classes=3,
                                          pretrained=False),
    }


@pytest.mark.parametrize("name", ["ctnet", "densenet121", "resnet50", "efficientnet_b0"])
def test_find_target_layer(big_nets, name):
    model = big_nets[name]
    layer = find_target_layer(model, (1, 1, 64, 64))
    module = model.get_submodule(layer)
    assert isinstance(module, nn.Conv2d)
    shapes = []
    handle = module.register_forward_hook(lambda m, i, o: shapes.append(o.shape))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 1, 64, 64))
    finally:
        handle.remove()
    assert shapes and shapes[-1][2] * shapes[-1][3] > 1
    if name == "ctnet":
        assert layer == "features.4.0"
    maps = GradCAM(model)(torch.rand(2, 1, 64, 64))
    assert maps.shape == (2, 1, 64, 64) and torch.isfinite(maps).all()
