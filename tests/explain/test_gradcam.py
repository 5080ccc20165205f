"""medbundle.explain.gradcam: Grad-CAM and Grad-CAM++ against captum and a direct reference, MONAI's defects,
localisation.

Reference implementations: captum's ``LayerGradCam``, a direct Grad-CAM++ written out below. The MONAI defects fixed
by the module are demonstrated on the same inputs, so that the independence test (tests/explain/test_explain_base.py)
is known to be able to fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from helpers.explain import CLASSES, _inputs, _randomise_norms, tiny_ctnet
from monai import visualize as mv
from monai.networks.nets import DenseNet, ResNet
from scipy import ndimage
from torch import nn

from medbundle.explain import Explanation, GradCAM, GradCAMpp, find_target_layer, get_explainer, normalize_maps


def small_densenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = DenseNet(2, 1, 3, init_features=8, growth_rate=4, block_config=(2, 2), bn_size=2)
    return _randomise_norms(net).eval()


def small_resnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = ResNet("basic", (1, 1, 1, 1), (4, 8, 8, 16), spatial_dims=2, n_input_channels=1, num_classes=3,
                 conv1_t_stride=2)
    return _randomise_norms(net).eval()


NETS = {"ctnet_bn": tiny_ctnet, "ctnet_inplace_relu": lambda: tiny_ctnet(batch_norm=False), "densenet": small_densenet,
        "resnet": small_resnet}


def _captum_gradcam(model: nn.Module, layer: str, x: torch.Tensor, target) -> torch.Tensor:
    attr = LayerGradCam(model, model.get_submodule(layer)).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(attr, tuple(x.shape[2:]), interpolate_mode="bilinear")  # align_corners=False


@pytest.mark.parametrize("net", NETS)
def test_gradcam_matches_captum(net):
    model, x = NETS[net](), _inputs()
    cam = GradCAM(model)
    layer = cam.layer_name(x)
    for target in (CLASSES, None):
        ours = cam.explain(x, target)
        ref = _captum_gradcam(model, layer, x, ours.class_idx.tolist())
        torch.testing.assert_close(cam.attribute(x, target), ref, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(ours.maps, normalize_maps(ref), rtol=0, atol=1e-5)
    assert torch.equal(ours.class_idx, model(x).argmax(1))
    torch.testing.assert_close(ours.probs, model(x).softmax(1))


def _reference_gradcampp(model: nn.Module, layer: str, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    """Grad-CAM++ of Chattopadhay et al. eq. 19 (as pytorch-grad-cam), one sample at a time, full backward."""
    maps = []
    store: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        store["a"] = output.clone()
        return store["a"]

    for i, c in enumerate(target):
        handle = model.get_submodule(layer).register_forward_hook(keep)
        try:
            score = model(x[i : i + 1])[0, c]
        finally:
            handle.remove()
        (g,) = torch.autograd.grad(score, store["a"])
        a = store["a"].detach()
        denom = 2 * g**2 + a.sum((2, 3), keepdim=True) * g**3
        alpha = torch.where(denom != 0, g**2 / denom, torch.zeros_like(g))
        w = (alpha * F.relu(g)).sum((2, 3), keepdim=True)
        maps.append(F.interpolate(F.relu((w * a).sum(1, keepdim=True)), size=x.shape[2:], mode="bilinear"))
    return torch.cat(maps)


@pytest.mark.parametrize("net", ["ctnet_bn", "resnet"])
def test_gradcampp_matches_reference(net):
    model, x = NETS[net](), _inputs(3)
    cam = GradCAMpp(model)
    ours = cam(x, CLASSES[:3])
    ref = _reference_gradcampp(model, cam.layer_name(x), x, CLASSES[:3])
    torch.testing.assert_close(ours, normalize_maps(ref), rtol=0, atol=1e-5)


def test_monai_gradcam_is_not_batch_independent():
    """The same check fails for ``monai.visualize.GradCAM``: its maps mix the batch's class scores.

    By construction: one image twice in a batch, explained for two classes whose maps differ. MONAI
    back-propagates ``logits[:, [c0, c1]].sum()``, the same score for both copies, so it returns one map twice
    and cannot match both single-image maps; ours does. Fixed seeds, no chance involved: if the MONAI assertion
    fails, ``monai.visualize.GradCAM`` changed.
    """
    model, img = tiny_ctnet(), _inputs(1, 32)
    layer = find_target_layer(model, (1, 1, 32, 32))
    x, targets = img.repeat(2, 1, 1, 1), [0, 1]
    ours = GradCAM(tiny_ctnet(), target_layer=layer)  # a fresh model: MONAI's hooks stay on the first one
    alone = torch.cat([ours(img, c) for c in targets])
    assert (alone[0] - alone[1]).abs().max() > 0.1, "precondition: the two classes' maps must differ"
    torch.testing.assert_close(ours(x, targets), alone, rtol=0, atol=1e-5)
    monai_cam = mv.GradCAM(model, target_layers=layer)
    batch = monai_cam(x, class_idx=targets)
    monai_alone = torch.cat([monai_cam(img, class_idx=[c]) for c in targets])
    diff = (batch - monai_alone).abs().max().item()
    assert diff > 1e-2, (
        f"monai.visualize.GradCAM now gives per-sample maps (max difference {diff:.1e}): MONAI changed; update "
        "this test and the note on MONAI in medbundle.explain.gradcam"
    )
    torch.testing.assert_close(batch[0], batch[1], rtol=0, atol=1e-6)  # why: one map for both classes


def test_monai_gradcampp_fails_on_a_batch_of_three():
    """``monai.visualize.GradCAMpp`` broadcasts a ``3 x 3`` score against the ``2 x 2`` feature map and raises.

    Deterministic (the feature map's size is asserted): if MONAI accepts the batch, it changed. Ours explains
    the batch, each sample as if alone.
    """
    model, x = tiny_ctnet(), _inputs(3, 32)
    layer = find_target_layer(model, (1, 1, 32, 32))
    shapes = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    assert shapes == [(3, 16, 2, 2)], f"precondition: a 2 x 2 feature map, not broadcastable with 3 x 3; got {shapes}"
    try:
        mv.GradCAMpp(model, target_layers=layer)(x)
    except RuntimeError as e:
        assert "must match the size" in str(e), e
    else:
        pytest.fail("monai.visualize.GradCAMpp accepted a batch of 3: MONAI changed; update this test and the note "
                    "on MONAI in medbundle.explain.gradcam")
    ours = GradCAMpp(tiny_ctnet(), target_layer=layer)
    batch = ours.explain(x)
    assert batch.maps.shape == (3, 1, 32, 32)
    alone = torch.cat([ours(x[i : i + 1], batch.class_idx[i].item()) for i in range(len(x))])
    torch.testing.assert_close(batch.maps, alone, rtol=0, atol=1e-5)


def test_context_of_the_caller_does_not_matter():
    """No-grad, inference-mode and autocast contexts, and a channels-last model, give the same fp32 maps."""
    model, x = tiny_ctnet(), _inputs(2, 32)
    cam = GradCAM(model)
    ref = cam(x, [1, 2])
    with torch.no_grad():
        torch.testing.assert_close(cam(x, [1, 2]), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(cam(x, [1, 2]), ref, rtol=0, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(cam(x.clone(), [1, 2]), ref)
    fast = GradCAM(model.to(memory_format=torch.channels_last), channels_last=True)
    torch.testing.assert_close(fast(x, [1, 2]), ref, rtol=0, atol=1e-5)


def test_target_layer_override_and_errors():
    model, x = tiny_ctnet(), _inputs(2, 32)
    ours = GradCAM(model, target_layer="features.3.0")(x, [0, 1])
    ref = normalize_maps(_captum_gradcam(model, "features.3.0", x, [0, 1]))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(model, target_layer="features.9")(x)
    with pytest.raises(ValueError, match="unknown explanation method"):
        get_explainer("lime", model)
    assert find_target_layer(model, (1, 1, 32, 32)) == "features.4.0"  # 2 x 2 there
    with pytest.raises(ValueError, match="no convolution"):
        find_target_layer(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten()), (1, 1, 1, 1))
    assert isinstance(get_explainer("gradcam", model, target_layer="features.4.0").explain(x), Explanation)


def _blob_images(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Every image has a bright bar (distractor) at a random place; class 1 images also have a bright disc.

    The class can only be told by finding the disc; the disc masks are returned (all zero for class 0).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    x = rng.normal(0, 0.15, (n, 1, size, size)).astype(np.float32)
    labels = np.arange(n) % 2
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        bar = np.zeros((size, size), bool)
        r, c = rng.integers(2, size - 12, 2)
        if rng.random() < 0.5:
            bar[r : r + 2, c : c + 10] = True
        else:
            bar[r : r + 10, c : c + 2] = True
        x[i, 0][bar] += 1.0
        while labels[i]:
            cy, cx = rng.integers(4, size - 4, 2)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 9
            if not (ndimage.binary_dilation(disc, iterations=2) & bar).any():
                x[i, 0][disc] += 1.0
                masks[i] = disc
                break
    return torch.from_numpy(x), torch.from_numpy(labels), masks


def test_gradcam_points_at_the_evidence():
    """Pointing game on held-out images of a small CNN trained to find a disc among distractors."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2),
    )
    x, y, _ = _blob_images(256, seed=0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _epoch in range(60):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            if (model.eval()(x).argmax(1) == y).float().mean() > 0.95:
                break
    xt, yt, masks = _blob_images(64, seed=1)
    with torch.no_grad():
        assert (model.eval()(xt).argmax(1) == yt).float().mean() > 0.9
    cam = GradCAM(model)
    assert cam.layer_name(xt) == "6"
    pos = yt == 1
    maps = cam(xt[pos], 1)[:, 0].reshape(int(pos.sum()), -1)
    peaks = maps.argmax(1).numpy()
    hits = [ndimage.binary_dilation(m, iterations=2).flatten()[a] for m, a in zip(masks[pos.numpy()], peaks)]
    assert np.mean(hits) >= 0.9, np.mean(hits)
    # cascading randomisation (Adebayo et al.): the maps of the randomised model fall toward the random-pair baseline
    from medbundle.explain.measures import cascading_randomisation

    check = cascading_randomisation(lambda m: GradCAM(m), model, xt[pos][:16], seed=0)
    # measured: Spearman -0.75, 0.80, 0.25, 0.32 over the 4 steps; random pairs 0.19
    assert check["spearman"][-1] < 0.5 and check["spearman"][-1] - check["pair_baseline"]["spearman"] < 0.2, check
