"""Tests of the saliency-quality measures on hand-made maps, masks and tiny models with known answers."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from medbundle.explain.quality import (
    attention_statistics,
    cascading_randomisation,
    deletion_insertion,
    localisation_scores,
    pointing_game,
    random_baseline_localisation,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    saliency_auprc,
    stability,
    summarise,
)


def square_mask(h: int = 16, w: int = 16, r0: int = 4, r1: int = 8, c0: int = 4, c1: int = 8) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


def blob(h: int, w: int, r: float, c: float, sigma: float = 2.0) -> np.ndarray:
    rr, cc = np.mgrid[:h, :w]
    return np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * sigma**2))


# ------------------------------------------------------------------------------------------------
# localisation
# ------------------------------------------------------------------------------------------------


def test_pointing_game():
    mask = square_mask()
    assert pointing_game(blob(16, 16, 5, 6), mask) == 1.0
    assert pointing_game(torch.as_tensor(blob(16, 16, 12, 12))[None], torch.as_tensor(mask)) == 0.0
    assert pointing_game(blob(16, 16, 8, 5), mask) == 0.0  # one pixel below the mask (rows 4..7)
    assert pointing_game(blob(16, 16, 8, 5), mask, tolerance=1) == 1.0
    assert pointing_game(blob(16, 16, 9, 5), mask, tolerance=1) == 0.0
    assert pointing_game(blob(16, 16, 8, 8), mask, tolerance=1.5) == 1.0  # diagonal: distance sqrt(2)
    assert pointing_game(blob(16, 16, 8, 8), mask, tolerance=1) == 0.0
    tied = np.zeros((16, 16))
    tied[0, 0] = tied[5, 5] = 1.0  # a hit if any of the tied maxima is on the mask
    assert pointing_game(tied, mask) == 1.0
    assert pointing_game(np.full((16, 16), 0.7), mask) == 0.0  # a constant map points nowhere
    assert pointing_game(np.zeros((16, 16)), mask) == 0.0
    with pytest.raises(ValueError):
        pointing_game(np.zeros((16, 16)), np.zeros((8, 8)))


def test_empty_mask_is_nan_for_every_measure():
    s, empty = blob(16, 16, 5, 5), np.zeros((16, 16), np.uint8)
    for f in (pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, saliency_auprc):
        assert math.isnan(f(s, empty)), f.__name__
    rec = localisation_scores(s[None], empty[None])[0]
    assert all(math.isnan(rec[k]) for k in ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy",
                                            "auprc"))


def test_relevance_mass_accuracy():
    mask = square_mask()
    assert relevance_mass_accuracy(np.full((16, 16), 0.3), mask) == pytest.approx(16 / 256)
    assert relevance_mass_accuracy(np.zeros((16, 16)), mask) == 0.0
    assert relevance_mass_accuracy(mask.astype(float), mask) == pytest.approx(1.0)
    s = mask * 3.0
    s[0, 0] = 1.0
    assert relevance_mass_accuracy(s, mask) == pytest.approx(48 / 49)


def test_relevance_rank_accuracy():
    mask = square_mask()  # K = 16
    s = np.zeros((16, 16))
    s[4:6, 4:8] = 1.0  # 8 of the top 16 inside
    s[12:14, 8:12] = 0.9  # 8 outside
    s[6:8, 4:8] = 0.1  # the remaining mask pixels rank below
    assert relevance_rank_accuracy(s, mask) == pytest.approx(0.5)
    assert relevance_rank_accuracy(mask.astype(float), mask) == pytest.approx(1.0)
    assert relevance_rank_accuracy(np.ones((16, 16)), mask) == pytest.approx(16 / 256)  # ties: chance level
    t = np.zeros((16, 16))
    t[4:6, 4:8] = 1.0  # 8 inside strictly on top, then 248 tied pixels of which 8 inside
    assert relevance_rank_accuracy(t, mask) == pytest.approx((8 + 8 * 8 / 248) / 16)


def test_saliency_auprc():
    mask = square_mask()
    assert saliency_auprc(mask.astype(float), mask) == pytest.approx(1.0)
    assert saliency_auprc(blob(16, 16, 5.5, 5.5), mask) == pytest.approx(1.0)
    assert math.isnan(saliency_auprc(blob(16, 16, 5, 5), np.ones((16, 16))))  # full mask: trivially 1
    rng = np.random.default_rng(0)
    big = np.zeros((256, 256), bool)
    big[:, :64] = True
    assert saliency_auprc(rng.random((256, 256)), big) == pytest.approx(0.25, abs=0.01)


def test_localisation_scores_and_random_baseline():
    masks = np.stack([square_mask(32, 32, 4, 12, 4, 12), square_mask(32, 32, 16, 28, 10, 30)])
    maps = np.stack([blob(32, 32, 8, 8, 3), blob(32, 32, 22, 20, 4)])[:, None]
    recs = localisation_scores(maps, masks)
    assert [r["index"] for r in recs] == [0, 1] and all(r["pointing_game"] == 1.0 for r in recs)
    assert recs[0]["mask_fraction"] == pytest.approx(64 / 1024)
    base = random_baseline_localisation(masks, n_maps=8, seed=0)
    assert base["sigma"] == 2.0 and base["n_maps"] == 8 and len(base["records"]) == 2
    for good, rnd in zip(recs, base["records"]):
        # random maps sit near the chance level, the matching maps far above it
        assert rnd["relevance_mass_accuracy"] == pytest.approx(rnd["mask_fraction"], abs=0.08)
        for k in ("relevance_mass_accuracy", "relevance_rank_accuracy", "auprc"):
            assert good[k] > rnd[k] + 0.3, k
    assert base["summary"]["auprc"]["n"] == 2
    json.dumps(base)
    assert random_baseline_localisation(masks, n_maps=8, seed=0)["records"] == base["records"]


# ------------------------------------------------------------------------------------------------
# stability
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# cascading randomisation
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# deletion / insertion
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# attention statistics and summary
# ------------------------------------------------------------------------------------------------


def test_attention_statistics():
    maps = np.zeros((4, 11, 21))
    maps[0, 3, 7] = 1.0
    maps[1, 3, 7] = 0.5  # same place: identical up to scale
    maps[1, 5, 5] = 0.25
    maps[2] = blob(11, 21, 5, 10)
    out = attention_statistics(maps, torch.tensor([0, 0, 1, 2]))
    p0 = out["per_image"][0]
    assert p0["com_row"] == pytest.approx(3 / 10) and p0["com_col"] == pytest.approx(7 / 20)
    assert p0["spread"] == 0.0 and p0["label"] == 0
    assert out["per_image"][2]["com_row"] == pytest.approx(0.5) and out["per_image"][2]["spread"] > 0
    assert math.isnan(out["per_image"][3]["com_row"])  # all-zero map
    assert 0 < out["per_class"][0]["agreement"] < 1
    assert math.isnan(out["per_class"][1]["agreement"]) and out["per_class"][1]["n"] == 1
    assert out["mean_maps"][0].shape == (11, 21) and out["mean_maps"][0][3, 7] == pytest.approx(0.75)
    same = attention_statistics(np.stack([maps[2]] * 3)[:, None], [1, 1, 1])
    assert same["per_class"][1]["agreement"] == pytest.approx(1.0)
    json.dumps({k: v for k, v in out.items() if k != "mean_maps"})


def test_summarise_ignores_nan():
    recs = [{"index": 0, "a": 1.0, "b": "x", "c": float("nan")}, {"index": 1, "a": float("nan"), "c": None},
            {"index": 2, "a": 3, "b": "y"}]
    s = summarise(recs)
    assert set(s) == {"a", "c"}
    assert s["a"] == {"mean": 2.0, "std": 1.0, "median": 2.0, "n": 2}
    assert s["c"]["n"] == 0 and math.isnan(s["c"]["mean"])
    assert summarise([]) == {}


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
