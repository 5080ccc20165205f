"""medbundle.explain.measures.attention: attention statistics per image and per class."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers.explain import blob

from medbundle.explain.measures import attention_statistics


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


def test_attention_between_classes():
    """Class-mean maps of every pair of classes are correlated: same place ~1, far apart ~0 (or below)."""
    here, there = blob(16, 16, 4, 4), blob(16, 16, 12, 12)
    maps = np.stack([here, 0.5 * here, here, there])
    out = attention_statistics(maps, [0, 0, 1, 2])
    pairs = {tuple(r["classes"]): r["correlation"] for r in out["between_classes"]}
    assert list(pairs) == [(0, 1), (0, 2), (1, 2)]
    assert pairs[(0, 1)] == pytest.approx(1.0)
    assert pairs[(0, 2)] < 0.1 and pairs[(1, 2)] == pytest.approx(pairs[(0, 2)])
    one = attention_statistics(maps[:1], [0])
    assert one["between_classes"] == []  # a single class: no pair
    json.dumps(out["between_classes"])
