"""medbundle.explain.anatomy: brain, body and lung masks; restricting maps to the anatomy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medbundle.data.demo import ct_phantom
from medbundle.explain.anatomy import anatomy_mask, restrict_to_anatomy, spillover_fraction


def _chest_phantom(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frontal chest X-ray cartoon: bright body ellipse touching the bottom edge, two dark lungs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((xx - 0.5) / 0.46) ** 2 + ((yy - 0.55) / 0.5) ** 2 < 1
    lungs = np.zeros((size, size), bool)
    for cx in (0.3, 0.7):
        lungs |= ((xx - cx) / 0.14) ** 2 + ((yy - 0.5) / 0.28) ** 2 < 1
    img = np.where(body, 0.75, 0.05)
    img[lungs] = 0.25
    img = ndimage.gaussian_filter(img, 1.0) + rng.normal(0, 0.03, img.shape)
    return img.astype(np.float32), lungs, body


@pytest.mark.parametrize("size", [128, 64])
def test_brain_mask_on_ct_phantoms(size):
    rng = np.random.default_rng(size)
    for i in range(10):  # 10 per size, all severities
        img, lesion = ct_phantom(rng, i % 3, size)
        brain = anatomy_mask(img, "brain")
        body = anatomy_mask(img, "body")
        assert brain.dtype == bool and brain.shape == img.shape
        if lesion.any():
            assert brain[lesion > 0].mean() >= 0.99, (size, i)
        # inside the body, clearly smaller: skull ring and background excluded
        assert not (brain & ~body).any()
        assert 0.5 * body.sum() < brain.sum() < body.sum()
        assert not brain[0].any() and not brain[-1].any() and not brain[:, 0].any() and not brain[:, -1].any()
        skull = img >= 0.9 * np.percentile(img, 99.5)  # the bright ring
        assert (skull & brain).sum() <= 0.01 * skull.sum(), (size, i)
        assert (skull & body & ~brain).sum() >= 0.95 * skull.sum()
        assert img[brain].mean() < 0.75 * img[skull].mean()


def test_brain_mask_falls_back_to_body_without_a_skull_ring():
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    disc = np.where(xx**2 + yy**2 < 0.6, 0.5, 0.0) + np.random.default_rng(0).normal(0, 0.01, (64, 64))
    np.testing.assert_array_equal(anatomy_mask(disc, "brain"), anatomy_mask(disc, "body"))
    assert anatomy_mask(disc, "body").sum() == pytest.approx((xx**2 + yy**2 < 0.6).sum(), rel=0.05)
    assert not anatomy_mask(np.full((8, 8), 3.0), "brain").any()  # constant image: nothing
    with pytest.raises(ValueError, match="kind"):
        anatomy_mask(disc, "liver")


def test_body_mask_is_largest_component_with_holes_filled():
    img = np.zeros((40, 40))
    img[5:35, 5:30] = 1.0
    img[15:20, 12:18] = 0.0  # a dark hole inside
    img[36:39, 36:39] = 1.0  # a small bright speck
    body = anatomy_mask(img, "body")
    expected = np.zeros((40, 40), bool)
    expected[5:35, 5:30] = True
    np.testing.assert_array_equal(body, expected)


@pytest.mark.parametrize("size", [128, 64])
def test_lung_mask_on_chest_phantom(size):
    img, lungs, body = _chest_phantom(size)
    mask = anatomy_mask(img, "lung")
    dice = 2 * (mask & lungs).sum() / (mask.sum() + lungs.sum())
    assert dice > 0.9
    assert ndimage.label(mask)[1] == 2
    assert not (mask & ~body).any()  # no air around the patient


def test_restrict_to_anatomy_known_values():
    m = np.array([[0.2, 0.8], [0.4, 0.1]])
    k = np.array([[1, 0], [1, 0]], bool)
    out = restrict_to_anatomy(m, k)
    assert out.shape == (2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.5, 0.0], [1.0, 0.0]])
    stack = np.stack([m, np.zeros_like(m), np.array([[0.0, 0.9], [0.0, 0.3]])])
    out = restrict_to_anatomy(stack, k)  # one mask for all maps
    np.testing.assert_allclose(out[0], [[0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(out[1], 0.0)  # all zero stays zero
    np.testing.assert_array_equal(out[2], 0.0)  # all relevance outside: nothing left
    out = restrict_to_anatomy(stack, np.stack([k, k, ~k]))  # one mask per map
    np.testing.assert_allclose(out[2], [[0.0, 1.0], [0.0, 1 / 3]], rtol=1e-6)
    with pytest.raises(ValueError):
        restrict_to_anatomy(stack, np.ones((3, 3), bool))


def test_spillover_fraction_known_values():
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert spillover_fraction(np.ones((4, 4)), mask) == pytest.approx(0.5)
    assert spillover_fraction(np.ones((4, 4)) * mask, mask) == 0.0
    heat = np.zeros((4, 4))
    heat[0, 0], heat[3, 3] = 3.0, 1.0
    assert spillover_fraction(heat, mask) == pytest.approx(0.25)
    assert np.isnan(spillover_fraction(np.zeros((4, 4)), mask))
    # restricting removes all spillover
    assert spillover_fraction(restrict_to_anatomy(heat, mask), mask) == 0.0
