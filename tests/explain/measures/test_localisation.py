"""medbundle.explain.measures.localisation: pointing game, relevance mass/rank, AUPRC, random baseline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers.explain import blob

from medbundle.explain.measures import (
    localisation_scores,
    pointing_game,
    random_baseline_localisation,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    saliency_auprc,
)


def square_mask(h: int = 16, w: int = 16, r0: int = 4, r1: int = 8, c0: int = 4, c1: int = 8) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


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
